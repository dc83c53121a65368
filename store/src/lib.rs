//! The durable ledger of cellplacer: the [`Store`] trait with its SQLite and PostgreSQL
//! backends, the embedded migrations, and the [`Journal`] that group-commits to it.
//!
//! The runtime keeps the working state in memory and writes every
//! accepted change here, in order, before it replies. A backend only has to apply batches
//! of [`Change`]s atomically and durably and hand everything back on start.

mod error;
mod journal;
mod postgres;
mod sql;
mod sqlite;

use std::future::Future;
use std::pin::Pin;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::Error;
pub use journal::{CommitObserver, Journal, Progress};

/// A boxed future, so that the trait stays object safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One placed cell as the ledger keeps it; servers by id, never by index, so that records
/// survive an inventory switch.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRecord {
    /// The cell's id (unique in the ledger).
    pub cell_id: String,
    /// The servers of its clients, by id.
    pub clients: Vec<String>,
    /// The servers its nodes sit on, by id (one node per server).
    pub nodes: Vec<String>,
    /// The colour of its servers, when the inventory colours them.
    pub colour: Option<String>,
    /// Its exact risk on `inventory_version`, in outages per year (1 when it is down).
    pub risk: f64,
    /// Whether no single element's failure puts it out.
    pub single_failure_safe: bool,
    /// Inventory version that `risk` was computed on.
    pub inventory_version: i64,
    /// Starts at 1, +1 on every change.
    pub version: i64,
    /// When it was placed, Unix milliseconds.
    pub created_at: i64,
    /// When it last changed, Unix milliseconds.
    pub updated_at: i64,
}

/// Where a proposed move stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStatus {
    /// Proposed after the cell's clients moved; nothing moved yet.
    Proposed,
    /// Applied to the cell.
    Committed,
    /// Replaced by a later change of the cell (a new proposal, a replacement, a switch).
    Superseded,
}

impl MoveStatus {
    /// The status as the ledger and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            MoveStatus::Proposed => "proposed",
            MoveStatus::Committed => "committed",
            MoveStatus::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> Option<MoveStatus> {
        match s {
            "proposed" => Some(MoveStatus::Proposed),
            "committed" => Some(MoveStatus::Committed),
            "superseded" => Some(MoveStatus::Superseded),
            _ => None,
        }
    }
}

/// A single-node move of a cell: proposed after its clients moved, applied on commit.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRecord {
    /// The cell it moves.
    pub cell_id: String,
    /// Per cell, from 1.
    pub n: i64,
    /// The server the node leaves, by id.
    pub out_server: String,
    /// The server the node goes to, by id.
    pub into_server: String,
    /// Where it stands.
    pub status: MoveStatus,
    /// The cell version the move was computed on; a commit needs it unchanged.
    pub cell_version: i64,
    /// The cell's risk before the move, outages per year.
    pub risk_before: f64,
    /// The cell's risk after it, outages per year.
    pub risk_after: f64,
    /// Whether the cell is single-failure safe after it.
    pub safe_after: bool,
    /// When it was proposed, Unix milliseconds.
    pub created_at: i64,
    /// When its status last changed, Unix milliseconds.
    pub updated_at: i64,
}

/// An inventory the service ran on.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRecord {
    /// Its version in the ledger (from 1, increasing).
    pub version: i64,
    /// `bundled:small:0`, `dir:PATH` or `upload:PATH`.
    pub source: String,
    /// Directory to reload it from after a restart (`None` for the generated bundled zone).
    pub path: Option<String>,
    /// When it became active, Unix milliseconds.
    pub loaded_at: i64,
}

/// Where a rebalancing plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanState {
    /// Computed and stored (a dry run); nothing moved.
    Planned,
    /// Its steps are being committed.
    Executing,
    /// Execution stopped by a request (or a restart); it can resume.
    Paused,
    /// Stopped for good by a request.
    Cancelled,
    /// Every step committed, re-planned or skipped.
    Completed,
    /// The inventory changed since it was planned: plan again.
    Invalidated,
}

