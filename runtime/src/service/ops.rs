//! The service's operations on the ledger: place, replace and move a cell's clients, each
//! solved on a solver thread under the ledger's shared lock and committed under its
//! exclusive lock (the solve-then-commit loop), with what they share.
//!
//! Imported by the solver threads and the service; imports neither.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::RwLock;
use topology::Inventory;

use crate::clock::Clock;
use crate::dto::{
    BindingView, CellExplanation, CellResponse, CellView, ClientsResponse, ExplanationView,
    MoveView,
};
use crate::engine::{EngineError, PlaceOptions, Placer, Rule};
use crate::ledger::{colour, ids, Cell, CellState, Ledger};
use crate::metrics::Metrics;
use crate::zone::Zone;
use crate::Error;
use store::Journal;
use store::{Change, MoveRecord, MoveStatus};

use crate::limits::MAX_CLIENTS;

/// Solves redone after losing a race before giving up with 503.
const MAX_ATTEMPTS: u32 = 16;

/// What the solver threads share with the async side.
#[derive(Debug)]
pub struct Core {
    /// The in-memory ledger: solves read it shared, commits change it exclusively.
    pub ledger: RwLock<Ledger>,
    /// Where every change is queued to become durable in the store.
    pub journal: Journal,
    /// The service's metrics.
    pub metrics: Arc<Metrics>,
    /// How every worker's placer is set up.
    pub placer: PlaceOptions,
    /// Where the time of every record comes from.
    pub clock: Arc<dyn Clock>,
    /// Told when a change panicked half-way: the ledger is reloaded from the store.
    pub reload: tokio::sync::Notify,
}

impl Core {
    /// The current zone; from a solver thread (blocks).
    pub fn zone(&self) -> Arc<Zone> {
        self.ledger.blocking_read().zone.clone()
    }

    /// The ledger, to change it: every write path takes it here, so that a panic half-way
    /// through a change (a bug) never leaves memory and store apart ([`LedgerWrite`]).
    pub async fn write(&self) -> LedgerWrite<'_> {
        LedgerWrite {
            guard: self.ledger.write().await,
            reload: &self.reload,
        }
    }

    /// [`Core::write`] from a thread outside the async runtime (blocks).
    pub fn blocking_write(&self) -> LedgerWrite<'_> {
        LedgerWrite {
            guard: self.ledger.blocking_write(),
            reload: &self.reload,
        }
    }
}

/// The ledger's write lock. Dropped while a panic unwinds (a change abandoned half-way),
/// it refuses further changes and has the ledger reloaded from the store, as after a
/// failed commit.
#[derive(Debug)]
pub struct LedgerWrite<'a> {
    guard: tokio::sync::RwLockWriteGuard<'a, Ledger>,
    reload: &'a tokio::sync::Notify,
}

impl std::ops::Deref for LedgerWrite<'_> {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.guard
    }
}

impl std::ops::DerefMut for LedgerWrite<'_> {
    fn deref_mut(&mut self) -> &mut Ledger {
        &mut self.guard
    }
}

impl Drop for LedgerWrite<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.guard.poisoned = Some(
                "a change failed half-way; the ledger is being reloaded from the store".into(),
            );
            self.reload.notify_one();
        }
    }
}

/// A request that needs the engine, run on a solver thread.
#[derive(Debug, Clone)]
pub enum Op {
    /// Place a new cell (or return the same cell again for a repeated request).
    Place {
        /// The new cell's id.
        cell_id: String,
        /// Server ids of its clients.
        clients: Vec<String>,
        /// Number of nodes.
        size: usize,
    },
    /// Replace one node of a cell; the others stay.
    Replace {
        /// The cell id.
        cell_id: String,
        /// The node to replace (a server id).
        server: String,
    },
    /// Give a cell new clients and propose its next move.
    Clients {
        /// The cell id.
        cell_id: String,
        /// Server ids of its new clients.
        clients: Vec<String>,
    },
    /// Explain a cell as it stands (changes nothing).
    Explain {
        /// The cell id.
        cell_id: String,
    },
}

