//! The SQLite ledger (sqlx): WAL, `synchronous=FULL` so that a commit is on disk before
//! the reply, foreign keys on, migrations embedded in the binary. The SQL itself is
//! [`crate::sql`]'s; here are SQLite's dialect, the lock that keeps a ledger to one process,
//! and the bulk read of the cells on start (rusqlite, in place).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::Sqlite;

use crate::sql::codec::{cell_from, move_from, Columns, CELL_COLUMNS, MOVE_COLUMNS};
use crate::sql::{Dialect, Embedded, Sql, Statements};
use crate::{BoxFuture, CellRecord, CellSink, Change, Error, MoveRecord, Snapshot, Store};

/// SQLite's migrations (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "ledger", include_str!("../migrations/0001_ledger.sql")),
    (
        2,
        "risk_per_year",
        include_str!("../migrations/0002_risk_per_year.sql"),
    ),
    (3, "plans", include_str!("../migrations/0003_plans.sql")),
    (
        4,
        "cell_nodes_inline",
        include_str!("../migrations/0004_cell_nodes_inline.sql"),
    ),
    (5, "overlay", include_str!("../migrations/0005_overlay.sql")),
];

impl Dialect for Sqlite {
    const PARAM: char = '?';
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";
    const ACTIVE: &'static str = "active = 1";

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(Statements::new::<Sqlite>);
        &STATEMENTS
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn set_capacities<'c>(
        _: &'c mut SqliteConnection,
        _: &'c [(String, u32)],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        // One process serves a SQLite ledger: its own check is the whole check.
        Box::pin(async { Ok(()) })
    }
}

/// A ledger in one SQLite file, served by one process at a time.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: std::path::PathBuf,
    /// The ledger file, locked while the store is open (see [`hold_lock`]).
    lock: Arc<Mutex<Option<File>>>,
}

/// Holds an exclusive lock on the ledger file itself for as long as the store is open: a
/// SQLite ledger is served by one process at a time, since two would each trust their own
/// in-memory occupancy and together break the rules. The file, not a name: every name of
/// it (a symlink, a hard link, a relative path, a `sqlite://` form) takes the same lock.
/// The OS drops the lock when the process dies, even by kill -9. `<ledger>.lock` (under the
/// file's canonical name) keeps the holder's pid for the message.
///
/// The lock is `flock(2)`, which on Linux does not interact with the `fcntl(2)` locks
/// SQLite takes on the same file. Closing a descriptor of the file releases this process's
/// `fcntl` locks on it, so the descriptor is closed only when the store closes, after its
/// connections.
fn hold_lock(path: &Path) -> Result<File, Error> {
    let io = |context: String| move |e| Error::Io { context, source: e };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    let pid_path = std::fs::canonicalize(path)
        .map(|canonical| {
            let mut name = canonical.into_os_string();
            name.push(".lock");
            std::path::PathBuf::from(name)
        })
        .map_err(io(format!("resolving {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            std::fs::write(&pid_path, format!("{}\n", std::process::id()))
                .map_err(io(format!("writing {}", pid_path.display())))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&pid_path).unwrap_or_default();
            let holder = holder.trim();
            Err(Error::LedgerLocked {
                message: format!(
                    "the ledger {} is in use by another process{}: a SQLite ledger is served by one process at a time (use PostgreSQL for several replicas)",
                    path.display(),
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                ),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
    }
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed) and migrates the ledger.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                context: format!("creating {}", dir.display()),
                source: e,
            })?;
        }
        // Before the file is touched: a second process changes nothing.
        let lock = hold_lock(path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced on every commit, so an acknowledged change survives
            // power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // 64 MiB of pages per connection (default 2 MiB): at a million cells the
            // indices a commit touches stay in SQLite's cache, so a commit does not grow
            // slower with the ledger.
            .pragma("cache_size", "-65536");
        // Writes come from one committer task at a time; a second connection serves
        // readiness pings and start-up reads without queueing behind a commit.
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .connect_with(options)
            .await?;
        Migrator::new(Embedded(MIGRATIONS))
            .await?
            .run(&pool)
            .await?;
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
            lock: Arc::new(Mutex::new(Some(lock))),
        })
    }
}

/// A rusqlite row, read by position in place.
struct InPlace<'a, 'stmt>(&'a rusqlite::Row<'stmt>);

impl Columns for InPlace<'_, '_> {
    type Error = rusqlite::Error;

