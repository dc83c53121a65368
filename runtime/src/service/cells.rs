//! Cell requests: place, replace, move clients, get, list and delete.

use topology::workload::{is_cell_id, CELL_ID_RULE, MAX_CELL_SIZE};

use crate::dto::{
    decode_cursor, encode_cursor, CellExplanation, CellMoves, CellPage, CellResponse, CellView,
    ClientsRequest, ClientsResponse, MoveView, PlaceRequest,
};
use crate::ledger::CellFilter;
use crate::Error;
use store::Change;

use super::ops::{Op, Outcome};
use super::{writable, Service};

/// A cell's default node count.
const DEFAULT_SIZE: usize = 7;
/// Moves of `GET /v1/cells/{id}/moves` when no limit is given.
const DEFAULT_MOVES: usize = 20;
/// Cells per page of `GET /v1/cells` when no limit is given.
const DEFAULT_PAGE: usize = 100;

/// Most cells per page of `GET /v1/cells`.
const MAX_PAGE: usize = crate::limits::LIST_LIMIT;

/// Which cells to list, and where a page starts.
#[derive(Debug, Clone, Default)]
pub struct CellQuery {
    /// Cells with a node on this server id.
    pub server: Option<String>,
    /// Only cells that are not single-failure safe (true), or only safe ones (false).
    pub unsafe_only: Option<bool>,
    /// Cells whose risk was computed on this inventory version.
    pub inventory_version: Option<i64>,
    /// 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] when absent.
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page's size: `limit` if from 1 to [`MAX_PAGE`], else `default`; anything else is
/// refused naming the field `limit` and what a page holds (`items`).
pub(super) fn page_limit(limit: Option<u64>, default: usize, items: &str) -> Result<usize, Error> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE as u64).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::InvalidField {
            field: "limit".into(),
            message: format!("limit {n}: 1 to {MAX_PAGE} {items} per page"),
        }),
    }
}

/// The cell id a page of cells starts after: `cursor`, a previous page's `next_cursor`.
pub(super) fn page_after(cursor: Option<&str>) -> Result<Option<String>, Error> {
    cursor
        .map(|c| {
            decode_cursor(c)
                .filter(|id| validate_cell_id(id).is_ok())
                .ok_or_else(|| Error::InvalidField {
                    field: "cursor".into(),
                    message: "cursor is not a next_cursor of this API".into(),
                })
        })
        .transpose()
}

impl Service {
    /// Places a new cell; `true` with a new cell, `false` when the same request placed
    /// it before (the cell is returned as it is).
    pub async fn place(&self, req: PlaceRequest) -> Result<(CellResponse, bool), Error> {
        validate_cell_id(&req.cell_id)?;
        let size = req.size.map_or(DEFAULT_SIZE, |s| s as usize);
        if size == 0 || size > MAX_CELL_SIZE {
            return Err(Error::InvalidSize {
                field: "size".into(),
                message: format!("{size} nodes: a cell has 1 to {MAX_CELL_SIZE}"),
            });
        }
        let op = Op::Place {
            cell_id: req.cell_id,
            clients: req.clients,
            size,
        };
        self.unless_stale(|| async {
            match self.solver.run(op.clone()).await? {
                Outcome::Cell {
                    response,
                    created,
                    seq,
                } => {
                    self.core.journal.wait(seq).await?;
                    Ok((*response, created))
                }
                _ => Err(Error::Internal("unexpected outcome".into())),
            }
        })
        .await
    }

    /// Replaces the node of the cell `cell_id` on `server`; its other nodes stay.
    pub async fn replace(&self, cell_id: &str, server: String) -> Result<CellResponse, Error> {
        let op = Op::Replace {
            cell_id: cell_id.to_owned(),
            server,
        };
        self.unless_stale(|| async {
            match self.solver.run(op.clone()).await? {
                Outcome::Cell { response, seq, .. } => {
                    self.core.journal.wait(seq).await?;
                    Ok(*response)
                }
                _ => Err(Error::Internal("unexpected outcome".into())),
            }
        })
        .await
    }

    /// Gives the cell new clients and proposes its next move towards a placement for
    /// them (nothing moves until the move is committed).
    pub async fn set_clients(
        &self,
        cell_id: &str,
        req: ClientsRequest,
    ) -> Result<ClientsResponse, Error> {
        let op = Op::Clients {
            cell_id: cell_id.to_owned(),
            clients: req.clients,
        };
        self.unless_stale(|| async {
            match self.solver.run(op.clone()).await? {
                Outcome::Clients { response, seq } => {
                    self.core.journal.wait(seq).await?;
                    Ok(*response)
                }
                _ => Err(Error::Internal("unexpected outcome".into())),
            }
        })
        .await
    }

