//! The scenario table of one request: for fixed clients and a pool of candidates, every
//! single and pair failure grouped by its effect, so that a cell's exact risk is a sum
//! over groups of "this choice leaves a needing client short of a quorum".
//!
//! Whether a scenario takes a pool member away from a client does not depend on which
//! members are chosen, so one enumeration of the terminals' states (clients plus pool,
//! [`RiskEvaluator::enumerate_states`]) gives, per scenario, the members each needing
//! client still reaches. Scenarios with the same reach sets form one group; groups that
//! cannot remove enough members to matter for any choice are dropped.
//!
//! The contract counts a pair only when neither of its elements breaks the cell alone, and
//! whether one does depends on the choice. A pair whose elements are in no group (they
//! cannot break any choice alone) counts with its group; every other pair becomes a
//! [`CoveredPair`]: its weight counts when its group is an outage and the groups of its
//! halves are not.

use rustc_hash::FxHashMap;
use smallvec::{smallvec, SmallVec};

use topology::failure::Vertex;
use topology::{ElementId, FailureModel};

use crate::risk::{RiskEvaluator, Scenario, StateEvent, Watch};

const TOP_PER_GROUP: usize = 5;

/// The heaviest scenarios of a group or a covered pair, heaviest first: one element, or
/// two, and the weight (kept inline: a table pushes thousands of candidates).
#[derive(Debug, Clone, Default)]
pub struct TopScenarios(SmallVec<[([ElementId; 2], u8, f64); TOP_PER_GROUP]>);

impl TopScenarios {
    fn push(&mut self, elements: &[ElementId], weight: f64) {
        let top = &mut self.0;
        if top.len() == TOP_PER_GROUP && top[TOP_PER_GROUP - 1].2 >= weight {
            return;
        }
        let at = top.iter().position(|t| t.2 < weight).unwrap_or(top.len());
        let pair = [elements[0], *elements.last().expect("one or two elements")];
        top.insert(at, (pair, elements.len() as u8, weight));
        top.truncate(TOP_PER_GROUP);
    }

    /// The scenarios, heaviest first.
    pub fn scenarios(&self) -> impl Iterator<Item = Scenario> + '_ {
        self.0.iter().map(|&(elements, len, weight)| Scenario {
            elements: elements[..usize::from(len)].to_vec(),
            weight,
        })
    }
}

/// Scenarios with one effect.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// For each needing client: the pool members it still reaches (bit mask). Inline:
    /// a table has dozens of groups, and a cell few clients.
    pub reach: SmallVec<[u64; 3]>,
    /// Sum of afr over the single failures in the group.
    pub single_weight: f64,
    /// Sum of pair weights over the pairs in the group whose elements can break no choice
    /// alone (so the pair counts whenever the group is an outage).
    pub pair_weight: f64,
    /// Every single element in the group (a single element breaks the cell if the group
    /// is an outage).
    pub singles: SmallVec<[ElementId; 2]>,
    /// The base state (nothing failed) is in this group: a choice that loses it is down.
    pub base: bool,
    /// Heaviest singles and unconditional pairs.
    pub top: TopScenarios,
}

impl Group {
    /// A group the single-failure rule cares about.
    pub fn has_single(&self) -> bool {
        self.base || !self.singles.is_empty()
    }
}

/// Pairs with one effect whose elements can break some choice alone: their weight counts
/// when `group` is an outage and no group of `halves` is.
#[derive(Debug, Clone, Default)]
pub struct CoveredPair {
    /// The group whose outage the pair is.
    pub group: u32,
    /// The groups of the pair's elements alone (one or two, distinct, never `group`).
    pub halves: SmallVec<[u32; 2]>,
    /// The pairs' summed weight.
    pub weight: f64,
    /// The heaviest of those pairs.
    pub top: TopScenarios,
}

/// A set of groups (by index) that a choice loses: a bit per group, inline up to 256
/// groups (the search scores hundreds of choices per request).
#[derive(Debug, Clone)]
pub struct Lost(SmallVec<[u64; 4]>);

impl Lost {
    /// Whether the set holds `group`.
    pub fn contains(&self, group: usize) -> bool {
        self.0[group / 64] & (1 << (group % 64)) != 0
    }