/// What an op did, with the journal entry to wait for before replying.
#[derive(Debug)]
pub enum Outcome {
    /// A placement or a replacement.
    Cell {
        /// The answer.
        response: Box<CellResponse>,
        /// A new cell (201), not a replay (200).
        created: bool,
        /// Journal sequence number of the cell's last change.
        seq: u64,
    },
    /// New clients.
    Clients {
        /// The answer.
        response: Box<ClientsResponse>,
        /// Journal sequence number of the cell's last change.
        seq: u64,
    },
    /// A cell explained as it stands.
    Explained {
        /// The answer.
        response: Box<CellExplanation>,
        /// Journal sequence number of the cell's last change.
        seq: u64,
    },
}

/// One run of an op on a worker.
#[derive(Debug)]
pub enum Step {
    /// The op ran to an outcome or an error.
    Done(Result<Outcome, Error>),
    /// The ledger moved to another zone since the worker built its placer: rebuild, rerun.
    ZoneChanged,
}

fn engine_error(e: EngineError) -> Error {
    match e {
        EngineError::NoFeasiblePlacement { reason, binding } => {
            let details = json!({
                "reason": reason,
                "binding": binding.iter().map(BindingView::from).collect::<Vec<_>>(),
            });
            // Capacity is the fleet's state (it may clear after deletes: 409); a choice
            // the separation rules (overlap, colour) leave empty is about the request (422).
            if binding.iter().any(|b| b.rule == Rule::Capacity) {
                Error::NoCapacity {
                    message: reason,
                    details,
                }
            } else {
                Error::NoSafePlacement {
                    message: reason,
                    details,
                }
            }
        }
        EngineError::InvalidRequest { field, message } if field == "size" => {
            Error::InvalidSize { field, message }
        }
        EngineError::InvalidRequest { field, message } => Error::InvalidField { field, message },
        // The MIP backends: a failure of ours, not of the request.
        e => Error::Internal(format!("placement engine: {e}")),
    }
}

/// Server ids to indices; names the first unknown or repeated one.
fn resolve_clients(inv: &Inventory, ids: &[String], field: &str) -> Result<Vec<u32>, Error> {
    if ids.is_empty() {
        return Err(Error::InvalidField {
            field: field.to_owned(),
            message: "at least one client is needed".into(),
        });
    }
    if ids.len() > MAX_CLIENTS {
        return Err(Error::InvalidField {
            field: field.to_owned(),
            message: format!("at most {MAX_CLIENTS} clients"),
        });
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let s = inv.server_index(id).ok_or_else(|| Error::UnknownServer {
            field: format!("{field}[{i}]"),
            server: id.clone(),
        })?;
        if out.contains(&s) {
            return Err(Error::DuplicateClient {
                field: format!("{field}[{i}]"),
                server: id.clone(),
            });
        }
        out.push(s);
    }
    Ok(out)
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().collect::<HashSet<_>>() == b.iter().collect::<HashSet<_>>()
}

/// Whether a cell's clients are the servers `clients` names, in any order.
fn same_clients(inv: &Inventory, cell: &Cell, clients: &[String]) -> bool {
    same_set(&ids(inv, &cell.clients), clients)
}

/// Runs one op on a solver thread (see the module docs for the protocol).
pub fn execute(core: &Core, zone: &Arc<Zone>, placer: &mut Placer<'_>, op: &Op) -> Step {
    let result = match op {
        Op::Place {
            cell_id,
            clients,
            size,
        } => place(core, zone, placer, cell_id, clients, *size),
        Op::Replace { cell_id, server } => replace(core, zone, placer, cell_id, server),
        Op::Clients { cell_id, clients } => set_clients(core, zone, placer, cell_id, clients),
        Op::Explain { cell_id } => explain(core, zone, placer, cell_id),
    };
    match result {
        Err(Retry::ZoneChanged) => Step::ZoneChanged,
        Err(Retry::Fail(e)) => Step::Done(Err(e)),
        Ok(o) => Step::Done(Ok(o)),
    }
}

