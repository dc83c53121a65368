//! The durable ledger behind one small trait, so that a PostgreSQL backend can follow.
//!
//! The service keeps the working state in memory (see [`crate::ledger`]) and writes every
//! accepted change here, in order, before it replies. A backend only has to apply batches
//! of [`Change`]s atomically and durably and hand everything back on start.

mod sqlite;

use std::future::Future;
use std::pin::Pin;

pub use sqlite::SqliteStore;

use crate::Error;

/// A boxed future, so that the trait stays object safe (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One placed cell as the ledger keeps it; servers by id, never by index, so that records
/// survive an inventory switch.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRecord {
    pub cell_id: String,
    pub clients: Vec<String>,
    pub nodes: Vec<String>,
    pub colour: Option<String>,
    pub risk: f64,
    pub single_failure_safe: bool,
    /// Inventory version that `risk` was computed on.
    pub inventory_version: i64,
    /// Starts at 1, +1 on every change.
    pub version: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStatus {
    Proposed,
    Committed,
    Superseded,
}

impl MoveStatus {
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
    pub cell_id: String,
    /// Per cell, from 1.
    pub n: i64,
    pub out_server: String,
    pub into_server: String,
    pub status: MoveStatus,
    /// The cell version the move was computed on; a commit needs it unchanged.
    pub cell_version: i64,
    pub risk_before: f64,
    pub risk_after: f64,
    pub safe_after: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An inventory the service ran on.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRecord {
    pub version: i64,
    /// `bundled:small:0`, `dir:PATH` or `upload:PATH`.
    pub source: String,
    /// Directory to reload it from after a restart (`None` for the generated bundled zone).
    pub path: Option<String>,
    pub loaded_at: i64,
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
}

/// Everything the service needs to rebuild its state on start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// By cell id.
    pub cells: Vec<CellRecord>,
    /// The latest move of every cell that has one.
    pub last_moves: Vec<MoveRecord>,
    pub active_inventory: Option<InventoryRecord>,
    /// Highest inventory version ever recorded (0 when none).
    pub max_inventory_version: i64,
}

/// The durable ledger.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the whole ledger.
    fn load(&self) -> BoxFuture<'_, Result<Snapshot, Error>>;

    /// Applies the changes in order, atomically, and returns only once they are durable.
    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), Error>>;

    /// Node count per server id, as the store derives it from the cells (for the start-up
    /// cross-check against the rebuilt occupancy).
    fn server_loads(&self) -> BoxFuture<'_, Result<Vec<(String, u32)>, Error>>;

    /// A cheap round trip, for readiness.
    fn ping(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Flushes and closes; later calls fail.
    fn close(&self) -> BoxFuture<'_, ()>;
}

pub(crate) fn join_ids(ids: &[String]) -> String {
    ids.join(";")
}

pub(crate) fn split_ids(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(';').map(str::to_owned).collect()
    }
}
