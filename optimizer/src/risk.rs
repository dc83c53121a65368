//! Exact risk of one cell over all single and double element failures, without
//! enumerating the zone's element pairs.
//!
//! Only elements that touch a spanning forest of the cell's servers can change its state
//! (see ARCHITECTURE.md, "Exact risk"): `Rel0` are the elements hitting the no-failure
//! forest; for each of them a forest under its failure gives the elements that matter in a
//! pair with it. Every other element leaves the cell's state as it was, so its singles and
//! pairs are summed in closed form from the zone's total afr.

use rustc_hash::FxHashMap;
use topology::failure::{Components, Forest, Searcher, Vertex, DOWN};
use topology::{ElementId, FailureModel};

/// Who a cell's servers are: distinct terminals with their roles.
#[derive(Debug, Clone, Default)]
pub struct CellShape {
    pub terminals: Vec<Vertex>,
    pub is_client: Vec<bool>,
    pub is_node: Vec<bool>,
    pub client_count: usize,
    pub quorum: usize,
}

impl CellShape {
    pub fn new(clients: &[u32], nodes: &[u32]) -> CellShape {
        let mut shape = CellShape::default();
        let slot = |s: u32, shape: &mut CellShape| -> usize {
            match shape.terminals.iter().position(|&t| t == s) {
                Some(i) => i,
                None => {
                    shape.terminals.push(s);
                    shape.is_client.push(false);
                    shape.is_node.push(false);
                    shape.terminals.len() - 1
                }
            }
        };
        for &c in clients {
            let i = slot(c, &mut shape);
            if !shape.is_client[i] {
                shape.is_client[i] = true;
                shape.client_count += 1;
            }
        }
        let mut node_count = 0;
        for &n in nodes {
            let i = slot(n, &mut shape);
            if !shape.is_node[i] {
                shape.is_node[i] = true;
                node_count += 1;
            }
        }
        shape.quorum = node_count / 2 + 1;
        shape
    }

    /// The contract's outage rule for one state of the terminals.
    pub fn outage(&self, comp: &[u8]) -> bool {
        let k = self.terminals.len();
        for c in 0..k {
            if !self.is_client[c] || comp[c] == DOWN {
                continue;
            }
            let needs = self.client_count == 1
                || (0..k).any(|o| o != c && self.is_client[o] && comp[o] == comp[c]);
            if !needs {
                continue;
            }
            let reachable = (0..k)
                .filter(|&n| self.is_node[n] && comp[n] == comp[c])
                .count();
            if reachable < self.quorum {
                return true;
            }
        }
        false
    }
}

/// One failure scenario that causes an outage, with its probability weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub elements: Vec<ElementId>,
    pub weight: f64,
}

/// The exact risk of a cell and what is behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRisk {
    /// Single-failure part plus pair part.
    pub risk: f64,
    pub single_risk: f64,
    pub pair_risk: f64,
    /// The cell is already out with nothing failed (e.g. nodes on failed servers).
    pub baseline_outage: bool,
    /// Elements whose failure alone gives an outage (with a baseline outage: those among
    /// the elements that touch the cell; every other element does too).
    pub breaking_singles: Vec<ElementId>,
    /// Heaviest explicit outage scenarios, heaviest first.
    pub top_scenarios: Vec<Scenario>,
    /// Elements that can change the cell's state alone or in a pair.
    pub relevant_elements: usize,
    /// The single-failure view, as [`RiskEvaluator::single_failures`] gives it.
    pub singles: SingleFailures,
}

impl CellRisk {
    pub fn single_failure_safe(&self) -> bool {
        !self.baseline_outage && self.breaking_singles.is_empty()
    }
}

/// Single-failure view of a cell, for blast radius.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SingleFailures {
    pub baseline_outage: bool,
    /// With no baseline outage: exactly the elements whose failure gives an outage.
    /// With one: the elements that touch the cell and whose failure does NOT give an outage.
    pub elements: Vec<ElementId>,
}

const TOP_SCENARIOS: usize = 5;