    fn text(&self, i: usize) -> Result<&str, rusqlite::Error> {
        self.0.get_ref(i)?.as_str().map_err(rusqlite::Error::from)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, rusqlite::Error> {
        self.0.get(i)
    }

    fn int(&self, i: usize) -> Result<i64, rusqlite::Error> {
        self.0.get(i)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, rusqlite::Error> {
        self.0.get(i)
    }

    fn real(&self, i: usize) -> Result<f64, rusqlite::Error> {
        self.0.get(i)
    }

    fn opt_real(&self, i: usize) -> Result<Option<f64>, rusqlite::Error> {
        self.0.get(i)
    }

    fn flag(&self, i: usize) -> Result<bool, rusqlite::Error> {
        self.0.get(i)
    }

    fn invalid(&self, i: usize, _: &str, message: String) -> rusqlite::Error {
        rusqlite::Error::InvalidColumnType(i, message, rusqlite::types::Type::Text)
    }
}

/// Reads every cell with its latest move, by id, on its own connection, and hands them
/// on in batches of `batch` through `out` (which bounds how many wait). Blocking: run it
/// off the async runtime. Rows are read in place (rusqlite), not copied per value.
fn read_cells(
    path: &Path,
    batch: usize,
    out: &tokio::sync::mpsc::Sender<Vec<(CellRecord, Option<MoveRecord>)>>,
) -> Result<usize, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // One read transaction: the cells and the moves as of one moment.
    conn.execute_batch("BEGIN")?;
    // Few cells have moves: their latest ones first, each handed over with its cell.
    let mut last_moves: HashMap<String, MoveRecord> = HashMap::new();
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT {MOVE_COLUMNS}
             FROM moves m WHERE m.n = (SELECT MAX(n) FROM moves WHERE cell_id = m.cell_id)"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let m = move_from(&InPlace(row))?;
            last_moves.insert(m.cell_id.clone(), m);
        }
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {CELL_COLUMNS} FROM cells ORDER BY cell_id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut count = 0;
    let mut pending = Vec::with_capacity(batch);
    while let Some(row) = rows.next()? {
        let cell = cell_from(&InPlace(row))?;
        let m = last_moves.remove(&cell.cell_id);
        pending.push((cell, m));
        count += 1;
        if pending.len() == batch {
            let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
            if out.blocking_send(full).is_err() {
                // The reader went away: nothing to hand over.
                return Ok(count);
            }
        }
    }
    if !pending.is_empty() {
        let _ = out.blocking_send(pending);
    }
    Ok(count)
}

/// Cells per batch from the reader thread, and batches that may wait for the sink.
const READ_BATCH: usize = 4096;
const READ_AHEAD: usize = 16;

async fn load_cells(path: &Path, batch: usize, sink: CellSink<'_>) -> Result<usize, Error> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let path = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_cells(&path, batch, &tx));
    // The sink works while the reader reads the next batches.
    while let Some(cells) = rx.recv().await {
        for (c, m) in cells {
            sink(c, m);
        }
    }
    let count = reader
        .await
        .map_err(|e| Error::Internal(format!("ledger reader: {e}")))?
        .map_err(|e| Error::StoreUnavailable {
            message: format!("reading the ledger's cells: {e}"),
        })?;
    Ok(count)
}

