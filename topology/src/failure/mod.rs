//! The failure model: which servers are up and connected under a scenario of failed elements.
//!
//! [`FailureModel`] precomputes, once per inventory, what each element takes away: for every
//! network vertex (server or device) the elements whose failure alone removes it (the
//! vertex itself, a server's rack, and single points of failure in its power ancestry), and
//! the redundant pairs of power elements that remove it only together (A/B feeds), and
//! ([`Effects`]) what every single element and every special pair cuts off from the rest of
//! the network, so that any cell's state under any scenario is a few lookups.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{ElementId, Inventory, NetNode, ServerStatus};

mod effects;
mod rebuild;
mod scenario;
pub use effects::Effects;
pub use rebuild::Changed;
pub use scenario::ScenarioState;

/// A vertex of the network search graph: servers first, then network devices.
pub type Vertex = u32;

const NONE: u32 = u32::MAX;

/// Hours in the contract's year (the unit of `afr`).
pub const HOURS_PER_YEAR: f64 = 8760.0;

/// The yearly probability weight of a pair of failures (the contract's rare-event
/// approximation): the two only meet when the second fails while the first is still
/// being repaired, `afr(e)·afr(f)·(repair_hours(e) + repair_hours(f)) / 8760`.
pub fn pair_weight(afr_e: f64, repair_hours_e: f64, afr_f: f64, repair_hours_f: f64) -> f64 {
    afr_e * afr_f * (repair_hours_e + repair_hours_f) / HOURS_PER_YEAR
}

/// Per-inventory precomputation of single and pair failure effects.
#[derive(Debug, Clone)]
pub struct FailureModel {
    afr: Vec<f64>,
    repair_hours: Vec<f64>,
    /// CSR adjacency: `adj[adj_start[v]..adj_start[v+1]]` as (neighbour, link index);
    /// neighbours that can carry traffic onwards come first, `transit_end[v]` marks their end.
    adj_start: Vec<u32>,
    adj: Vec<(Vertex, u32)>,
    transit_end: Vec<u32>,
    /// Search priority: higher tiers are explored first so that searches meet early.
    rank: Vec<u8>,
    /// Vertices down in every scenario (servers whose status is `failed`).
    always_down: Vec<bool>,
    hit1_start: Vec<u32>,
    hit1: Vec<ElementId>,
    hit2_start: Vec<u32>,
    hit2: Vec<(ElementId, ElementId)>,
    link_element: Vec<ElementId>,
    link_group: Vec<Option<ElementId>>,
    /// Both ends of each link.
    link_ends: Vec<(Vertex, Vertex)>,
    /// A vertex with two or more distinct neighbours can carry traffic onwards; the others
    /// (dead ends) are never searched through.
    transit: Vec<bool>,
    /// Connected component of every vertex with nothing failed (`NONE` if always down).
    base_comp: Vec<u32>,
    /// Shared with the model it was rebuilt from when that one's hold ([`Changed`]).
    effects: Arc<Effects>,
}

impl FailureModel {
    /// Precomputes the failure effects of every element and power pair of `inv`.
    pub fn new(inv: &Inventory) -> FailureModel {
        let mut model = FailureModel::without_effects(inv);
        model.effects = Arc::new(Effects::build(&model));
        model
    }