/// Lets [`RiskEvaluator::enumerate_states`] skip pairs that cannot matter to a choice of
/// members: a pair is skipped when, even in the base forest alone (a lower bound of the
/// connectivity), no client that stays up loses `must_lose` members.
#[derive(Debug, Clone, Copy)]
pub struct PairScreen<'a> {
    /// Per terminal: its member bit (0 for a terminal that is not a member).
    pub member_bits: &'a [u64],
    /// Terminal indices of the clients.
    pub clients: &'a [usize],
    pub must_lose: u32,
}

/// What each relevant element cuts from each client in the base forest.
#[derive(Debug)]
struct ForestCuts {
    clients: usize,
    must_lose: u32,
    /// Members not in the client's base tree at all.
    base_lost: Vec<u64>,
    /// `[element * clients + client]`: members below what the element removes.
    single: Vec<u64>,
    /// ((i, j) local pair, client, members) for power pairs that remove a forest vertex.
    pairs: Vec<((u32, u32), usize, u64)>,
    /// Whether a local element is half of any such pair.
    has_pairs: Vec<bool>,
}

/// A piece of a forest whose removal cuts off the subtree below it.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Vertex(Vertex),
    Link(u32),
}

/// Roots `forest` at each client and reports, for every vertex and link, the members in
/// the subtree it would cut off (`visit(client, cut, members)`). Returns, per client, the
/// members not in its tree at all.
fn walk_cuts(
    screen: &PairScreen<'_>,
    terminals: &[Vertex],
    forest: &Forest,
    mut visit: impl FnMut(usize, Cut, u64),
) -> Vec<u64> {
    let index: FxHashMap<Vertex, usize> = forest
        .vertices
        .iter()
        .enumerate()
        .map(|(i, &v)| (v, i))
        .collect();
    let nv = forest.vertices.len();
    let mut adjacency: Vec<Vec<(usize, u32)>> = vec![Vec::new(); nv];
    for &(a, b, l) in &forest.edges {
        let (ia, ib) = (index[&a], index[&b]);
        adjacency[ia].push((ib, l));
        adjacency[ib].push((ia, l));
    }
    let mut own_bits = vec![0u64; nv];
    let mut all_members = 0u64;
    for (t, &v) in terminals.iter().enumerate() {
        all_members |= screen.member_bits[t];
        if let Some(&i) = index.get(&v) {
            own_bits[i] |= screen.member_bits[t];
        }
    }
    let mut base_lost = vec![all_members; screen.clients.len()];
    let mut parent = vec![usize::MAX; nv];
    let mut order = Vec::with_capacity(nv);
    let mut sub = vec![0u64; nv];
    for (ci, &t) in screen.clients.iter().enumerate() {
        let Some(&root) = index.get(&terminals[t]) else {
            continue;
        };
        parent.iter_mut().for_each(|p| *p = usize::MAX);
        order.clear();
        parent[root] = root;
        order.push(root);
        let mut at = 0;
        while at < order.len() {
            let v = order[at];
            at += 1;
            for &(w, _) in &adjacency[v] {
                if parent[w] == usize::MAX {
                    parent[w] = v;
                    order.push(w);
                }
            }
        }
        for &v in order.iter().rev() {
            sub[v] = own_bits[v];
            for &(w, _) in &adjacency[v] {
                if parent[w] == v && w != v {
                    sub[v] |= sub[w];
                }
            }
        }
        base_lost[ci] = all_members & !sub[root];
        for &v in &order {
            visit(ci, Cut::Vertex(forest.vertices[v]), sub[v]);
            for &(w, l) in &adjacency[v] {
                if parent[w] == v && w != v {
                    visit(ci, Cut::Link(l), sub[w]);
                }
            }
        }
    }
    base_lost
}

/// What each element cuts from each client in the forest under one failed element.
#[derive(Debug)]
struct CutsUnder {
    base_lost: Vec<u64>,
    by_element: FxHashMap<ElementId, Vec<u64>>,
    must_lose: u32,
}

impl CutsUnder {
    /// Whether `other`, failing with the element this forest survives, leaves every client
    /// short of `must_lose` lost members even in this forest alone.
    fn inert(&self, other: ElementId) -> bool {
        let cut = self.by_element.get(&other);
        (0..self.base_lost.len()).all(|ci| {
            let lost = self.base_lost[ci] | cut.map_or(0, |c| c[ci]);
            lost.count_ones() < self.must_lose
        })
    }
}

