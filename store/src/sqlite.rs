//! The SQLite ledger (sqlx): WAL, `synchronous=FULL` so that a commit is on disk before
//! the reply, foreign keys on, migrations embedded in the binary.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;
use std::fs::File;
use std::io::{Read, Write as _};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    join_ids, split_ids, BoxFuture, CellRecord, CellSink, Change, InventoryRecord, MoveRecord,
    MoveStatus, PlanRecord, PlanState, PlanStepRecord, RiskUpdate, Snapshot, StepStatus, Store,
};
use crate::Error;

/// The migrations, compiled in: a binary never depends on files next to it.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            let migration = |version, name, sql| {
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            };
            Ok(vec![
                migration(
                    1,
                    "ledger",
                    include_str!("../migrations/0001_ledger.sql"),
                ),
                migration(
                    2,
                    "risk_per_year",
                    include_str!("../migrations/0002_risk_per_year.sql"),
                ),
                migration(3, "plans", include_str!("../migrations/0003_plans.sql")),
                migration(
                    4,
                    "cell_nodes_inline",
                    include_str!("../migrations/0004_cell_nodes_inline.sql"),
                ),
            ])
        })
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: std::path::PathBuf,
    /// `<ledger>.lock`, held while the store is open (see [`hold_lock`]).
    lock: Arc<Mutex<Option<File>>>,
}

/// Holds an exclusive lock on `<ledger>.lock` for as long as the store is open: a SQLite
/// ledger is served by one process at a time, since two would each trust their own
/// in-memory occupancy and together break the rules. The OS drops the lock when the
/// process dies, even by kill -9; the file keeps the holder's pid for the message.
fn hold_lock(path: &Path) -> Result<File, Error> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = std::path::PathBuf::from(name);
    let io = |e| Error::Io {
        context: format!("locking {}", lock_path.display()),
        source: e,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
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
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
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
        let migrator = Migrator::new(Embedded).await?;
        migrator.run(&pool).await?;
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
            lock: Arc::new(Mutex::new(Some(lock))),
        })
    }
}

type CellQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds a cell's columns in the order of `cells` (cell_id, clients, size, colour, risk,
/// single_failure_safe, inventory_version, version, created_at, updated_at, nodes).
fn bind_cell<'q>(q: CellQuery<'q>, c: &'q CellRecord) -> CellQuery<'q> {
    q.bind(&c.cell_id)
        .bind(join_ids(&c.clients))
        .bind(c.nodes.len() as i64)
        .bind(&c.colour)
        .bind(c.risk)
        .bind(c.single_failure_safe)
        .bind(c.inventory_version)
        .bind(c.version)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(join_ids(&c.nodes))
}

