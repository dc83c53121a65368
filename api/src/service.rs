//! The cell runtime behind the HTTP routes: placement, replacement, client moves, the
//! ledger's durability, inventory versions and the fleet report.
//!
//! Concurrency: a solve reads the ledger under a shared lock; its result is checked again
//! (capacity, shared quorum, the cell unchanged) under the exclusive lock, applied in
//! memory and queued to the journal in the same critical section, and the reply waits until
//! the journal has made it durable. A solve invalidated by a concurrent commit is redone.
//! So no interleaving can oversubscribe a server or give two cells a shared quorum, and no
//! reply shows a change that a crash could still lose.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use optimizer::{fleet_report, ReportOptions};
use serde_json::json;
use tokio::sync::{Mutex, RwLock, Semaphore};
use topology::model::ServerStatus;
use topology::workload::MAX_CELL_SIZE;
use topology::Inventory;

use crate::dto::{
    decode_cursor, encode_cursor, BindingView, CellPage, CellResponse, CellView, ClientsRequest,
    ClientsResponse, ExplanationView, InventoryRequest, InventoryView, MoveView, PlaceRequest,
    ReevaluationView, ServerView, SwitchResponse, ValidationView, ViolationView,
};
use crate::engine::{EngineError, PlaceOptions, Placer, Rule};
use crate::journal::Journal;
use crate::ledger::{Cell, CellFilter, Ledger, Missing};
use crate::metrics::{Gauges, Metrics};
use crate::solver::SolverPool;
use crate::store::{CellRecord, Change, InventoryRecord, MoveRecord, MoveStatus, Store};
use crate::view::{CountsView, FleetReportView, OverCapacityView, ProblemView};
use crate::zone::{Candidate, Source, Zone};
use crate::Error;

/// A cell's default node count.
pub const DEFAULT_SIZE: usize = 7;
/// Most clients per cell.
const MAX_CLIENTS: usize = 64;
/// Solves redone after losing a race before giving up with 503.
const MAX_ATTEMPTS: u32 = 16;
/// Most ids in one list of a re-evaluation.
const LIST_LIMIT: usize = 1000;
/// Cells per page of `GET /v1/cells` when no limit is given.
pub const DEFAULT_PAGE: usize = 100;
/// Most cells per page of `GET /v1/cells`.
pub const MAX_PAGE: usize = 1000;

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

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the solver threads share with the async side.
#[derive(Debug)]
pub struct Core {
    pub ledger: RwLock<Ledger>,
    pub journal: Journal,
    pub metrics: Arc<Metrics>,
    /// How every worker's placer is set up.
    pub placer: PlaceOptions,
}

impl Core {
    /// The current zone; from a solver thread (blocks).
    pub fn zone(&self) -> Arc<Zone> {
        self.ledger.blocking_read().zone.clone()
    }
}

/// A request that needs the engine, run on a solver thread.
#[derive(Debug, Clone)]
pub enum Op {
    Place {
        cell_id: String,
        clients: Vec<String>,
        size: usize,
    },
    Replace {
        cell_id: String,
        server: String,
    },
    Clients {
        cell_id: String,
        clients: Vec<String>,
    },
}

#[derive(Debug)]
pub enum Outcome {
    Cell {
        response: Box<CellResponse>,
        /// A new cell (201), not a replay (200).
        created: bool,
        seq: u64,
    },
    Clients {
        response: Box<ClientsResponse>,
        seq: u64,
    },
}

