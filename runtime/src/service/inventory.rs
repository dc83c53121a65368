//! Inventory versions: the active one, validation of a new one, the switch, and the
//! re-evaluation of every cell on it.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::dto::{InventoryRequest, InventoryView, SwitchResponse, ValidationView};
use crate::view::{CountsView, ProblemView};
use crate::zone::{Candidate, Source};
use crate::Error;
use store::Change;

use super::{blocking, reevaluation, writable, Heavy, Service};
use crate::ledger::missing_error;

impl Service {
    /// The active inventory and the latest re-evaluation of the cells.
    pub async fn inventory(&self) -> InventoryView {
        let mut view = InventoryView::new(&self.core.ledger.read().await.zone);
        view.reevaluation = self.reevaluations.latest();
        view
    }

    pub(super) fn source(&self, req: &InventoryRequest) -> Result<Source, Error> {
        match (&req.path, &req.tables) {
            (Some(p), None) if p.is_empty() => Err(Error::InvalidField {
                field: "path".into(),
                message: "the path is empty".into(),
            }),
            (Some(p), None) => Ok(Source::Dir(self.server_path(p, "path")?)),
            (None, Some(tables)) => {
                let root = self.config.data_dir.join("inventories");
                let dir = crate::zone::write_upload(&root, tables, self.core.clock.now_ms())?;
                Ok(Source::Upload(dir))
            }
            _ => Err(Error::InvalidField {
                field: "path".into(),
                message: "give exactly one of 'path' and 'tables'".into(),
            }),
        }
    }

