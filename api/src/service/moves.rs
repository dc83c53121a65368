//! Committing a proposed move of a cell's node.

use serde_json::json;

use crate::dto::{CellResponse, CellView, ViolationView};
use crate::store::{Change, MoveStatus};
use crate::Error;

use super::ops::{ids, now_ms};
use super::{writable, Service};

impl Service {
    pub async fn commit_move(&self, cell_id: &str, n: i64) -> Result<CellResponse, Error> {
        let (view, seq) = {
            let mut ledger = self.core.ledger.write().await;
            writable(&ledger)?;
            let ledger = &mut *ledger;
            let cell = ledger.cell(cell_id).ok_or_else(|| Error::CellNotFound {
                cell: cell_id.to_owned(),
            })?;
            let stale = |state: &str| Error::MoveStale {
                cell: cell_id.to_owned(),
                n,
                state: state.to_owned(),
            };
            let m = match cell.last_move.as_deref() {
                Some(m) if m.n == n => m.clone(),
                Some(m) if m.n > n => return Err(stale("superseded by a later move")),
                _ => {
                    return Err(Error::MoveNotFound {
                        cell: cell_id.to_owned(),
                        n,
                    })
                }
            };
            match m.status {
                // A commit repeated: the same answer.
                MoveStatus::Committed => (CellView::of(cell), cell.seq),
                MoveStatus::Superseded => return Err(stale("superseded")),
                MoveStatus::Proposed => {
                    let inv = &ledger.zone.inventory;
                    let (Some(out), Some(into)) = (
                        inv.server_index(&m.out_server),
                        inv.server_index(&m.into_server),
                    ) else {
                        return Err(stale("about servers the inventory no longer has"));
                    };
                    if cell.record.version != m.cell_version
                        || !cell.nodes.contains(&out)
                        || cell.nodes.contains(&into)
                    {
                        return Err(stale("outdated: the cell changed since"));
                    }
                    let nodes: Vec<u32> = cell
                        .nodes
                        .iter()
                        .map(|&s| if s == out { into } else { s })
                        .collect();
                    let violations = ledger.occ.violations(inv, &nodes, Some(cell.slot));
                    if !violations.is_empty() {
                        let views: Vec<_> = violations
                            .iter()
                            .map(|v| ViolationView::new(ledger, v))
                            .collect();
                        return Err(Error::MoveConflict {
                            cell: cell_id.to_owned(),
                            n,
                            message: views
                                .iter()
                                .map(|v| v.message.as_str())
                                .collect::<Vec<_>>()
                                .join("; "),
                            details: json!({ "violations": views }),
                        });
                    }
                    let now = now_ms();
                    let node_ids = ids(inv, &nodes);
                    let mut cell = ledger.cell_mut(cell_id).expect("checked above");
                    let r = &mut cell.record;
                    r.nodes = node_ids;
                    r.risk = m.risk_after;
                    r.single_failure_safe = m.safe_after;
                    r.version += 1;
                    r.updated_at = now;
                    let mut committed = m;
                    committed.status = MoveStatus::Committed;
                    committed.updated_at = now;
                    let seq = self.core.journal.submit(vec![
                        Change::PutCell(r.clone()),
                        Change::PutMove(committed.clone()),
                    ]);
                    cell.last_move = Some(Box::new(committed));
                    cell.seq = seq;
                    let view = CellView::of(&cell);
                    drop(cell);
                    ledger.set_nodes(cell_id, nodes);
                    ledger.seq = seq;
                    (view, seq)
                }
            }
        };
        self.core.journal.wait(seq).await?;
        Ok(CellResponse::plain(view))
    }
}
