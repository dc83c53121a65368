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
    /// Whether the choice `x` has an outage in this group's scenarios.
    pub fn outage(&self, x: u64, quorum: u32) -> bool {
        self.reach.iter().any(|&r| (x & r).count_ones() < quorum)
    }

    /// A group the single-failure rule cares about.
    pub fn has_single(&self) -> bool {
        self.base || !self.singles.is_empty()
    }
}

/// Pairs with one effect whose elements can break some choice alone: their weight counts
/// when `group` is an outage and no group of `halves` is.
#[derive(Debug, Clone, Default)]
pub struct CoveredPair {
    pub group: u32,
    /// The groups of the pair's elements alone (one or two, distinct, never `group`).
    pub halves: SmallVec<[u32; 2]>,
    pub weight: f64,
    pub top: TopScenarios,
}

/// A set of groups (by index) that a choice loses: a bit per group, inline up to 256
/// groups (the search scores hundreds of choices per request).
#[derive(Debug, Clone)]
pub struct Lost(SmallVec<[u64; 4]>);

impl Lost {
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
    pub groups: Vec<Group>,
    /// By group ([`Table::new`] sorts them).
    pub covered: Vec<CoveredPair>,
    pub size: u32,
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

    /// The groups for which `is_lost` holds.
    pub fn lost_where(&self, is_lost: impl Fn(&Group) -> bool) -> Lost {
        let mut lost = Lost(smallvec![0u64; self.groups.len().div_ceil(64)]);
        for (g, group) in self.groups.iter().enumerate() {
            if is_lost(group) {
                lost.0[g / 64] |= 1 << (g % 64);
            }
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
                if !pair.halves.iter().any(|&h| lost.contains(h as usize)) {
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
