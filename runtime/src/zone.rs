//! The availability zone the service places into: a validated inventory with its failure
//! model, the version under which the ledger knows it, and where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::engine::Layout;
use topology::raw::RawInventory;
use topology::{Changed, FailureModel, Inventory, Problem};

use crate::overlay::{Export, Overlay};

use crate::Error;

/// Where an inventory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The zone generated from `fixtures::ZoneParams::small(0)`: the same 2,304-server
    /// shape as the `az-small` sample, deterministic, so nothing has to ship with the binary.
    Bundled,
    /// An export directory (CSV or Parquet per table) given on the command line or pointed to.
    Dir(PathBuf),
    /// An export uploaded over HTTP and kept under the data directory.
    Upload(PathBuf),
}

impl Source {
    /// The label of [`Source::Bundled`].
    pub const BUNDLED: &'static str = "bundled:small:0";

    /// The form kept in the ledger.
    pub fn label(&self) -> String {
        match self {
            Source::Bundled => Source::BUNDLED.to_owned(),
            Source::Dir(p) => format!("dir:{}", p.display()),
            Source::Upload(p) => format!("upload:{}", p.display()),
        }
    }

    /// The export directory; `None` for the bundled zone.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Bundled => None,
            Source::Dir(p) | Source::Upload(p) => Some(p),
        }
    }

    /// The export's tables as read (for what-if edits, which work on tables).
    pub fn raw(&self) -> Result<RawInventory, Error> {
        Ok(match self {
            Source::Bundled => {
                let mut raw = fixtures::generate(&fixtures::ZoneParams::small(0));
                raw.tables.remove("cells");
                raw
            }
            Source::Dir(p) | Source::Upload(p) => topology::ingest::read_dir(p)?,
        })
    }

    /// Back from the ledger's label; `None` for a label this build does not know.
    pub fn parse(label: &str) -> Option<Source> {
        if label == Source::BUNDLED {
            Some(Source::Bundled)
        } else if let Some(p) = label.strip_prefix("dir:") {
            Some(Source::Dir(PathBuf::from(p)))
        } else {
            label
                .strip_prefix("upload:")
                .map(|p| Source::Upload(PathBuf::from(p)))
        }
    }
}

/// A validated inventory with its failure model, as the ledger serves it under a version:
/// the export with the health overlay applied.
#[derive(Debug)]
pub struct Zone {
    /// Inventory version in the ledger.
    pub version: i64,
    /// Where the inventory came from.
    pub source: Source,
    /// Unix milliseconds.
    pub loaded_at: i64,
    /// The export, without the overlay (shared by every zone of this version).
    pub export: Arc<Export>,
    /// The element states reported on top of the export.
    pub overlay: Overlay,
    /// Per server: since when the overlay has it down (Unix milliseconds), if it does.
    pub down_since: Vec<Option<i64>>,
    /// The inventory served: the export with the overlay applied (same server indices;
    /// the export's own, shared, when the overlay is empty).
    pub inventory: Arc<Inventory>,
    /// The inventory's failure model: single and pair failure effects, precomputed.
    pub model: FailureModel,
    /// Problems found that did not stop the load.
    pub warnings: Vec<Problem>,
    /// Node capacity of active hosts (the denominator of utilisation).
    pub active_capacity: u64,
    /// The inventory laid out for placing, built by the first solve on this zone.
    layout: OnceLock<Arc<Layout>>,
}

impl Zone {
    /// The inventory laid out for placing (built once per zone, on first use).
    pub fn layout(&self) -> Arc<Layout> {
        self.layout
            .get_or_init(|| Arc::new(Layout::new(&self.inventory)))
            .clone()
    }

    /// Every server's node capacity, for a store that checks commits itself.
    pub fn capacities(&self) -> store::Change {
        store::Change::Capacities(
            self.inventory
                .servers
                .iter()
                .map(|s| (s.id.clone(), s.capacity))
                .collect(),
        )
    }

