//! The ledger's rows as records, once for every backend: columns are read by position
//! (from the column lists here) through [`Columns`], which sqlx rows of either database
//! and rusqlite rows (SQLite's bulk read) implement.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Type};

use crate::{
    CellRecord, ElementState, ElementStateRecord, InventoryRecord, MoveRecord, MoveStatus,
    PlanRecord, PlanState, PlanStepRecord, StepStatus, StoredPlan,
};

/// The columns [`cell_from`] reads, in its order.
pub(crate) const CELL_COLUMNS: &str = "cell_id, clients, nodes, colour, risk, single_failure_safe,
    inventory_version, version, created_at, updated_at";

/// The columns [`move_from`] reads, in its order.
pub(crate) const MOVE_COLUMNS: &str = "cell_id, n, out_server, into_server, status, cell_version,
    risk_before, risk_after, safe_after, created_at, updated_at";

/// The columns [`plan_from`] reads, in its order.
pub(crate) const PLAN_COLUMNS: &str = "plan_id, state, inventory_version, request, summary, rate,
    concurrency, note, created_at, updated_at";

/// The columns [`step_from`] reads, in its order.
pub(crate) const STEP_COLUMNS: &str = "plan_id, step, cell_id, remove, add_server, reason,
    risk_before, risk_after, safe_after, after_steps, status, note, updated_at";

/// The columns [`inventory_from`] reads, in its order.
pub(crate) const INVENTORY_COLUMNS: &str = "version, source, path, loaded_at";

/// The columns [`element_state_from`] reads, in its order.
pub(crate) const ELEMENT_STATE_COLUMNS: &str = "element, state, reason, since";

/// The columns [`setting_from`] reads, in its order.
pub(crate) const SETTING_COLUMNS: &str = "key, value";

/// A row read by column position, in the ledger's few column types.
pub(crate) trait Columns {
    /// The driver's error.
    type Error;
    /// A text column, borrowed from the row.
    fn text(&self, i: usize) -> Result<&str, Self::Error>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// A floating-point column.
    fn real(&self, i: usize) -> Result<f64, Self::Error>;
    /// A nullable floating-point column.
    fn opt_real(&self, i: usize) -> Result<Option<f64>, Self::Error>;
    /// A boolean column (an integer 0 or 1 on SQLite).
    fn flag(&self, i: usize) -> Result<bool, Self::Error>;
    /// The error for column `i` (named `column`) holding a value no record has.
    fn invalid(&self, i: usize, column: &str, message: String) -> Self::Error;

    /// A text column, owned.
    fn string(&self, i: usize) -> Result<String, Self::Error> {
        Ok(self.text(i)?.to_owned())
    }
}

/// sqlx's rows, of either database.
impl<R> Columns for R
where
    R: sqlx::Row,
    usize: ColumnIndex<R>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    type Error = sqlx::Error;

    fn text(&self, i: usize) -> Result<&str, sqlx::Error> {
        self.try_get(i)
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        self.try_get(i)
    }

    fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        self.try_get(i)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(i)
    }

    fn real(&self, i: usize) -> Result<f64, sqlx::Error> {
        self.try_get(i)
    }

    fn opt_real(&self, i: usize) -> Result<Option<f64>, sqlx::Error> {
        self.try_get(i)
    }

    fn flag(&self, i: usize) -> Result<bool, sqlx::Error> {
        self.try_get(i)
    }

    fn invalid(&self, _: usize, column: &str, message: String) -> sqlx::Error {
        sqlx::Error::ColumnDecode {
            index: column.into(),
            source: message.into(),
        }
    }
}

/// A cell from the columns [`CELL_COLUMNS`] names.
pub(crate) fn cell_from<R: Columns>(row: &R) -> Result<CellRecord, R::Error> {
    Ok(CellRecord {
        cell_id: row.string(0)?,
        clients: split_ids(row.text(1)?),
        nodes: split_ids(row.text(2)?),
        colour: row.opt_text(3)?,
        risk: row.real(4)?,
        single_failure_safe: row.flag(5)?,
        inventory_version: row.int(6)?,
        version: row.int(7)?,
        created_at: row.int(8)?,
        updated_at: row.int(9)?,
    })
}

