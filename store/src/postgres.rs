//! The PostgreSQL ledger (sqlx): the same tables and changes as the SQLite one, shared by
//! any number of replicas. The database arbitrates: every commit takes a transaction-level
//! advisory lock, is refused ([`Error::Stale`]) when another replica put nodes on one of
//! its servers after the state it was checked against, and appends a row to `changes`,
//! which the other replicas follow ([`Store::feed`]) to keep their state current.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Postgres, Row, Transaction};

use super::{
    join_ids, split_ids, BoxFuture, CellRecord, CellSink, Change, Feed, InventoryRecord,
    MoveRecord, MoveStatus, PlanRecord, PlanState, PlanStepRecord, RiskUpdate, Snapshot,
    StepStatus, Store,
};
use super::{CellWithMove, StoredPlan};
use crate::Error;

/// The migrations, compiled in.
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
                    include_str!("../migrations/postgres/0001_ledger.sql"),
                ),
                migration(
                    2,
                    "changes",
                    include_str!("../migrations/postgres/0002_changes.sql"),
                ),
            ])
        })
    }
}

/// The advisory lock key that orders commits (a fixed 64-bit number: "cellpla").
const LEDGER_LOCK: i64 = 0x63_656c_6c70_6c61;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This replica's name in `changes` (random per open).
    replica: String,
    options: PgConnectOptions,
    /// The connection holding the executor lease (a session advisory lock: released by
    /// the database when this process dies), while this replica executes plans.
    executor: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
}

/// The advisory lock key of the executor lease ("cellexe").
const EXECUTOR_LEASE: i64 = 0x63_656c_6c65_7865;