    /// Validates an inventory without switching to it.
    pub async fn validate_inventory(&self, req: InventoryRequest) -> Result<ValidationView, Error> {
        let source = self.source(&req)?;
        let upload = matches!(source, Source::Upload(_)).then(|| source.path().map(PathBuf::from));
        let result = self.validate_source(source).await;
        if let Some(Some(dir)) = upload {
            // A validation keeps nothing, whatever its outcome.
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(match result {
            Ok((counts, warnings, impact)) => ValidationView {
                valid: true,
                counts: Some(counts),
                errors: Vec::new(),
                warnings,
                impact: Some(impact),
            },
            Err(Error::Inventory(e)) => {
                let (errors, warnings) = problems(&e);
                ValidationView {
                    valid: false,
                    counts: None,
                    errors,
                    warnings,
                    impact: None,
                }
            }
            Err(e) => return Err(e),
        })
    }

    /// The counts, warnings and impact of the inventory `source`, as a heavy request.
    async fn validate_source(
        &self,
        source: Source,
    ) -> Result<(CountsView, Vec<ProblemView>, serde_json::Value), Error> {
        let run = self.heavy.start(Heavy::Validate).await?;
        let (zone, placements) = {
            let ledger = self.core.ledger.read().await;
            (ledger.zone.clone(), ledger.placements())
        };
        let placer = self.core.placer.clone();
        run.compute(move |stop| {
            // One read, one validation, one failure model: the candidate's tables are what
            // the what-if below judges the cells on.
            let candidate = Candidate::load(source)?;
            let counts = CountsView::from(candidate.inventory.counts());
            let warnings: Vec<ProblemView> =
                candidate.warnings.iter().map(ProblemView::from).collect();
            let sides = crate::whatif::between(
                &zone.inventory,
                &zone.model,
                (candidate.inventory, candidate.model),
                candidate.raw,
                &placements,
            )?;
            let options = optimizer::whatif::Options {
                report: Some(optimizer::ReportOptions::default()),
                plan: Some(placer),
                domains: true,
                stop,
                ..optimizer::whatif::Options::default()
            };
            let started = std::time::Instant::now();
            let w = sides.compare(&options);
            let impact = crate::whatif::summary(
                &sides.before,
                sides.after(),
                &sides.placements_after,
                &w,
                started.elapsed().as_secs_f64() * 1e3,
            );
            Ok((counts, warnings, impact))
        })
        .await
    }

    /// Validates a new inventory, switches to it atomically, and re-evaluates every cell on
    /// it in the background (`wait`: before replying). A bad inventory, or one missing
    /// servers that cells use, changes nothing.
    pub async fn switch_inventory(
        &self,
        req: InventoryRequest,
        wait: bool,
    ) -> Result<SwitchResponse, Error> {
        let source = self.source(&req)?;
        let upload = match &source {
            Source::Upload(dir) => Some(dir.clone()),
            _ => None,
        };
        let switched = self.switch_to(source, wait).await;
        if let (Err(_), Some(dir)) = (&switched, upload) {
            // A refused upload keeps nothing on disk.
            let _ = std::fs::remove_dir_all(dir);
        }
        switched
    }

    async fn switch_to(&self, source: Source, wait: bool) -> Result<SwitchResponse, Error> {
        let mut last_version = self.switching.lock().await;
        let candidate = blocking(move || Candidate::load(source))
            .await?
            .map_err(inventory_error)?;
        // After the highest version this replica knows: its own, or one another replica
        // switched to (the feed follows those).
        let (current, overlay) = {
            let zone = &self.core.ledger.read().await.zone;
            (zone.version, zone.overlay.clone())
        };
        let zone = candidate.into_zone((*last_version).max(current) + 1, self.core.clock.now_ms());
        // The health reported stays for the ids the new export still names.
        let (zone, dropped) = blocking(move || zone.keeping(&overlay)).await??;
        let zone = Arc::new(zone);
        let (previous, seq, cells) = {
            let mut ledger = self.core.write().await;
            writable(&ledger)?;
            let mut changes = vec![
                Change::ActivateInventory(zone.record()),
                zone.capacities(),
                Change::SetOverlay(zone.overlay.records()),
            ];
            // The journal hands out this number next: we hold the write lock.
            let seq = self.core.journal.last_seq() + 1;
            let mut rebuilt = ledger
                .rezone(zone.clone(), seq)
                .map_err(|m| missing_error(&m))?;
            // Moves were computed on the old inventory.
            let superseded = rebuilt.supersede_moves(zone.loaded_at);
            changes.extend(superseded.into_iter().map(Change::PutMove));
            // Plans were made on the old inventory.
            changes.extend(self.plans.invalidate_all(zone.version));
            let submitted = self.core.journal.submit(changes);
            debug_assert_eq!(seq, submitted);
            rebuilt.seq = seq;
            let previous = ledger.zone.version;
            *ledger = rebuilt;
            (previous, seq, ledger.len())
        };
        *last_version = zone.version;
        self.core.journal.wait(seq).await?;
        tracing::info!(
            version = zone.version,
            source = %zone.source.label(),
            "switched inventory"
        );
        let (started, job) = reevaluation::start(
            self.core.clone(),
            self.reevaluations.clone(),
            zone.clone(),
            cells,
        );
        let reevaluation = if wait {
            job.await
                .map_err(|e| Error::Internal(format!("re-evaluation: {e}")))?
        } else {
            started
        };
        Ok(SwitchResponse {
            inventory: InventoryView::new(&zone),
            previous_version: previous,
            reevaluation,
            overlay_dropped: dropped,
        })
    }
}

/// The problems of an inventory that could not be loaded: (errors, warnings).
fn problems(e: &topology::Error) -> (Vec<ProblemView>, Vec<ProblemView>) {
    match e {
        topology::Error::Invalid(report) => (
            report.errors.iter().map(ProblemView::from).collect(),
            report.warnings.iter().map(ProblemView::from).collect(),
        ),
        // Unreadable: no table to point at; the file by its name, never the host's path.
        topology::Error::Io { path, cause } => (
            vec![ProblemView {
                table: String::new(),
                file: Some(file_name(path)),
                row: None,
                line: None,
                column: None,
                message: format!("{}: {cause}", file_name(path)),
            }],
            Vec::new(),
        ),
        topology::Error::Read { path, message } => (
            vec![ProblemView {
                table: String::new(),
                file: Some(file_name(path)),
                row: None,
                line: None,
                column: None,
                message: format!("{}: {message}", file_name(path)),
            }],
            Vec::new(),
        ),
    }
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

pub(super) fn inventory_error(e: Error) -> Error {
    match e {
        Error::Inventory(e) => {
            let (errors, warnings) = problems(&e);
            Error::InvalidInventory {
                errors: errors.len(),
                details: json!({ "errors": errors, "warnings": warnings }),
            }
        }
        e => e,
    }
}