    /// Everything but the zone-wide effects: linear in the zone (the effects' searches
    /// are what costs).
    fn without_effects(inv: &Inventory) -> FailureModel {
        let server_count = inv.servers.len() as u32;
        let vertex_count = inv.servers.len() + inv.network_devices.len();
        let vertex_of = |n: NetNode| match n {
            NetNode::Server(s) => s,
            NetNode::Device(d) => server_count + d,
        };

        // Adjacency, deduplicated neighbour counts to find dead ends.
        let mut lists: Vec<Vec<(Vertex, u32)>> = vec![Vec::new(); vertex_count];
        for (i, l) in inv.links.iter().enumerate() {
            let (a, b) = (vertex_of(l.a), vertex_of(l.b));
            lists[a as usize].push((b, i as u32));
            lists[b as usize].push((a, i as u32));
        }
        let distinct_neighbours: Vec<usize> = lists
            .iter()
            .map(|l| {
                let mut n: Vec<Vertex> = l.iter().map(|x| x.0).collect();
                n.sort_unstable();
                n.dedup();
                n.len()
            })
            .collect();
        let rank: Vec<u8> = (0..vertex_count)
            .map(|v| {
                if (v as u32) < server_count {
                    0
                } else {
                    match inv.network_devices[v - server_count as usize].kind.as_str() {
                        "tor" => 1,
                        "aggregation" => 3,
                        "spine" | "border" => 4,
                        _ => 2,
                    }
                }
            })
            .collect();
        let mut adj_start = Vec::with_capacity(vertex_count + 1);
        let mut adj = Vec::with_capacity(inv.links.len() * 2);
        let mut transit_end = Vec::with_capacity(vertex_count);
        for list in &mut lists {
            adj_start.push(adj.len() as u32);
            // Transit-capable neighbours first, higher tiers first within them.
            list.sort_by_key(|&(w, l)| {
                (
                    distinct_neighbours[w as usize] < 2,
                    std::cmp::Reverse(rank[w as usize]),
                    w,
                    l,
                )
            });
            let transit = list
                .iter()
                .filter(|&&(w, _)| distinct_neighbours[w as usize] >= 2)
                .count();
            transit_end.push((adj.len() + transit) as u32);
            adj.extend_from_slice(list);
        }
        adj_start.push(adj.len() as u32);

        let always_down: Vec<bool> = (0..vertex_count)
            .map(|v| (v as u32) < server_count && inv.servers[v].status == ServerStatus::Failed)
            .collect();

        // Power cuts, memoised per distinct feed set.
        let mut cuts = PowerCuts::new(inv);
        let mut hit1_start = Vec::with_capacity(vertex_count + 1);
        let mut hit1 = Vec::new();
        let mut hit2_start = Vec::with_capacity(vertex_count + 1);
        let mut hit2 = Vec::new();
        for v in 0..vertex_count {
            hit1_start.push(hit1.len() as u32);
            hit2_start.push(hit2.len() as u32);
            let (own, extra, feeds) = if (v as u32) < server_count {
                let s = &inv.servers[v];
                let rack = &inv.racks[s.rack as usize];
                (s.element, Some(rack.element), inv.feeds_of(s))
            } else {
                let d = &inv.network_devices[v - server_count as usize];
                (d.element, None, d.feeds.as_slice())
            };
            let (c1, c2) = cuts.of(feeds);
            hit1.push(own);
            hit1.extend(extra);
            hit1.extend(c1.iter().copied());
            hit2.extend(c2.iter().copied());
        }
        hit1_start.push(hit1.len() as u32);
        hit2_start.push(hit2.len() as u32);

        let afr: Vec<f64> = inv.elements.iter().map(|e| e.afr).collect();
        let repair_hours: Vec<f64> = inv.elements.iter().map(|e| e.repair_hours).collect();
        let transit: Vec<bool> = distinct_neighbours.iter().map(|&n| n >= 2).collect();
        let base_comp = base_components(&adj_start, &adj, &always_down, &transit);
        FailureModel {
            afr,
            repair_hours,
            adj_start,
            adj,
            transit_end,
            rank,
            always_down,
            hit1_start,
            hit1,
            hit2_start,
            hit2,
            link_element: inv.links.iter().map(|l| l.element).collect(),
            link_group: inv
                .links
                .iter()
                .map(|l| l.risk_group.map(|g| inv.risk_groups[g as usize].element))
                .collect(),
            link_ends: inv
                .links
                .iter()
                .map(|l| (vertex_of(l.a), vertex_of(l.b)))
                .collect(),
            transit,
            base_comp,
            effects: Arc::default(),
        }
    }

    /// The zone-wide effects of single and special pair failures.
    pub fn effects(&self) -> &Effects {
        &self.effects
    }

    /// Whether `v` can carry traffic onwards (two or more distinct neighbours).
    pub fn is_transit(&self, v: Vertex) -> bool {
        self.transit[v as usize]
    }

    /// Whether `v` is down in every scenario (a server whose status is `failed`).
    pub fn always_down(&self, v: Vertex) -> bool {
        self.always_down[v as usize]
    }

    /// Component of `v` with nothing failed (`u32::MAX` if `v` is always down).
    pub fn base_component(&self, v: Vertex) -> u32 {
        self.base_comp[v as usize]
    }

    /// Neighbours of `v` with the link to each (a neighbour appears once per link).
    pub fn neighbours(&self, v: Vertex) -> &[(Vertex, u32)] {
        &self.adj[self.adj_start[v as usize] as usize..self.adj_start[v as usize + 1] as usize]
    }

    /// Yearly failure probability of `e`.
    pub fn afr(&self, e: ElementId) -> f64 {
        self.afr[e.index()]
    }

    /// How long `e` stays failed, in hours.
    pub fn repair_hours(&self, e: ElementId) -> f64 {
        self.repair_hours[e.index()]
    }

    /// The yearly weight of `e` and `f` failed at once ([`pair_weight`]).
    pub fn pair_weight(&self, e: ElementId, f: ElementId) -> f64 {
        let (e, f) = (e.index(), f.index());
        pair_weight(
            self.afr[e],
            self.repair_hours[e],
            self.afr[f],
            self.repair_hours[f],
        )
    }

    /// How many failure elements the inventory has ([`ElementId`]s run below it).
    pub fn element_count(&self) -> usize {
        self.afr.len()
    }

