//! Bulk import into the live ledger (`POST /v1/ledger/import`): a placement file on the
//! service's host, every cell checked under the ledger's lock as a placement would be
//! (known, active servers; capacity; one colour; no quorum shared; a new id). All or
//! nothing, unless told to skip the bad cells.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use topology::Placement;

use crate::dto::{ImportRequest, ImportResponse, RefusedView};
use crate::import::{check_rows, parse_rows, records, CHUNK};
use crate::store::Change;
use crate::Error;

use super::inventory::inventory_error;
use super::ops::LIST_LIMIT;
use super::{blocking, writable, Service};

impl Service {
    pub async fn import_cells(&self, req: ImportRequest) -> Result<ImportResponse, Error> {
        let zone = self.core.ledger.read().await.zone.clone();
        let path = PathBuf::from(&req.path);
        let parsed_zone = zone.clone();
        // Parse and compute every risk off the lock; check and apply under it.
        let (rows, mut refused, risks) = blocking(move || -> Result<_, Error> {
            let table = crate::load::read_table(&path)?;
            let (rows, refused) = parse_rows(&table, &parsed_zone.inventory);
            let placements: Vec<Placement> = rows.iter().map(|(_, p)| p.clone()).collect();
            let recs = records(&parsed_zone, &placements, parsed_zone.version);
            let risks: HashMap<usize, crate::store::CellRecord> =
                rows.iter().map(|(row, _)| *row).zip(recs).collect();
            Ok((rows, refused, risks))
        })
        .await?
        .map_err(inventory_error)?;
        let mut risks = risks;
        let (imported, seq) = {
            let mut ledger = self.core.ledger.write().await;
            writable(&ledger)?;
            if ledger.zone.version != zone.version {
                return Err(Error::InventoryConflict {
                    message: "the inventory switched during the import: import again".into(),
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
            let mut records = Vec::with_capacity(accepted.len());
            for (row, p) in &accepted {
                let record = risks.remove(row).expect("a risk per parsed row");
                if let Some(mut cell) = ledger.cell_mut(&p.cell_id) {
                    cell.set_colour(record.colour.as_deref());
                    cell.risk = record.risk;
                    cell.single_failure_safe = record.single_failure_safe;
                    cell.inventory_version = record.inventory_version;
                    cell.version = record.version;
                    cell.created_at = record.created_at;
                    cell.updated_at = record.updated_at;
                }
                records.push(record);
            }
            let mut seq = 0;
            for chunk in records.chunks(CHUNK) {
                seq = self
                    .core
                    .journal
                    .submit(vec![Change::InsertCells(chunk.to_vec())]);
                for r in chunk {
                    ledger.stamp(&r.cell_id, seq);
                }
            }
            if seq > 0 {
                ledger.seq = seq;
            }
            (records.len(), seq)
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
