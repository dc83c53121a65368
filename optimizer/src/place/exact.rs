//! The exact solver: the placement as a 0/1 program over a scenario table.
//!
//! One binary `x_i` per pool member and one `y_g` per scenario group; `y_g` must be 1
//! when the choice leaves some needing client of the group short of a quorum:
//! `Σ_{i lost} x_i <= (size - quorum) + M·y_g`. The objective is `Σ w_g y_g` plus the
//! weighted load of the chosen members, so the optimum is the lowest exact risk over the
//! pool. Single-failure safety is a hard rule (`y_g = 0` for groups holding a single
//! failure) in a first solve; when that is infeasible, a second solve drops it.

use std::time::Duration;

use crate::mip::{BinaryProgram, MipSolver, MipStatus, Row};
use crate::Error;

use super::search::Problem;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time_limit: Duration,
    pub gap: f64,
}

/// An exact answer: the choice (pool mask) and its proven relative gap.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub choice: u64,
    pub gap: f64,
    pub objective: f64,
}

/// The program of `p`; with `safety`, single-failure groups may not be lost.
pub fn program(p: &Problem<'_>, safety: bool, limits: Limits) -> BinaryProgram {
    let table = p.table;
    let n = p.load.len();
    let must_lose = table.size - table.quorum + 1;
    let allowed = p.choosable | p.fixed;
    let mut objective: Vec<f64> = p.load.iter().map(|l| p.load_weight * l).collect();
    let mut rows = Vec::new();
    let mut fixed_zero: Vec<usize> = (0..n).filter(|&i| allowed & (1 << i) == 0).collect();
    let fixed_one: Vec<usize> = (0..n).filter(|&i| p.fixed & (1 << i) != 0).collect();
    rows.push(Row::equal(
        (0..n).map(|i| (i, 1.0)).collect(),
        f64::from(table.size),
    ));
    for g in &table.groups {
        let y = objective.len();
        let mut used = false;
        for &r in &g.reach {
            let lose = allowed & !r;
            let count = lose.count_ones();
            if count < must_lose {
                continue;
            }
            used = true;
            let big_m = f64::from(count.min(table.size) - (must_lose - 1));
            let mut terms: Vec<(usize, f64)> = super::bits(lose).map(|i| (i, 1.0)).collect();
            terms.push((y, -big_m));
            rows.push(Row::at_most(terms, f64::from(must_lose - 1)));
        }
        if used {
            objective.push(g.weight());
            if safety && g.has_single() {
                fixed_zero.push(y);
            }
        }
    }
    for &(mask, most) in &p.overlap {
        rows.push(Row::at_most(
            super::bits(mask).map(|i| (i, 1.0)).collect(),
            f64::from(most),
        ));
    }
    BinaryProgram {
        vars: objective.len(),
        objective,
        rows,
        fixed_one,
        fixed_zero,
        time_limit: limits.time_limit,
        mip_gap: limits.gap,
    }
}

/// Solves `p` exactly; `None` when no allowed choice exists (under `safety`, none safe).
pub fn solve(
    solver: &mut dyn MipSolver,
    p: &Problem<'_>,
    safety: bool,
    limits: Limits,
) -> Result<Option<Found>, Error> {
    let program = program(p, safety, limits);
    let solution = solver.solve(&program)?;
    if solution.status == MipStatus::Infeasible {
        return Ok(None);
    }
    let choice = (0..p.load.len())
        .filter(|&i| solution.values[i])
        .fold(0u64, |x, i| x | 1 << i);
    Ok(Some(Found {
        choice,
        gap: solution.gap(),
        objective: solution.objective,
    }))
}