enum Retry {
    ZoneChanged,
    Fail(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Retry {
        Retry::Fail(e)
    }
}

/// The cell as the ledger has it, when the ledger still serves the zone a solve runs on.
fn cell_on_zone<'l>(ledger: &'l Ledger, zone: &Zone, cell_id: &str) -> Result<&'l Cell, Retry> {
    if !std::ptr::eq(&*ledger.zone, zone) {
        return Err(Retry::ZoneChanged);
    }
    ledger.cell(cell_id).ok_or_else(|| {
        Retry::Fail(Error::CellNotFound {
            cell: cell_id.to_owned(),
        })
    })
}

fn check_writable(ledger: &Ledger, zone: &Zone) -> Result<(), Retry> {
    if !std::ptr::eq(&*ledger.zone, zone) {
        return Err(Retry::ZoneChanged);
    }
    if let Some(message) = &ledger.poisoned {
        return Err(Retry::Fail(Error::StoreUnavailable {
            message: message.clone(),
        }));
    }
    Ok(())
}

fn place(
    core: &Core,
    zone: &Arc<Zone>,
    placer: &mut Placer<'_>,
    cell_id: &str,
    clients: &[String],
    size: usize,
) -> Result<Outcome, Retry> {
    let inv = &zone.inventory;
    for _ in 0..MAX_ATTEMPTS {
        let (decision, client_idx) = {
            let ledger = core.ledger.blocking_read();
            if !Arc::ptr_eq(&ledger.zone, zone) {
                return Err(Retry::ZoneChanged);
            }
            if let Some(cell) = ledger.cell(cell_id) {
                // Idempotency: the same request gets the same placement back.
                return if !same_clients(inv, cell, clients) {
                    Err(Error::CellExists {
                        cell: cell_id.to_owned(),
                        field: "clients".into(),
                    }
                    .into())
                } else if ledger.nodes(cell).len() != size {
                    Err(Error::CellExists {
                        cell: cell_id.to_owned(),
                        field: "size".into(),
                    }
                    .into())
                } else {
                    Ok(Outcome::Cell {
                        response: Box::new(CellResponse::plain(CellView::of(&ledger, cell))),
                        created: false,
                        seq: cell.seq,
                    })
                };
            }
            let client_idx = resolve_clients(inv, clients, "clients")?;
            let started = Instant::now();
            let decision = placer.place(&ledger.occ, &client_idx, size);
            core.metrics.observe_solve("place", started.elapsed());
            (decision.map_err(engine_error)?, client_idx)
        };
        let mut ledger = core.blocking_write();
        check_writable(&ledger, zone)?;
        if ledger.cell(cell_id).is_some() {
            // The same id was placed concurrently: the next round answers as a replay.
            continue;
        }
        if !ledger.occ.violations(inv, &decision.nodes, None).is_empty()
            || !placer.within_balance(&ledger.occ, &decision, &[])
        {
            core.metrics.solve_conflict();
            continue;
        }
        let now = core.clock.now_ms();
        let state = CellState {
            colour: colour(inv, &decision.nodes),
            risk: decision.explanation.risk,
            single_failure_safe: decision.explanation.single_failure_safe,
            inventory_version: zone.version,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        ledger.insert(cell_id, client_idx, &decision.nodes, state, None, 0);
        let record = ledger.record_of(cell_id).expect("just inserted");
        let view = CellView::new(&record, None);
        let seq = core.journal.submit(vec![Change::PutCell(record)]);
        ledger.stamp(cell_id, seq);
        return Ok(Outcome::Cell {
            response: Box::new(CellResponse::decided(view, inv, &decision)),
            created: true,
            seq,
        });
    }
    Err(Error::Contended {
        attempts: MAX_ATTEMPTS,
    }
    .into())
}

/// A pending move turned superseded, as a change to record.
pub(crate) fn supersede(m: Option<&mut MoveRecord>, now: i64) -> Option<Change> {
    let m = m.filter(|m| m.status == MoveStatus::Proposed)?;
    m.status = MoveStatus::Superseded;
    m.updated_at = now;
    Some(Change::PutMove(m.clone()))
}

fn replace(
    core: &Core,
    zone: &Arc<Zone>,
    placer: &mut Placer<'_>,
    cell_id: &str,
    server: &str,
) -> Result<Outcome, Retry> {
    let inv = &zone.inventory;
    for _ in 0..MAX_ATTEMPTS {
        let (decision, version) = {
            let ledger = core.ledger.blocking_read();
            let cell = cell_on_zone(&ledger, zone, cell_id)?;
            let s = inv
                .server_index(server)
                .ok_or_else(|| Error::UnknownServer {
                    field: "server".into(),
                    server: server.to_owned(),
                })?;
            let nodes = ledger.nodes(cell);
            if !nodes.contains(&s) {
                return Err(Error::NotANode {
                    field: "server".into(),
                    server: server.to_owned(),
                    cell: cell_id.to_owned(),
                }
                .into());
            }
            let started = Instant::now();
            let decision = placer.replace(&ledger.occ, &cell.clients, nodes, s, Some(cell.slot));
            core.metrics.observe_solve("replace", started.elapsed());
            (decision.map_err(engine_error)?, cell.version)
        };
        let mut ledger = core.blocking_write();
        check_writable(&ledger, zone)?;
        let Some(cell) = ledger.cell(cell_id) else {
            return Err(Error::CellNotFound {
                cell: cell_id.to_owned(),
            }
            .into());
        };
        if cell.version != version
            || !ledger
                .occ
                .violations(inv, &decision.nodes, Some(cell.slot))
                .is_empty()
            || !placer.within_balance(&ledger.occ, &decision, ledger.nodes(cell))
        {
            core.metrics.solve_conflict();
            continue;
        }
        let now = core.clock.now_ms();
        ledger.set_nodes(cell_id, &decision.nodes);
        let mut cell = ledger.cell_mut(cell_id).expect("checked above");
        cell.set_colour(colour(inv, &decision.nodes).as_deref());
        cell.risk = decision.explanation.risk;
        cell.single_failure_safe = decision.explanation.single_failure_safe;
        cell.inventory_version = zone.version;
        cell.version += 1;
        cell.updated_at = now;
        let superseded = supersede(cell.last_move.as_deref_mut(), now);
        drop(cell);
        let mut changes = vec![Change::PutCell(
            ledger.record_of(cell_id).expect("checked above"),
        )];
        changes.extend(superseded);
        let seq = core.journal.submit(changes);
        ledger.stamp(cell_id, seq);
        let view = CellView::of(&ledger, ledger.cell(cell_id).expect("checked above"));
        return Ok(Outcome::Cell {
            response: Box::new(CellResponse::decided(view, inv, &decision)),
            created: false,
            seq,
        });
    }
    Err(Error::Contended {
        attempts: MAX_ATTEMPTS,
    }
    .into())
}

fn explain(
    core: &Core,
    zone: &Arc<Zone>,
    placer: &mut Placer<'_>,
    cell_id: &str,
) -> Result<Outcome, Retry> {
    let ledger = core.ledger.blocking_read();
    let cell = cell_on_zone(&ledger, zone, cell_id)?;
    let explanation = placer
        .explain(
            &ledger.occ,
            &cell.clients,
            ledger.nodes(cell),
            Some(cell.slot),
        )
        .map_err(engine_error)?;
    Ok(Outcome::Explained {
        response: Box::new(CellExplanation {
            cell: CellView::of(&ledger, cell),
            explanation: ExplanationView::new(&zone.inventory, &explanation),
        }),
        seq: cell.seq,
    })
}

fn set_clients(
    core: &Core,
    zone: &Arc<Zone>,
    placer: &mut Placer<'_>,
    cell_id: &str,
    clients: &[String],
) -> Result<Outcome, Retry> {
    let inv = &zone.inventory;
    for _ in 0..MAX_ATTEMPTS {
        let (plan, client_idx, version) = {
            let ledger = core.ledger.blocking_read();
            let cell = cell_on_zone(&ledger, zone, cell_id)?;
            let client_idx = resolve_clients(inv, clients, "clients")?;
            if same_clients(inv, cell, clients) && cell.pending_move().is_some() {
                // Nothing new: the waiting proposal stands (a PUT is idempotent).
                return Ok(Outcome::Clients {
                    response: Box::new(ClientsResponse {
                        cell: CellView::of(&ledger, cell),
                        current: None,
                        proposed: cell.pending_move().map(MoveView::from),
                        after: None,
                        steps_remaining: None,
                        target: None,
                        monotone: None,
                    }),
                    seq: cell.seq,
                });
            }
            let started = Instant::now();
            let nodes = ledger.nodes(cell);
            let plan = placer.plan_moves(&ledger.occ, &client_idx, nodes, Some(cell.slot));
            core.metrics.observe_solve("move", started.elapsed());
            (plan.map_err(engine_error)?, client_idx, cell.version)
        };
        let mut ledger = core.blocking_write();
        check_writable(&ledger, zone)?;
        let Some(mut cell) = ledger.cell_mut(cell_id) else {
            return Err(Error::CellNotFound {
                cell: cell_id.to_owned(),
            }
            .into());
        };
        if cell.version != version {
            core.metrics.solve_conflict();
            continue;
        }
        // A move is only proposed here; its capacity is checked again on commit.
        let now = core.clock.now_ms();
        let clients_changed = !same_clients(inv, &cell, clients);
        if clients_changed {
            cell.clients = client_idx.into_boxed_slice();
            cell.risk = plan.current.risk;
            cell.single_failure_safe = plan.current.single_failure_safe;
            cell.inventory_version = zone.version;
            cell.version += 1;
            cell.updated_at = now;
        }
        let mut moves = Vec::with_capacity(2);
        moves.extend(supersede(cell.last_move.as_deref_mut(), now));
        let after = plan.steps.first().map(|m| {
            let record = MoveRecord {
                cell_id: cell_id.to_owned(),
                n: cell.last_move.as_ref().map_or(1, |l| l.n + 1),
                out_server: inv.servers[m.out as usize].id.clone(),
                into_server: inv.servers[m.into as usize].id.clone(),
                status: MoveStatus::Proposed,
                cell_version: cell.version,
                risk_before: plan.current.risk,
                risk_after: m.after.risk,
                safe_after: m.after.single_failure_safe,
                created_at: now,
                updated_at: now,
            };
            moves.push(Change::PutMove(record.clone()));
            cell.last_move = Some(Box::new(record));
            ExplanationView::new(inv, &m.after)
        });
        let unchanged_seq = cell.seq;
        drop(cell);
        let mut changes = Vec::with_capacity(3);
        if clients_changed {
            changes.push(Change::PutCell(
                ledger.record_of(cell_id).expect("checked above"),
            ));
        }
        changes.extend(moves);
        let seq = if changes.is_empty() {
            unchanged_seq
        } else {
            let seq = core.journal.submit(changes);
            ledger.stamp(cell_id, seq);
            seq
        };
        let cell = ledger.cell(cell_id).expect("checked above");
        let response = ClientsResponse {
            cell: CellView::of(&ledger, cell),
            current: Some(ExplanationView::new(inv, &plan.current)),
            proposed: cell.pending_move().map(MoveView::from),
            after,
            steps_remaining: Some(plan.steps.len()),
            target: Some(ExplanationView::new(inv, plan.target())),
            monotone: Some(plan.monotone),
        };
        return Ok(Outcome::Clients {
            response: Box::new(response),
            seq,
        });
    }
    Err(Error::Contended {
        attempts: MAX_ATTEMPTS,
    }
    .into())
}
