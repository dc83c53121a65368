//! The fast solver: greedy construction plus best-improvement swaps over a scenario
//! table, deterministic for a seed; exhaustive when the choice is small.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::bits::bits;
use super::table::Table;

/// What a choice of pool members is judged by, and the rules it must keep.
#[derive(Debug, Clone)]
pub struct Problem<'t> {
    /// The request's scenario table.
    pub table: &'t Table,
    /// Members that must be chosen.
    pub fixed: u64,
    /// Members that may be chosen.
    pub choosable: u64,
    /// Load cost of each member (its utilisation), weighted by `load_weight`.
    pub load: Vec<f64>,
    /// Weight of the load term against risk.
    pub load_weight: f64,
    /// (members of another cell in the pool, most of them this cell may hold).
    pub overlap: Vec<(u64, u32)>,
}

/// A choice's cost: down (out with nothing failed) last of all, then breaking
/// single-failure groups (when safety is required), then risk plus the weighted load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// Out with nothing failed.
    pub down: bool,
    /// Single-failure groups the choice loses (the choice is unsafe when above 0).
    pub unsafe_groups: u32,
    /// Outages per year.
    pub risk: f64,
    /// Summed utilisation of the chosen members (unweighted).
    pub load: f64,
}

/// Orders costs: smaller is better.
pub(crate) type Key = (bool, u32, f64);

impl Cost {
    pub(crate) fn key(&self, safety: bool, load_weight: f64) -> Key {
        (
            self.down,
            if safety { self.unsafe_groups } else { 0 },
            self.risk + load_weight * self.load,
        )
    }
}

pub(crate) fn better(a: Key, b: Key) -> bool {
    (a.0, a.1) < (b.0, b.1) || ((a.0, a.1) == (b.0, b.1) && a.2 < b.2 - 1e-15 * b.2.abs())
}

impl Problem<'_> {
    /// The cost of choice `x` (a pool mask).
    pub fn cost(&self, x: u64) -> Cost {
        let score = self.table.score(x);
        Cost {
            down: score.down,
            unsafe_groups: score.unsafe_groups,
            risk: score.risk,
            load: self.load_of(x),
        }
    }

    fn load_of(&self, x: u64) -> f64 {
        let mut sum = 0.0;
        let mut bits = x;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            sum += self.load[i];
            bits &= bits - 1;
        }
        sum
    }

    /// Whether choice `x` keeps the overlap rule against every other cell in the pool.
    pub fn allowed(&self, x: u64) -> bool {
        self.overlap
            .iter()
            .all(|&(m, most)| (x & m).count_ones() <= most)
    }

    /// Cost of a partial choice: groups it already loses enough members in (more members
    /// cannot repair them), then load.
    fn partial_key(&self, x: u64, safety: bool) -> Key {
        let table = self.table;
        let must_lose = table.size - table.quorum + 1;
        let lost = table.lost_by_reach(|r| (x & !r).count_ones() >= must_lose);
        let score = table.score_lost(&lost);
        Cost {
            down: score.down,
            unsafe_groups: score.unsafe_groups,
            risk: score.risk,
            load: self.load_of(x),
        }
        .key(safety, self.load_weight)
    }

    fn key(&self, x: u64, safety: bool) -> Key {
        self.cost(x).key(safety, self.load_weight)
    }
}

/// Choices to enumerate before the search gives way to exhaustion.
const EXHAUSTIVE_LIMIT: u64 = 20_000;

/// `n` choose `k`, saturating.
pub(crate) fn binomial(n: u64, k: u64) -> u64 {
    let mut acc: u64 = 1;
    for i in 0..k.min(n) {
        acc = acc.saturating_mul(n - i) / (i + 1);
    }
    acc
}