impl ForestCuts {
    /// Whether Rel0 element `i` (with `j`, or with any element outside Rel0) can leave no
    /// up client short of `must_lose` members.
    fn inert(&self, i: usize, j: Option<usize>) -> bool {
        let k = self.clients;
        let key = j.map(|j| (i.min(j) as u32, i.max(j) as u32));
        for ci in 0..k {
            let mut lost = self.base_lost[ci] | self.single[i * k + ci];
            if let Some(j) = j {
                lost |= self.single[j * k + ci];
            }
            if lost.count_ones() < self.must_lose {
                if let (Some(key), true) = (key, self.has_pairs[i]) {
                    let from = self.pairs.partition_point(|&(p, c, _)| (p, c) < (key, ci));
                    for &(p, c, m) in &self.pairs[from..] {
                        if p != key || c != ci {
                            break;
                        }
                        lost |= m;
                    }
                }
                if lost.count_ones() < self.must_lose {
                    continue;
                }
            }
            // Enough may be lost (whether the client is up or needs the cell is left to
            // the exact state).
            return false;
        }
        true
    }
}

/// One step of [`RiskEvaluator::enumerate_states`]: a state of the terminals and the
/// scenarios behind it.
#[derive(Debug, Clone, Copy)]
pub enum StateEvent<'a> {
    /// The state with nothing failed; `single_mass` and `pair_mass` are the probability
    /// of every single and every pair that leaves it unchanged (no element of it touches
    /// the terminals' forest), summed in closed form.
    Base {
        state: &'a [u8],
        single_mass: f64,
        pair_mass: f64,
    },
    /// One relevant element alone.
    Single { element: ElementId, state: &'a [u8] },
    /// One explicit pair.
    Pair {
        pair: (ElementId, ElementId),
        state: &'a [u8],
    },
    /// `element` with any element that touches nothing: `mass` in total, the state under
    /// `element` alone.
    WithRest {
        element: ElementId,
        mass: f64,
        state: &'a [u8],
    },
}

/// Evaluates cells on one failure model; keeps scratch space between calls (one per thread).
#[derive(Debug)]
pub struct RiskEvaluator<'m> {
    model: &'m FailureModel,
    searcher: Searcher<'m>,
    /// Local index of an element in the current cell's relevant set, by epoch stamp.
    local_stamp: Vec<u32>,
    local_index: Vec<u32>,
    epoch: u32,
    forest: Forest,
}

