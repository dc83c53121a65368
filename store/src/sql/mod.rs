//! The SQL both backends run, once: the statements (built from a backend's [`Dialect`]),
//! the batched writers, the dispatch of a batch of [`Change`]s, and the reads of
//! [`Store::load`](crate::Store::load). What differs between SQLite and PostgreSQL sits
//! behind [`Dialect`], which each backend implements next to its store.

pub(crate) mod codec;

use std::borrow::Cow;
use std::fmt::Write;
use std::marker::PhantomData;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use sqlx::query::Query;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};

use self::codec::{
    element_state_from, inventory_from, join_ids, join_steps, move_from, plan_from, setting_from,
    step_from, with_steps, Columns, ELEMENT_STATE_COLUMNS, INVENTORY_COLUMNS, MOVE_COLUMNS,
    PLAN_COLUMNS, SETTING_COLUMNS, STEP_COLUMNS,
};
use crate::{
    BoxFuture, CellRecord, Change, ElementStateRecord, MoveRecord, PlanRecord, PlanStepRecord,
    RiskUpdate, Snapshot,
};

/// What differs between the SQL of the backends (besides what only one of them does).
pub(crate) trait Dialect: Database {
    /// What starts a numbered bind parameter: `?` (`?1`) or `$` (`$1`).
    const PARAM: char;
    /// The boolean literals of the `active` column.
    const TRUE: &'static str;
    /// See [`Dialect::TRUE`].
    const FALSE: &'static str;
    /// The condition that selects the active inventory version.
    const ACTIVE: &'static str;

    /// The statements in this dialect, built once (by [`Statements::new`]).
    fn statements() -> &'static Statements;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Records the node capacity of every server served ([`Change::Capacities`]), for a
    /// backend that checks commits itself.
    fn set_capacities<'c>(
        conn: &'c mut Self::Connection,
        capacities: &'c [(String, u32)],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
}

/// The fixed statements, with a dialect's parameters and literals.
#[derive(Debug)]
pub(crate) struct Statements {
    put_cell: String,
    delete_cell_nodes: String,
    delete_cell: String,
    put_move: String,
    put_plan: String,
    put_plan_step: String,
    deactivate_inventories: String,
    activate_inventory: String,
    active_inventory: String,
    plans: String,
    plan_steps: String,
    clear_overlay: String,
    overlay: String,
    put_setting: String,
    settings: String,
    moves_of_cell: String,
}