/// The best choice found, or `None` when no allowed choice of the right size exists.
/// With `safety`, choices that break on a single failure rank after every safe one.
pub fn solve(p: &Problem<'_>, safety: bool, restarts: usize, seed: u64) -> Option<u64> {
    let need = p.table.size - p.fixed.count_ones();
    let free = p.choosable & !p.fixed;
    if free.count_ones() < need || !p.allowed(p.fixed) {
        return None;
    }
    if binomial(u64::from(free.count_ones()), u64::from(need)) <= EXHAUSTIVE_LIMIT {
        return exhaustive(p, safety, need, free);
    }
    let mut best: Option<(u64, Key)> = None;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for attempt in 0..=restarts {
        let start = if attempt == 0 {
            greedy(p, safety, need, free)
        } else {
            random_start(p, need, free, &mut rng)
        };
        let Some(x) = start else { continue };
        let x = improve(p, safety, x, free);
        let key = p.key(x, safety);
        if best.is_none_or(|(_, b)| better(key, b)) {
            best = Some((x, key));
        }
    }
    best.map(|(x, _)| x)
}

fn exhaustive(p: &Problem<'_>, safety: bool, need: u32, free: u64) -> Option<u64> {
    let items: Vec<usize> = bits(free).collect();
    let mut best: Option<(u64, Key)> = None;
    let mut pick: Vec<usize> = (0..need as usize).collect();
    let k = need as usize;
    loop {
        let x = pick.iter().fold(p.fixed, |x, &i| x | 1 << items[i]);
        if p.allowed(x) {
            let key = p.key(x, safety);
            if best.is_none_or(|(_, b)| better(key, b)) {
                best = Some((x, key));
            }
        }
        // Next k-combination in lexicographic order.
        let mut i = k;
        loop {
            if i == 0 {
                return best.map(|(x, _)| x);
            }
            i -= 1;
            if pick[i] < items.len() - k + i {
                break;
            }
        }
        pick[i] += 1;
        for j in i + 1..k {
            pick[j] = pick[j - 1] + 1;
        }
    }
}

fn greedy(p: &Problem<'_>, safety: bool, need: u32, free: u64) -> Option<u64> {
    let mut x = p.fixed;
    for _ in 0..need {
        let mut pick: Option<(usize, Key)> = None;
        for i in bits(free & !x) {
            let y = x | 1 << i;
            if !p.allowed(y) {
                continue;
            }
            let key = p.partial_key(y, safety);
            if pick.is_none_or(|(_, b)| better(key, b)) {
                pick = Some((i, key));
            }
        }
        x |= 1 << pick?.0;
    }
    Some(x)
}

fn random_start(p: &Problem<'_>, need: u32, free: u64, rng: &mut ChaCha8Rng) -> Option<u64> {
    let mut items: Vec<usize> = bits(free).collect();
    items.shuffle(rng);
    let mut x = p.fixed;
    let mut added = 0;
    for i in items {
        if added == need {
            break;
        }
        if p.allowed(x | 1 << i) {
            x |= 1 << i;
            added += 1;
        }
    }
    (added == need).then_some(x)
}

/// Best-improvement swaps (one chosen member out, one pool member in) until none helps;
/// each swap scored from the current choice's reach counts.
fn improve(p: &Problem<'_>, safety: bool, mut x: u64, free: u64) -> u64 {
    let mut current = p.key(x, safety);
    loop {
        let mut best: Option<(u64, Key)> = None;
        let mut hood = p.table.neighbourhood(x);
        for out in bits(x & free) {
            for inn in bits(free & !x) {
                let y = (x & !(1 << out)) | 1 << inn;
                if !p.allowed(y) {
                    continue;
                }
                let score = p
                    .table
                    .score_lost(&p.table.lost_after_swap(&mut hood, out, inn));
                let key = Cost {
                    down: score.down,
                    unsafe_groups: score.unsafe_groups,
                    risk: score.risk,
                    load: p.load_of(y),
                }
                .key(safety, p.load_weight);
                if better(key, current) && best.is_none_or(|(_, b)| better(key, b)) {
                    best = Some((y, key));
                }
            }
        }
        match best {
            Some((y, key)) => {
                x = y;
                current = key;
            }
            None => return x,
        }
    }
}