    /// How many network vertices there are: servers, then network devices.
    pub fn vertex_count(&self) -> usize {
        self.always_down.len()
    }

    /// Elements whose failure alone removes vertex `v` (itself, its rack, power 1-cuts).
    pub fn single_hits(&self, v: Vertex) -> &[ElementId] {
        &self.hit1[self.hit1_start[v as usize] as usize..self.hit1_start[v as usize + 1] as usize]
    }

    /// Pairs of power elements that remove vertex `v` only together.
    pub fn pair_hits(&self, v: Vertex) -> &[(ElementId, ElementId)] {
        &self.hit2[self.hit2_start[v as usize] as usize..self.hit2_start[v as usize + 1] as usize]
    }

    /// The elements whose failure takes link `l` down by itself (the link, its risk group).
    pub fn link_hits(&self, l: u32) -> impl Iterator<Item = ElementId> + '_ {
        std::iter::once(self.link_element[l as usize]).chain(self.link_group[l as usize])
    }

    /// Whether vertex `v` is down (failed, unpowered or its rack down) under `scenario`.
    pub fn vertex_removed(&self, v: Vertex, scenario: &[ElementId]) -> bool {
        if self.always_down[v as usize] {
            return true;
        }
        if scenario.is_empty() {
            return false;
        }
        if self.single_hits(v).iter().any(|e| scenario.contains(e)) {
            return true;
        }
        scenario.len() >= 2
            && self
                .pair_hits(v)
                .iter()
                .any(|(a, b)| scenario.contains(a) && scenario.contains(b))
    }

    /// Whether link `l` is down under `scenario` (it or its risk group failed).
    pub fn link_removed(&self, l: u32, scenario: &[ElementId]) -> bool {
        !scenario.is_empty() && self.link_hits(l).any(|e| scenario.contains(&e))
    }
}

/// Connected components with nothing failed, ignoring always-down vertices. Numbered from
/// transit roots first, so that the numbers of the components with a transit vertex (and
/// with them the effects) do not depend on dead ends.
fn base_components(
    adj_start: &[u32],
    adj: &[(Vertex, u32)],
    always_down: &[bool],
    transit: &[bool],
) -> Vec<u32> {
    let n = always_down.len();
    let mut comp = vec![NONE; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let roots = (0..n)
        .filter(|&v| transit[v])
        .chain((0..n).filter(|&v| !transit[v]));
    for root in roots {
        if comp[root] != NONE || always_down[root] {
            continue;
        }
        comp[root] = next;
        stack.push(root);
        while let Some(v) = stack.pop() {
            for &(w, _) in &adj[adj_start[v] as usize..adj_start[v + 1] as usize] {
                let wu = w as usize;
                if comp[wu] == NONE && !always_down[wu] {
                    comp[wu] = next;
                    stack.push(wu);
                }
            }
        }
        next += 1;
    }
    comp
}

/// The single and pair cuts of one feed set.
type Cuts = (Vec<ElementId>, Vec<(ElementId, ElementId)>);

/// Single and pair cuts of power feed sets, memoised by the sorted set of feeding devices.
struct PowerCuts<'a> {
    inv: &'a Inventory,
    memo: HashMap<Vec<u32>, Cuts>,
}