/// A move from the columns [`MOVE_COLUMNS`] names.
pub(crate) fn move_from<R: Columns>(row: &R) -> Result<MoveRecord, R::Error> {
    let status = row.text(4)?;
    Ok(MoveRecord {
        cell_id: row.string(0)?,
        n: row.int(1)?,
        out_server: row.string(2)?,
        into_server: row.string(3)?,
        status: MoveStatus::parse(status)
            .ok_or_else(|| row.invalid(4, "status", format!("unknown move status '{status}'")))?,
        cell_version: row.int(5)?,
        risk_before: row.real(6)?,
        risk_after: row.real(7)?,
        safe_after: row.flag(8)?,
        created_at: row.int(9)?,
        updated_at: row.int(10)?,
    })
}

/// A plan's header from the columns [`PLAN_COLUMNS`] names.
pub(crate) fn plan_from<R: Columns>(row: &R) -> Result<PlanRecord, R::Error> {
    let state = row.text(1)?;
    Ok(PlanRecord {
        plan_id: row.string(0)?,
        state: PlanState::parse(state)
            .ok_or_else(|| row.invalid(1, "state", format!("unknown plan state '{state}'")))?,
        inventory_version: row.int(2)?,
        request: row.string(3)?,
        summary: row.string(4)?,
        rate: row.opt_real(5)?,
        concurrency: row.opt_int(6)?,
        note: row.opt_text(7)?,
        created_at: row.int(8)?,
        updated_at: row.int(9)?,
    })
}

/// A plan step with its plan's id, from the columns [`STEP_COLUMNS`] names.
pub(crate) fn step_from<R: Columns>(row: &R) -> Result<(String, PlanStepRecord), R::Error> {
    let status = row.text(10)?;
    let after = split_ids(row.text(9)?)
        .iter()
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| row.invalid(9, "after_steps", format!("not a step number: '{s}'")))
        })
        .collect::<Result<_, _>>()?;
    Ok((
        row.string(0)?,
        PlanStepRecord {
            step: row.int(1)?,
            cell_id: row.string(2)?,
            remove: row.string(3)?,
            add: row.string(4)?,
            reason: row.string(5)?,
            risk_before: row.real(6)?,
            risk_after: row.real(7)?,
            safe_after: row.flag(8)?,
            after,
            status: StepStatus::parse(status).ok_or_else(|| {
                row.invalid(10, "status", format!("unknown step status '{status}'"))
            })?,
            note: row.opt_text(11)?,
            updated_at: row.int(12)?,
        },
    ))
}

/// An inventory version from the columns [`INVENTORY_COLUMNS`] names.
pub(crate) fn inventory_from<R: Columns>(row: &R) -> Result<InventoryRecord, R::Error> {
    Ok(InventoryRecord {
        version: row.int(0)?,
        source: row.string(1)?,
        path: row.opt_text(2)?,
        loaded_at: row.int(3)?,
    })
}

/// An element's reported state from the columns [`ELEMENT_STATE_COLUMNS`] names.
pub(crate) fn element_state_from<R: Columns>(row: &R) -> Result<ElementStateRecord, R::Error> {
    let state = row.text(1)?;
    Ok(ElementStateRecord {
        element: row.string(0)?,
        state: ElementState::parse(state)
            .ok_or_else(|| row.invalid(1, "state", format!("unknown element state '{state}'")))?,
        reason: row.opt_text(2)?,
        since: row.int(3)?,
    })
}

/// A setting (key, JSON value) from the columns [`SETTING_COLUMNS`] names.
pub(crate) fn setting_from<R: Columns>(row: &R) -> Result<(String, String), R::Error> {
    Ok((row.string(0)?, row.string(1)?))
}

/// The plans, in their order, each with its steps (in theirs); a step of another plan is
/// dropped (the foreign key guarantees none).
pub(crate) fn with_steps(
    plans: Vec<PlanRecord>,
    steps: impl IntoIterator<Item = (String, PlanStepRecord)>,
) -> Vec<StoredPlan> {
    let mut plans: Vec<StoredPlan> = plans.into_iter().map(|p| (p, Vec::new())).collect();
    let at: HashMap<String, usize> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| (p.0.plan_id.clone(), i))
        .collect();
    for (plan_id, step) in steps {
        if let Some(&i) = at.get(&plan_id) {
            plans[i].1.push(step);
        }
    }
    plans
}

/// Server (or client) ids as a column stores them: `;`-joined.
pub(crate) fn join_ids(ids: &[String]) -> String {
    ids.join(";")
}

/// The ids [`join_ids`] joined.
pub(crate) fn split_ids(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(';').map(str::to_owned).collect()
    }
}

/// Step numbers as `after_steps` stores them: `;`-joined.
pub(crate) fn join_steps(steps: &[i64]) -> String {
    steps
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(";")
}