impl PlanState {
    /// Every state, in declaration order (the order of the `cellplacer_plans` gauge).
    pub const ALL: [PlanState; 6] = [
        PlanState::Planned,
        PlanState::Executing,
        PlanState::Paused,
        PlanState::Cancelled,
        PlanState::Completed,
        PlanState::Invalidated,
    ];

    /// The state as the ledger and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            PlanState::Planned => "planned",
            PlanState::Executing => "executing",
            PlanState::Paused => "paused",
            PlanState::Cancelled => "cancelled",
            PlanState::Completed => "completed",
            PlanState::Invalidated => "invalidated",
        }
    }

    /// Back from [`PlanState::name`].
    pub fn parse(s: &str) -> Option<PlanState> {
        PlanState::ALL.into_iter().find(|p| p.name() == s)
    }

    /// No step will run again.
    pub fn finished(self) -> bool {
        matches!(
            self,
            PlanState::Cancelled | PlanState::Completed | PlanState::Invalidated
        )
    }
}

/// A rebalancing plan, without its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRecord {
    /// Its id (`plan-N`).
    pub plan_id: String,
    /// Where it stands.
    pub state: PlanState,
    /// The inventory version it was planned on.
    pub inventory_version: i64,
    /// The request (goals, budget, seed) as JSON.
    pub request: String,
    /// The curve and the unmet goals as JSON.
    pub summary: String,
    /// Moves per second, once executed.
    pub rate: Option<f64>,
    /// Steps in flight at most, once executed.
    pub concurrency: Option<i64>,
    /// Why it stopped or ended.
    pub note: Option<String>,
    /// When it was planned, Unix milliseconds.
    pub created_at: i64,
    /// When it last changed, Unix milliseconds.
    pub updated_at: i64,
}

/// Where one step of a plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Not executed yet.
    Pending,
    /// Committed as planned.
    Committed,
    /// Committed to another server than planned (a concurrent change took the planned one).
    Replanned,
    /// Not committed, with why (`note`).
    Skipped,
}

impl StepStatus {
    /// The status as the ledger and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Committed => "committed",
            StepStatus::Replanned => "replanned",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Back from [`StepStatus::name`].
    pub fn parse(s: &str) -> Option<StepStatus> {
        [
            StepStatus::Pending,
            StepStatus::Committed,
            StepStatus::Replanned,
            StepStatus::Skipped,
        ]
        .into_iter()
        .find(|p| p.name() == s)
    }
}

/// One step of a plan: one node of one cell, from `remove` to `add`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStepRecord {
    /// From 1, in plan order.
    pub step: i64,
    /// The cell whose node moves.
    pub cell_id: String,
    /// The server the node leaves, by id.
    pub remove: String,
    /// Where the node goes (after a re-plan: where it went).
    pub add: String,
    /// Why it moves: `failed`, `drain`, `unsafe`, `balance` or `improve`.
    pub reason: String,
    /// The cell's risk before the step, outages per year.
    pub risk_before: f64,
    /// The cell's risk after it, outages per year.
    pub risk_after: f64,
    /// Whether the cell is single-failure safe after it.
    pub safe_after: bool,
    /// Earlier steps it waits for.
    pub after: Vec<i64>,
    /// Where it stands.
    pub status: StepStatus,
    /// Why it was re-planned or skipped.
    pub note: Option<String>,
    /// When its status last changed, Unix milliseconds.
    pub updated_at: i64,
}

/// A health state reported for an inventory element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElementState {
    /// Reported failed.
    Failed,
    /// Reported draining (being emptied).
    Draining,
    /// Reported active (in service).
    Active,
}

impl ElementState {
    /// The state as the ledger and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            ElementState::Failed => "failed",
            ElementState::Draining => "draining",
            ElementState::Active => "active",
        }
    }

    /// Back from [`ElementState::name`].
    pub fn parse(s: &str) -> Option<ElementState> {
        match s {
            "failed" => Some(ElementState::Failed),
            "draining" => Some(ElementState::Draining),
            "active" => Some(ElementState::Active),
            _ => None,
        }
    }
}