impl<'a> PowerCuts<'a> {
    fn new(inv: &'a Inventory) -> PowerCuts<'a> {
        PowerCuts {
            inv,
            memo: HashMap::new(),
        }
    }

    /// A node fed by `feeds` is energized when any feed is; no feeds means always energized.
    fn of(&mut self, feeds: &[u32]) -> &Cuts {
        let mut key = feeds.to_vec();
        key.sort_unstable();
        if !self.memo.contains_key(&key) {
            let value = self.compute(&key);
            self.memo.insert(key.clone(), value);
        }
        &self.memo[&key]
    }

    fn compute(&self, feeds: &[u32]) -> Cuts {
        if feeds.is_empty() {
            return (Vec::new(), Vec::new());
        }
        // Every power device upstream of the feed set, in a stable order.
        let mut ancestors: Vec<u32> = Vec::new();
        let mut local: HashMap<u32, usize> = HashMap::new();
        let mut stack: Vec<u32> = feeds.to_vec();
        while let Some(d) = stack.pop() {
            if local.contains_key(&d) {
                continue;
            }
            local.insert(d, ancestors.len());
            ancestors.push(d);
            stack.extend(self.inv.power_devices[d as usize].feeds.iter().copied());
        }
        let n = ancestors.len();
        let energized = |removed: &[usize]| -> bool {
            // 0 unknown, 1 energized, 2 not; the graph is acyclic (validated).
            let mut state = vec![0u8; n];
            fn visit(
                i: usize,
                inv: &Inventory,
                ancestors: &[u32],
                local: &HashMap<u32, usize>,
                removed: &[usize],
                state: &mut [u8],
            ) -> bool {
                if state[i] != 0 {
                    return state[i] == 1;
                }
                let up_feeds = &inv.power_devices[ancestors[i] as usize].feeds;
                let on = !removed.contains(&i)
                    && (up_feeds.is_empty()
                        || up_feeds
                            .iter()
                            .any(|f| visit(local[f], inv, ancestors, local, removed, state)));
                state[i] = if on { 1 } else { 2 };
                on
            }
            feeds
                .iter()
                .any(|f| visit(local[f], self.inv, &ancestors, &local, removed, &mut state))
        };
        let element = |i: usize| self.inv.power_devices[ancestors[i] as usize].element;
        let singles: Vec<usize> = (0..n).filter(|&i| !energized(&[i])).collect();
        let mut pairs = Vec::new();
        for i in 0..n {
            if singles.contains(&i) {
                continue;
            }
            for j in i + 1..n {
                if !singles.contains(&j) && !energized(&[i, j]) {
                    let (a, b) = (element(i), element(j));
                    pairs.push((a.min(b), a.max(b)));
                }
            }
        }
        let mut singles: Vec<ElementId> = singles.into_iter().map(element).collect();
        singles.sort_unstable();
        pairs.sort_unstable();
        (singles, pairs)
    }
}

/// Heap entry of the lazy best-first search: the rank of the next neighbour to look at
/// (adjacency is sorted by rank), shallower first, the vertex and its cursor.
type Entry = (u8, std::cmp::Reverse<u16>, Vertex, u32);

/// The literal semantics of the contract, computed from scratch for one scenario. Slow;
/// the reference that tests hold the fast model to.
pub mod reference {
    use super::*;

    /// Up-ness of every server and the connected component of every up server.
    #[derive(Debug, Clone)]
    pub struct State {
        /// Per server: powered, its rack standing and not failed itself.
        pub up: Vec<bool>,
        /// Component id per server (meaningful only when up).
        pub component: Vec<usize>,
    }

    /// Computes who is up and who reaches whom with the elements `failed` failed.
    pub fn state(inv: &Inventory, failed: &[ElementId]) -> State {
        let is_failed = |e: ElementId| failed.contains(&e);
        // Energized power devices, by repeated relaxation (the graph is small in tests).
        let n = inv.power_devices.len();
        let mut memo: Vec<Option<bool>> = vec![None; n];
        fn device_on(
            inv: &Inventory,
            d: usize,
            failed: &[ElementId],
            memo: &mut Vec<Option<bool>>,
        ) -> bool {
            if let Some(v) = memo[d] {
                return v;
            }
            let dev = &inv.power_devices[d];
            let on = !failed.contains(&dev.element)
                && (dev.feeds.is_empty()
                    || dev
                        .feeds
                        .iter()
                        .any(|&u| device_on(inv, u as usize, failed, memo)));
            memo[d] = Some(on);
            on
        }
        let mut feeds_on = |feeds: &[u32]| {
            feeds.is_empty()
                || feeds
                    .iter()
                    .any(|&u| device_on(inv, u as usize, failed, &mut memo))
        };
        let up: Vec<bool> = inv
            .servers
            .iter()
            .map(|s| {
                let rack = &inv.racks[s.rack as usize];
                let energized = !is_failed(s.element) && feeds_on(inv.feeds_of(s));
                energized && !is_failed(rack.element) && s.status != ServerStatus::Failed
            })
            .collect();
        let dev_up: Vec<bool> = inv
            .network_devices
            .iter()
            .map(|d| !is_failed(d.element) && feeds_on(&d.feeds))
            .collect();
        let node_up = |n: NetNode| match n {
            NetNode::Server(s) => up[s as usize],
            NetNode::Device(d) => dev_up[d as usize],
        };
        // Naive connectivity: a label per vertex, relaxed until stable.
        let sc = inv.servers.len();
        let idx = |n: NetNode| match n {
            NetNode::Server(s) => s as usize,
            NetNode::Device(d) => sc + d as usize,
        };
        let mut label: Vec<usize> = (0..sc + inv.network_devices.len()).collect();
        let live: Vec<(usize, usize)> = inv
            .links
            .iter()
            .filter(|l| {
                !is_failed(l.element)
                    && l.risk_group
                        .is_none_or(|g| !is_failed(inv.risk_groups[g as usize].element))
                    && node_up(l.a)
                    && node_up(l.b)
            })
            .map(|l| (idx(l.a), idx(l.b)))
            .collect();
        loop {
            let mut changed = false;
            for &(a, b) in &live {
                let m = label[a].min(label[b]);
                if label[a] != m || label[b] != m {
                    label[a] = m;
                    label[b] = m;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        State {
            up,
            component: label[..sc].to_vec(),
        }
    }
}