    /// The groups in the set, in increasing order.
    pub fn groups(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let g = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    g
                })
            })
        })
    }
}

/// A choice's reach counts by side of the quorum, for [`Table::lost_after_swap`].
#[derive(Debug, Clone)]
pub(crate) struct Neighbourhood {
    lost: Lost,
    /// Per group: its reach sets short of a quorum.
    short: Vec<u32>,
    /// Reach sets (index into the table's) holding exactly a quorum, and one less.
    at_quorum: Vec<u32>,
    below: Vec<u32>,
    /// Scratch: per group, the change of `short`; the groups changed.
    delta: Vec<i32>,
    touched: Vec<u32>,
}

/// Whether a choice is down, how many single-failure groups it loses, and its risk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Out with nothing failed: risk 1.
    pub down: bool,
    /// Groups holding a single failure (or the base state) that the choice loses.
    pub unsafe_groups: u32,
    /// Outages per year (1 when down).
    pub risk: f64,
}

/// All groups that can matter for a choice of `size` members of the pool.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The groups that can matter for some choice.
    pub groups: Vec<Group>,
    /// By group ([`Table::new`] sorts them).
    pub covered: Vec<CoveredPair>,
    /// Nodes a choice holds.
    pub size: u32,
    /// Majority of `size`.
    pub quorum: u32,
    /// Pool members up and connected to every needing client with nothing failed.
    pub members: usize,
    /// Every group's reach sets side by side, with their group: a choice's lost groups
    /// in one pass (the search scores hundreds of choices per request).
    reaches: Vec<(u64, u32)>,
    /// `covered[covered_from[g]..covered_from[g + 1]]` are group `g`'s covered pairs.
    covered_from: Vec<u32>,
}