impl PgStore {
    /// Connects and migrates (concurrent replicas migrate one at a time).
    pub async fn open(url: &str) -> Result<PgStore, Error> {
        let options: PgConnectOptions = url.parse().map_err(|e| Error::InvalidConfig {
            message: format!("--db: not a PostgreSQL URL: {e}"),
        })?;
        let options =
            options.log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        let migrator = Migrator::new(Embedded).await?;
        migrator.run(&pool).await?;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        let replica = format!(
            "{}-{}",
            std::process::id(),
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        Ok(PgStore {
            pool,
            replica,
            options,
            executor: Default::default(),
        })
    }
}

type CellQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

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

async fn put_cell(tx: &mut Transaction<'_, Postgres>, c: &CellRecord) -> Result<(), sqlx::Error> {
    let q = sqlx::query(
        "INSERT INTO cells (cell_id, clients, size, colour, risk, single_failure_safe,
                            inventory_version, version, created_at, updated_at, nodes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (cell_id) DO UPDATE SET
            clients = excluded.clients, size = excluded.size, colour = excluded.colour,
            nodes = excluded.nodes,
            risk = excluded.risk, single_failure_safe = excluded.single_failure_safe,
            inventory_version = excluded.inventory_version, version = excluded.version,
            updated_at = excluded.updated_at",
    );
    bind_cell(q, c).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM cell_nodes WHERE cell_id = $1")
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
            let _ = write!(sql, "($1, ${}, ${})", 2 * i + 2, 2 * i + 3);
        }
        let mut q = sqlx::query(&sql).bind(&c.cell_id);
        for (i, node) in c.nodes.iter().enumerate() {
            q = q.bind(i as i64).bind(node);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn put_move(tx: &mut Transaction<'_, Postgres>, m: &MoveRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO moves (cell_id, n, out_server, into_server, status, cell_version,
                            risk_before, risk_after, safe_after, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
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

fn plan_from_row(row: &PgRow) -> Result<PlanRecord, sqlx::Error> {
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

fn step_from_row(row: &PgRow) -> Result<(String, PlanStepRecord), sqlx::Error> {
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

async fn put_plan(tx: &mut Transaction<'_, Postgres>, p: &PlanRecord) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO plans (plan_id, state, inventory_version, request, summary, rate,
                            concurrency, note, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
    tx: &mut Transaction<'_, Postgres>,
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
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
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
                let _ = write!(sql, "(${}, ${}, ${})", 3 * n + 1, 3 * n + 2, 3 * n + 3);
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

/// Capacities per INSERT (2 parameters each).
const CAPACITIES_PER_INSERT: usize = 1000;

async fn set_capacities(
    tx: &mut Transaction<'_, Postgres>,
    capacities: &[(String, u32)],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM server_capacity")
        .execute(&mut **tx)
        .await?;
    for chunk in capacities.chunks(CAPACITIES_PER_INSERT) {
        let (ids, caps): (Vec<&str>, Vec<i64>) = chunk
            .iter()
            .map(|(s, c)| (s.as_str(), i64::from(*c)))
            .unzip();
        sqlx::query(
            "INSERT INTO server_capacity (server_id, capacity)
             SELECT * FROM unnest($1::text[], $2::bigint[])",
        )
        .bind(&ids)
        .bind(&caps)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn set_risks(
    tx: &mut Transaction<'_, Postgres>,
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
                "(${}, ${}, ${}, ${}, ${}, ${})",
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
    tx: &mut Transaction<'_, Postgres>,
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
                "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
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
    tx: &mut Transaction<'_, Postgres>,
    plan_id: &str,
    st: &PlanStepRecord,
) -> Result<(), sqlx::Error> {
    let done = sqlx::query(
        "UPDATE plan_steps SET add_server = $3, risk_after = $4, safe_after = $5, status = $6,
                note = $7, updated_at = $8
         WHERE plan_id = $1 AND step = $2",
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

/// What a batch touched.
struct Touched {
    cells: Vec<String>,
    /// The servers it put nodes on.
    servers: Vec<String>,
    plans: Vec<String>,
    /// It activated an inventory version.
    inventory: bool,
}

fn touched(changes: &[Change]) -> Touched {
    let mut cells = Vec::new();
    let mut servers = std::collections::BTreeSet::new();
    let mut plans = Vec::new();
    let mut inventory = false;
    for change in changes {
        match change {
            Change::PutCell(c) => {
                cells.push(c.cell_id.clone());
                servers.extend(c.nodes.iter().cloned());
            }
            Change::InsertCells(cs) => {
                for c in cs {
                    cells.push(c.cell_id.clone());
                    servers.extend(c.nodes.iter().cloned());
                }
            }
            Change::DeleteCell(id) => cells.push(id.clone()),
            Change::PutMove(m) => cells.push(m.cell_id.clone()),
            Change::SetRisks(us) => cells.extend(us.iter().map(|u| u.cell_id.clone())),
            Change::ActivateInventory(_) => inventory = true,
            Change::PutPlan(p) => plans.push(p.plan_id.clone()),
            Change::AddPlanSteps { plan_id, .. } | Change::PutPlanStep { plan_id, .. } => {
                plans.push(plan_id.clone())
            }
            Change::Capacities(_) => {}
        }
    }
    cells.sort_unstable();
    cells.dedup();
    plans.sort_unstable();
    plans.dedup();
    Touched {
        cells,
        servers: servers.into_iter().collect(),
        plans,
        inventory,
    }
}

/// Commits `changes` in one transaction after every earlier commit of any replica. With
/// `base` (the feed position the changes were checked against) the database checks them
/// as the replica did, against everything committed: refused ([`Error::Stale`]) if a
/// server they add nodes to would hold more than its capacity, if a cell they place would
/// share a quorum with another, or if another replica changed one of their cells or
/// switched the inventory since `base`.
async fn apply(
    pool: &PgPool,
    replica: &str,
    base: Option<u64>,
    changes: &[Change],
) -> Result<(), Error> {
    let Touched {
        cells,
        servers,
        plans,
        inventory,
    } = touched(changes);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LEDGER_LOCK)
        .execute(&mut *tx)
        .await?;
    // Each placed cell's servers before the changes: a move adds only its new server.
    let before: HashMap<String, String> = if base.is_some() && !cells.is_empty() {
        sqlx::query("SELECT cell_id, nodes FROM cells WHERE cell_id = ANY($1)")
            .bind(&cells)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("cell_id")?, r.try_get("nodes")?)))
            .collect::<Result<_, sqlx::Error>>()?
    } else {
        HashMap::new()
    };
    if let Some(base) = base {
        let foreign: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM changes
                            WHERE seq > $1 AND replica <> $2
                              AND (cells && $3 OR plans && $4 OR inventory))",
        )
        .bind(i64::try_from(base).unwrap_or(i64::MAX))
        .bind(replica)
        .bind(&cells)
        .bind(&plans)
        .fetch_one(&mut *tx)
        .await?;
        if foreign {
            tx.rollback().await?;
            return Err(Error::Stale);
        }
    }
    apply_in(&mut tx, changes).await?;
    if base.is_some() {
        let (placed, added) = additions(changes, &before);
        let over: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                SELECT 1 FROM server_capacity c
                WHERE c.server_id = ANY($1)
                  AND (SELECT COUNT(*) FROM cell_nodes n WHERE n.server_id = c.server_id)
                      > c.capacity)",
        )
        .bind(&added)
        .fetch_one(&mut *tx)
        .await?;
        let shared: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                SELECT 1 FROM cell_nodes mine
                JOIN cell_nodes other
                  ON other.server_id = mine.server_id AND other.cell_id <> mine.cell_id
                JOIN cells mc ON mc.cell_id = mine.cell_id
                JOIN cells oc ON oc.cell_id = other.cell_id
                WHERE mine.cell_id = ANY($1)
                GROUP BY mine.cell_id, other.cell_id, mc.size, oc.size
                HAVING COUNT(*) >= LEAST(mc.size / 2 + 1, oc.size / 2 + 1))",
        )
        .bind(&placed)
        .fetch_one(&mut *tx)
        .await?;
        if over || shared {
            tx.rollback().await?;
            return Err(Error::Stale);
        }
    }
    sqlx::query(
        "INSERT INTO changes (replica, cells, servers, plans, inventory, at)
         VALUES ($1, $2, $3, $4, $5, (extract(epoch from clock_timestamp()) * 1000)::bigint)",
    )
    .bind(replica)
    .bind(&cells)
    .bind(&servers)
    .bind(&plans)
    .bind(inventory)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The cells the changes place on servers (new or moved), and the servers they add nodes
/// to, given each cell's nodes before (`;`-joined).
fn additions(changes: &[Change], before: &HashMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut placed = Vec::new();
    let mut added = std::collections::BTreeSet::new();
    let mut visit = |c: &CellRecord| {
        let old = before
            .get(&c.cell_id)
            .map(|n| split_ids(n))
            .unwrap_or_default();
        let new: Vec<&String> = c.nodes.iter().filter(|n| !old.contains(n)).collect();
        if !new.is_empty() {
            placed.push(c.cell_id.clone());
            added.extend(new.into_iter().cloned());
        }
    };
    for change in changes {
        match change {
            Change::PutCell(c) => visit(c),
            Change::InsertCells(cs) => cs.iter().for_each(&mut visit),
            _ => {}
        }
    }
    placed.sort_unstable();
    placed.dedup();
    (placed, added.into_iter().collect())
}

async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    changes: &[Change],
) -> Result<(), sqlx::Error> {
    for change in changes {
        match change {
            Change::PutCell(c) => put_cell(tx, c).await?,
            Change::DeleteCell(id) => {
                // Nodes and moves go with it (ON DELETE CASCADE).
                sqlx::query("DELETE FROM cells WHERE cell_id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
            }
            Change::PutMove(m) => put_move(tx, m).await?,
            Change::ActivateInventory(inv) => {
                sqlx::query("UPDATE inventory_versions SET active = FALSE WHERE active")
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO inventory_versions (version, source, path, loaded_at, active)
                     VALUES ($1, $2, $3, $4, TRUE)
                     ON CONFLICT (version) DO UPDATE SET active = TRUE",
                )
                .bind(inv.version)
                .bind(&inv.source)
                .bind(&inv.path)
                .bind(inv.loaded_at)
                .execute(&mut **tx)
                .await?;
            }
            Change::PutPlan(p) => put_plan(tx, p).await?,
            Change::AddPlanSteps { plan_id, steps } => add_plan_steps(tx, plan_id, steps).await?,
            Change::PutPlanStep { plan_id, step } => put_plan_step(tx, plan_id, step).await?,
            Change::InsertCells(cells) => insert_cells(tx, cells).await?,
            Change::SetRisks(updates) => set_risks(tx, updates).await?,
            Change::Capacities(capacities) => set_capacities(tx, capacities).await?,
        }
    }
    Ok(())
}