impl Statements {
    /// The statements in dialect `DB`.
    pub(crate) fn new<DB: Dialect>() -> Statements {
        let (t, f, active) = (DB::TRUE, DB::FALSE, DB::ACTIVE);
        let sql = |s: &str| params::<DB>(s);
        Statements {
            put_cell: sql(
                "INSERT INTO cells (cell_id, clients, size, colour, risk, single_failure_safe,
                            inventory_version, version, created_at, updated_at, nodes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (cell_id) DO UPDATE SET
            clients = excluded.clients, size = excluded.size, colour = excluded.colour,
            nodes = excluded.nodes,
            risk = excluded.risk, single_failure_safe = excluded.single_failure_safe,
            inventory_version = excluded.inventory_version, version = excluded.version,
            updated_at = excluded.updated_at",
            ),
            delete_cell_nodes: sql("DELETE FROM cell_nodes WHERE cell_id = ?1"),
            delete_cell: sql("DELETE FROM cells WHERE cell_id = ?1"),
            put_move: sql(
                "INSERT INTO moves (cell_id, n, out_server, into_server, status, cell_version,
                            risk_before, risk_after, safe_after, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (cell_id, n) DO UPDATE SET
            out_server = excluded.out_server, into_server = excluded.into_server,
            status = excluded.status, cell_version = excluded.cell_version,
            risk_before = excluded.risk_before, risk_after = excluded.risk_after,
            safe_after = excluded.safe_after, updated_at = excluded.updated_at",
            ),
            put_plan: sql(
                "INSERT INTO plans (plan_id, state, inventory_version, request, summary, rate,
                            concurrency, note, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (plan_id) DO UPDATE SET
            state = excluded.state, rate = excluded.rate, concurrency = excluded.concurrency,
            note = excluded.note, updated_at = excluded.updated_at",
            ),
            put_plan_step: sql(
                "UPDATE plan_steps SET add_server = ?3, risk_after = ?4, safe_after = ?5, status = ?6,
                note = ?7, updated_at = ?8
         WHERE plan_id = ?1 AND step = ?2",
            ),
            deactivate_inventories: format!(
                "UPDATE inventory_versions SET active = {f} WHERE {active}"
            ),
            activate_inventory: sql(&format!(
                "INSERT INTO inventory_versions (version, source, path, loaded_at, active)
                     VALUES (?1, ?2, ?3, ?4, {t})
                     ON CONFLICT (version) DO UPDATE SET active = {t}"
            )),
            active_inventory: format!(
                "SELECT {INVENTORY_COLUMNS} FROM inventory_versions WHERE {active}"
            ),
            plans: format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY plan_id"),
            plan_steps: format!("SELECT {STEP_COLUMNS} FROM plan_steps ORDER BY plan_id, step"),
            clear_overlay: "DELETE FROM element_states".to_owned(),
            overlay: format!("SELECT {ELEMENT_STATE_COLUMNS} FROM element_states ORDER BY element"),
            put_setting: sql("INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
            settings: format!("SELECT {SETTING_COLUMNS} FROM settings ORDER BY key"),
            moves_of_cell: sql(&format!(
                "SELECT {MOVE_COLUMNS} FROM moves WHERE cell_id = ?1 ORDER BY n DESC LIMIT ?2"
            )),
        }
    }
}

/// `sql` with its parameters (`?1`, `?2`...) in dialect `DB`.
fn params<DB: Dialect>(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('?') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        out.push(if after.starts_with(|c: char| c.is_ascii_digit()) {
            DB::PARAM
        } else {
            '?'
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Appends `rows` tuples of `width` parameters each, numbered on from 1 (`(?1, ?2), (?3,
/// ?4)`); with `shared`, every tuple starts with parameter 1, and the others from 2.
fn push_values<DB: Dialect>(sql: &mut String, rows: usize, width: usize, shared: bool) {
    let first = 1 + usize::from(shared);
    for i in 0..rows {
        sql.push_str(if i > 0 { ", (" } else { "(" });
        if shared {
            let _ = write!(sql, "{}1, ", DB::PARAM);
        }
        for k in 0..width {
            if k > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{}{}", DB::PARAM, first + width * i + k);
        }
        sql.push(')');
    }
}

/// The migrations of a backend, compiled in: a binary never depends on files next to it.
#[derive(Debug)]
pub(crate) struct Embedded(pub(crate) &'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, name, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(name),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Cells per INSERT of a bulk import (10 parameters each, and 7 or so nodes of 3). Small:
/// binding looks parameters up by a linear scan, so a statement costs the square of them.
const CELLS_PER_INSERT: usize = 16;

/// Rows per UPDATE of risks (6 parameters each, under the ~500 that keep sqlx's binding
/// fast).
const RISKS_PER_UPDATE: usize = 80;

/// Rows per INSERT of plan steps (13 parameters each, under SQLite's 32,766).
const STEPS_PER_INSERT: usize = 50;

/// Element states per INSERT of the health overlay (4 parameters each, under the ~500
/// that keep sqlx's binding fast).
const ELEMENT_STATES_PER_INSERT: usize = 100;

/// A statement with its parameters bound so far.
type Statement<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// The SQL of the ledger on database `DB`, for both backends.
#[derive(Debug)]
pub(crate) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
    DB: Dialect,
    DB::Row: Columns<Error = sqlx::Error>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
{
    /// Applies `changes` in order on `conn` (in the caller's transaction).
    pub(crate) async fn apply(
        conn: &mut DB::Connection,
        changes: &[Change],
    ) -> Result<(), sqlx::Error> {
        let sql = DB::statements();
        for change in changes {
            match change {
                Change::PutCell(c) => Self::put_cell(conn, c).await?,
                Change::DeleteCell(id) => {
                    // Nodes and moves go with it (ON DELETE CASCADE).
                    sqlx::query(&sql.delete_cell)
                        .bind(id.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                Change::PutMove(m) => Self::put_move(conn, m).await?,
                Change::ActivateInventory(inv) => {
                    sqlx::query(&sql.deactivate_inventories)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(&sql.activate_inventory)
                        .bind(inv.version)
                        .bind(inv.source.as_str())
                        .bind(inv.path.as_deref())
                        .bind(inv.loaded_at)
                        .execute(&mut *conn)
                        .await?;
                }
                Change::PutPlan(p) => Self::put_plan(conn, p).await?,
                Change::AddPlanSteps { plan_id, steps } => {
                    Self::add_plan_steps(conn, plan_id, steps).await?
                }
                Change::PutPlanStep { plan_id, step } => {
                    Self::put_plan_step(conn, plan_id, step).await?
                }
                Change::InsertCells(cells) => Self::insert_cells(conn, cells).await?,
                Change::SetRisks(updates) => Self::set_risks(conn, updates).await?,
                Change::Capacities(capacities) => DB::set_capacities(conn, capacities).await?,
                Change::SetOverlay(states) => Self::set_overlay(conn, states).await?,
                Change::PutSetting { key, value } => {
                    sqlx::query(&sql.put_setting)
                        .bind(key.as_str())
                        .bind(value.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Binds a cell's columns in the order of `cells` (cell_id, clients, size, colour,
    /// risk, single_failure_safe, inventory_version, version, created_at, updated_at,
    /// nodes).
    fn bind_cell<'q>(q: Statement<'q, DB>, c: &'q CellRecord) -> Statement<'q, DB> {
        q.bind(c.cell_id.as_str())
            .bind(join_ids(&c.clients))
            .bind(c.nodes.len() as i64)
            .bind(c.colour.as_deref())
            .bind(c.risk)
            .bind(c.single_failure_safe)
            .bind(c.inventory_version)
            .bind(c.version)
            .bind(c.created_at)
            .bind(c.updated_at)
            .bind(join_ids(&c.nodes))
    }

    async fn put_cell(conn: &mut DB::Connection, c: &CellRecord) -> Result<(), sqlx::Error> {
        let sql = DB::statements();
        Self::bind_cell(sqlx::query(&sql.put_cell), c)
            .execute(&mut *conn)
            .await?;
        sqlx::query(&sql.delete_cell_nodes)
            .bind(c.cell_id.as_str())
            .execute(&mut *conn)
            .await?;
        if !c.nodes.is_empty() {
            // One statement for all nodes: each statement is a round trip (to SQLite's
            // thread, or to the server).
            let mut sql =
                String::from("INSERT INTO cell_nodes (cell_id, position, server_id) VALUES ");
            push_values::<DB>(&mut sql, c.nodes.len(), 2, true);
            let mut q = sqlx::query(&sql).bind(c.cell_id.as_str());
            for (i, node) in c.nodes.iter().enumerate() {
                q = q.bind(i as i64).bind(node.as_str());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn put_move(conn: &mut DB::Connection, m: &MoveRecord) -> Result<(), sqlx::Error> {
        sqlx::query(&DB::statements().put_move)
            .bind(m.cell_id.as_str())
            .bind(m.n)
            .bind(m.out_server.as_str())
            .bind(m.into_server.as_str())
            .bind(m.status.name())
            .bind(m.cell_version)
            .bind(m.risk_before)
            .bind(m.risk_after)
            .bind(m.safe_after)
            .bind(m.created_at)
            .bind(m.updated_at)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn put_plan(conn: &mut DB::Connection, p: &PlanRecord) -> Result<(), sqlx::Error> {
        sqlx::query(&DB::statements().put_plan)
            .bind(p.plan_id.as_str())
            .bind(p.state.name())
            .bind(p.inventory_version)
            .bind(p.request.as_str())
            .bind(p.summary.as_str())
            .bind(p.rate)
            .bind(p.concurrency)
            .bind(p.note.as_deref())
            .bind(p.created_at)
            .bind(p.updated_at)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn insert_cells(
        conn: &mut DB::Connection,
        cells: &[CellRecord],
    ) -> Result<(), sqlx::Error> {
        for chunk in cells.chunks(CELLS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO cells (cell_id, clients, size, colour, risk, single_failure_safe,
             inventory_version, version, created_at, updated_at, nodes) VALUES ",
            );
            push_values::<DB>(&mut sql, chunk.len(), 11, false);
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = Self::bind_cell(q, c);
            }
            q.execute(&mut *conn).await?;
            let nodes: usize = chunk.iter().map(|c| c.nodes.len()).sum();
            if nodes > 0 {
                let mut sql =
                    String::from("INSERT INTO cell_nodes (cell_id, position, server_id) VALUES ");
                push_values::<DB>(&mut sql, nodes, 3, false);
                let mut q = sqlx::query(&sql);
                for c in chunk {
                    for (i, node) in c.nodes.iter().enumerate() {
                        q = q
                            .bind(c.cell_id.as_str())
                            .bind(i as i64)
                            .bind(node.as_str());
                    }
                }
                q.execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    async fn set_risks(
        conn: &mut DB::Connection,
        updates: &[RiskUpdate],
    ) -> Result<(), sqlx::Error> {
        for chunk in updates.chunks(RISKS_PER_UPDATE) {
            let mut sql =
                String::from("WITH v (cell_id, risk, safe, inv, version, updated) AS (VALUES ");
            push_values::<DB>(&mut sql, chunk.len(), 6, false);
            sql.push_str(
                ") UPDATE cells SET risk = v.risk, single_failure_safe = v.safe,
             inventory_version = v.inv, version = v.version, updated_at = v.updated
             FROM v WHERE cells.cell_id = v.cell_id",
            );
            let mut q = sqlx::query(&sql);
            for u in chunk {
                q = q
                    .bind(u.cell_id.as_str())
                    .bind(u.risk)
                    .bind(u.single_failure_safe)
                    .bind(u.inventory_version)
                    .bind(u.version)
                    .bind(u.updated_at);
            }
            let done = q.execute(&mut *conn).await?;
            if DB::rows_affected(&done) != chunk.len() as u64 {
                // Every cell must exist: the whole batch fails otherwise.
                return Err(sqlx::Error::RowNotFound);
            }
        }
        Ok(())
    }

    async fn add_plan_steps(
        conn: &mut DB::Connection,
        plan_id: &str,
        steps: &[PlanStepRecord],
    ) -> Result<(), sqlx::Error> {
        for chunk in steps.chunks(STEPS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO plan_steps (plan_id, step, cell_id, remove, add_server, reason,
             risk_before, risk_after, safe_after, after_steps, status, note, updated_at) VALUES ",
            );
            push_values::<DB>(&mut sql, chunk.len(), 12, true);
            let mut q = sqlx::query(&sql).bind(plan_id);
            for st in chunk {
                q = q
                    .bind(st.step)
                    .bind(st.cell_id.as_str())
                    .bind(st.remove.as_str())
                    .bind(st.add.as_str())
                    .bind(st.reason.as_str())
                    .bind(st.risk_before)
                    .bind(st.risk_after)
                    .bind(st.safe_after)
                    .bind(join_steps(&st.after))
                    .bind(st.status.name())
                    .bind(st.note.as_deref())
                    .bind(st.updated_at);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn put_plan_step(
        conn: &mut DB::Connection,
        plan_id: &str,
        st: &PlanStepRecord,
    ) -> Result<(), sqlx::Error> {
        let done = sqlx::query(&DB::statements().put_plan_step)
            .bind(plan_id)
            .bind(st.step)
            .bind(st.add.as_str())
            .bind(st.risk_after)
            .bind(st.safe_after)
            .bind(st.status.name())
            .bind(st.note.as_deref())
            .bind(st.updated_at)
            .execute(conn)
            .await?;
        if DB::rows_affected(&done) != 1 {
            return Err(sqlx::Error::RowNotFound);
        }
        Ok(())
    }

    /// Replaces the whole health overlay with `states` (none: clears it).
    async fn set_overlay(
        conn: &mut DB::Connection,
        states: &[ElementStateRecord],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&DB::statements().clear_overlay)
            .execute(&mut *conn)
            .await?;
        for chunk in states.chunks(ELEMENT_STATES_PER_INSERT) {
            let mut sql =
                String::from("INSERT INTO element_states (element, state, reason, since) VALUES ");
            push_values::<DB>(&mut sql, chunk.len(), 4, false);
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.element.as_str())
                    .bind(e.state.name())
                    .bind(e.reason.as_deref())
                    .bind(e.since);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Reads the ledger's state but its cells, in one read transaction: a consistent view
    /// even if a writer were running.
    pub(crate) async fn load(pool: &Pool<DB>) -> Result<Snapshot, sqlx::Error> {
        let sql = DB::statements();
        let mut tx = pool.begin().await?;
        let active_inventory = sqlx::query(&sql.active_inventory)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| inventory_from(&row))
            .transpose()?;
        let max_inventory_version =
            sqlx::query("SELECT COALESCE(MAX(version), 0) FROM inventory_versions")
                .fetch_one(&mut *tx)
                .await?
                .int(0)?;
        let plans = sqlx::query(&sql.plans)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(plan_from)
            .collect::<Result<Vec<_>, _>>()?;
        let steps = sqlx::query(&sql.plan_steps)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(step_from)
            .collect::<Result<Vec<_>, _>>()?;
        let overlay = sqlx::query(&sql.overlay)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(element_state_from)
            .collect::<Result<Vec<_>, _>>()?;
        let settings = sqlx::query(&sql.settings)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(setting_from)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(Snapshot {
            active_inventory,
            max_inventory_version,
            plans: with_steps(plans, steps),
            overlay,
            settings,
        })
    }

    /// Node count per server id, from the `server_loads` view.
    pub(crate) async fn server_loads(pool: &Pool<DB>) -> Result<Vec<(String, u32)>, sqlx::Error> {
        sqlx::query("SELECT server_id, load FROM server_loads ORDER BY server_id")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.string(0)?, r.int(1)? as u32)))
            .collect()
    }

    /// The latest `limit` moves of the cell `cell_id`, newest first.
    pub(crate) async fn moves(
        pool: &Pool<DB>,
        cell_id: &str,
        limit: usize,
    ) -> Result<Vec<MoveRecord>, sqlx::Error> {
        sqlx::query(&DB::statements().moves_of_cell)
            .bind(cell_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?
            .iter()
            .map(move_from)
            .collect()
    }

    /// A round trip.
    pub(crate) async fn ping(pool: &Pool<DB>) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    use super::*;

    /// One statement text, numbered each backend's way.
    #[test]
    fn each_dialect_numbers_its_parameters_and_writes_its_literals() {
        let mut sqlite = String::new();
        push_values::<Sqlite>(&mut sqlite, 2, 2, true);
        assert_eq!(sqlite, "(?1, ?2, ?3), (?1, ?4, ?5)");
        let mut pg = String::new();
        push_values::<Postgres>(&mut pg, 2, 3, false);
        assert_eq!(pg, "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(
            params::<Postgres>("UPDATE t SET a = ?3 WHERE b = ?12 AND c = '?'"),
            "UPDATE t SET a = $3 WHERE b = $12 AND c = '?'"
        );
        let (s, p) = (Sqlite::statements(), Postgres::statements());
        assert_eq!(
            s.deactivate_inventories,
            "UPDATE inventory_versions SET active = 0 WHERE active = 1"
        );
        assert_eq!(
            p.deactivate_inventories,
            "UPDATE inventory_versions SET active = FALSE WHERE active"
        );
        assert_eq!(s.delete_cell, "DELETE FROM cells WHERE cell_id = ?1");
        assert_eq!(p.delete_cell, "DELETE FROM cells WHERE cell_id = $1");
        assert!(s.put_setting.contains("VALUES (?1, ?2)"));
        assert!(p.put_setting.contains("VALUES ($1, $2)"));
    }
}