/// One run of an op on a worker.
#[derive(Debug)]
pub enum Step {
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

fn ids(inv: &Inventory, servers: &[u32]) -> Vec<String> {
    servers
        .iter()
        .map(|&s| inv.servers[s as usize].id.clone())
        .collect()
}

fn colour(inv: &Inventory, nodes: &[u32]) -> Option<String> {
    nodes
        .first()
        .and_then(|&n| inv.servers[n as usize].color.clone())
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
    if ledger.zone.version != zone.version {
        return Err(Retry::ZoneChanged);
    }
    ledger.cell(cell_id).ok_or_else(|| {
        Retry::Fail(Error::CellNotFound {
            cell: cell_id.to_owned(),
        })
    })
}

fn check_writable(ledger: &Ledger, zone: &Zone) -> Result<(), Retry> {
    if ledger.zone.version != zone.version {
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
            if ledger.zone.version != zone.version {
                return Err(Retry::ZoneChanged);
            }
            if let Some(cell) = ledger.cell(cell_id) {
                // Idempotency: the same request gets the same placement back.
                return if !same_set(&cell.record.clients, clients) {
                    Err(Error::CellExists {
                        cell: cell_id.to_owned(),
                        field: "clients".into(),
                    }
                    .into())
                } else if cell.nodes.len() != size {
                    Err(Error::CellExists {
                        cell: cell_id.to_owned(),
                        field: "size".into(),
                    }
                    .into())
                } else {
                    Ok(Outcome::Cell {
                        response: Box::new(CellResponse::plain(CellView::of(cell))),
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
        let mut ledger = core.ledger.blocking_write();
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
        let now = now_ms();
        let record = CellRecord {
            cell_id: cell_id.to_owned(),
            clients: clients.to_vec(),
            nodes: ids(inv, &decision.nodes),
            colour: colour(inv, &decision.nodes),
            risk: decision.explanation.risk,
            single_failure_safe: decision.explanation.single_failure_safe,
            inventory_version: zone.version,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let seq = core.journal.submit(vec![Change::PutCell(record.clone())]);
        let view = CellView::new(&record, None);
        ledger.insert(record, client_idx, decision.nodes.clone(), None, seq);
        ledger.seq = seq;
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
fn supersede(m: Option<&mut MoveRecord>, now: i64) -> Option<Change> {
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
            if !cell.nodes.contains(&s) {
                return Err(Error::NotANode {
                    field: "server".into(),
                    server: server.to_owned(),
                    cell: cell_id.to_owned(),
                }
                .into());
            }
            let started = Instant::now();
            let decision =
                placer.replace(&ledger.occ, &cell.clients, &cell.nodes, s, Some(cell.slot));
            core.metrics.observe_solve("replace", started.elapsed());
            (decision.map_err(engine_error)?, cell.record.version)
        };
        let mut ledger = core.ledger.blocking_write();
        check_writable(&ledger, zone)?;
        let Some(cell) = ledger.cell(cell_id) else {
            return Err(Error::CellNotFound {
                cell: cell_id.to_owned(),
            }
            .into());
        };
        if cell.record.version != version
            || !ledger
                .occ
                .violations(inv, &decision.nodes, Some(cell.slot))
                .is_empty()
            || !placer.within_balance(&ledger.occ, &decision, &cell.nodes)
        {
            core.metrics.solve_conflict();
            continue;
        }
        let now = now_ms();
        let mut cell = ledger.cell_mut(cell_id).expect("checked above");
        let mut changes = Vec::with_capacity(2);
        let r = &mut cell.record;
        r.nodes = ids(inv, &decision.nodes);
        r.colour = colour(inv, &decision.nodes);
        r.risk = decision.explanation.risk;
        r.single_failure_safe = decision.explanation.single_failure_safe;
        r.inventory_version = zone.version;
        r.version += 1;
        r.updated_at = now;
        changes.push(Change::PutCell(r.clone()));
        changes.extend(supersede(cell.last_move.as_mut(), now));
        let seq = core.journal.submit(changes);
        cell.seq = seq;
        let view = CellView::of(&cell);
        drop(cell);
        ledger.set_nodes(cell_id, decision.nodes.clone());
        ledger.seq = seq;
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
            if same_set(&cell.record.clients, clients) && cell.pending_move().is_some() {
                // Nothing new: the waiting proposal stands (a PUT is idempotent).
                return Ok(Outcome::Clients {
                    response: Box::new(ClientsResponse {
                        cell: CellView::of(cell),
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
            let plan = placer.plan_moves(&ledger.occ, &client_idx, &cell.nodes, Some(cell.slot));
            core.metrics.observe_solve("move", started.elapsed());
            (plan.map_err(engine_error)?, client_idx, cell.record.version)
        };
        let mut ledger = core.ledger.blocking_write();
        check_writable(&ledger, zone)?;
        let Some(mut guard) = ledger.cell_mut(cell_id) else {
            return Err(Error::CellNotFound {
                cell: cell_id.to_owned(),
            }
            .into());
        };
        let cell = &mut *guard;
        if cell.record.version != version {
            core.metrics.solve_conflict();
            continue;
        }
        // A move is only proposed here; its capacity is checked again on commit.
        let now = now_ms();
        let mut changes = Vec::with_capacity(3);
        if !same_set(&cell.record.clients, clients) {
            let r = &mut cell.record;
            r.clients = clients.to_vec();
            r.risk = plan.current.risk;
            r.single_failure_safe = plan.current.single_failure_safe;
            r.inventory_version = zone.version;
            r.version += 1;
            r.updated_at = now;
            cell.clients = client_idx;
            changes.push(Change::PutCell(r.clone()));
        }
        changes.extend(supersede(cell.last_move.as_mut(), now));
        let after = plan.steps.first().map(|m| {
            let record = MoveRecord {
                cell_id: cell_id.to_owned(),
                n: cell.last_move.as_ref().map_or(1, |l| l.n + 1),
                out_server: inv.servers[m.out as usize].id.clone(),
                into_server: inv.servers[m.into as usize].id.clone(),
                status: MoveStatus::Proposed,
                cell_version: cell.record.version,
                risk_before: plan.current.risk,
                risk_after: m.after.risk,
                safe_after: m.after.single_failure_safe,
                created_at: now,
                updated_at: now,
            };
            changes.push(Change::PutMove(record.clone()));
            cell.last_move = Some(record);
            ExplanationView::new(inv, &m.after)
        });
        let seq = if changes.is_empty() {
            cell.seq
        } else {
            let seq = core.journal.submit(changes);
            cell.seq = seq;
            seq
        };
        let response = ClientsResponse {
            cell: CellView::of(cell),
            current: Some(ExplanationView::new(inv, &plan.current)),
            proposed: cell.pending_move().map(MoveView::from),
            after,
            steps_remaining: Some(plan.steps.len()),
            target: Some(ExplanationView::new(inv, plan.target())),
            monotone: Some(plan.monotone),
        };
        drop(guard);
        ledger.seq = ledger.seq.max(seq);
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

/// Service settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Uploaded inventories are kept under `DIR/inventories`.
    pub data_dir: PathBuf,
    /// Solver threads (0 = available parallelism).
    pub workers: usize,
    /// Solves that may wait for a worker before requests are refused.
    pub queue: usize,
    /// Placement engine settings (solver, pool size, ...).
    pub placer: PlaceOptions,
}

#[derive(Debug)]
pub struct Service {
    core: Arc<Core>,
    solver: SolverPool,
    store: Arc<dyn Store>,
    config: Config,
    /// One inventory switch at a time; holds the highest version handed out.
    switching: Mutex<i64>,
    /// One fleet report at a time: each uses every core.
    reports: Semaphore,
}

fn missing_error(missing: &Missing) -> Error {
    let list: Vec<_> = missing
        .iter()
        .take(LIST_LIMIT)
        .map(|(cell, server)| json!({"cell": cell, "server": server}))
        .collect();
    Error::InventoryConflict {
        message: format!(
            "{} cell node(s) or client(s) name servers the inventory does not have",
            missing.len()
        ),
        details: json!({ "missing": list }),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("background task: {e}")))
}

/// The problems of an inventory that could not be loaded: (errors, warnings).
fn problems(e: &topology::Error) -> (Vec<ProblemView>, Vec<ProblemView>) {
    match e {
        topology::Error::Invalid(report) => (
            report.errors.iter().map(ProblemView::from).collect(),
            report.warnings.iter().map(ProblemView::from).collect(),
        ),
        // Unreadable: no table to point at.
        e => (
            vec![ProblemView {
                table: String::new(),
                file: None,
                row: None,
                line: None,
                column: None,
                message: e.to_string(),
            }],
            Vec::new(),
        ),
    }
}

fn inventory_error(e: Error) -> Error {
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

impl Service {
    /// Opens the service on a store: picks the inventory (`source`, else the ledger's
    /// active one, else the bundled zone), rebuilds the occupancy exactly from the ledger and
    /// checks it against the store's own server loads.
    pub async fn open(
        store: Arc<dyn Store>,
        source: Option<Source>,
        config: Config,
    ) -> Result<Arc<Service>, Error> {
        let snapshot = store.load().await?;
        let active = snapshot.active_inventory.clone();
        let source = match (source, &active) {
            (Some(s), _) => s,
            (None, Some(rec)) => Source::parse(&rec.source).ok_or_else(|| {
                Error::Internal(format!("unknown inventory source '{}'", rec.source))
            })?,
            (None, None) => Source::Bundled,
        };
        let label = source.label();
        let candidate = blocking(move || Candidate::load(source)).await??;
        let (zone, fresh) = match active.filter(|a| a.source == label) {
            Some(rec) => (candidate.into_zone(rec.version, rec.loaded_at), false),
            None => (
                candidate.into_zone(snapshot.max_inventory_version + 1, now_ms()),
                true,
            ),
        };
        let zone = Arc::new(zone);
        let mut moves: HashMap<String, MoveRecord> = snapshot
            .last_moves
            .into_iter()
            .map(|m| (m.cell_id.clone(), m))
            .collect();
        let mut changes = Vec::new();
        if fresh {
            changes.push(Change::ActivateInventory(InventoryRecord {
                version: zone.version,
                source: zone.source.label(),
                path: zone.source.path().map(|p| p.display().to_string()),
                loaded_at: zone.loaded_at,
            }));
            // Moves were computed on another inventory.
            for m in moves.values_mut() {
                changes.extend(supersede(Some(m), zone.loaded_at));
            }
        }
        let before: HashMap<String, bool> = snapshot
            .cells
            .iter()
            .map(|c| (c.cell_id.clone(), c.single_failure_safe))
            .collect();
        // Risks recorded on another inventory (or under an older risk definition, which
        // a migration marks with version 0) are judged again.
        let stale = fresh
            || snapshot
                .cells
                .iter()
                .any(|c| c.inventory_version != zone.version);
        let records: Vec<_> = snapshot
            .cells
            .into_iter()
            .map(|c| {
                let m = moves.remove(&c.cell_id);
                (c, m)
            })
            .collect();
        let ledger = Ledger::rebuild(zone.clone(), records, 0).map_err(|m| missing_error(&m))?;
        let stored = store.server_loads().await?;
        let rebuilt = ledger.server_loads();
        if stored.len() != rebuilt.len()
            || stored
                .iter()
                .any(|(s, load)| rebuilt.get(s).copied() != Some(*load))
        {
            return Err(Error::Internal(
                "the occupancy rebuilt from the cells differs from the ledger's server loads"
                    .into(),
            ));
        }
        if !changes.is_empty() {
            store.apply(&changes).await?;
        }
        let metrics = Arc::new(Metrics::default());
        let journal = Journal::start(store.clone(), metrics.clone());
        let core = Arc::new(Core {
            ledger: RwLock::new(ledger),
            journal,
            metrics,
            placer: config.placer.clone(),
        });
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let solver = SolverPool::start(core.clone(), workers, config.queue);
        let version = zone.version;
        let service = Arc::new(Service {
            core,
            solver,
            store,
            config,
            switching: Mutex::new(version.max(snapshot.max_inventory_version)),
            reports: Semaphore::new(1),
        });
        tokio::spawn(resync(service.core.clone(), service.store.clone()));
        if stale && !before.is_empty() {
            // The cells' risks were computed on another inventory: judge them again on this
            // one, in the background so that the service is up at once.
            let s = service.clone();
            tokio::spawn(async move {
                match s.reevaluate(&zone, &before).await {
                    Ok(v) => tracing::info!(
                        cells = v.cells,
                        unsafe_cells = v.unsafe_count,
                        became_unsafe = v.became_unsafe_count,
                        on_draining = v.on_draining_count,
                        on_failed = v.on_failed_count,
                        over_capacity = v.over_capacity.len(),
                        "re-evaluated the ledger on the new inventory"
                    ),
                    Err(e) => tracing::warn!("re-evaluating the ledger: {e}"),
                }
            });
        }
        Ok(service)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

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
        match self.solver.run(op).await? {
            Outcome::Cell {
                response,
                created,
                seq,
            } => {
                self.core.journal.wait(seq).await?;
                Ok((*response, created))
            }
            Outcome::Clients { .. } => Err(Error::Internal("unexpected outcome".into())),
        }
    }

    pub async fn replace(&self, cell_id: &str, server: String) -> Result<CellResponse, Error> {
        let op = Op::Replace {
            cell_id: cell_id.to_owned(),
            server,
        };
        match self.solver.run(op).await? {
            Outcome::Cell { response, seq, .. } => {
                self.core.journal.wait(seq).await?;
                Ok(*response)
            }
            Outcome::Clients { .. } => Err(Error::Internal("unexpected outcome".into())),
        }
    }

    pub async fn set_clients(
        &self,
        cell_id: &str,
        req: ClientsRequest,
    ) -> Result<ClientsResponse, Error> {
        let op = Op::Clients {
            cell_id: cell_id.to_owned(),
            clients: req.clients,
        };
        match self.solver.run(op).await? {
            Outcome::Clients { response, seq } => {
                self.core.journal.wait(seq).await?;
                Ok(*response)
            }
            Outcome::Cell { .. } => Err(Error::Internal("unexpected outcome".into())),
        }
    }

    pub async fn get(&self, cell_id: &str) -> Result<CellView, Error> {
        let (view, seq) = {
            let ledger = self.core.ledger.read().await;
            match ledger.cell(cell_id) {
                Some(cell) => (Some(CellView::of(cell)), cell.seq),
                // The cell may be gone by a delete still syncing: wait for everything.
                None => (None, ledger.seq),
            }
        };
        self.core.journal.wait(seq).await?;
        view.ok_or_else(|| Error::CellNotFound {
            cell: cell_id.to_owned(),
        })
    }

    /// A page of cells by id, filtered. Stable under concurrent changes: a page starts after
    /// the last id of the previous one, so no cell comes twice, and a cell placed after
    /// the cursor's position comes on a later page.
    pub async fn list(&self, q: CellQuery) -> Result<CellPage, Error> {
        let limit = match q.limit {
            None => DEFAULT_PAGE,
            Some(n) if (1..=MAX_PAGE as u64).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::InvalidField {
                    field: "limit".into(),
                    message: format!("limit {n}: 1 to {MAX_PAGE} cells per page"),
                })
            }
        };
        let after = match &q.cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c)
                    .filter(|id| validate_cell_id(id).is_ok())
                    .ok_or_else(|| Error::InvalidField {
                        field: "cursor".into(),
                        message: "cursor is not a next_cursor of this API".into(),
                    })?,
            ),
        };
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
                cells: page.cells.into_iter().map(CellView::of).collect(),
                next_cursor: page.next.as_deref().map(encode_cursor),
            };
            // Everything shown is durable before the reply (deletes included).
            (page, ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(page)
    }

    pub async fn delete(&self, cell_id: &str) -> Result<(), Error> {
        let seq = {
            let mut ledger = self.core.ledger.write().await;
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
        self.core.journal.wait(seq).await
    }

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
            let m = match &cell.last_move {
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
                    cell.last_move = Some(committed);
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

    pub async fn server(&self, server_id: &str) -> Result<ServerView, Error> {
        let (view, seq) = {
            let ledger = self.core.ledger.read().await;
            let s = ledger
                .zone
                .inventory
                .server_index(server_id)
                .ok_or_else(|| Error::ServerNotFound {
                    server: server_id.to_owned(),
                })?;
            (ServerView::new(&ledger, s), ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        Ok(view)
    }

    /// The fleet report of `cellplacer evaluate` over the ledger's cells.
    pub async fn report(&self, risk: bool, top: usize) -> Result<FleetReportView, Error> {
        let _permit = self
            .reports
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let (zone, placements, seq) = {
            let ledger = self.core.ledger.read().await;
            (ledger.zone.clone(), ledger.placements(), ledger.seq)
        };
        self.core.journal.wait(seq).await?;
        blocking(move || {
            let options = ReportOptions {
                risk,
                top,
                threads: 0,
            };
            let report = fleet_report(&zone.inventory, &zone.model, &placements, &options);
            FleetReportView::new(&zone.inventory, &placements, &report)
        })
        .await
    }

    pub async fn inventory(&self) -> InventoryView {
        InventoryView::new(&self.core.ledger.read().await.zone)
    }

    fn source(&self, req: &InventoryRequest) -> Result<Source, Error> {
        match (&req.path, &req.tables) {
            (Some(p), None) => Ok(Source::Dir(PathBuf::from(p))),
            (None, Some(tables)) => {
                let root = self.config.data_dir.join("inventories");
                let dir = crate::zone::write_upload(&root, tables, now_ms())?;
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
        let result = blocking(move || Candidate::load(source)).await?;
        if let Some(Some(dir)) = upload {
            // A validation keeps nothing.
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(match result {
            Ok(c) => ValidationView {
                valid: true,
                counts: Some(CountsView::from(c.inventory.counts())),
                errors: Vec::new(),
                warnings: c.warnings.iter().map(ProblemView::from).collect(),
            },
            Err(Error::Inventory(e)) => {
                let (errors, warnings) = problems(&e);
                ValidationView {
                    valid: false,
                    counts: None,
                    errors,
                    warnings,
                }
            }
            Err(e) => return Err(e),
        })
    }

    /// Validates a new inventory, switches to it atomically, and re-evaluates every cell on
    /// it. A bad inventory, or one missing servers that cells use, changes nothing.
    pub async fn switch_inventory(&self, req: InventoryRequest) -> Result<SwitchResponse, Error> {
        let source = self.source(&req)?;
        let mut last_version = self.switching.lock().await;
        let candidate = blocking(move || Candidate::load(source))
            .await?
            .map_err(inventory_error)?;
        let zone = Arc::new(candidate.into_zone(*last_version + 1, now_ms()));
        let (previous, before, seq) = {
            let mut ledger = self.core.ledger.write().await;
            writable(&ledger)?;
            let before: HashMap<String, bool> = ledger
                .cells()
                .values()
                .map(|c| (c.record.cell_id.clone(), c.record.single_failure_safe))
                .collect();
            let mut changes = vec![Change::ActivateInventory(InventoryRecord {
                version: zone.version,
                source: zone.source.label(),
                path: zone.source.path().map(|p| p.display().to_string()),
                loaded_at: zone.loaded_at,
            })];
            let mut records = ledger.records();
            for (_, m) in &mut records {
                changes.extend(supersede(m.as_mut(), zone.loaded_at));
            }
            // The journal hands out this number next: we hold the write lock.
            let seq = self.core.journal.last_seq() + 1;
            let mut rebuilt =
                Ledger::rebuild(zone.clone(), records, seq).map_err(|m| missing_error(&m))?;
            let submitted = self.core.journal.submit(changes);
            debug_assert_eq!(seq, submitted);
            rebuilt.seq = seq;
            let previous = ledger.zone.version;
            *ledger = rebuilt;
            (previous, before, seq)
        };
        *last_version = zone.version;
        self.core.journal.wait(seq).await?;
        tracing::info!(
            version = zone.version,
            source = %zone.source.label(),
            "switched inventory"
        );
        let reevaluation = self.reevaluate(&zone, &before).await?;
        Ok(SwitchResponse {
            inventory: InventoryView::new(&zone),
            previous_version: previous,
            reevaluation,
        })
    }

    /// Computes every cell's risk and safety on `zone`, records them, and lists the cells
    /// that became unsafe or sit on draining or failed servers.
    async fn reevaluate(
        &self,
        zone: &Arc<Zone>,
        before: &HashMap<String, bool>,
    ) -> Result<ReevaluationView, Error> {
        let (placements, versions) = {
            let ledger = self.core.ledger.read().await;
            if ledger.zone.version != zone.version {
                // Another switch came first; it reports for itself.
                return Ok(ReevaluationView::default());
            }
            let placements = ledger.placements();
            let versions: Vec<i64> = placements
                .iter()
                .map(|p| ledger.cells()[&p.cell_id].record.version)
                .collect();
            (placements, versions)
        };
        let z = zone.clone();
        let (report, placements) = blocking(move || {
            let options = ReportOptions {
                risk: true,
                top: 0,
                threads: 0,
            };
            let report = fleet_report(&z.inventory, &z.model, &placements, &options);
            (report, placements)
        })
        .await?;
        let inv = &zone.inventory;
        let unsafe_set: HashSet<usize> = report.unsafe_cells.iter().copied().collect();
        let mut view = ReevaluationView {
            cells: placements.len(),
            ..ReevaluationView::default()
        };
        let push = |list: &mut Vec<String>, count: &mut usize, id: &str| {
            *count += 1;
            if list.len() < LIST_LIMIT {
                list.push(id.to_owned());
            }
        };
        for (i, p) in placements.iter().enumerate() {
            let id = p.cell_id.as_str();
            if unsafe_set.contains(&i) {
                push(&mut view.unsafe_cells, &mut view.unsafe_count, id);
                if before.get(id).copied().unwrap_or(false) {
                    push(&mut view.became_unsafe, &mut view.became_unsafe_count, id);
                }
            }
            let status = |st| {
                p.nodes
                    .iter()
                    .any(|&n| inv.servers[n as usize].status == st)
            };
            if status(ServerStatus::Draining) {
                push(&mut view.on_draining, &mut view.on_draining_count, id);
            }
            if status(ServerStatus::Failed) {
                push(&mut view.on_failed, &mut view.on_failed_count, id);
            }
        }
        view.over_capacity = OverCapacityView::list(inv, &report.load.over_capacity);
        // Record the new risks on cells that did not change meanwhile.
        let seq = {
            let mut ledger = self.core.ledger.write().await;
            if ledger.zone.version != zone.version || ledger.poisoned.is_some() {
                return Ok(view);
            }
            let now = now_ms();
            let mut changes = Vec::new();
            let mut touched = Vec::new();
            for (i, p) in placements.iter().enumerate() {
                let Some(mut cell) = ledger.cell_mut(&p.cell_id) else {
                    continue;
                };
                if cell.record.version != versions[i] {
                    continue;
                }
                let r = &mut cell.record;
                r.risk = report.per_cell[i].risk;
                r.single_failure_safe = !unsafe_set.contains(&i);
                r.inventory_version = zone.version;
                r.version += 1;
                r.updated_at = now;
                changes.push(Change::PutCell(r.clone()));
                touched.push(p.cell_id.clone());
            }
            if changes.is_empty() {
                0
            } else {
                let seq = self.core.journal.submit(changes);
                for id in touched {
                    if let Some(mut c) = ledger.cell_mut(&id) {
                        c.seq = seq;
                    }
                }
                ledger.seq = seq;
                seq
            }
        };
        self.core.journal.wait(seq).await?;
        Ok(view)
    }

    /// Ready when the ledger is consistent with the store and the store answers.
    pub async fn ready(&self) -> Result<(), Error> {
        if let Some(message) = self.core.ledger.read().await.poisoned.clone() {
            return Err(Error::StoreUnavailable { message });
        }
        self.store.ping().await
    }

    pub async fn gauges(&self) -> Gauges {
        let ledger = self.core.ledger.read().await;
        let over_balance = self.core.placer.balance.map_or(0, |b| {
            optimizer::place::pool::over_balance_ceiling(&ledger.zone.inventory, &ledger.occ, b)
        });
        Gauges {
            cells: ledger.len() as u64,
            cells_unsafe: ledger.unsafe_count(),
            cells_by_risk: ledger.risk_counts(),
            servers_over_balance_ceiling: over_balance as u64,
            nodes_placed: ledger.nodes_placed,
            node_capacity: ledger.zone.active_capacity,
            inventory_version: ledger.zone.version,
            solver_queue: self.solver.queued() as u64,
            solver_workers: self.solver.workers() as u64,
        }
    }

    /// After the HTTP server has drained: stops the solvers, commits what is queued and
    /// closes the store.
    pub async fn shutdown(&self) {
        let workers = self.solver.stop();
        let _ = blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        self.core.journal.close().await;
        self.store.close().await;
    }
}

fn writable(ledger: &Ledger) -> Result<(), Error> {
    match &ledger.poisoned {
        Some(message) => Err(Error::StoreUnavailable {
            message: message.clone(),
        }),
        None => Ok(()),
    }
}

/// Cell ids travel in URL paths: keep them to a safe alphabet.
fn validate_cell_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: "cell_id".into(),
            message: "1 to 128 letters, digits or '._:-'".into(),
        })
    }
}

/// After a failed commit: refuse changes, reload the ledger from the store, resume.
async fn resync(core: Arc<Core>, store: Arc<dyn Store>) {
    let mut progress = core.journal.progress();
    loop {
        if progress.wait_for(|p| p.broken).await.is_err() {
            return; // journal closed
        }
        let mut ledger = core.ledger.write().await;
        ledger.poisoned = Some(progress.borrow().last_error.clone());
        let reloaded = match store.load().await {
            Ok(snapshot) => {
                let mut moves: HashMap<String, MoveRecord> = snapshot
                    .last_moves
                    .into_iter()
                    .map(|m| (m.cell_id.clone(), m))
                    .collect();
                let records = snapshot.cells.into_iter().map(|c| {
                    let m = moves.remove(&c.cell_id);
                    (c, m)
                });
                Ledger::rebuild(ledger.zone.clone(), records, 0).ok()
            }
            Err(e) => {
                tracing::error!("reloading the ledger after a failed commit: {e}");
                None
            }
        };
        match reloaded {
            Some(fresh) => {
                *ledger = fresh;
                core.journal.resume();
                tracing::warn!("ledger reloaded from the store after a failed commit");
                drop(ledger);
                // Let the committer see the resume before looking at `broken` again.
                let _ = progress.wait_for(|p| !p.broken).await;
            }
            None => {
                drop(ledger);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}
