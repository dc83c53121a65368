//! Committing a proposed move of a cell's node.

use serde_json::json;

use crate::dto::{CellResponse, CellView, ViolationView};
use crate::Error;
use store::{Change, MoveStatus};

use super::{writable, Service};

impl Service {
    /// Commits the proposed move `n` of the cell `cell_id`, checked again against the
    /// current placements; committing it again returns the same cell.
    pub async fn commit_move(&self, cell_id: &str, n: i64) -> Result<CellResponse, Error> {
        self.unless_stale(|| self.commit_move_once(cell_id, n))
            .await
    }

    async fn commit_move_once(&self, cell_id: &str, n: i64) -> Result<CellResponse, Error> {
        let (view, seq) = {
            let mut ledger = self.core.write().await;
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
                MoveStatus::Committed => (CellView::of(ledger, cell), cell.seq),
                MoveStatus::Superseded => return Err(stale("superseded")),
                MoveStatus::Proposed => {
                    let inv = &ledger.zone.inventory;
                    let (Some(out), Some(into)) = (
                        inv.server_index(&m.out_server),
                        inv.server_index(&m.into_server),
                    ) else {
                        return Err(stale("about servers the inventory no longer has"));
                    };
                    let current = ledger.nodes(cell);
                    if cell.version != m.cell_version
                        || !current.contains(&out)
                        || current.contains(&into)
                    {
                        return Err(stale("outdated: the cell changed since"));
                    }
                    let nodes: Vec<u32> = current
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
                    let now = self.core.clock.now_ms();
                    let mut committed = m;
                    committed.status = MoveStatus::Committed;
                    committed.updated_at = now;
                    ledger.set_nodes(cell_id, &nodes);
                    let mut cell = ledger.cell_mut(cell_id).expect("checked above");
                    cell.risk = committed.risk_after;
                    cell.single_failure_safe = committed.safe_after;
                    cell.version += 1;
                    cell.updated_at = now;
                    cell.last_move = Some(Box::new(committed.clone()));
                    drop(cell);
                    let record = ledger.record_of(cell_id).expect("checked above");
                    let seq = self
                        .core
                        .journal
                        .submit(vec![Change::PutCell(record), Change::PutMove(committed)]);
                    ledger.stamp(cell_id, seq);
                    let view = CellView::of(ledger, ledger.cell(cell_id).expect("checked above"));
                    (view, seq)
                }
            }
        };
        self.core.journal.wait(seq).await?;
        Ok(CellResponse::plain(view))
    }
}