impl<'m> RiskEvaluator<'m> {
    pub fn new(model: &'m FailureModel) -> RiskEvaluator<'m> {
        RiskEvaluator {
            model,
            searcher: Searcher::new(model),
            local_stamp: vec![0; model.element_count()],
            local_index: vec![0; model.element_count()],
            epoch: 0,
            forest: Forest::default(),
        }
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.local_stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
    }

    fn local(&self, e: ElementId) -> Option<u32> {
        (self.local_stamp[e.index()] == self.epoch).then(|| self.local_index[e.index()])
    }

    /// Every element hitting `forest`: alone (`hit1`, links) or, when `partner_of` is given,
    /// the partners of that element in pair cuts of forest vertices. Without a partner,
    /// both members of every pair cut count.
    fn forest_hitters(
        model: &FailureModel,
        forest: &Forest,
        partner_of: Option<ElementId>,
        out: &mut Vec<ElementId>,
    ) {
        out.clear();
        for &v in &forest.vertices {
            out.extend_from_slice(model.single_hits(v));
            for &(a, b) in model.pair_hits(v) {
                match partner_of {
                    None => {
                        out.push(a);
                        out.push(b);
                    }
                    Some(e) if e == a => out.push(b),
                    Some(e) if e == b => out.push(a),
                    Some(_) => {}
                }
            }
        }
        for &(_, _, l) in &forest.edges {
            out.extend(model.link_hits(l));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Per Rel0 element and client: the members the element cuts off from that client in
    /// the base forest (rooted at the client), for [`PairScreen`].
    fn forest_cuts(
        &self,
        screen: &PairScreen<'_>,
        terminals: &[Vertex],
        forest: &Forest,
        rel0: &[ElementId],
    ) -> ForestCuts {
        let model = self.model;
        let k = screen.clients.len();
        let n = rel0.len();
        let local = |e: ElementId| self.local(e).map(|i| i as usize);
        let mut single = vec![0u64; n * k];
        let mut pairs = Vec::new();
        let base_lost = walk_cuts(screen, terminals, forest, |ci, cut, mask| match cut {
            Cut::Vertex(v) => {
                for &e in model.single_hits(v) {
                    if let Some(i) = local(e) {
                        single[i * k + ci] |= mask;
                    }
                }
                for &(a, b) in model.pair_hits(v) {
                    if let (Some(i), Some(j)) = (local(a), local(b)) {
                        pairs.push(((i.min(j) as u32, i.max(j) as u32), ci, mask));
                    }
                }
            }
            Cut::Link(l) => {
                for e in model.link_hits(l) {
                    if let Some(i) = local(e) {
                        single[i * k + ci] |= mask;
                    }
                }
            }
        });
        pairs.sort_unstable_by_key(|&(p, c, _)| (p, c));
        let mut has_pairs = vec![false; n];
        for &((i, j), _, _) in &pairs {
            has_pairs[i as usize] = true;
            has_pairs[j as usize] = true;
        }
        ForestCuts {
            clients: k,
            must_lose: screen.must_lose,
            base_lost,
            single,
            pairs,
            has_pairs,
        }
    }

    /// What every element cuts, per client, from the forest under `failed` (a forest that
    /// survives `failed`), with `failed` as the partner of power pairs.
    fn cuts_under(
        &self,
        screen: &PairScreen<'_>,
        terminals: &[Vertex],
        forest: &Forest,
        failed: ElementId,
    ) -> CutsUnder {
        let model = self.model;
        let k = screen.clients.len();
        let mut by_element: FxHashMap<ElementId, Vec<u64>> = FxHashMap::default();
        let mut add = |e: ElementId, ci: usize, mask: u64| {
            by_element.entry(e).or_insert_with(|| vec![0; k])[ci] |= mask;
        };
        let base_lost = walk_cuts(screen, terminals, forest, |ci, cut, mask| match cut {
            Cut::Vertex(v) => {
                for &e in model.single_hits(v) {
                    add(e, ci, mask);
                }
                for &(a, b) in model.pair_hits(v) {
                    if a == failed {
                        add(b, ci, mask);
                    } else if b == failed {
                        add(a, ci, mask);
                    }
                }
            }
            Cut::Link(l) => {
                for e in model.link_hits(l) {
                    add(e, ci, mask);
                }
            }
        });
        CutsUnder {
            base_lost,
            by_element,
            must_lose: screen.must_lose,
        }
    }

    /// Exact risk of a cell with these clients and nodes (server indices).
    pub fn evaluate(&mut self, clients: &[u32], nodes: &[u32]) -> CellRisk {
        let shape = CellShape::new(clients, nodes);
        self.evaluate_shape(&shape)
    }

    /// The state under `scenario`: connectivity within `forests` (part of the graph) is a
    /// lower bound and `upper` (the meet of states under sub-scenarios) an upper bound;
    /// when they agree no search is needed, otherwise the search starts from the lower
    /// bound. With `forest_out`, also a spanning forest under `scenario`.
    fn state_between(
        &mut self,
        terminals: &[Vertex],
        forests: &[&Forest],
        upper: &[u8],
        scenario: &[ElementId],
        forest_out: Option<&mut Forest>,
    ) -> (Components, bool) {
        let lower = self
            .searcher
            .forest_components(terminals, forests, scenario);
        if same_partition(&lower, upper) {
            return (lower, false);
        }
        match forest_out {
            Some(out) => {
                let state =
                    self.searcher
                        .components_seeded(terminals, scenario, Some(&lower), Some(out));
                // The search returns only the new paths; the known forests' survivors join them.
                self.searcher.surviving(forests, scenario, out);
                (state, true)
            }
            None => (
                self.searcher
                    .components_seeded(terminals, scenario, Some(&lower), None),
                true,
            ),
        }
    }

    pub fn evaluate_shape(&mut self, shape: &CellShape) -> CellRisk {
        let model = self.model;
        let p = |e: ElementId| model.afr(e);
        let mut top: Vec<Scenario> = Vec::new();
        let mut breaking = Vec::new();
        let mut changed = Vec::new();
        let mut single = 0.0;
        let mut pair = 0.0;
        let mut base_out = false;
        let relevant = self.enumerate_states(&shape.terminals, None, &mut |event| match event {
            StateEvent::Base {
                state,
                single_mass,
                pair_mass,
            } => {
                base_out = shape.outage(state);
                if base_out {
                    single += single_mass;
                    pair += pair_mass;
                }
            }
            StateEvent::Single { element, state } => {
                let out = shape.outage(state);
                if out != base_out {
                    changed.push(element);
                }
                if out {
                    single += p(element);
                    breaking.push(element);
                    top.push(Scenario {
                        elements: vec![element],
                        weight: p(element),
                    });
                }
            }
            StateEvent::Pair {
                pair: (e, f),
                state,
            } => {
                if shape.outage(state) {
                    let w = p(e) * p(f);
                    pair += w;
                    top.push(Scenario {
                        elements: vec![e, f],
                        weight: w,
                    });
                }
            }
            StateEvent::WithRest { mass, state, .. } => {
                if shape.outage(state) {
                    pair += mass;
                }
            }
        });

        top.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.elements.cmp(&b.elements))
        });
        top.truncate(TOP_SCENARIOS);
        CellRisk {
            risk: single + pair,
            single_risk: single,
            pair_risk: pair,
            baseline_outage: base_out,
            breaking_singles: breaking,
            top_scenarios: top,
            relevant_elements: relevant,
            singles: SingleFailures {
                baseline_outage: base_out,
                elements: changed,
            },
        }
    }