    /// The ledger's record of this inventory version.
    pub fn record(&self) -> store::InventoryRecord {
        store::InventoryRecord {
            version: self.version,
            source: self.source.label(),
            path: self.source.path().map(|p| p.display().to_string()),
            loaded_at: self.loaded_at,
        }
    }
}

/// An inventory the service can serve hosts at least one cell of the default size: that
/// many active servers with node capacity and one colour. One that cannot (no servers at
/// all, every host failed or full of zero capacity) is invalid, so that it never
/// replaces a working one.
fn hostable(inv: &topology::Inventory) -> Result<(), topology::Error> {
    let size = topology::workload::DEFAULT_CELL_SIZE;
    let mut by_colour: std::collections::BTreeMap<Option<&str>, usize> = Default::default();
    for s in &inv.servers {
        if s.status == topology::model::ServerStatus::Active && s.capacity > 0 {
            *by_colour.entry(s.color.as_deref()).or_default() += 1;
        }
    }
    let hosts: usize = by_colour.values().sum();
    let most = by_colour.values().copied().max().unwrap_or(0);
    if most >= size {
        return Ok(());
    }
    let message = format!(
        "cannot host a single cell: {hosts} active server(s) with node capacity, at most \
         {most} of one colour, and a cell needs {size} of one colour"
    );
    let problem = topology::Problem::column("servers", "status", message);
    Err(topology::Error::Invalid(topology::Report {
        errors: vec![problem],
        warnings: Vec::new(),
    }))
}

/// A validated inventory not yet given a version.
#[derive(Debug)]
pub struct Candidate {
    /// Where the inventory came from.
    pub source: Source,
    /// The tables as read (the overlay applies to them).
    pub raw: RawInventory,
    /// The validated inventory.
    pub inventory: Inventory,
    /// The inventory's failure model.
    pub model: FailureModel,
    /// Problems found that did not stop the validation.
    pub warnings: Vec<Problem>,
}

impl Candidate {
    /// Reads and validates; CPU- and IO-heavy, so call it off the async runtime.
    pub fn load(source: Source) -> Result<Candidate, Error> {
        let raw = source.raw()?;
        Candidate::from_raw(source, raw)
    }

    /// Validates the tables `raw` read from `source` and builds their failure model.
    pub fn from_raw(source: Source, raw: RawInventory) -> Result<Candidate, Error> {
        let (inventory, warnings) = Inventory::from_raw(&raw)?;
        hostable(&inventory)?;
        let model = FailureModel::new(&inventory);
        Ok(Candidate {
            source,
            raw,
            inventory,
            model,
            warnings,
        })
    }

    /// The zone of this inventory under `version`, loaded at `loaded_at` (Unix
    /// milliseconds), with no health overlay.
    pub fn into_zone(self, version: i64, loaded_at: i64) -> Zone {
        let down_since = vec![None; self.inventory.servers.len()];
        let inventory = Arc::new(self.inventory);
        Zone {
            version,
            source: self.source,
            loaded_at,
            active_capacity: active_capacity(&inventory),
            inventory: inventory.clone(),
            export: Arc::new(Export {
                raw: self.raw,
                inventory,
            }),
            overlay: Overlay::default(),
            down_since,
            model: self.model,
            warnings: self.warnings,
            layout: OnceLock::new(),
        }
    }
}

fn active_capacity(inv: &Inventory) -> u64 {
    inv.servers
        .iter()
        .filter(|s| s.status == topology::model::ServerStatus::Active)
        .map(|s| u64::from(s.capacity))
        .sum()
}

impl Zone {
    /// The same export and version with another overlay: the tables with the overlay
    /// applied, validated (a zone whose hosts are all down is still served: that is what
    /// happened) and modelled. CPU-heavy: call it off the async runtime.
    pub fn with_overlay(&self, overlay: Overlay) -> Result<Zone, Error> {
        self.after_overlay(overlay).map(|(zone, _)| zone)
    }

