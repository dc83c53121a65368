//! The exact solver: the placement as a 0/1 program over a scenario table.
//!
//! One binary `x_i` per pool member and one `y_g` per scenario group; `y_g` must be 1
//! when the choice leaves some needing client of the group short of a quorum:
//! `Σ_{i lost} x_i <= (size - quorum) + M·y_g`. The objective is the exact risk,
//! `Σ w_g y_g` plus one `z_t >= y_g - Σ y_h` per covered pair (a pair counts only when
//! neither half's group `h` is lost), plus the weighted load of the chosen members.
//! Single-failure safety is a hard rule (`y_g = 0` for groups holding a single failure)
//! in a first solve; every half is such a group, so there the covered pairs are plain
//! weights. When that is infeasible, a second solve drops the rule; then a half's `y_h`
//! must be exactly the outage, not just at least it (else raising it would hide a pair),
//! so it is also bounded by the reach sets that do lose a quorum: `y_h <= Σ_r u_r` with
//! `u_r = 1` only when `Σ_{i in r} x_i <= quorum - 1`. Losing the base state (a down
//! choice) weighs more than any other choice's whole risk.

use std::time::Duration;

use crate::mip::{BinaryProgram, MipSolver, MipStatus, Row};
use crate::Error;

use super::search::Problem;

/// What an exact solve may spend: time and the gap at which it may stop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget of one solve.
    pub time_limit: Duration,
    /// Relative gap to the proven bound at which the solver may stop.
    pub gap: f64,
}

/// An exact answer: the choice (pool mask) and its proven relative gap.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    /// The chosen pool members, a bit per member.
    pub choice: u64,
    /// Proven relative gap to the optimum over the pool.
    pub gap: f64,
    /// The program's objective at the choice: risk plus weighted load (a down choice weighs most).
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
    // A down choice costs more than every other outage together.
    let down_weight = 1.0
        + table
            .groups
            .iter()
            .map(|g| g.single_weight + g.pair_weight)
            .sum::<f64>()
        + table.covered.iter().map(|c| c.weight).sum::<f64>();
    // The variable of each group that some allowed choice can lose.
    let mut var: Vec<Option<usize>> = vec![None; table.groups.len()];
    for (gi, g) in table.groups.iter().enumerate() {
        let y = objective.len();
        for &r in &g.reach {
            let lose = allowed & !r;
            let count = lose.count_ones();
            if count < must_lose {
                continue;
            }
            var[gi] = Some(y);
            let big_m = f64::from(count.min(table.size) - (must_lose - 1));
            let mut terms: Vec<(usize, f64)> = super::bits::bits(lose).map(|i| (i, 1.0)).collect();
            terms.push((y, -big_m));
            rows.push(Row::at_most(terms, f64::from(must_lose - 1)));
        }
        if var[gi].is_some() {
            let weight = if g.base {
                down_weight
            } else {
                g.single_weight + g.pair_weight
            };
            objective.push(weight);
            if safety && g.has_single() {
                fixed_zero.push(y);
            }
        }
    }
    let mut exact_halves: Vec<usize> = Vec::new();
    for c in &table.covered {
        let Some(y) = var[c.group as usize] else {
            continue;
        };
        let halves: Vec<usize> = c.halves.iter().filter_map(|&h| var[h as usize]).collect();
        if safety || halves.is_empty() {
            // The halves cannot be lost: the pair counts with its group.
            objective[y] += c.weight;
            continue;
        }
        let z = objective.len();
        objective.push(c.weight);
        let mut terms = vec![(y, 1.0), (z, -1.0)];
        terms.extend(halves.iter().map(|&h| (h, -1.0)));
        rows.push(Row::at_most(terms, 0.0));
        exact_halves.extend(
            c.halves
                .iter()
                .map(|&h| h as usize)
                .filter(|&h| var[h].is_some()),
        );
    }
    exact_halves.sort_unstable();
    exact_halves.dedup();
    for &h in &exact_halves {
        let y = var[h].expect("only groups with a variable");
        let quorum = f64::from(table.quorum);
        let mut lost_by = vec![(y, 1.0)];
        for &r in &table.groups[h].reach {
            let kept = allowed & r;
            let u = objective.len();
            objective.push(0.0);
            lost_by.push((u, -1.0));
            // u = 1 only when the choice keeps fewer than a quorum of r.
            let slack = f64::from(table.size) - (quorum - 1.0);
            let mut terms: Vec<(usize, f64)> = super::bits::bits(kept).map(|i| (i, 1.0)).collect();
            terms.push((u, slack));
            rows.push(Row::at_most(terms, quorum - 1.0 + slack));
        }
        rows.push(Row::at_most(lost_by, 0.0));
    }
    for &(mask, most) in &p.overlap {
        rows.push(Row::at_most(
            super::bits::bits(mask).map(|i| (i, 1.0)).collect(),
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

#[cfg(test)]
mod tests {
    use topology::ElementId;

    use super::*;
    use crate::mip::SolverKind;
    use crate::place::search;
    use crate::place::table::{CoveredPair, Group, Table};

    fn group(reach: Vec<u64>, single_weight: f64) -> Group {
        Group {
            reach: reach.into(),
            single_weight,
            singles: if single_weight > 0.0 {
                [ElementId(0)].into_iter().collect()
            } else {
                Default::default()
            },
            ..Group::default()
        }
    }

    /// Two candidates, one node. Choosing member 1 loses the single groups `h` (0.2) and
    /// `q` (0.3); choosing member 0 loses only the pair group `g`, whose pair (weight 1)
    /// counts because its half `h` is not lost then. Without the safety rule the best is
    /// member 1 (0.5 < 1). A program whose `y_h` were only bounded below could raise it
    /// on member 0 to hide the pair and report 0.2: the bounds from `h`'s reach sets
    /// forbid that.
    #[test]
    fn a_half_cannot_be_raised_to_hide_a_covered_pair() {
        let table = Table::new(
            vec![
                group(vec![0b01], 0.2),
                group(vec![0b01, 0b11], 0.3),
                group(vec![0b10], 0.0),
            ],
            vec![CoveredPair {
                group: 2,
                halves: [0].into_iter().collect(),
                weight: 1.0,
                ..CoveredPair::default()
            }],
            1,
            1,
            2,
        );
        assert_eq!(table.score(0b01).risk, 1.0);
        assert_eq!(table.score(0b10).risk, 0.5);
        let problem = Problem {
            table: &table,
            fixed: 0,
            choosable: 0b11,
            load: vec![0.0, 0.0],
            load_weight: 0.0,
            overlap: Vec::new(),
        };
        let limits = Limits {
            time_limit: Duration::from_secs(10),
            gap: 0.0,
        };
        for kind in SolverKind::ALL {
            let mut solver = kind.make();
            let unsafe_ = solve(solver.as_mut(), &problem, false, limits)
                .unwrap()
                .unwrap();
            assert_eq!(unsafe_.choice, 0b10, "{kind}");
            assert!((unsafe_.objective - 0.5).abs() < 1e-9, "{kind}");
            // With the safety rule only member 0 keeps every single group: risk 1.
            let safe = solve(solver.as_mut(), &problem, true, limits)
                .unwrap()
                .unwrap();
            assert_eq!(safe.choice, 0b01, "{kind}");
            assert!((safe.objective - 1.0).abs() < 1e-9, "{kind}");
        }
        assert_eq!(search::solve(&problem, false, 0, 0), Some(0b10));
        assert_eq!(search::solve(&problem, true, 0, 0), Some(0b01));
    }
}