impl Store for SqliteStore {
    fn load(&self) -> BoxFuture<'_, Result<Snapshot, Error>> {
        Box::pin(async move { Ok(Sql::load(&self.pool).await?) })
    }

    fn load_cells<'a>(&'a self, sink: CellSink<'a>) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(load_cells(&self.path, READ_BATCH, sink))
    }

    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            Sql::<Sqlite>::apply(&mut tx, changes).await?;
            Ok(tx.commit().await?)
        })
    }

    fn moves<'a>(
        &'a self,
        cell_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MoveRecord>, Error>> {
        Box::pin(async move { Ok(Sql::moves(&self.pool, cell_id, limit).await?) })
    }

    fn server_loads(&self) -> BoxFuture<'_, Result<Vec<(String, u32)>, Error>> {
        Box::pin(async move { Ok(Sql::server_loads(&self.pool).await?) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { Ok(Sql::ping(&self.pool).await?) })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.pool.close().await;
            // Another process may serve the ledger now.
            self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        all_cells, ElementState, ElementStateRecord, InventoryRecord, MoveStatus, PlanRecord,
        PlanState, PlanStepRecord, RiskUpdate, StepStatus,
    };

    fn cell(id: &str, nodes: &[&str], version: i64) -> CellRecord {
        CellRecord {
            cell_id: id.into(),
            clients: vec!["c1".into(), "c2".into()],
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            colour: Some("blue".into()),
            risk: 1.25e-7,
            single_failure_safe: true,
            inventory_version: 1,
            version,
            created_at: 10,
            updated_at: 20 + version,
        }
    }

    fn mv(cell: &str, n: i64, status: MoveStatus) -> MoveRecord {
        MoveRecord {
            cell_id: cell.into(),
            n,
            out_server: "a".into(),
            into_server: "z".into(),
            status,
            cell_version: 1,
            risk_before: 0.5,
            risk_after: 0.25,
            safe_after: true,
            created_at: 1,
            updated_at: 2,
        }
    }

    #[tokio::test]
    async fn round_trip_and_cascade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("ledger.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Snapshot::default());

        let inv = InventoryRecord {
            version: 1,
            source: "bundled:small:0".into(),
            path: None,
            loaded_at: 5,
        };
        let a = cell("a", &["s1", "s2", "s3"], 1);
        let b = cell("b", &["s3", "s4", "s5"], 1);
        store
            .apply(&[
                Change::ActivateInventory(inv.clone()),
                Change::PutCell(a.clone()),
                Change::PutCell(b.clone()),
                Change::PutMove(mv("a", 1, MoveStatus::Superseded)),
                Change::PutMove(mv("a", 2, MoveStatus::Proposed)),
            ])
            .await
            .unwrap();
        // Update a (nodes replaced), delete b (its nodes go too).
        let a2 = cell("a", &["s9", "s2", "s3"], 2);
        store
            .apply(&[Change::PutCell(a2.clone()), Change::DeleteCell("b".into())])
            .await
            .unwrap();
        store.close().await;

        // Reopen: everything acknowledged is there.
        let store = SqliteStore::open(&path).await.unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(
            all_cells(&store).await.unwrap(),
            vec![(a2, Some(mv("a", 2, MoveStatus::Proposed)))]
        );
        // A cell's moves, newest first, as many as asked; none for a deleted cell.
        assert_eq!(
            store.moves("a", 10).await.unwrap(),
            vec![
                mv("a", 2, MoveStatus::Proposed),
                mv("a", 1, MoveStatus::Superseded)
            ]
        );
        assert_eq!(
            store.moves("a", 1).await.unwrap(),
            vec![mv("a", 2, MoveStatus::Proposed)]
        );
        assert_eq!(store.moves("b", 10).await.unwrap(), vec![]);
        assert_eq!(snap.active_inventory, Some(inv));
        assert_eq!(snap.max_inventory_version, 1);
        assert_eq!(
            store.server_loads().await.unwrap(),
            vec![("s2".into(), 1), ("s3".into(), 1), ("s9".into(), 1)]
        );

        // A second inventory version becomes the only active one.
        let inv2 = InventoryRecord {
            version: 2,
            source: "dir:/x".into(),
            path: Some("/x".into()),
            loaded_at: 6,
        };
        store
            .apply(&[Change::ActivateInventory(inv2.clone())])
            .await
            .unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(snap.active_inventory, Some(inv2));
        assert_eq!(snap.max_inventory_version, 2);
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn plans_round_trip_and_a_step_commits_with_its_cell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let plan = PlanRecord {
            plan_id: "plan-1".into(),
            state: PlanState::Planned,
            inventory_version: 3,
            request: r#"{"repair":true}"#.into(),
            summary: "{}".into(),
            rate: None,
            concurrency: None,
            note: None,
            created_at: 1,
            updated_at: 1,
        };
        let steps: Vec<PlanStepRecord> = (1..=1201)
            .map(|i| PlanStepRecord {
                step: i,
                cell_id: format!("c{i}"),
                remove: "s1".into(),
                add: "s2".into(),
                reason: "drain".into(),
                risk_before: 1e-6,
                risk_after: 1e-7,
                safe_after: true,
                after: if i > 2 { vec![i - 2, i - 1] } else { vec![] },
                status: StepStatus::Pending,
                note: None,
                updated_at: 1,
            })
            .collect();
        store
            .apply(&[
                Change::PutPlan(plan.clone()),
                Change::AddPlanSteps {
                    plan_id: "plan-1".into(),
                    steps: steps.clone(),
                },
            ])
            .await
            .unwrap();
        let mut done = steps[0].clone();
        done.status = StepStatus::Replanned;
        done.add = "s7".into();
        done.note = Some("s2 was full".into());
        let mut executing = plan.clone();
        executing.state = PlanState::Executing;
        executing.rate = Some(1000.0);
        executing.concurrency = Some(8);
        store
            .apply(&[
                Change::PutPlan(executing.clone()),
                Change::PutCell(cell("c1", &["s7", "s3"], 2)),
                Change::PutPlanStep {
                    plan_id: "plan-1".into(),
                    step: done.clone(),
                },
            ])
            .await
            .unwrap();
        // A step of a plan that does not exist fails the whole batch.
        let err = store
            .apply(&[
                Change::DeleteCell("c1".into()),
                Change::PutPlanStep {
                    plan_id: "plan-9".into(),
                    step: done.clone(),
                },
            ])
            .await;
        assert!(err.is_err());
        store.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(all_cells(&store).await.unwrap().len(), 1);
        let mut want = steps;
        want[0] = done;
        assert_eq!(snap.plans, vec![(executing, want)]);
    }

    /// The ledger is read a page at a time: every cell, in order, whatever the page size,
    /// with its nodes in position order.
    #[tokio::test]
    async fn a_paged_load_reads_every_cell() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("l.db")).await.unwrap();
        let cells: Vec<CellRecord> = (0..10)
            .map(|i| cell(&format!("c{i:02}"), &[&format!("s{i}"), "z9", "a1"], 1))
            .collect();
        store
            .apply(&[Change::InsertCells(cells[..6].to_vec())])
            .await
            .unwrap();
        for c in &cells[6..] {
            store.apply(&[Change::PutCell(c.clone())]).await.unwrap();
        }
        for page in [1, 3, 5, 10, 11] {
            let mut got = Vec::new();
            let n = load_cells(&store.path, page, &mut |c, m| got.push((c, m)))
                .await
                .unwrap();
            assert_eq!(n, cells.len());
            let want: Vec<_> = cells.iter().map(|c| (c.clone(), None)).collect();
            assert_eq!(got, want, "page {page}");
        }
    }

    /// Risks set in bulk land on exactly their cells (over several statements); one
    /// unknown cell fails the whole batch.
    #[tokio::test]
    async fn risks_are_set_in_bulk_and_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("l.db")).await.unwrap();
        let cells: Vec<CellRecord> = (0..200)
            .map(|i| cell(&format!("c{i:03}"), &[&format!("s{i}"), "z9"], 1))
            .collect();
        store
            .apply(&[Change::InsertCells(cells.clone())])
            .await
            .unwrap();
        let update = |c: &CellRecord, i: usize| RiskUpdate {
            cell_id: c.cell_id.clone(),
            risk: i as f64 * 1e-6,
            single_failure_safe: !i.is_multiple_of(3),
            inventory_version: 2,
            version: c.version + 1,
            updated_at: 99,
        };
        // Every other cell.
        let updates: Vec<RiskUpdate> = cells
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(i, c)| update(c, i))
            .collect();
        store.apply(&[Change::SetRisks(updates)]).await.unwrap();
        let want: Vec<(CellRecord, Option<MoveRecord>)> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                if i % 2 == 0 {
                    let u = update(&c, i);
                    c.risk = u.risk;
                    c.single_failure_safe = u.single_failure_safe;
                    c.inventory_version = u.inventory_version;
                    c.version = u.version;
                    c.updated_at = u.updated_at;
                }
                (c, None)
            })
            .collect();
        assert_eq!(all_cells(&store).await.unwrap(), want);
        let mut bad: Vec<RiskUpdate> = cells.iter().map(|c| update(c, 7)).collect();
        bad[150].cell_id = "nope".into();
        assert!(store.apply(&[Change::SetRisks(bad)]).await.is_err());
        assert_eq!(all_cells(&store).await.unwrap(), want);
    }

    /// One process at a time: a second open of the same ledger is refused, naming the
    /// holder, and succeeds once the first is closed.
    #[tokio::test]
    async fn a_ledger_is_held_by_one_store_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let first = SqliteStore::open(&path).await.unwrap();
        let e = SqliteStore::open(&path).await.unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, Error::LedgerLocked { .. }), "{message}");
        assert!(
            message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        first.close().await;
        let second = SqliteStore::open(&path).await.unwrap();
        second.close().await;
    }

    /// Issue 27, finding 3: the lock is the file's, not a name's. While one store holds the
    /// ledger, opening it through a symlink, a hard link or a roundabout relative-looking
    /// path is refused; once closed, the symlink opens it, and the first name is then
    /// refused in turn.
    #[cfg(unix)]
    #[tokio::test]
    async fn every_name_of_a_ledger_takes_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let path = dir.path().join("l.db");
        let first = SqliteStore::open(&path).await.unwrap();
        let symlink = dir.path().join("link.db");
        std::os::unix::fs::symlink(&path, &symlink).unwrap();
        let hard = dir.path().join("hard.db");
        std::fs::hard_link(&path, &hard).unwrap();
        let roundabout = sub.join("..").join(".").join("l.db");
        for name in [&symlink, &hard, &roundabout] {
            let e = SqliteStore::open(name).await.unwrap_err();
            assert!(
                matches!(e, Error::LedgerLocked { .. }),
                "{}: {e}",
                name.display()
            );
        }
        first.close().await;
        let through_link = SqliteStore::open(&symlink).await.unwrap();
        let e = SqliteStore::open(&path).await.unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{e}"
        );
        through_link.close().await;
    }

    fn element(
        id: &str,
        state: ElementState,
        reason: Option<&str>,
        since: i64,
    ) -> ElementStateRecord {
        ElementStateRecord {
            element: id.into(),
            state,
            reason: reason.map(str::to_owned),
            since,
        }
    }

    /// The health overlay is replaced whole by every report (over several statements for a
    /// large one), comes back by element, and survives a restart; an empty report clears
    /// it.
    #[tokio::test]
    async fn the_overlay_is_replaced_whole_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.load().await.unwrap().overlay.is_empty());

        // 250 elements, reported out of order.
        let states = [
            ElementState::Failed,
            ElementState::Draining,
            ElementState::Active,
        ];
        let first: Vec<ElementStateRecord> = (0..250)
            .rev()
            .map(|i| {
                let reason = (i % 2 == 0).then_some("power");
                element(&format!("rack-{i:03}"), states[i % 3], reason, i as i64)
            })
            .collect();
        store
            .apply(&[Change::SetOverlay(first.clone())])
            .await
            .unwrap();
        let mut sorted = first.clone();
        sorted.sort_by(|a, b| a.element.cmp(&b.element));
        assert_eq!(store.load().await.unwrap().overlay, sorted);

        // A second report replaces the first: rack-000 is gone, rack-001 changed.
        let second = vec![
            element("sw-9", ElementState::Draining, None, 7),
            element("rack-001", ElementState::Failed, Some("fire"), 8),
        ];
        store
            .apply(&[Change::SetOverlay(second.clone())])
            .await
            .unwrap();
        let want = vec![second[1].clone(), second[0].clone()];
        assert_eq!(store.load().await.unwrap().overlay, want);
        store.close().await;

        // Reopen: the overlay acknowledged is there.
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.load().await.unwrap().overlay, want);
        store.apply(&[Change::SetOverlay(vec![])]).await.unwrap();
        assert!(store.load().await.unwrap().overlay.is_empty());
        store.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.load().await.unwrap().overlay.is_empty());
    }

    /// A setting is upserted (a second put of its key replaces the value), settings come
    /// back by key and survive a restart.
    #[tokio::test]
    async fn settings_are_upserted_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.load().await.unwrap().settings.is_empty());
        let put = |key: &str, value: &str| Change::PutSetting {
            key: key.into(),
            value: value.into(),
        };
        store
            .apply(&[put("z.rate", "100"), put("a.mode", r#""strict""#)])
            .await
            .unwrap();
        store
            .apply(&[put("z.rate", r#"{"per_s":250}"#)])
            .await
            .unwrap();
        let want = vec![
            ("a.mode".to_owned(), r#""strict""#.to_owned()),
            ("z.rate".to_owned(), r#"{"per_s":250}"#.to_owned()),
        ];
        assert_eq!(store.load().await.unwrap().settings, want);
        store.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        let snap = store.load().await.unwrap();
        assert_eq!(snap.settings, want);
        assert!(snap.overlay.is_empty());
    }

    /// An element state the ledger does not know (written behind the schema's back) fails
    /// the load with a decode error naming it, rather than a panic.
    #[tokio::test]
    async fn an_unknown_element_state_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .apply(&[Change::SetOverlay(vec![element(
                "s1",
                ElementState::Failed,
                None,
                1,
            )])])
            .await
            .unwrap();
        store.close().await;
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 UPDATE element_states SET state = 'melted' WHERE element = 's1';",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let e = store.load().await.unwrap_err();
        assert!(matches!(e, Error::Store(_)), "{e}");
        assert!(
            e.to_string().contains("unknown element state 'melted'"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("l.db")).await.unwrap();
        let a = cell("a", &["s1", "s2"], 1);
        store.apply(&[Change::PutCell(a.clone())]).await.unwrap();
        // The second cell repeats a node: the UNIQUE (cell_id, server_id) rejects the batch.
        let bad = cell("b", &["s1", "s1"], 1);
        let err = store
            .apply(&[Change::DeleteCell("a".into()), Change::PutCell(bad)])
            .await;
        assert!(err.is_err());
        assert_eq!(all_cells(&store).await.unwrap(), vec![(a, None)]);
    }
}
