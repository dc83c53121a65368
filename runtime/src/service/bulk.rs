//! Bulk import into the live ledger (`POST /v1/ledger/import`): a placement file on the
//! service's host, every cell checked under the ledger's lock as a placement would be
//! (known, active servers; capacity; one colour; no quorum shared; a new id). All or
//! nothing, unless told to skip the bad cells.

use std::collections::HashMap;
use std::sync::Arc;

use optimizer::report::cell_risks;
use serde_json::json;
use topology::Placement;

use crate::dto::{ImportRequest, ImportResponse, RefusedView};
use crate::import::{check_rows, parse_rows, CHUNK};
use crate::Error;
use store::Change;

use super::inventory::inventory_error;
use super::{blocking, writable, Service};
use crate::ledger::colour;
use crate::limits::LIST_LIMIT;

impl Service {
    /// Imports the cells of a placement export under the inventory root, checked as the
    /// service would place each (all or nothing, unless `skip_invalid`), risks computed on
    /// the active inventory.
    pub async fn import_cells(&self, req: ImportRequest) -> Result<ImportResponse, Error> {
        let zone = self.core.ledger.read().await.zone.clone();
        let path = self.server_path(&req.path, "path")?;
        let parsed_zone = zone.clone();
        // Parse and compute every risk off the lock; check and apply under it.
        let (rows, mut refused, risks) = blocking(move || -> Result<_, Error> {
            let table = crate::load::read_table(&path)?;
            let (rows, refused) = parse_rows(&table, &parsed_zone.inventory);
            let placements: Vec<Placement> = rows.iter().map(|(_, p)| p.clone()).collect();
            let risks = cell_risks(&parsed_zone.model, &placements, 0);
            let risks: HashMap<usize, (f64, bool)> =
                rows.iter().map(|(row, _)| *row).zip(risks).collect();
            Ok((rows, refused, risks))
        })
        .await?
        .map_err(inventory_error)?;
        let (imported, seq) = {
            let mut ledger = self.core.write().await;
            writable(&ledger)?;
            if !Arc::ptr_eq(&ledger.zone, &zone) {
                return Err(Error::InventoryConflict {
                    message: "the inventory or its health changed during the import: import \
                              again"
                        .into(),
                    details: json!({}),
                });
            }
            let accepted = check_rows(&mut ledger, rows, zone.version, &mut refused);
            refused.sort_by_key(|r| r.row);
            if !refused.is_empty() && !req.skip_invalid {
                for (_, p) in &accepted {
                    ledger.remove(&p.cell_id);
                }
                let views: Vec<RefusedView> = refused
                    .iter()
                    .take(LIST_LIMIT)
                    .map(RefusedView::from)
                    .collect();
                return Err(Error::InvalidImport {
                    refused: refused.len(),
                    details: json!({ "refused": views }),
                });
            }
            // The records are built a chunk at a time, each handed to the journal as is.
            let now = self.core.clock.now_ms();
            let inv = &zone.inventory;
            let mut seq = 0;
            for chunk in accepted.chunks(CHUNK) {
                let mut records = Vec::with_capacity(chunk.len());
                for (row, p) in chunk {
                    let (risk, safe) = risks[row];
                    let Some(mut cell) = ledger.cell_mut(&p.cell_id) else {
                        continue;
                    };
                    cell.set_colour(colour(inv, &p.nodes).as_deref());
                    cell.risk = risk;
                    cell.single_failure_safe = safe;
                    cell.created_at = now;
                    cell.updated_at = now;
                    drop(cell);
                    records.extend(ledger.record_of(&p.cell_id));
                }
                seq = self.core.journal.submit(vec![Change::InsertCells(records)]);
                for (_, p) in chunk {
                    ledger.stamp(&p.cell_id, seq);
                }
            }
            (accepted.len(), seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(ImportResponse {
            imported,
            refused_count: refused.len(),
            refused: refused
                .iter()
                .take(LIST_LIMIT)
                .map(RefusedView::from)
                .collect(),
        })
    }
}