/// One element's reported state, as the overlay keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementStateRecord {
    /// The element's id in the active inventory.
    pub element: String,
    /// Its reported state.
    pub state: ElementState,
    /// Why, when the report says.
    pub reason: Option<String>,
    /// Unix ms since which it holds.
    pub since: i64,
}

/// One accepted change. A batch of them is applied in one transaction, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or update a cell and its nodes (moves of the cell are kept).
    PutCell(CellRecord),
    /// Delete a cell with its nodes and moves.
    DeleteCell(String),
    /// Insert or update a move.
    PutMove(MoveRecord),
    /// Record an inventory version and make it the only active one.
    ActivateInventory(InventoryRecord),
    /// Insert or update a plan's header.
    PutPlan(PlanRecord),
    /// Insert the steps of a new plan (after its header).
    AddPlanSteps {
        /// The plan.
        plan_id: String,
        /// Its steps, in order.
        steps: Vec<PlanStepRecord>,
    },
    /// Update one step's outcome.
    PutPlanStep {
        /// The plan.
        plan_id: String,
        /// The step, as it now stands.
        step: PlanStepRecord,
    },
    /// Insert new cells in bulk (none may exist yet): a ledger import.
    InsertCells(Vec<CellRecord>),
    /// Record re-evaluated risks of existing cells in bulk (nodes and clients unchanged).
    SetRisks(Vec<RiskUpdate>),
    /// The node capacity of every server of the inventory served, for a store that checks
    /// commits itself (one shared by replicas); others need not keep it.
    Capacities(Vec<(String, u32)>),
    /// Replace the whole health overlay with these element states (an empty list clears
    /// it): elements absent from it hold no reported state any more.
    SetOverlay(Vec<ElementStateRecord>),
    /// Insert or replace one setting.
    PutSetting {
        /// The setting's name.
        key: String,
        /// Its value, JSON text chosen by the caller.
        value: String,
    },
}

/// A cell's risk and safety judged again (on another inventory version).
#[derive(Debug, Clone, PartialEq)]
pub struct RiskUpdate {
    /// The cell.
    pub cell_id: String,
    /// Its risk on `inventory_version`, outages per year.
    pub risk: f64,
    /// Whether no single element's failure puts it out there.
    pub single_failure_safe: bool,
    /// The inventory version it was judged on.
    pub inventory_version: i64,
    /// The cell's version after the update.
    pub version: i64,
    /// When it was judged, Unix milliseconds.
    pub updated_at: i64,
}

/// What the service needs to rebuild its state on start, besides the cells (which
/// [`Store::load_cells`] streams).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The inventory the ledger was last served on.
    pub active_inventory: Option<InventoryRecord>,
    /// Highest inventory version ever recorded (0 when none).
    pub max_inventory_version: i64,
    /// Every plan with its steps in order, by plan id.
    pub plans: Vec<(PlanRecord, Vec<PlanStepRecord>)>,
    /// The health overlay on the active inventory: every reported element state, by
    /// element.
    pub overlay: Vec<ElementStateRecord>,
    /// Every setting as (key, JSON value), by key.
    pub settings: Vec<(String, String)>,
}