impl Table {
    /// Builds the table for `clients` (server indices, distinct) against `pool` (server
    /// indices, distinct; bit `i` is `pool[i]`) for cells of `size` nodes that hold the
    /// members `fixed` (a bit mask over the pool: a repair's kept nodes).
    pub fn build(
        evaluator: &mut RiskEvaluator<'_>,
        model: &FailureModel,
        clients: &[u32],
        pool: &[u32],
        size: usize,
        fixed: u64,
    ) -> Table {
        let mut terminals: Vec<Vertex> = Vec::with_capacity(clients.len() + pool.len());
        let slot =
            |v: Vertex, terminals: &mut Vec<Vertex>| match terminals.iter().position(|&t| t == v) {
                Some(i) => i,
                None => {
                    terminals.push(v);
                    terminals.len() - 1
                }
            };
        let client_slots: Vec<usize> = clients.iter().map(|&c| slot(c, &mut terminals)).collect();
        let member_slots: Vec<usize> = pool.iter().map(|&m| slot(m, &mut terminals)).collect();
        assert!(terminals.len() < 64, "clients and pool exceed 63 servers");

        let quorum = (size / 2 + 1) as u32;
        // A scenario matters only if some needing client can lose more than size - quorum
        // of the chosen members.
        let must_lose = size as u32 - quorum + 1;
        // A choice holds the fixed members and `need` others, so it loses at most `need`
        // more than the fixed members it loses: with fixed members, a scenario matters
        // only if it takes `must_lose - need` of them (a repair: 3 of the 6 kept).
        let need = (size as u32).saturating_sub(fixed.count_ones());
        let (watched, must_lose) = if fixed != 0 && need < must_lose {
            (fixed, must_lose - need)
        } else {
            (u64::MAX, must_lose)
        };
        let mut pool_terminals = 0u64;
        for (i, &m) in member_slots.iter().enumerate() {
            if watched & (1 << i) != 0 {
                pool_terminals |= 1 << m;
            }
        }
        let client_terminals: u64 = client_slots.iter().fold(0, |b, &c| b | 1 << c);
        // Distinct client terminals, in order (a server named twice is one client).
        let mut distinct_clients = client_slots.clone();
        distinct_clients.sort_unstable();
        distinct_clients.dedup();
        let many_clients = distinct_clients.len() > 1;
        // Pool members usually sit on consecutive terminals after the clients: a state's
        // reach over the pool is then a shift and a mask.
        let pool_shift = member_slots.first().copied().filter(|&first| {
            member_slots
                .iter()
                .enumerate()
                .all(|(i, &m)| m == first + i)
        });
        let pool_mask = if pool.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << pool.len()) - 1
        };
        let mut index: FxHashMap<SmallVec<[u64; 3]>, usize> = FxHashMap::default();
        let mut groups: Vec<Group> = Vec::new();
        let mut reach: SmallVec<[u64; 3]> = SmallVec::new();
        // Consecutive events often share one state (pairs that leave ei's state as is):
        // remember the last state's group.
        let mut last_state: Vec<u64> = Vec::with_capacity(distinct_clients.len());
        let mut last: Option<Option<usize>> = None;
        let mut group_of = |state: &[u64], groups: &mut Vec<Group>| -> Option<usize> {
            // Cheap screen first: no needing client loses enough pool members.
            let matters = distinct_clients.iter().enumerate().any(|(k, &c)| {
                let r = state[k];
                r != 0
                    && (!many_clients || r & client_terminals & !(1u64 << c) != 0)
                    && (pool_terminals & !r).count_ones() >= must_lose
            });
            if !matters {
                return None;
            }
            if let Some(g) = last {
                if last_state.as_slice() == state {
                    return g;
                }
            }
            reach.clear();
            for (k, &c) in distinct_clients.iter().enumerate() {
                let r = state[k];
                let needs = r != 0 && (!many_clients || r & client_terminals & !(1u64 << c) != 0);
                if !needs {
                    continue;
                }
                let pool_reach = match pool_shift {
                    Some(shift) => (r >> shift) & pool_mask,
                    None => member_slots
                        .iter()
                        .enumerate()
                        .filter(|&(_, &m)| r & (1 << m) != 0)
                        .fold(0u64, |acc, (i, _)| acc | 1 << i),
                };
                reach.push(pool_reach);
            }
            reach.sort_unstable();
            reach.dedup();
            let g = Some(match index.get(reach.as_slice()) {
                Some(&g) => g,
                None => {
                    groups.push(Group {
                        reach: reach.clone(),
                        ..Group::default()
                    });
                    index.insert(reach.clone(), groups.len() - 1);
                    groups.len() - 1
                }
            });
            last_state.clear();
            last_state.extend_from_slice(state);
            last = Some(g);
            g
        };
        let watch = Watch {
            terminals: pool_terminals,
            must_lose,
            clients: if many_clients { client_terminals } else { 0 },
        };
        let mut members = 0;
        // The group of each visited single (by its index), if it has one.
        let mut single_group: Vec<Option<u32>> = Vec::new();
        let mut covered_index: FxHashMap<(u32, u32, u32), usize> = FxHashMap::default();
        let mut covered: Vec<CoveredPair> = Vec::new();
        evaluator.enumerate_states(
            &terminals,
            &distinct_clients,
            watch,
            &mut |event| match event {
                StateEvent::Base { state } => {
                    members = member_slots
                        .iter()
                        .filter(|&&m| state.iter().all(|&r| r & (1 << m) != 0))
                        .count();
                    if let Some(g) = group_of(state, &mut groups) {
                        groups[g].base = true;
                    }
                }
                StateEvent::Single { element, state, .. } => {
                    let g = group_of(state, &mut groups);
                    single_group.push(g.map(|g| g as u32));
                    if let Some(g) = g {
                        let group = &mut groups[g];
                        let w = model.afr(element);
                        group.single_weight += w;
                        group.singles.push(element);
                        group.top.push(&[element], w);
                    }
                }
                StateEvent::Pair {
                    pair: (e, f),
                    halves,
                    state,
                } => {
                    let Some(g) = group_of(state, &mut groups) else {
                        return;
                    };
                    let g = g as u32;
                    let mut half_groups = [u32::MAX; 2];
                    for (slot, h) in half_groups.iter_mut().zip(halves) {
                        if let Some(hg) = h.and_then(|i| single_group[i as usize]) {
                            if hg == g {
                                // The pair leaves a half's own state: when that is an
                                // outage, the half breaks alone and covers the pair.
                                return;
                            }
                            *slot = hg;
                        }
                    }
                    half_groups.sort_unstable();
                    if half_groups[1] == half_groups[0] {
                        half_groups[1] = u32::MAX;
                    }
                    let w = model.pair_weight(e, f);
                    if half_groups[0] == u32::MAX {
                        let group = &mut groups[g as usize];
                        group.pair_weight += w;
                        group.top.push(&[e, f], w);
                        return;
                    }
                    let key = (g, half_groups[0], half_groups[1]);
                    let at = *covered_index.entry(key).or_insert_with(|| {
                        covered.push(CoveredPair {
                            group: g,
                            halves: half_groups
                                .iter()
                                .copied()
                                .filter(|&h| h != u32::MAX)
                                .collect(),
                            ..CoveredPair::default()
                        });
                        covered.len() - 1
                    });
                    covered[at].weight += w;
                    covered[at].top.push(&[e, f], w);
                }
            },
        );
        Table::new(groups, covered, size as u32, quorum, members)
    }

    /// A table of these groups and covered pairs (in any order), with its indexes.
    pub fn new(
        groups: Vec<Group>,
        mut covered: Vec<CoveredPair>,
        size: u32,
        quorum: u32,
        members: usize,
    ) -> Table {
        covered.sort_by_key(|c| c.group);
        let reaches = groups
            .iter()
            .enumerate()
            .flat_map(|(g, group)| group.reach.iter().map(move |&r| (r, g as u32)))
            .collect();
        let mut covered_from = vec![0u32; groups.len() + 1];
        for c in &covered {
            covered_from[c.group as usize + 1] += 1;
        }
        for g in 0..groups.len() {
            covered_from[g + 1] += covered_from[g];
        }
        Table {
            groups,
            covered,
            size,
            quorum,
            members,
            reaches,
            covered_from,
        }
    }

    /// The groups with a reach set for which `short` holds.
    pub(crate) fn lost_by_reach(&self, short: impl Fn(u64) -> bool) -> Lost {
        let mut lost = Lost(smallvec![0u64; self.groups.len().div_ceil(64)]);
        for &(r, g) in &self.reaches {
            if short(r) {
                lost.0[g as usize / 64] |= 1 << (g % 64);
            }
        }
        lost
    }

    /// What scoring the one-swap neighbours of the choice `x` needs ([`Table::lost_after_swap`]).
    pub(crate) fn neighbourhood(&self, x: u64) -> Neighbourhood {
        let mut hood = Neighbourhood {
            lost: Lost(smallvec![0u64; self.groups.len().div_ceil(64)]),
            short: vec![0; self.groups.len()],
            at_quorum: Vec::new(),
            below: Vec::new(),
            delta: vec![0; self.groups.len()],
            touched: Vec::new(),
        };
        for (k, &(r, g)) in self.reaches.iter().enumerate() {
            // The lost groups come from the same counts (one pass over the reach sets).
            let count = (x & r).count_ones();
            if count < self.quorum {
                hood.short[g as usize] += 1;
                hood.lost.0[g as usize / 64] |= 1 << (g % 64);
            }
            if count == self.quorum {
                hood.at_quorum.push(k as u32);
            } else if count + 1 == self.quorum {
                hood.below.push(k as u32);
            }
        }
        hood
    }

    /// The groups lost by the neighbourhood's choice with member `out` swapped for
    /// `inn`: a reach set's count moves by one at most, so only those at the quorum (or
    /// one below) can change side. Equal to [`Table::lost_groups`] of the new choice.
    pub(crate) fn lost_after_swap(&self, hood: &mut Neighbourhood, out: usize, inn: usize) -> Lost {
        let (o, i) = (1u64 << out, 1u64 << inn);
        let Neighbourhood {
            lost: base,
            short,
            at_quorum,
            below,
            delta,
            touched,
        } = hood;
        let mut lost = base.clone();
        let mut change = |g: u32, by: i32| {
            if delta[g as usize] == 0 && !touched.contains(&g) {
                touched.push(g);
            }
            delta[g as usize] += by;
        };
        for &k in at_quorum.iter() {
            let (r, g) = self.reaches[k as usize];
            if r & o != 0 && r & i == 0 {
                change(g, 1);
            }
        }
        for &k in below.iter() {
            let (r, g) = self.reaches[k as usize];
            if r & i != 0 && r & o == 0 {
                change(g, -1);
            }
        }
        for g in touched.drain(..) {
            let (word, bit) = (g as usize / 64, 1u64 << (g % 64));
            if short[g as usize] as i32 + delta[g as usize] > 0 {
                lost.0[word] |= bit;
            } else {
                lost.0[word] &= !bit;
            }
            delta[g as usize] = 0;
        }
        lost
    }

    /// Which groups the choice `x` loses.
    pub fn lost_groups(&self, x: u64) -> Lost {
        self.lost_by_reach(|r| (x & r).count_ones() < self.quorum)
    }

    /// Whether a covered pair counts, given the lost groups.
    pub fn counts(pair: &CoveredPair, lost: &Lost) -> bool {
        lost.contains(pair.group as usize)
            && !pair.halves.iter().any(|&h| lost.contains(h as usize))
    }

    /// The choice `x`'s exact risk and single-failure standing.
    pub fn score(&self, x: u64) -> Score {
        let lost = self.lost_groups(x);
        self.score_lost(&lost)
    }

    /// [`Table::score`] from the groups a choice (possibly partial) loses.
    pub fn score_lost(&self, lost: &Lost) -> Score {
        let mut down = false;
        let mut unsafe_groups = 0;
        let mut risk = 0.0;
        for g in lost.groups() {
            let group = &self.groups[g];
            risk += group.single_weight + group.pair_weight;
            unsafe_groups += u32::from(group.has_single());
            down |= group.base;
        }
        // Only a lost group's covered pairs can count (in the order of `covered`).
        for g in lost.groups() {
            let pairs =
                &self.covered[self.covered_from[g] as usize..self.covered_from[g + 1] as usize];
            for pair in pairs {
                if Table::counts(pair, lost) {
                    risk += pair.weight;
                }
            }
        }
        Score {
            down,
            unsafe_groups,
            risk: if down { 1.0 } else { risk },
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// A random table over 20 members: groups of one to three reach sets that miss a few
    /// members each (as failures do), some with singles, and covered pairs.
    fn random_table(rng: &mut ChaCha8Rng) -> Table {
        let all = (1u64 << 20) - 1;
        let groups: Vec<Group> = (0..rng.random_range(1..90))
            .map(|_| {
                let reach = (0..rng.random_range(1..=3))
                    .map(|_| {
                        (0..rng.random_range(0..8))
                            .fold(all, |r, _| r & !(1 << rng.random_range(0..20)))
                    })
                    .collect();
                let single = rng.random_bool(0.2);
                Group {
                    reach,
                    single_weight: if single { rng.random::<f64>() } else { 0.0 },
                    pair_weight: rng.random::<f64>() * 1e-6,
                    singles: if single {
                        [ElementId(0)].into_iter().collect()
                    } else {
                        SmallVec::new()
                    },
                    base: rng.random_bool(0.01),
                    ..Group::default()
                }
            })
            .collect();
        let n = groups.len() as u32;
        let covered = (0..rng.random_range(0..60))
            .map(|_| CoveredPair {
                group: rng.random_range(0..n),
                halves: (0..rng.random_range(1..=2))
                    .map(|_| rng.random_range(0..n))
                    .collect(),
                weight: rng.random::<f64>() * 1e-5,
                ..CoveredPair::default()
            })
            .collect();
        Table::new(groups, covered, 7, 4, 20)
    }

    /// Scoring a swap from the neighbourhood gives the lost groups and the score of
    /// counting the new choice afresh.
    #[test]
    fn a_swap_scores_as_the_choice_counted_afresh() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mut compared = 0;
        for _ in 0..200 {
            let table = random_table(&mut rng);
            let mut x = 0u64;
            while x.count_ones() < 7 {
                x |= 1 << rng.random_range(0..20);
            }
            let mut hood = table.neighbourhood(x);
            for out in (0..20).filter(|&i| x & (1 << i) != 0) {
                for inn in (0..20).filter(|&i| x & (1 << i) == 0) {
                    let y = (x & !(1 << out)) | 1 << inn;
                    let swapped = table.lost_after_swap(&mut hood, out, inn);
                    let afresh = table.lost_groups(y);
                    assert_eq!(
                        swapped.groups().collect::<Vec<_>>(),
                        afresh.groups().collect::<Vec<_>>()
                    );
                    assert_eq!(table.score_lost(&swapped), table.score(y));
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 200 * 7 * 13);
    }
}
