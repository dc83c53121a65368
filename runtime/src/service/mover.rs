//! One node of one cell moved, through the checks every move takes, whoever asks (a
//! plan's step, the autopilot): the cell still has the node; the move breaks no hard rule
//! (capacity, colour, shared quorum); it makes no safe cell unsafe (except off a failed
//! server); a move for safety, balance or risk raises the cell's risk above no ceiling.
//! A mandatory move (off a failed or draining server) whose planned server no longer
//! does is re-planned. Applied to the ledger under its lock; the caller submits the
//! changes in the same critical section.

use optimizer::rebalance::Reason;
use optimizer::risk::{CellRisk, RiskEvaluator};
use store::{Change, MoveRecord, MoveStatus};
use topology::Inventory;

use crate::dto::ViolationView;
use crate::engine::Placer;
use crate::ledger::Ledger;
use crate::zone::Zone;

use super::ops::supersede;

/// What to move and how to judge it.
pub(super) struct Move<'a, 'p, 'e> {
    /// The zone the ledger serves.
    pub zone: &'a Zone,
    /// The inventory the move is judged on (the zone's, or a plan's with drained servers).
    pub inv: &'a Inventory,
    pub placer: &'a mut Placer<'p>,
    pub evaluator: &'a mut RiskEvaluator<'e>,
    pub cell_id: &'a str,
    /// The node's server (the cell has a node there).
    pub remove: u32,
    /// The server planned for it, or why there is none usable.
    pub planned: Result<u32, String>,
    pub why: Reason,
    /// The most risk a move for safety, balance or risk may leave; the cell's risk now
    /// when none.
    pub ceiling: Option<f64>,
    pub now: i64,
}

/// A move applied to the ledger.
pub(super) struct Moved {
    /// The server the node went to.
    pub add: u32,
    /// The cell after it.
    pub risk: CellRisk,
    /// The cell's risk before it.
    pub risk_before: f64,
    /// Why the planned server was not taken, when another was.
    pub replanned: Option<String>,
    /// The cell, the move and any move it superseded, to submit.
    pub changes: Vec<Change>,
}

/// Checks the move on the ledger as it is and applies it there; why not, otherwise
/// (nothing changed).
pub(super) fn apply(ledger: &mut Ledger, m: Move<'_, '_, '_>) -> Result<Moved, String> {
    let Move {
        zone,
        inv,
        placer,
        evaluator,
        cell_id,
        remove,
        planned,
        why,
        ceiling,
        now,
    } = m;
    let Some(cell) = ledger.cell(cell_id) else {
        return Err("the cell was deleted".into());
    };
    let (clients, nodes, slot) = (cell.clients.clone(), ledger.nodes(cell).to_vec(), cell.slot);
    if !nodes.contains(&remove) {
        return Err(format!(
            "the cell no longer has a node on {}",
            inv.servers[remove as usize].id
        ));
    }
    let (risk_now, safe_now) = (cell.risk, cell.single_failure_safe);
    let ceiling = ceiling.unwrap_or(risk_now);
    // Whether the cell may take `after` now, and why not.
    let mut check = |after: &[u32]| -> Result<CellRisk, String> {
        if let Some(v) = ledger.occ.violations(inv, after, Some(slot)).first() {
            return Err(ViolationView::new(ledger, v).message);
        }
        let risk = evaluator.evaluate(&clients, after);
        if why != Reason::Failed && safe_now && !risk.single_failure_safe() {
            return Err("the move would make the cell single-failure unsafe".into());
        }
        if matches!(why, Reason::Unsafe | Reason::Balance | Reason::Improve)
            && risk.risk > ceiling * (1.0 + 1e-9)
        {
            return Err(format!(
                "the move would raise the cell's risk to {:.3e}, above {ceiling:.3e}",
                risk.risk
            ));
        }
        Ok(risk)
    };
    let swapped = |to: u32| -> Vec<u32> {
        nodes
            .iter()
            .map(|&s| if s == remove { to } else { s })
            .collect()
    };
    let as_planned = planned.and_then(|planned| {
        let after = swapped(planned);
        check(&after).map(|risk| (after, risk))
    });
    let (after, risk, replanned) = match as_planned {
        Ok((after, risk)) => (after, risk, None),
        Err(problem) if matches!(why, Reason::Failed | Reason::Drain) => {
            match placer.replace(&ledger.occ, &clients, &nodes, remove, Some(slot)) {
                Ok(decision) => match check(&decision.nodes) {
                    Ok(risk) => (decision.nodes, risk, Some(problem)),
                    Err(again) => return Err(format!("{problem}; re-planned: {again}")),
                },
                Err(e) => return Err(format!("{problem}; no replacement: {e}")),
            }
        }
        Err(problem) => return Err(problem),
    };
    let add = *after
        .iter()
        .find(|s| !nodes.contains(s))
        .expect("a move adds one server");

    ledger.set_nodes(cell_id, &after);
    let mut cell = ledger.cell_mut(cell_id).expect("checked above");
    let old_version = cell.version;
    cell.risk = risk.risk;
    cell.single_failure_safe = risk.single_failure_safe();
    cell.inventory_version = zone.version;
    cell.version += 1;
    cell.updated_at = now;
    let superseded = supersede(cell.last_move.as_deref_mut(), now);
    let moved = MoveRecord {
        cell_id: cell_id.to_owned(),
        n: cell.last_move.as_ref().map_or(1, |m| m.n + 1),
        out_server: inv.servers[remove as usize].id.clone(),
        into_server: inv.servers[add as usize].id.clone(),
        status: MoveStatus::Committed,
        cell_version: old_version,
        risk_before: risk_now,
        risk_after: risk.risk,
        safe_after: risk.single_failure_safe(),
        created_at: now,
        updated_at: now,
    };
    cell.last_move = Some(Box::new(moved.clone()));
    drop(cell);
    let mut changes = vec![Change::PutCell(
        ledger.record_of(cell_id).expect("checked above"),
    )];
    changes.extend(superseded);
    changes.push(Change::PutMove(moved));
    Ok(Moved {
        add,
        risk,
        risk_before: risk_now,
        replanned,
        changes,
    })
}
