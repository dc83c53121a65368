//! Paths of single-node moves: from where a cell is to where it should be, one node at a
//! time, every intermediate placement within the hard rules and, whenever some path
//! allows it, never worse than the placement before it.
//!
//! A target is chosen first (the best placement over a pool that holds the current nodes
//! and candidates near the clients, then as many current nodes kept as its quality
//! allows); the states between the current placement and the target are few (`k` nodes
//! to move give `C(2k, k)` sets), so the path is found by an exact search over them
//! rather than by looking one step ahead, which can stall where two moves are needed
//! and neither helps alone.

use rustc_hash::FxHashMap;

use super::bits::bits;
use super::search::{binomial, Cost, Problem};

/// Most intermediate placements searched exactly (`C(2k, k)` for `k` nodes to move: all
/// of them up to `k = 8`); beyond it the path is built greedily.
pub const PATH_SEARCH_STATES: u64 = 20_000;

/// The order of a path's steps, as pool masks: `states[0]` is the current placement and
/// the last is the target.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPlan {
    /// Pool masks of the placements along the path, current first, target last.
    pub states: Vec<u64>,
    /// Every step is at least as good as the state before it (not down, then single-failure
    /// safety, then risk).
    pub monotone: bool,
    /// The path came from the exact search (false: greedy, too many states).
    pub exhaustive: bool,
}

/// Whether `b` is at least as good as `a`: not more down, not less safe, and within a
/// rounding error of `a`'s risk when equally safe.
fn no_worse(b: &Cost, a: &Cost) -> bool {
    let (kb, ka) = ((b.down, b.unsafe_groups), (a.down, a.unsafe_groups));
    kb < ka || (kb == ka && b.risk <= a.risk * (1.0 + 1e-12) + 1e-18)
}

/// Orders states by quality: down, then unsafe groups, then risk.
fn better(b: &Cost, a: &Cost) -> bool {
    let (kb, ka) = ((b.down, b.unsafe_groups), (a.down, a.unsafe_groups));
    kb < ka || (kb == ka && b.risk < a.risk)
}

/// Swaps new members of `target` back for nodes of `current` while the result stays
/// allowed and as good as `target` within `tolerance` (relative risk, same safety):
/// the best placement that moves the fewest nodes.
pub fn keep_current(problem: &Problem<'_>, current: u64, mut target: u64, tolerance: f64) -> u64 {
    let goal = problem.cost(target);
    let within = |c: &Cost| {
        (c.down, c.unsafe_groups) <= (goal.down, goal.unsafe_groups)
            && c.risk <= goal.risk * (1.0 + tolerance) + 1e-18
    };
    loop {
        let mut best: Option<(u64, Cost)> = None;
        for out in bits(target & !current) {
            for inn in bits(current & !target) {
                let y = (target & !(1 << out)) | 1 << inn;
                if !problem.allowed(y) {
                    continue;
                }
                let c = problem.cost(y);
                if within(&c) && best.as_ref().is_none_or(|(_, b)| better(&c, b)) {
                    best = Some((y, c));
                }
            }
        }
        match best {
            Some((y, _)) => target = y,
            None => return target,
        }
    }
}

/// The order in which to move from `current` to `target` (pool masks of equal size), one
/// node out and one in per step, every state allowed by `problem`'s rules.
pub fn plan(problem: &Problem<'_>, current: u64, target: u64) -> PathPlan {
    let k = u64::from((current & !target).count_ones());
    if k == 0 {
        return PathPlan {
            states: vec![current],
            monotone: true,
            exhaustive: true,
        };
    }
    let mut search = Search {
        problem,
        current,
        target,
        costs: FxHashMap::default(),
        reach: FxHashMap::default(),
    };
    if binomial(2 * k, k) <= PATH_SEARCH_STATES && search.reaches(current) {
        // Walk the monotone paths, taking the best next state each time.
        let mut states = vec![current];
        let mut s = current;
        while s != target {
            let here = search.cost(s);
            let mut next: Option<(u64, Cost)> = None;
            for y in search.successors(s) {
                let c = search.cost(y);
                if no_worse(&c, &here)
                    && search.reaches(y)
                    && next.as_ref().is_none_or(|(_, b)| better(&c, b))
                {
                    next = Some((y, c));
                }
            }
            s = next
                .expect("a state that reaches the target has a next state")
                .0;
            states.push(s);
        }
        return PathPlan {
            states,
            monotone: true,
            exhaustive: true,
        };
    }
    // No monotone path (or too many states to search): the best allowed next state each
    // time; say whether every step still happened to be no worse.
    let exhaustive = binomial(2 * k, k) <= PATH_SEARCH_STATES;
    let mut states = vec![current];
    let mut s = current;
    let mut monotone = true;
    while s != target {
        let here = search.cost(s);
        let next = search
            .successors(s)
            .into_iter()
            .map(|y| (y, search.cost(y)))
            .reduce(|a, b| if better(&b.1, &a.1) { b } else { a });
        let Some((y, c)) = next else {
            // Every next state breaks a hard rule: no path at all.
            return PathPlan {
                states: vec![current],
                monotone: false,
                exhaustive,
            };
        };
        monotone &= no_worse(&c, &here);
        s = y;
        states.push(s);
    }
    PathPlan {
        states,
        monotone,
        exhaustive,
    }
}

struct Search<'p, 't> {
    problem: &'p Problem<'t>,
    current: u64,
    target: u64,
    costs: FxHashMap<u64, Cost>,
    /// Whether a state reaches the target by steps that are each no worse.
    reach: FxHashMap<u64, bool>,
}

impl Search<'_, '_> {
    fn cost(&mut self, s: u64) -> Cost {
        let problem = self.problem;
        *self.costs.entry(s).or_insert_with(|| problem.cost(s))
    }

    /// States one step closer to the target that keep the rules: a current node that the
    /// target drops goes out, a target node comes in.
    fn successors(&self, s: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for a in bits(s & self.current & !self.target) {
            for b in bits(self.target & !s) {
                let y = (s & !(1 << a)) | 1 << b;
                if self.problem.allowed(y) {
                    out.push(y);
                }
            }
        }
        out
    }

    fn reaches(&mut self, s: u64) -> bool {
        if s == self.target {
            return true;
        }
        if let Some(&r) = self.reach.get(&s) {
            return r;
        }
        let here = self.cost(s);
        let mut found = false;
        for y in self.successors(s) {
            let c = self.cost(y);
            if no_worse(&c, &here) && self.reaches(y) {
                found = true;
                break;
            }
        }
        self.reach.insert(s, found);
        found
    }
}