    /// Every distinct state of `terminals` over all single and pair failures, with its
    /// probability mass, without enumerating the zone's pairs: `visit` sees the base state
    /// first (with the closed-form mass of everything that leaves it unchanged), then each
    /// relevant single in order, then pairs. Returns how many elements were relevant.
    ///
    /// Both the risk of one cell and the placement tables (one cell's clients against a
    /// pool of candidate servers) are sums over these events.
    pub fn enumerate_states(
        &mut self,
        terminals: &[Vertex],
        screen: Option<&PairScreen<'_>>,
        visit: &mut dyn FnMut(StateEvent<'_>),
    ) -> usize {
        let model = self.model;
        let mut base_forest = Forest::default();
        let base = self
            .searcher
            .components(terminals, &[], Some(&mut base_forest));

        // Rel0: the elements hitting the no-failure forest.
        let mut rel0 = Vec::new();
        Self::forest_hitters(model, &base_forest, None, &mut rel0);
        self.next_epoch();
        for (i, e) in rel0.iter().enumerate() {
            self.local_stamp[e.index()] = self.epoch;
            self.local_index[e.index()] = i as u32;
        }
        let n = rel0.len();
        let cuts = screen.map(|s| self.forest_cuts(s, terminals, &base_forest, &rel0));

        // State, forest and forest-hitters under each single failure in Rel0.
        let mut states: Vec<Components> = Vec::with_capacity(n);
        let mut forests: Vec<Option<Forest>> = Vec::with_capacity(n);
        let mut hits_local: Vec<Vec<u32>> = Vec::with_capacity(n);
        let mut extra: Vec<Vec<ElementId>> = Vec::with_capacity(n);
        let mut scratch = Vec::new();
        for &e in &rel0 {
            let mut f = Forest::default();
            let (state, searched) =
                self.state_between(terminals, &[&base_forest], &base, &[e], Some(&mut f));
            // Without a search the base forest still spans what it spanned: it serves.
            let forest = searched.then_some(f);
            Self::forest_hitters(
                model,
                forest.as_ref().unwrap_or(&base_forest),
                Some(e),
                &mut scratch,
            );
            let mut local = Vec::new();
            let mut outside = Vec::new();
            for &f in &scratch {
                if f == e {
                    continue;
                }
                match self.local(f) {
                    Some(j) => local.push(j),
                    None => outside.push(f),
                }
            }
            local.sort_unstable();
            states.push(state);
            forests.push(forest);
            hits_local.push(local);
            extra.push(outside);
        }

        let p = |e: ElementId| model.afr(e);
        let p_rel0: f64 = rel0.iter().map(|&e| p(e)).sum();
        let q_rel0: f64 = rel0.iter().map(|&e| p(e) * p(e)).sum();
        let p_rest = model.total_afr - p_rel0;
        let q_rest = model.total_afr_sq - q_rel0;
        visit(StateEvent::Base {
            state: &base,
            single_mass: p_rest,
            // Pairs of two elements outside Rel0 keep the baseline state.
            pair_mass: (p_rest * p_rest - q_rest) / 2.0,
        });
        for (i, &e) in rel0.iter().enumerate() {
            visit(StateEvent::Single {
                element: e,
                state: &states[i],
            });
        }

        // Second-level screen, built lazily: cuts in the forest under one element.
        let mut under: Vec<Option<CutsUnder>> = (0..n).map(|_| None).collect();
        let mut inert_under = |k: usize, other: ElementId, this: &Self| -> bool {
            let (Some(screen), Some(forest)) = (screen, forests[k].as_ref()) else {
                return false;
            };
            under[k]
                .get_or_insert_with(|| this.cuts_under(screen, terminals, forest, rel0[k]))
                .inert(other)
        };
        let mut relevant = n;
        for i in 0..n {
            let ei = rel0[i];
            let forest_i = forests[i].as_ref().unwrap_or(&base_forest);
            // With a screen, ei alone (with any element outside Rel0, which leaves the
            // base forest whole) cannot cost enough: skip its outside pairs.
            let alone_inert = cuts.as_ref().is_some_and(|c| c.inert(i, None));
            // Pairs inside Rel0.
            for j in i + 1..n {
                let ej = rel0[j];
                if cuts.as_ref().is_some_and(|c| c.inert(i, Some(j))) {
                    continue;
                }
                if hits_local[i].binary_search(&(j as u32)).is_err() {
                    visit(StateEvent::Pair {
                        pair: (ei, ej),
                        state: &states[i],
                    });
                } else if hits_local[j].binary_search(&(i as u32)).is_err() {
                    visit(StateEvent::Pair {
                        pair: (ei, ej),
                        state: &states[j],
                    });
                } else if cuts.is_some() && (inert_under(i, ej, self) || inert_under(j, ei, self)) {
                    continue;
                } else {
                    let pair_scenario = [ei, ej];
                    let upper = meet(&states[i], &states[j]);
                    // A forest under one element already holds what survives of the base
                    // forest: the fewer forests, the cheaper the lower bound.
                    let known: &[&Forest] = match (&forests[i], &forests[j]) {
                        (Some(a), Some(b)) => &[a, b],
                        (Some(a), None) | (None, Some(a)) => &[a],
                        (None, None) => &[&base_forest],
                    };
                    let (state, _) =
                        self.state_between(terminals, known, &upper, &pair_scenario, None);
                    visit(StateEvent::Pair {
                        pair: (ei, ej),
                        state: &state,
                    });
                }
            }
            relevant += extra[i].len();
            if alone_inert {
                continue;
            }
            // Pairs with an element outside Rel0 that touches the forest under ei.
            let mut p_extra = 0.0;
            for &f in &extra[i] {
                p_extra += p(f);
                if cuts.is_some() && inert_under(i, f, self) {
                    continue;
                }
                let pair_scenario = [ei, f];
                let (state, _) = self.state_between(
                    terminals,
                    &[&base_forest, forest_i],
                    &states[i],
                    &pair_scenario,
                    None,
                );
                visit(StateEvent::Pair {
                    pair: (ei, f),
                    state: &state,
                });
            }
            // Pairs with every other element outside Rel0: the state under ei alone.
            visit(StateEvent::WithRest {
                element: ei,
                mass: p(ei) * (p_rest - p_extra),
                state: &states[i],
            });
        }
        relevant
    }

    /// Which single failures give this cell an outage (for blast radius); cheaper than
    /// [`RiskEvaluator::evaluate`]: no pairs, and most singles settled on the base forest.
    pub fn single_failures(&mut self, clients: &[u32], nodes: &[u32]) -> SingleFailures {
        let shape = CellShape::new(clients, nodes);
        let model = self.model;
        let mut forest = std::mem::take(&mut self.forest);
        let base = self
            .searcher
            .components(&shape.terminals, &[], Some(&mut forest));
        let base_out = shape.outage(&base);
        let mut rel0 = Vec::new();
        Self::forest_hitters(model, &forest, None, &mut rel0);
        let mut elements = Vec::new();
        for &e in &rel0 {
            let (state, _) = self.state_between(&shape.terminals, &[&forest], &base, &[e], None);
            if shape.outage(&state) != base_out {
                elements.push(e);
            }
        }
        self.forest = forest;
        SingleFailures {
            baseline_outage: base_out,
            elements,
        }
    }
}

/// The finest partition coarser than neither: together only where together in both.
fn meet(a: &[u8], b: &[u8]) -> Components {
    let k = a.len();
    let mut out = vec![DOWN; k];
    for i in 0..k {
        if a[i] == DOWN || b[i] == DOWN || out[i] != DOWN {
            continue;
        }
        for j in i..k {
            if a[j] == a[i] && b[j] == b[i] {
                out[j] = i as u8;
            }
        }
    }
    out
}

/// Whether two states agree on which terminals are down and which are together.
fn same_partition(a: &[u8], b: &[u8]) -> bool {
    // Canonical labels (smallest member index) make equal partitions equal vectors, but
    // `b` may have more terminals up: compare only on those up in `a`, pairwise.
    let k = a.len();
    for i in 0..k {
        if a[i] == DOWN {
            continue;
        }
        if b[i] == DOWN {
            return false;
        }
        for j in i + 1..k {
            if a[j] != DOWN && (a[i] == a[j]) != (b[i] == b[j]) {
                return false;
            }
        }
    }
    true
}

/// The literal definition, by brute force over every single and pair of elements. Only
/// for tests on small inventories: it is quadratic in the zone's elements.
pub mod reference {
    use topology::failure::reference::state;
    use topology::Inventory;