async fn load(pool: &PgPool) -> Result<Snapshot, sqlx::Error> {
    // One read transaction: a consistent view even if a writer were running.
    let mut tx = pool.begin().await?;
    let active_inventory =
        sqlx::query("SELECT version, source, path, loaded_at FROM inventory_versions WHERE active")
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

fn move_from_row(row: &PgRow) -> Result<MoveRecord, sqlx::Error> {
    let status: &str = row.try_get("status")?;
    Ok(MoveRecord {
        cell_id: row.try_get("cell_id")?,
        n: row.try_get("n")?,
        out_server: row.try_get("out_server")?,
        into_server: row.try_get("into_server")?,
        status: MoveStatus::parse(status)
            .ok_or_else(|| decode_error("status", format!("unknown move status '{status}'")))?,
        cell_version: row.try_get("cell_version")?,
        risk_before: row.try_get("risk_before")?,
        risk_after: row.try_get("risk_after")?,
        safe_after: row.try_get("safe_after")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn cell_from_row(row: &PgRow) -> Result<CellRecord, sqlx::Error> {
    Ok(CellRecord {
        cell_id: row.try_get("cell_id")?,
        clients: split_ids(row.try_get::<&str, _>("clients")?),
        nodes: split_ids(row.try_get::<&str, _>("nodes")?),
        colour: row.try_get("colour")?,
        risk: row.try_get("risk")?,
        single_failure_safe: row.try_get("single_failure_safe")?,
        inventory_version: row.try_get("inventory_version")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The current records of some cells with their latest moves (deleted ones are absent).
async fn cells_by_id(pool: &PgPool, ids: &[String]) -> Result<Vec<CellWithMove>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut moves: HashMap<String, MoveRecord> = HashMap::new();
    for row in sqlx::query(
        "SELECT DISTINCT ON (cell_id) * FROM moves WHERE cell_id = ANY($1)
         ORDER BY cell_id, n DESC",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?
    {
        let m = move_from_row(&row)?;
        moves.insert(m.cell_id.clone(), m);
    }
    let mut out = Vec::new();
    for row in sqlx::query(
        "SELECT cell_id, clients, nodes, colour, risk, single_failure_safe,
                inventory_version, version, created_at, updated_at
         FROM cells WHERE cell_id = ANY($1) ORDER BY cell_id",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?
    {
        let cell = cell_from_row(&row)?;
        let m = moves.remove(&cell.cell_id);
        out.push((cell, m));
    }
    tx.commit().await?;
    Ok(out)
}

/// Streams every cell with its latest move, by id, in one read-only snapshot.
async fn load_cells(pool: &PgPool, sink: CellSink<'_>) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut last_moves: HashMap<String, MoveRecord> = HashMap::new();
    {
        let rows =
            sqlx::query("SELECT DISTINCT ON (cell_id) * FROM moves ORDER BY cell_id, n DESC")
                .fetch_all(&mut *tx)
                .await?;
        for row in &rows {
            let m = move_from_row(row)?;
            last_moves.insert(m.cell_id.clone(), m);
        }
    }
    let mut count = 0;
    {
        let mut rows = sqlx::query(
            "SELECT cell_id, clients, nodes, colour, risk, single_failure_safe,
                    inventory_version, version, created_at, updated_at
             FROM cells ORDER BY cell_id",
        )
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let cell = cell_from_row(&row)?;
            let m = last_moves.remove(&cell.cell_id);
            sink(cell, m);
            count += 1;
        }
    }
    tx.commit().await?;
    Ok(count)
}

impl Store for PgStore {
    fn load(&self) -> BoxFuture<'_, Result<Snapshot, Error>> {
        Box::pin(async move { Ok(load(&self.pool).await?) })
    }

    fn load_cells<'a>(&'a self, sink: CellSink<'a>) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(async move { Ok(load_cells(&self.pool, sink).await?) })
    }

    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(apply(&self.pool, &self.replica, None, changes))
    }

    fn apply_at<'a>(
        &'a self,
        base: u64,
        changes: &'a [Change],
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(apply(&self.pool, &self.replica, Some(base), changes))
    }

    fn take_executor_lease(&self) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move {
            use sqlx::Connection;
            let mut held = self.executor.lock().await;
            if held.is_some() {
                return Ok(true);
            }
            let mut conn = sqlx::PgConnection::connect_with(&self.options).await?;
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(EXECUTOR_LEASE)
                .fetch_one(&mut conn)
                .await?;
            if got {
                *held = Some(conn);
            } else {
                let _ = conn.close().await;
            }
            Ok(got)
        })
    }

    fn release_executor_lease(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            use sqlx::Connection;
            if let Some(mut conn) = self.executor.lock().await.take() {
                // Unlocked before the connection goes: the server drops a closed session's
                // locks only some time later.
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(EXECUTOR_LEASE)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        })
    }

    fn feed_head(&self) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM changes")
                .fetch_one(&self.pool)
                .await?;
            Ok(head as u64)
        })
    }

    fn feed(&self, after: u64) -> BoxFuture<'_, Result<Option<Feed>, Error>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT seq, replica, cells, plans, inventory FROM changes WHERE seq > $1
                 ORDER BY seq",
            )
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
            let mut feed = Feed {
                head: after,
                ..Feed::default()
            };
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                feed.head = feed.head.max(seq as u64);
                let replica: &str = row.try_get("replica")?;
                if replica == self.replica {
                    continue;
                }
                feed.cells.extend(row.try_get::<Vec<String>, _>("cells")?);
                feed.plans.extend(row.try_get::<Vec<String>, _>("plans")?);
                feed.inventory |= row.try_get::<bool, _>("inventory")?;
            }
            feed.cells.sort_unstable();
            feed.cells.dedup();
            feed.plans.sort_unstable();
            feed.plans.dedup();
            Ok(Some(feed))
        })
    }

    fn plans<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<StoredPlan>, Error>> {
        Box::pin(async move {
            let mut out: Vec<StoredPlan> =
                sqlx::query("SELECT * FROM plans WHERE plan_id = ANY($1) ORDER BY plan_id")
                    .bind(ids)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| Ok((plan_from_row(row)?, Vec::new())))
                    .collect::<Result<_, sqlx::Error>>()?;
            for row in sqlx::query(
                "SELECT * FROM plan_steps WHERE plan_id = ANY($1) ORDER BY plan_id, step",
            )
            .bind(ids)
            .fetch_all(&self.pool)
            .await?
            {
                let (plan_id, step) = step_from_row(&row)?;
                if let Some(p) = out.iter_mut().find(|p| p.0.plan_id == plan_id) {
                    p.1.push(step);
                }
            }
            Ok(out)
        })
    }

    fn cells<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<CellWithMove>, Error>> {
        Box::pin(async move { Ok(cells_by_id(&self.pool, ids).await?) })
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
        Box::pin(async move { self.pool.close().await })
    }
}
