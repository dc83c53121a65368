//! The PostgreSQL ledger (sqlx): the same tables and changes as the SQLite one, shared by
//! any number of replicas. The database arbitrates: every commit takes a transaction-level
//! advisory lock, is refused ([`Error::Stale`]) when another replica put nodes on one of
//! its servers after the state it was checked against, and appends a row to `changes`,
//! which the other replicas follow ([`Store::feed`]) to keep their state current. The SQL
//! both backends share is [`crate::sql`]'s; here are PostgreSQL's dialect, the arbiter,
//! the feed, the executor lease and the reads by id.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions, Postgres, Row};

use crate::sql::codec::{
    cell_from, move_from, plan_from, split_ids, step_from, with_steps, CELL_COLUMNS, MOVE_COLUMNS,
    PLAN_COLUMNS, STEP_COLUMNS,
};
use crate::sql::{Dialect, Embedded, Sql, Statements};
use crate::{
    BoxFuture, CellRecord, CellSink, CellWithMove, Change, Error, Feed, MoveRecord, Snapshot,
    Store, StoredPlan,
};

/// PostgreSQL's migrations (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "ledger",
        include_str!("../migrations/postgres/0001_ledger.sql"),
    ),
    (
        2,
        "changes",
        include_str!("../migrations/postgres/0002_changes.sql"),
    ),
    (
        3,
        "overlay",
        include_str!("../migrations/postgres/0003_overlay.sql"),
    ),
    (
        4,
        "writer",
        include_str!("../migrations/postgres/0004_writer.sql"),
    ),
];

impl Dialect for Postgres {
    const PARAM: char = '$';
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";
    const ACTIVE: &'static str = "active";

    fn statements() -> &'static Statements {
        static STATEMENTS: LazyLock<Statements> = LazyLock::new(Statements::new::<Postgres>);
        &STATEMENTS
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn set_capacities<'c>(
        conn: &'c mut PgConnection,
        capacities: &'c [(String, u32)],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(set_capacities(conn, capacities))
    }
}

/// The advisory lock key that orders commits (a fixed 64-bit number: "cellpla").
const LEDGER_LOCK: i64 = 0x63_656c_6c70_6c61;

/// A ledger in a PostgreSQL database, shared by any number of replicas.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This replica's name in `changes` (random per open).
    replica: String,
    options: PgConnectOptions,
    /// The connection holding the executor lease (a session advisory lock: released by
    /// the database when this process dies), while this replica executes plans.
    executor: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
    /// The connection holding the writer lease, while this replica commits the writes of
    /// every replica.
    writer: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
}

/// The advisory lock key of the executor lease ("cellexe").
const EXECUTOR_LEASE: i64 = 0x63_656c_6c65_7865;
/// The advisory lock key of the writer lease ("cellwrt").
const WRITER_LEASE: i64 = 0x63_656c_6c77_7274;

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
        Migrator::new(Embedded(MIGRATIONS))
            .await?
            .run(&pool)
            .await?;
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
            writer: Default::default(),
        })
    }
}

/// Capacities per INSERT (2 parameters each).
const CAPACITIES_PER_INSERT: usize = 1000;

async fn set_capacities(
    conn: &mut PgConnection,
    capacities: &[(String, u32)],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM server_capacity")
        .execute(&mut *conn)
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
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// What a batch touched.
struct Touched {
    cells: Vec<String>,
    /// The servers it put nodes on.
    servers: Vec<String>,
    plans: Vec<String>,
    /// It changed the inventory version, its health overlay or the settings.
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
            // Other replicas reload the zone state on any of these, and a commit checked
            // against the old one is stale.
            Change::ActivateInventory(_) | Change::SetOverlay(_) | Change::PutSetting { .. } => {
                inventory = true
            }
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
/// plans, or the inventory version, its health overlay or the settings, since `base`.
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
    Sql::<Postgres>::apply(&mut tx, changes).await?;
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

/// The current records of some cells with their latest moves (deleted ones are absent).
async fn cells_by_id(pool: &PgPool, ids: &[String]) -> Result<Vec<CellWithMove>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut moves: HashMap<String, MoveRecord> = HashMap::new();
    for row in sqlx::query(&format!(
        "SELECT DISTINCT ON (cell_id) {MOVE_COLUMNS} FROM moves WHERE cell_id = ANY($1)
         ORDER BY cell_id, n DESC"
    ))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?
    {
        let m = move_from(&row)?;
        moves.insert(m.cell_id.clone(), m);
    }
    let mut out = Vec::new();
    for row in sqlx::query(&format!(
        "SELECT {CELL_COLUMNS} FROM cells WHERE cell_id = ANY($1) ORDER BY cell_id"
    ))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?
    {
        let cell = cell_from(&row)?;
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
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT ON (cell_id) {MOVE_COLUMNS} FROM moves ORDER BY cell_id, n DESC"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let m = move_from(row)?;
            last_moves.insert(m.cell_id.clone(), m);
        }
    }
    let mut count = 0;
    {
        let sql = format!("SELECT {CELL_COLUMNS} FROM cells ORDER BY cell_id");
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let cell = cell_from(&row)?;
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
        Box::pin(async move { Ok(Sql::load(&self.pool).await?) })
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

    fn claim_writer(&self, url: &str) -> BoxFuture<'_, Result<bool, Error>> {
        let url = url.to_owned();
        Box::pin(async move {
            use sqlx::Connection;
            let mut held = self.writer.lock().await;
            if held.is_none() {
                let mut conn = sqlx::PgConnection::connect_with(&self.options).await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(WRITER_LEASE)
                    .fetch_one(&mut conn)
                    .await?;
                if !got {
                    let _ = conn.close().await;
                    return Ok(false);
                }
                *held = Some(conn);
            }
            let conn = held.as_mut().expect("held above");
            sqlx::query(
                "INSERT INTO writer (id, url, since)
                 VALUES (1, $1, (extract(epoch from clock_timestamp()) * 1000)::bigint)
                 ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, since = EXCLUDED.since
                 WHERE writer.url <> EXCLUDED.url",
            )
            .bind(&url)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        })
    }

    fn writer_url(&self) -> BoxFuture<'_, Result<Option<String>, Error>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT url FROM writer WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?)
        })
    }

    fn release_writer(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            use sqlx::Connection;
            if let Some(mut conn) = self.writer.lock().await.take() {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(WRITER_LEASE)
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
            // `inventory`: the commit changed the inventory version, its health overlay or
            // the settings (any of them: the zone state is reloaded).
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
            let plans = sqlx::query(&format!(
                "SELECT {PLAN_COLUMNS} FROM plans WHERE plan_id = ANY($1) ORDER BY plan_id"
            ))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(plan_from)
            .collect::<Result<Vec<_>, _>>()?;
            let steps = sqlx::query(&format!(
                "SELECT {STEP_COLUMNS} FROM plan_steps WHERE plan_id = ANY($1)
                 ORDER BY plan_id, step"
            ))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(step_from)
            .collect::<Result<Vec<_>, _>>()?;
            Ok(with_steps(plans, steps))
        })
    }

    fn cells<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<CellWithMove>, Error>> {
        Box::pin(async move { Ok(cells_by_id(&self.pool, ids).await?) })
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
        Box::pin(async move { self.pool.close().await })
    }
}