/// The durable ledger.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the ledger's state but its cells.
    fn load(&self) -> BoxFuture<'_, Result<Snapshot, Error>>;

    /// Hands every cell with its latest move to `sink`, by cell id, one at a time (a
    /// million are never held here), and returns how many. Call it with no writer
    /// running (on start, or with the journal stopped).
    fn load_cells<'a>(&'a self, sink: CellSink<'a>) -> BoxFuture<'a, Result<usize, Error>>;

    /// Applies the changes in order, atomically, and returns only once they are durable.
    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), Error>>;

    /// [`Store::apply`] for changes checked against the state as of feed position `base`:
    /// refused with [`Error::Stale`] when another replica committed after it (a store
    /// shared by replicas arbitrates here; one served by a single process needs nothing).
    fn apply_at<'a>(
        &'a self,
        base: u64,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = base;
        self.apply(changes)
    }

    /// Takes the zone's executor lease: one replica at a time executes plans. False when
    /// another replica holds it; held until released or this process ends (a store served
    /// by one process: always true).
    fn take_executor_lease(&self) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async { Ok(true) })
    }

    /// Gives the executor lease back.
    fn release_executor_lease(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Takes (or keeps) the writer lease of a store shared by replicas: the holder commits
    /// every replica's writes, the others forward theirs to `url`, which it records. False
    /// when another replica holds it. A store no other replica shares has no such lease:
    /// every process writes its own (true).
    fn claim_writer(&self, url: &str) -> BoxFuture<'_, Result<bool, Error>> {
        let _ = url;
        Box::pin(async { Ok(true) })
    }

    /// The address the writer lease's holder recorded, if any (it may have died since).
    fn writer_url(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async { Ok(None) })
    }

    /// Gives the writer lease back.
    fn release_writer(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// The feed position now (0 for a store no other replica shares). Read before the
    /// cells on start: the state loaded reflects at least everything up to it.
    fn feed_head(&self) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async { Ok(0) })
    }

    /// What other replicas committed after feed position `after`: `None` for a store no
    /// other replica shares.
    fn feed(&self, after: u64) -> BoxFuture<'_, Result<Option<Feed>, Error>> {
        let _ = after;
        Box::pin(async { Ok(None) })
    }

    /// These plans with their steps, as stored (absent ones do not exist).
    fn plans<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<StoredPlan>, Error>> {
        let _ = ids;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The current records of these cells (with their latest moves); absent ones were
    /// deleted.
    fn cells<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<CellWithMove>, Error>> {
        let _ = ids;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The latest `limit` moves of the cell `cell_id` (proposed, committed or superseded),
    /// newest first; none for a cell without moves or without a record.
    fn moves<'a>(
        &'a self,
        cell_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MoveRecord>, Error>>;

    /// Node count per server id, as the store derives it from the cells (for the start-up
    /// cross-check against the rebuilt occupancy).
    fn server_loads(&self) -> BoxFuture<'_, Result<Vec<(String, u32)>, Error>>;

    /// A cheap round trip, for readiness.
    fn ping(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Flushes and closes; later calls fail.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Where a ledger lives, as `--db` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerUrl {
    /// `sqlite://PATH`, `sqlite:PATH` or a plain path: an embedded SQLite file.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`.
    Postgres(String),
}

impl LedgerUrl {
    /// Reads `--db`; a scheme other than `sqlite` and `postgres(ql)` is an error (a
    /// `postgres://` URL never becomes a file of that name).
    pub fn parse(db: &str) -> Result<LedgerUrl, Error> {
        if db.is_empty() {
            return Err(Error::InvalidConfig {
                message: "--db is empty: give a file path or a postgres:// URL".into(),
            });
        }
        if let Some(path) = db
            .strip_prefix("sqlite://")
            .or_else(|| db.strip_prefix("sqlite:"))
        {
            return Ok(LedgerUrl::Sqlite(PathBuf::from(path)));
        }
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Ok(LedgerUrl::Postgres(db.to_owned()));
        }
        // A scheme is letters, digits, `+`, `-` or `.` before `:` (RFC 3986); `C:\...`
        // and `./a:b` stay paths.
        if let Some((scheme, _)) = db.split_once(':') {
            let is_scheme = scheme.len() > 1
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if is_scheme && db[scheme.len() + 1..].starts_with("//") {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "--db: unknown ledger URL scheme '{scheme}' (a file path, sqlite://PATH or postgres://...)"
                    ),
                });
            }
        }
        Ok(LedgerUrl::Sqlite(PathBuf::from(db)))
    }

    /// Where uploads and other service files go: next to a SQLite file.
    pub fn data_dir(&self) -> PathBuf {
        match self {
            LedgerUrl::Sqlite(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
            LedgerUrl::Postgres(_) => PathBuf::from("data"),
        }
    }

    /// For logs: the path, or the URL without its password.
    pub fn label(&self) -> String {
        match self {
            LedgerUrl::Sqlite(path) => path.display().to_string(),
            LedgerUrl::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                match rest.split_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split(':').next().unwrap_or_default();
                        format!("{scheme}://{user}@{host}")
                    }
                    None => url.clone(),
                }
            }
        }
    }
}