    use super::*;

    fn outage(inv: &Inventory, clients: &[u32], nodes: &[u32], failed: &[ElementId]) -> bool {
        let st = state(inv, failed);
        let mut cl: Vec<u32> = clients.to_vec();
        cl.sort_unstable();
        cl.dedup();
        let mut nd: Vec<u32> = nodes.to_vec();
        nd.sort_unstable();
        nd.dedup();
        let quorum = nd.len() / 2 + 1;
        let connected = |a: u32, b: u32| {
            st.up[a as usize]
                && st.up[b as usize]
                && st.component[a as usize] == st.component[b as usize]
        };
        cl.iter().any(|&c| {
            let needs = st.up[c as usize]
                && (cl.len() == 1 || cl.iter().any(|&o| o != c && connected(c, o)));
            needs && nd.iter().filter(|&&n| connected(c, n)).count() < quorum
        })
    }

    /// (risk, breaking single elements, baseline outage).
    pub fn risk(inv: &Inventory, clients: &[u32], nodes: &[u32]) -> (f64, Vec<ElementId>, bool) {
        let m = inv.elements.len();
        let afr = |i: usize| inv.elements[i].afr;
        let id = |i: usize| ElementId(i as u32);
        let base = outage(inv, clients, nodes, &[]);
        let mut risk = 0.0;
        let mut breaking = Vec::new();
        for i in 0..m {
            if outage(inv, clients, nodes, &[id(i)]) {
                risk += afr(i);
                breaking.push(id(i));
            }
        }
        for i in 0..m {
            for j in i + 1..m {
                if outage(inv, clients, nodes, &[id(i), id(j)]) {
                    risk += afr(i) * afr(j);
                }
            }
        }
        (risk, breaking, base)
    }

    /// Blast radius of every element over a set of (clients, nodes) cells.
    pub fn blast_radius(inv: &Inventory, cells: &[(Vec<u32>, Vec<u32>)]) -> Vec<u32> {
        (0..inv.elements.len())
            .map(|i| {
                cells
                    .iter()
                    .filter(|(c, n)| outage(inv, c, n, &[ElementId(i as u32)]))
                    .count() as u32
            })
            .collect()
    }
}