async fn put_cell(tx: &mut Transaction<'_, Sqlite>, c: &CellRecord) -> Result<(), sqlx::Error> {
    let q = sqlx::query(
        "INSERT INTO cells (cell_id, clients, size, colour, risk, single_failure_safe,
                            inventory_version, version, created_at, updated_at, nodes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (cell_id) DO UPDATE SET
            clients = excluded.clients, size = excluded.size, colour = excluded.colour,
            nodes = excluded.nodes,
            risk = excluded.risk, single_failure_safe = excluded.single_failure_safe,
            inventory_version = excluded.inventory_version, version = excluded.version,
            updated_at = excluded.updated_at",
    );
    bind_cell(q, c).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM cell_nodes WHERE cell_id = ?1")
        .bind(&c.cell_id)
        .execute(&mut **tx)
        .await?;
    if !c.nodes.is_empty() {
        // One statement for all nodes: each statement is a round trip to the SQLite thread.
        let mut sql = String::from("INSERT INTO cell_nodes (cell_id, position, server_id) VALUES ");
        for i in 0..c.nodes.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "(?1, ?{}, ?{})", 2 * i + 2, 2 * i + 3);
        }
        let mut q = sqlx::query(&sql).bind(&c.cell_id);
        for (i, node) in c.nodes.iter().enumerate() {
            q = q.bind(i as i64).bind(node);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn put_move(tx: &mut Transaction<'_, Sqlite>, m: &MoveRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO moves (cell_id, n, out_server, into_server, status, cell_version,
                            risk_before, risk_after, safe_after, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (cell_id, n) DO UPDATE SET
            out_server = excluded.out_server, into_server = excluded.into_server,
            status = excluded.status, cell_version = excluded.cell_version,
            risk_before = excluded.risk_before, risk_after = excluded.risk_after,
            safe_after = excluded.safe_after, updated_at = excluded.updated_at",
    )
    .bind(&m.cell_id)
    .bind(m.n)
    .bind(&m.out_server)
    .bind(&m.into_server)
    .bind(m.status.name())
    .bind(m.cell_version)
    .bind(m.risk_before)
    .bind(m.risk_after)
    .bind(m.safe_after)
    .bind(m.created_at)
    .bind(m.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn decode_error(column: &str, message: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: message.into(),
    }
}

fn plan_from_row(row: &SqliteRow) -> Result<PlanRecord, sqlx::Error> {
    let state: &str = row.try_get("state")?;
    Ok(PlanRecord {
        plan_id: row.try_get("plan_id")?,
        state: PlanState::parse(state)
            .ok_or_else(|| decode_error("state", format!("unknown plan state '{state}'")))?,
        inventory_version: row.try_get("inventory_version")?,
        request: row.try_get("request")?,
        summary: row.try_get("summary")?,
        rate: row.try_get("rate")?,
        concurrency: row.try_get("concurrency")?,
        note: row.try_get("note")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn step_from_row(row: &SqliteRow) -> Result<(String, PlanStepRecord), sqlx::Error> {
    let status: &str = row.try_get("status")?;
    let after = split_ids(row.try_get::<&str, _>("after_steps")?)
        .iter()
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| decode_error("after_steps", format!("not a step number: '{s}'")))
        })
        .collect::<Result<_, _>>()?;
    Ok((
        row.try_get("plan_id")?,
        PlanStepRecord {
            step: row.try_get("step")?,
            cell_id: row.try_get("cell_id")?,
            remove: row.try_get("remove")?,
            add: row.try_get("add_server")?,
            reason: row.try_get("reason")?,
            risk_before: row.try_get("risk_before")?,
            risk_after: row.try_get("risk_after")?,
            safe_after: row.try_get("safe_after")?,
            after,
            status: StepStatus::parse(status)
                .ok_or_else(|| decode_error("status", format!("unknown step status '{status}'")))?,
            note: row.try_get("note")?,
            updated_at: row.try_get("updated_at")?,
        },
    ))
}

async fn put_plan(tx: &mut Transaction<'_, Sqlite>, p: &PlanRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO plans (plan_id, state, inventory_version, request, summary, rate,
                            concurrency, note, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (plan_id) DO UPDATE SET
            state = excluded.state, rate = excluded.rate, concurrency = excluded.concurrency,
            note = excluded.note, updated_at = excluded.updated_at",
    )
    .bind(&p.plan_id)
    .bind(p.state.name())
    .bind(p.inventory_version)
    .bind(&p.request)
    .bind(&p.summary)
    .bind(p.rate)
    .bind(p.concurrency)
    .bind(&p.note)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Cells per INSERT of a bulk import (10 parameters each, and 7 or so nodes of 3). Small:
/// binding looks parameters up by a linear scan, so a statement costs the square of them.
const CELLS_PER_INSERT: usize = 16;

async fn insert_cells(
    tx: &mut Transaction<'_, Sqlite>,
    cells: &[CellRecord],
) -> Result<(), sqlx::Error> {
    for chunk in cells.chunks(CELLS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO cells (cell_id, clients, size, colour, risk, single_failure_safe,
             inventory_version, version, created_at, updated_at, nodes) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = 11 * i + 1;
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(
                sql,
                "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            );
        }
        let mut q = sqlx::query(&sql);
        for c in chunk {
            q = bind_cell(q, c);
        }
        q.execute(&mut **tx).await?;
        let mut sql = String::from("INSERT INTO cell_nodes (cell_id, position, server_id) VALUES ");
        let mut n = 0;
        for c in chunk {
            for _ in &c.nodes {
                if n > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(sql, "(?{}, ?{}, ?{})", 3 * n + 1, 3 * n + 2, 3 * n + 3);
                n += 1;
            }
        }
        if n > 0 {
            let mut q = sqlx::query(&sql);
            for c in chunk {
                for (i, node) in c.nodes.iter().enumerate() {
                    q = q.bind(&c.cell_id).bind(i as i64).bind(node);
                }
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Rows per UPDATE of risks (6 parameters each, under the ~500 that keep sqlx's binding
/// fast).
const RISKS_PER_UPDATE: usize = 80;

async fn set_risks(
    tx: &mut Transaction<'_, Sqlite>,
    updates: &[RiskUpdate],
) -> Result<(), sqlx::Error> {
    for chunk in updates.chunks(RISKS_PER_UPDATE) {
        let mut sql =
            String::from("WITH v (cell_id, risk, safe, inv, version, updated) AS (VALUES ");
        for i in 0..chunk.len() {
            let b = 6 * i + 1;
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(
                sql,
                "(?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            );
        }
        sql.push_str(
            ") UPDATE cells SET risk = v.risk, single_failure_safe = v.safe,
             inventory_version = v.inv, version = v.version, updated_at = v.updated
             FROM v WHERE cells.cell_id = v.cell_id",
        );
        let mut q = sqlx::query(&sql);
        for u in chunk {
            q = q
                .bind(&u.cell_id)
                .bind(u.risk)
                .bind(u.single_failure_safe)
                .bind(u.inventory_version)
                .bind(u.version)
                .bind(u.updated_at);
        }
        let done = q.execute(&mut **tx).await?;
        if done.rows_affected() != chunk.len() as u64 {
            // Every cell must exist: the whole batch fails otherwise.
            return Err(sqlx::Error::RowNotFound);
        }
    }
    Ok(())
}

/// Rows per INSERT of plan steps (13 parameters each, under SQLite's 32,766).
const STEPS_PER_INSERT: usize = 50;

async fn add_plan_steps(
    tx: &mut Transaction<'_, Sqlite>,
    plan_id: &str,
    steps: &[PlanStepRecord],
) -> Result<(), sqlx::Error> {
    for chunk in steps.chunks(STEPS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO plan_steps (plan_id, step, cell_id, remove, add_server, reason,
             risk_before, risk_after, safe_after, after_steps, status, note, updated_at) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let b = 12 * i + 2;
            let _ = write!(
                sql,
                "(?1, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 11
            );
        }
        let mut q = sqlx::query(&sql).bind(plan_id);
        for st in chunk {
            q = q
                .bind(st.step)
                .bind(&st.cell_id)
                .bind(&st.remove)
                .bind(&st.add)
                .bind(&st.reason)
                .bind(st.risk_before)
                .bind(st.risk_after)
                .bind(st.safe_after)
                .bind(join_steps(&st.after))
                .bind(st.status.name())
                .bind(&st.note)
                .bind(st.updated_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn join_steps(steps: &[i64]) -> String {
    steps
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

async fn put_plan_step(
    tx: &mut Transaction<'_, Sqlite>,
    plan_id: &str,
    st: &PlanStepRecord,
) -> Result<(), sqlx::Error> {
    let done = sqlx::query(
        "UPDATE plan_steps SET add_server = ?3, risk_after = ?4, safe_after = ?5, status = ?6,
                note = ?7, updated_at = ?8
         WHERE plan_id = ?1 AND step = ?2",
    )
    .bind(plan_id)
    .bind(st.step)
    .bind(&st.add)
    .bind(st.risk_after)
    .bind(st.safe_after)
    .bind(st.status.name())
    .bind(&st.note)
    .bind(st.updated_at)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(())
}

async fn apply(pool: &SqlitePool, changes: &[Change]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for change in changes {
        match change {
            Change::PutCell(c) => put_cell(&mut tx, c).await?,
            Change::DeleteCell(id) => {
                // Nodes and moves go with it (ON DELETE CASCADE).
                sqlx::query("DELETE FROM cells WHERE cell_id = ?1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            Change::PutMove(m) => put_move(&mut tx, m).await?,
            Change::ActivateInventory(inv) => {
                sqlx::query("UPDATE inventory_versions SET active = 0 WHERE active = 1")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO inventory_versions (version, source, path, loaded_at, active)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (version) DO UPDATE SET active = 1",
                )
                .bind(inv.version)
                .bind(&inv.source)
                .bind(&inv.path)
                .bind(inv.loaded_at)
                .execute(&mut *tx)
                .await?;
            }
            Change::PutPlan(p) => put_plan(&mut tx, p).await?,
            Change::AddPlanSteps { plan_id, steps } => {
                add_plan_steps(&mut tx, plan_id, steps).await?
            }
            Change::PutPlanStep { plan_id, step } => put_plan_step(&mut tx, plan_id, step).await?,
            Change::InsertCells(cells) => insert_cells(&mut tx, cells).await?,
            Change::SetRisks(updates) => set_risks(&mut tx, updates).await?,
            // One process serves a SQLite ledger: its own check is the whole check.
            Change::Capacities(_) => {}
        }
    }
    tx.commit().await
}

async fn load(pool: &SqlitePool) -> Result<Snapshot, sqlx::Error> {
    // One read transaction: a consistent view even if a writer were running.
    let mut tx = pool.begin().await?;
    let active_inventory = sqlx::query(
        "SELECT version, source, path, loaded_at FROM inventory_versions WHERE active = 1",
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|row| -> Result<InventoryRecord, sqlx::Error> {
        Ok(InventoryRecord {
            version: row.try_get("version")?,
            source: row.try_get("source")?,
            path: row.try_get("path")?,
            loaded_at: row.try_get("loaded_at")?,
        })
    })
    .transpose()?;
    let max_inventory_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM inventory_versions")
            .fetch_one(&mut *tx)
            .await?;
    let mut plans: Vec<(PlanRecord, Vec<PlanStepRecord>)> =
        sqlx::query("SELECT * FROM plans ORDER BY plan_id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((plan_from_row(row)?, Vec::new())))
            .collect::<Result<_, sqlx::Error>>()?;
    let at: HashMap<String, usize> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| (p.0.plan_id.clone(), i))
        .collect();
    for row in sqlx::query("SELECT * FROM plan_steps ORDER BY plan_id, step")
        .fetch_all(&mut *tx)
        .await?
    {
        let (plan_id, step) = step_from_row(&row)?;
        // The foreign key guarantees the plan exists.
        if let Some(&i) = at.get(&plan_id) {
            plans[i].1.push(step);
        }
    }
    tx.commit().await?;
    Ok(Snapshot {
        active_inventory,
        max_inventory_version,
        plans,
    })
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
        let mut stmt = conn.prepare(
            "SELECT cell_id, n, out_server, into_server, status, cell_version, risk_before,
                    risk_after, safe_after, created_at, updated_at
             FROM moves m WHERE m.n = (SELECT MAX(n) FROM moves WHERE cell_id = m.cell_id)",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let status: String = row.get(4)?;
            let m = MoveRecord {
                cell_id: row.get(0)?,
                n: row.get(1)?,
                out_server: row.get(2)?,
                into_server: row.get(3)?,
                status: MoveStatus::parse(&status).ok_or_else(|| {
                    rusqlite::Error::InvalidColumnType(
                        4,
                        format!("unknown move status '{status}'"),
                        rusqlite::types::Type::Text,
                    )
                })?,
                cell_version: row.get(5)?,
                risk_before: row.get(6)?,
                risk_after: row.get(7)?,
                safe_after: row.get(8)?,
                created_at: row.get(9)?,
                updated_at: row.get(10)?,
            };
            last_moves.insert(m.cell_id.clone(), m);
        }
    }
    let mut stmt = conn.prepare(
        "SELECT cell_id, clients, nodes, colour, risk, single_failure_safe,
                inventory_version, version, created_at, updated_at
         FROM cells ORDER BY cell_id",
    )?;
    let mut rows = stmt.query([])?;
    let mut count = 0;
    let mut pending = Vec::with_capacity(batch);
    while let Some(row) = rows.next()? {
        let cell_id = text(row.get_ref(0)?)?;
        let m = last_moves.remove(cell_id);
        let cell = CellRecord {
            cell_id: cell_id.to_owned(),
            clients: split_ids(text(row.get_ref(1)?)?),
            nodes: split_ids(text(row.get_ref(2)?)?),
            colour: row.get(3)?,
            risk: row.get(4)?,
            single_failure_safe: row.get(5)?,
            inventory_version: row.get(6)?,
            version: row.get(7)?,
            created_at: row.get(8)?,
            updated_at: row.get(9)?,
        };
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

fn text(v: rusqlite::types::ValueRef<'_>) -> Result<&str, rusqlite::Error> {
    v.as_str().map_err(rusqlite::Error::from)
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
        Box::pin(async move { Ok(load(&self.pool).await?) })
    }

    fn load_cells<'a>(&'a self, sink: CellSink<'a>) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(load_cells(&self.path, READ_BATCH, sink))
    }

    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { Ok(apply(&self.pool, changes).await?) })
    }

    fn server_loads(&self) -> BoxFuture<'_, Result<Vec<(String, u32)>, Error>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT server_id, load FROM server_loads ORDER BY server_id")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    let load: i64 = r.try_get("load")?;
                    Ok((r.try_get("server_id")?, load as u32))
                })
                .collect()
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
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
    use crate::all_cells;

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
