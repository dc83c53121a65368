//! Reading inventories, workloads and placements from disk, with every problem reported.

use std::path::Path;

pub use topology::ingest::read_table;
use topology::raw::{RawInventory, RawTable};
use topology::{CellSpec, FailureModel, Inventory, Placement, Problem};

/// A loaded inventory with its precomputed failure model.
#[derive(Debug)]
pub struct Loaded {
    /// The validated inventory.
    pub inventory: Inventory,
    /// Its failure model: single and pair failure effects, precomputed.
    pub model: FailureModel,
    /// Problems found that did not stop the load.
    pub warnings: Vec<Problem>,
}

/// Reads and validates an export directory. The error lists every problem.
pub fn inventory(dir: &Path) -> Result<Loaded, topology::Error> {
    let raw = topology::ingest::read_dir(dir)?;
    let (inventory, warnings) = Inventory::from_raw(&raw)?;
    let model = FailureModel::new(&inventory);
    Ok(Loaded {
        inventory,
        model,
        warnings,
    })
}

/// Reads an export directory for rebalancing `placements`: servers the placements name and
/// the inventory no longer has come back as `failed` servers in the rack
/// [`topology::raw::GONE`], so that a repair moves their nodes off (returned by id).
pub fn inventory_with_gone(
    dir: &Path,
    placements: &RawTable,
) -> Result<(Loaded, Vec<String>), topology::Error> {
    let mut raw = topology::ingest::read_dir(dir)?;
    let (inventory, warnings, gone) = validate_with_gone(&mut raw, placements)?;
    let model = FailureModel::new(&inventory);
    Ok((
        Loaded {
            inventory,
            model,
            warnings,
        },
        gone,
    ))
}

/// Adds to `raw` the servers `placements` name and it lacks (failed, in the rack
/// [`topology::raw::GONE`]) and validates it: the inventory, its warnings (none about the
/// rows added) and the gone servers' ids.
pub fn validate_with_gone(
    raw: &mut RawInventory,
    placements: &RawTable,
) -> Result<(Inventory, Vec<Problem>, Vec<String>), topology::Error> {
    let gone = raw.gone_servers(placements);
    let rows = |raw: &RawInventory, table| raw.table(table).map_or(0, |t| t.len());
    let (servers, racks) = (rows(raw, "servers"), rows(raw, "racks"));
    raw.add_gone_servers(&gone);
    let (inventory, mut warnings) = Inventory::from_raw(raw)?;
    // Nothing links or powers the rows added for gone servers: no warning about them.
    warnings.retain(|w| match (w.table.as_str(), w.row) {
        ("servers", Some(row)) => row <= servers,
        ("racks", Some(row)) => row <= racks,
        _ => true,
    });
    Ok((
        inventory,
        warnings,
        gone.into_iter().map(|(id, _)| id).collect(),
    ))
}

/// A placement export (cell_id, clients, nodes; server ids `;`-joined).
pub fn placement_table(inv: &Inventory, placements: &[&Placement]) -> RawTable {
    let ids = |servers: &[u32]| {
        servers
            .iter()
            .map(|&s| inv.servers[s as usize].id.as_str())
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut table = RawTable::new(&["cell_id", "clients", "nodes"]);
    for p in placements {
        table.push(&[p.cell_id.clone(), ids(&p.clients), ids(&p.nodes)]);
    }
    table
}

/// The error of a table read from `path`, its problems naming that file.
fn invalid(path: &Path) -> impl Fn(topology::Report) -> topology::Error + '_ {
    move |mut report| {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
        report.locate(|_| file.clone());
        topology::Error::Invalid(report)
    }
}

/// Reads a placement export (`placements.csv` or `.parquet`).
pub fn placements(path: &Path, inventory: &Inventory) -> Result<Vec<Placement>, topology::Error> {
    placements_from(&read_table(path)?, path, inventory)
}

/// The placements of a table read from `path`.
pub fn placements_from(
    table: &RawTable,
    path: &Path,
    inventory: &Inventory,
) -> Result<Vec<Placement>, topology::Error> {
    topology::workload::parse_placements(table, inventory).map_err(invalid(path))
}

/// Reads a cell workload (`cells.csv` or `.parquet`).
pub fn cells(path: &Path, inventory: &Inventory) -> Result<Vec<CellSpec>, topology::Error> {
    let table = read_table(path)?;
    topology::workload::parse_cells(&table, inventory).map_err(invalid(path))
}