    /// [`Zone::with_overlay`], the model rebuilt from this zone's (its effects kept when
    /// the change leaves them alone), with the servers whose cells may answer otherwise
    /// (`None`: any).
    pub fn after_overlay(&self, overlay: Overlay) -> Result<(Zone, Option<Vec<u32>>), Error> {
        let applied = overlay.apply(&self.export);
        let (inventory, warnings) = Inventory::from_raw(&applied.raw)?;
        debug_assert_eq!(inventory.servers.len(), self.export.inventory.servers.len());
        let (model, changed) = self.model.rebuilt(&self.inventory, &inventory);
        let servers = inventory.servers.len() as u32;
        let changed = match changed {
            Changed::Everything => None,
            Changed::Vertices(v) => Some(v.into_iter().filter(|&v| v < servers).collect()),
        };
        let zone = Zone {
            version: self.version,
            source: self.source.clone(),
            loaded_at: self.loaded_at,
            export: self.export.clone(),
            overlay,
            down_since: applied.down_since,
            active_capacity: active_capacity(&inventory),
            inventory: Arc::new(inventory),
            model,
            warnings,
            layout: OnceLock::new(),
        };
        Ok((zone, changed))
    }

    /// This zone (a fresh export, no overlay yet) with the entries of `overlay` whose ids
    /// its export still names; the ids of the others, dropped. Off the async runtime when
    /// any are kept (see [`Zone::with_overlay`]).
    pub fn keeping(self, overlay: &Overlay) -> Result<(Zone, Vec<String>), Error> {
        let (kept, dropped) = overlay.retain_known(&self.export.inventory);
        let zone = if kept.entries.is_empty() {
            self
        } else {
            self.with_overlay(kept)?
        };
        Ok((zone, dropped))
    }
}

/// Writes uploaded tables (name -> CSV text) into a fresh directory under `root`, so that
/// an uploaded inventory loads through the same reader as any export and can be reloaded
/// after a restart. Table names outside the contract are refused.
pub fn write_upload(
    root: &Path,
    tables: &BTreeMap<String, String>,
    stamp: i64,
) -> Result<PathBuf, Error> {
    for name in tables.keys() {
        let known = topology::raw::TABLES.contains(&name.as_str());
        if !known {
            return Err(Error::InvalidField {
                field: format!("tables.{name}"),
                message: format!(
                    "not a table of the export format (expected one of {})",
                    topology::raw::TABLES.join(", ")
                ),
            });
        }
    }
    let io = |context: String| move |source| Error::Io { context, source };
    let mut dir = root.join(format!("upload-{stamp}"));
    let mut k = 1;
    while dir.exists() {
        dir = root.join(format!("upload-{stamp}-{k}"));
        k += 1;
    }
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    for (name, text) in tables {
        let path = dir.join(format!("{name}.csv"));
        if let Err(e) = std::fs::write(&path, text) {
            // Half an upload is no upload.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(io(format!("writing {}", path.display()))(e));
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_labels_round_trip() {
        for s in [
            Source::Bundled,
            Source::Dir("/a/b".into()),
            Source::Upload("/c".into()),
        ] {
            assert_eq!(Source::parse(&s.label()), Some(s));
        }
        assert_eq!(Source::parse("ftp:x"), None);
    }

    #[test]
    fn bundled_zone_loads() {
        let c = Candidate::load(Source::Bundled).unwrap();
        assert_eq!(c.inventory.servers.len(), 2304);
        let zone = c.into_zone(1, 0);
        assert!(zone.active_capacity > 0);
    }

    #[test]
    fn upload_refuses_unknown_tables() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = BTreeMap::new();
        t.insert(
            "racks".to_owned(),
            "rack_id,datacenter,room,row\n".to_owned(),
        );
        t.insert("bogus".to_owned(), String::new());
        let err = write_upload(dir.path(), &t, 1).unwrap_err();
        assert_eq!(err.field(), Some("tables.bogus"));
        t.remove("bogus");
        let a = write_upload(dir.path(), &t, 1).unwrap();
        let b = write_upload(dir.path(), &t, 1).unwrap();
        assert_ne!(a, b);
        assert!(a.join("racks.csv").exists());
    }
}