/// Opens the ledger `url` names.
pub async fn open(url: &LedgerUrl) -> Result<Arc<dyn Store>, Error> {
    match url {
        LedgerUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        LedgerUrl::Postgres(url) => Ok(Arc::new(PgStore::open(url).await?)),
    }
}

/// Other replicas' commits, as [`Store::feed`] reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feed {
    /// The feed position read up to.
    pub head: u64,
    /// Cells another replica changed (or deleted) since.
    pub cells: Vec<String>,
    /// Another replica changed the inventory version, its health overlay or the settings
    /// since: reload the zone state.
    pub inventory: bool,
    /// Plans another replica made or changed since.
    pub plans: Vec<String>,
}

/// A plan with its steps in order.
pub type StoredPlan = (PlanRecord, Vec<PlanStepRecord>);

/// A cell's record with its latest move, if it has one.
pub type CellWithMove = (CellRecord, Option<MoveRecord>);

/// Where [`Store::load_cells`] hands the cells.
pub type CellSink<'a> = &'a mut (dyn FnMut(CellRecord, Option<MoveRecord>) + Send);

/// Every cell with its latest move, by cell id: for small ledgers and tests (a service
/// streams them into its state instead).
pub async fn all_cells(store: &dyn Store) -> Result<Vec<CellWithMove>, Error> {
    let mut out = Vec::new();
    store.load_cells(&mut |c, m| out.push((c, m))).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_element_state_parses_back_from_its_name() {
        for state in [
            ElementState::Failed,
            ElementState::Draining,
            ElementState::Active,
        ] {
            assert_eq!(ElementState::parse(state.name()), Some(state));
        }
        assert_eq!(ElementState::Draining.name(), "draining");
        assert_eq!(ElementState::parse("Failed"), None);
        assert_eq!(ElementState::parse(""), None);
    }

    #[test]
    fn a_ledger_url_is_a_path_sqlite_or_postgres_and_nothing_else() {
        let sqlite = |p: &str| Some(LedgerUrl::Sqlite(PathBuf::from(p)));
        let parse = |s: &str| LedgerUrl::parse(s).ok();
        assert_eq!(parse("data/l.db"), sqlite("data/l.db"));
        assert_eq!(parse("sqlite:///tmp/l.db"), sqlite("/tmp/l.db"));
        assert_eq!(parse("sqlite:l.db"), sqlite("l.db"));
        assert_eq!(parse("./a:b.db"), sqlite("./a:b.db"));
        assert_eq!(parse("C:\\l.db"), sqlite("C:\\l.db"));
        let pg = "postgres://u:secret@127.0.0.1:5432/ledger";
        assert_eq!(parse(pg), Some(LedgerUrl::Postgres(pg.into())));
        assert_eq!(
            LedgerUrl::parse(pg).unwrap().label(),
            "postgres://u@127.0.0.1:5432/ledger"
        );
        assert!(matches!(
            LedgerUrl::parse("postgresql://h/db"),
            Ok(LedgerUrl::Postgres(_))
        ));
        for bad in ["mysql://h/db", "http://x", "", "postgress://h/db"] {
            let e = LedgerUrl::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidConfig { .. }), "{bad}: {e}");
        }
        assert!(LedgerUrl::parse("mysql://h/db")
            .unwrap_err()
            .to_string()
            .contains("unknown ledger URL scheme 'mysql'"));
    }
}
