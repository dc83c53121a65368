//! The scenario table of one request: for fixed clients and a pool of candidates, every
//! single and pair failure grouped by its effect, so that a cell's exact risk is a sum
//! over groups of "this choice leaves a needing client short of a quorum".
//!
//! Whether a scenario takes a pool member away from a client does not depend on which
//! members are chosen, so one enumeration of the terminals' states (clients plus pool,
//! [`RiskEvaluator::enumerate_states`]) gives, per scenario, the members each needing
//! client still reaches. Scenarios with the same reach sets form one group; groups that
//! cannot remove enough members to matter for any choice are dropped.

use rustc_hash::FxHashMap;

use topology::failure::Vertex;
use topology::ElementId;

use crate::risk::{RiskEvaluator, Scenario, StateEvent};

const TOP_PER_GROUP: usize = 5;

/// Scenarios with one effect.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// For each needing client: the pool members it still reaches (bit mask).
    pub reach: Vec<u64>,
    /// Probability of the single failures in the group.
    pub single_weight: f64,
    /// Probability of the pairs (explicit and closed-form).
    pub pair_weight: f64,
    /// Every single element in the group (a single element breaks the cell if the group
    /// is an outage).
    pub singles: Vec<ElementId>,
    /// The base state (nothing failed) is in this group.
    pub base: bool,
    /// Heaviest explicit scenarios, heaviest first.
    pub top: Vec<Scenario>,
}

impl Group {
    pub fn weight(&self) -> f64 {
        self.single_weight + self.pair_weight
    }

    /// Whether the choice `x` has an outage in this group's scenarios.
    pub fn outage(&self, x: u64, quorum: u32) -> bool {
        self.reach.iter().any(|&r| (x & r).count_ones() < quorum)
    }

    /// A group the single-failure rule cares about.
    pub fn has_single(&self) -> bool {
        self.base || !self.singles.is_empty()
    }

    fn push_top(&mut self, s: Scenario) {
        if self.top.len() == TOP_PER_GROUP && self.top[TOP_PER_GROUP - 1].weight >= s.weight {
            return;
        }
        let at = self
            .top
            .iter()
            .position(|t| t.weight < s.weight)
            .unwrap_or(self.top.len());
        self.top.insert(at, s);
        self.top.truncate(TOP_PER_GROUP);
    }
}

/// All groups that can matter for a choice of `size` members of the pool.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub groups: Vec<Group>,
    pub size: u32,
    pub quorum: u32,
    /// Pool members up and connected to every needing client with nothing failed.
    pub members: usize,
    /// Elements that could change the terminals' state (for the explanation).
    pub relevant_elements: usize,
}

impl Table {
    /// Builds the table for `clients` (server indices, distinct) against `pool` (server
    /// indices, distinct; bit `i` is `pool[i]`) for cells of `size` nodes.
    pub fn build(
        evaluator: &mut RiskEvaluator<'_>,
        afr: &dyn Fn(ElementId) -> f64,
        clients: &[u32],
        pool: &[u32],
        size: usize,
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
        let mut pool_terminals = 0u64;
        for &m in &member_slots {
            pool_terminals |= 1 << m;
        }
        let client_terminals: u64 = client_slots.iter().fold(0, |b, &c| b | 1 << c);
        // Distinct client terminals, in order (a server named twice is one client).
        let mut distinct_clients = client_slots.clone();
        distinct_clients.sort_unstable();
        distinct_clients.dedup();
        let many_clients = distinct_clients.len() > 1;
        let mut index: FxHashMap<Vec<u64>, usize> = FxHashMap::default();
        let mut groups: Vec<Group> = Vec::new();
        let mut reach: Vec<u64> = Vec::with_capacity(clients.len());
        // Consecutive events often share one state (pairs that leave ei's state as is):
        // remember the last state's group.
        let mut last: Option<(Vec<u64>, Option<usize>)> = None;
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
            if let Some((s, g)) = &last {
                if s.as_slice() == state {
                    return *g;
                }
            }
            reach.clear();
            for (k, &c) in distinct_clients.iter().enumerate() {
                let r = state[k];
                let needs = r != 0 && (!many_clients || r & client_terminals & !(1u64 << c) != 0);
                if !needs {
                    continue;
                }
                let mut pool_reach = 0u64;
                for (i, &m) in member_slots.iter().enumerate() {
                    if r & (1 << m) != 0 {
                        pool_reach |= 1 << i;
                    }
                }
                reach.push(pool_reach);
            }
            reach.sort_unstable();
            reach.dedup();
            let g = Some(*index.entry(reach.clone()).or_insert_with(|| {
                groups.push(Group {
                    reach: reach.clone(),
                    ..Group::default()
                });
                groups.len() - 1
            }));
            last = Some((state.to_vec(), g));
            g
        };
        let mut members = 0;
        let relevant =
            evaluator.enumerate_states(&terminals, &distinct_clients, &mut |event| match event {
                StateEvent::Base {
                    state,
                    single_mass,
                    pair_mass,
                } => {
                    members = member_slots
                        .iter()
                        .filter(|&&m| state.iter().all(|&r| r & (1 << m) != 0))
                        .count();
                    if let Some(g) = group_of(state, &mut groups) {
                        let group = &mut groups[g];
                        group.base = true;
                        group.single_weight += single_mass;
                        group.pair_weight += pair_mass;
                    }
                }
                StateEvent::Single { element, state } => {
                    if let Some(g) = group_of(state, &mut groups) {
                        let group = &mut groups[g];
                        let w = afr(element);
                        group.single_weight += w;
                        group.singles.push(element);
                        group.push_top(Scenario {
                            elements: vec![element],
                            weight: w,
                        });
                    }
                }
                StateEvent::Pair {
                    pair: (e, f),
                    state,
                } => {
                    if let Some(g) = group_of(state, &mut groups) {
                        let group = &mut groups[g];
                        let w = afr(e) * afr(f);
                        group.pair_weight += w;
                        group.push_top(Scenario {
                            elements: vec![e, f],
                            weight: w,
                        });
                    }
                }
                StateEvent::WithRest { mass, state, .. } => {
                    if let Some(g) = group_of(state, &mut groups) {
                        groups[g].pair_weight += mass;
                    }
                }
            });
        Table {
            groups,
            size: size as u32,
            quorum,
            members,
            relevant_elements: relevant,
        }
    }

    /// (single-failure-breaking groups, risk) of the choice `x`.
    pub fn score(&self, x: u64) -> (u32, f64) {
        let mut unsafe_groups = 0;
        let mut risk = 0.0;
        for g in &self.groups {
            if g.outage(x, self.quorum) {
                risk += g.weight();
                unsafe_groups += u32::from(g.has_single());
            }
        }
        (unsafe_groups, risk)
    }
}