    /// The cell `cell_id`, once its last change is durable.
    pub async fn get(&self, cell_id: &str) -> Result<CellView, Error> {
        let (view, seq) = {
            let ledger = self.core.ledger.read().await;
            match ledger.cell(cell_id) {
                Some(cell) => (Some(CellView::of(&ledger, cell)), cell.seq),
                // The cell may be gone by a delete still syncing: wait for everything.
                None => (None, ledger.seq),
            }
        };
        self.core.journal.wait(seq).await?;
        view.ok_or_else(|| Error::CellNotFound {
            cell: cell_id.to_owned(),
        })
    }

    /// The cell `cell_id` as it stands and why: its risk on the zone as it is now, what
    /// breaks it, its heaviest scenarios and its domains. Computed on a solver thread
    /// (like a placement, it evaluates the cell's scenarios); changes nothing.
    pub async fn explain(&self, cell_id: &str) -> Result<CellExplanation, Error> {
        let op = Op::Explain {
            cell_id: cell_id.to_owned(),
        };
        match self.solver.run(op).await? {
            Outcome::Explained { response, seq } => {
                self.core.journal.wait(seq).await?;
                Ok(*response)
            }
            _ => Err(Error::Internal("unexpected outcome".into())),
        }
    }

    /// The latest `limit` moves of the cell `cell_id` (1 to [`MAX_PAGE`], default
    /// [`DEFAULT_MOVES`]), newest first, read from the store once the cell's last change
    /// is in it.
    pub async fn moves(&self, cell_id: &str, limit: Option<u64>) -> Result<CellMoves, Error> {
        let limit = page_limit(limit, DEFAULT_MOVES, "moves")?;
        let seq = {
            let ledger = self.core.ledger.read().await;
            let cell = ledger.cell(cell_id).ok_or_else(|| Error::CellNotFound {
                cell: cell_id.to_owned(),
            })?;
            cell.seq
        };
        self.core.journal.wait(seq).await?;
        let moves = self.store.moves(cell_id, limit).await?;
        Ok(CellMoves {
            cell_id: cell_id.to_owned(),
            moves: moves.iter().map(MoveView::from).collect(),
        })
    }

    /// A page of cells by id, filtered. Stable under concurrent changes: a page starts after
    /// the last id of the previous one, so no cell comes twice, and a cell placed after
    /// the cursor's position comes on a later page.
    pub async fn list(&self, q: CellQuery) -> Result<CellPage, Error> {
        let limit = page_limit(q.limit, DEFAULT_PAGE, "cells")?;
        let after = page_after(q.cursor.as_deref())?;
        let (page, seq) = {
            let ledger = self.core.ledger.read().await;
            let server = match &q.server {
                None => None,
                Some(id) => Some(
                    ledger
                        .zone
                        .inventory
                        .server_index(id)
                        .ok_or_else(|| Error::ServerNotFound { server: id.clone() })?,
                ),
            };
            let filter = CellFilter {
                server,
                unsafe_only: q.unsafe_only,
                inventory_version: q.inventory_version,
            };
            let page = ledger.page(&filter, after.as_deref(), limit);
            let page = CellPage {
                cells: page
                    .cells
                    .into_iter()
                    .map(|c| CellView::of(&ledger, c))
                    .collect(),
                next_cursor: page.next.as_deref().map(encode_cursor),
            };
            // Everything shown is durable before the reply (deletes included).
            (page, ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(page)
    }

    /// Deletes the cell `cell_id`, freeing its nodes.
    pub async fn delete(&self, cell_id: &str) -> Result<(), Error> {
        self.unless_stale(|| self.delete_once(cell_id)).await
    }

    async fn delete_once(&self, cell_id: &str) -> Result<(), Error> {
        let seq = {
            let mut ledger = self.core.write().await;
            writable(&ledger)?;
            if ledger.remove(cell_id).is_none() {
                let seq = ledger.seq;
                drop(ledger);
                self.core.journal.wait(seq).await?;
                return Err(Error::CellNotFound {
                    cell: cell_id.to_owned(),
                });
            }
            let seq = self
                .core
                .journal
                .submit(vec![Change::DeleteCell(cell_id.to_owned())]);
            ledger.seq = seq;
            seq
        };
        Ok(self.core.journal.wait(seq).await?)
    }
}

/// Cell ids travel in URL paths: the rule every way in shares ([`CELL_ID_RULE`]).
fn validate_cell_id(id: &str) -> Result<(), Error> {
    if is_cell_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: "cell_id".into(),
            message: CELL_ID_RULE.into(),
        })
    }
}
