//! Exact risk of one cell: its yearly outage probability over the minimal cut sets of one
//! and two elements (the contract's definition), without enumerating the zone's pairs.
//!
//! The risk sums `afr(e)` over single elements that give an outage, and the pair weight
//! `afr(e)·afr(f)·(repair_hours(e) + repair_hours(f)) / 8760` over pairs that give one while
//! neither element does alone. A cell out with nothing failed is *down*: risk 1.
//!
//! The failure model precomputes, for the whole zone, which vertices each element (and each
//! *special* pair) cuts off ([`topology::failure::Effects`]). A cell's terminals (clients
//! and nodes) then change state only under the few elements that touch them, and a pair
//! that is not special leaves every terminal connected exactly where both of its halves
//! do. Every other single leaves the cell as it is with nothing failed, and every other pair
//! as its touching half leaves it: such a pair is either covered by that single or no
//! outage, so only touching elements and explicit pairs are ever looked at
//! (ARCHITECTURE.md, "Exact risk").
//!
//! Here: the cell's shape and risk, and the evaluator that sums them; `states`: the
//! terminals' states and their enumeration; `reference`: the brute-force definition.

use topology::failure::Vertex;
use topology::{ElementId, FailureModel};

use states::{PairScratch, Singles, Terminal, Touch};

pub mod reference;
mod states;

/// Who a cell's servers are: distinct terminals with their roles.
#[derive(Debug, Clone, Default)]
pub struct CellShape {
    /// The distinct servers of the cell (clients first, then nodes not also clients).
    pub terminals: Vec<Vertex>,
    /// Per terminal: it is a client.
    pub is_client: Vec<bool>,
    /// Per terminal: it holds a node.
    pub is_node: Vec<bool>,
    /// Distinct clients.
    pub client_count: usize,
    /// Majority of the distinct nodes.
    pub quorum: usize,
    /// Terminal index of each client, in terminal order.
    pub client_slots: Vec<usize>,
    /// The client terminals, a bit per terminal index.
    pub client_bits: u64,
    /// The node terminals, a bit per terminal index.
    pub node_bits: u64,
}

impl CellShape {
    /// The shape of a cell with these clients and nodes (server indices; repeats count once).
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
        assert!(shape.terminals.len() < 64, "at most 63 distinct servers");
        shape.quorum = node_count / 2 + 1;
        for i in 0..shape.terminals.len() {
            if shape.is_client[i] {
                shape.client_slots.push(i);
                shape.client_bits |= 1 << i;
            }
            if shape.is_node[i] {
                shape.node_bits |= 1 << i;
            }
        }
        shape
    }

    /// The contract's outage rule for one state: `reach[k]` holds the terminals connected
    /// to the `k`-th client (itself included), or 0 when that client is down.
    pub fn outage(&self, reach: &[u64]) -> bool {
        for (k, &c) in self.client_slots.iter().enumerate() {
            let r = reach[k];
            if r == 0 {
                continue;
            }
            let needs = self.client_count == 1 || r & self.client_bits & !(1u64 << c) != 0;
            if needs && ((r & self.node_bits).count_ones() as usize) < self.quorum {
                return true;
            }
        }
        false
    }
}

/// One failure scenario that causes an outage, with its yearly weight (afr for a single,
/// the pair weight for a pair).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The failed elements: one, or two.
    pub elements: Vec<ElementId>,
    /// Its yearly weight.
    pub weight: f64,
}

/// The exact risk of a cell and what is behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRisk {
    /// Outages per year: the single part plus the pair part; 1 for a down cell.
    pub risk: f64,
    /// Sum of afr over the elements that give an outage alone (0 for a down cell).
    pub single_risk: f64,
    /// Sum of pair weights over the pairs that give an outage while neither element does
    /// alone (0 for a down cell).
    pub pair_risk: f64,
    /// The cell is out with nothing failed (e.g. nodes on failed servers): the contract's
    /// *down*, with risk 1 and no sums.
    pub down: bool,
    /// Elements whose failure alone gives an outage (for a down cell: those among the
    /// elements that touch the cell; every other element does too).
    pub breaking_singles: Vec<ElementId>,
    /// Heaviest explicit outage scenarios, heaviest first.
    pub top_scenarios: Vec<Scenario>,
    /// The minimal two-element cuts: pairs (lower id first) that give an outage while
    /// neither element does alone (empty for a down cell).
    pub pairs: Vec<(ElementId, ElementId)>,
    /// The single-failure view, as [`RiskEvaluator::single_failures`] gives it.
    pub singles: SingleFailures,
}

impl CellRisk {
    /// Not down, and no single element failure gives an outage.
    pub fn single_failure_safe(&self) -> bool {
        !self.down && self.breaking_singles.is_empty()
    }
}

/// Single-failure view of a cell, for blast radius.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SingleFailures {
    /// Out with nothing failed.
    pub down: bool,
    /// For a cell that is not down: exactly the elements whose failure gives an outage.
    /// For a down cell: the elements that touch the cell and whose failure does NOT give
    /// an outage.
    pub elements: Vec<ElementId>,
}

const TOP_SCENARIOS: usize = 5;

/// One step of [`RiskEvaluator::enumerate_states`]: a state of the terminals and the
/// scenario behind it. A state is, per client (in the order given), the terminals
/// connected to it, itself included (0 when the client is down).
///
/// Every single not visited leaves the base state, and every pair not visited leaves the
/// state of its touching half (or the base state): under the contract's risk such a pair
/// never counts (its touching half either breaks alone, which covers the pair, or
/// does not, and neither does the pair), so the visits are all a risk needs. A pair of
/// touching singles whose state is the meet of theirs is also left out when it takes
/// fewer than the [`Watch`]'s `must_lose` watched terminals from every client: no outage.
#[derive(Debug, Clone, Copy)]
pub enum StateEvent<'a> {
    /// The state with nothing failed.
    Base {
        /// The terminals' state.
        state: &'a [u64],
    },
    /// One element that touches the terminals, alone: the `index`-th single visited
    /// (0, 1, 2, ... in visiting order).
    Single {
        /// The element.
        element: ElementId,
        /// Its index among the singles visited.
        index: u32,
        /// The terminals' state with it failed.
        state: &'a [u64],
    },
    /// A pair whose state can differ from both halves'; `halves` are the single indices
    /// of its elements that touch the terminals (`None`: that element alone leaves the
    /// base state).
    Pair {
        /// The two elements.
        pair: (ElementId, ElementId),
        /// The single index of each element, when it touches the terminals.
        halves: [Option<u32>; 2],
        /// The terminals' state with both failed.
        state: &'a [u64],
    },
}

/// Which pairs a caller of [`RiskEvaluator::enumerate_states`] needs: those whose state
/// may take at least `must_lose` of the `terminals` (a bit mask over the terminal
/// indices) from some client. An outage of a cell with `n` nodes takes `n - quorum + 1`
/// of them; a pair that takes fewer from every client can never count.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// The watched terminals, a bit per terminal index.
    pub terminals: u64,
    /// How many watched terminals a client must lose for a pair to matter.
    pub must_lose: u32,
    /// The client terminals when there are several (a client that reaches none of the
    /// others does not need a quorum); 0 for one client.
    pub clients: u64,
}

impl Watch {
    /// How many watched terminals client terminal `c` loses in a state where it reaches
    /// `reach`: 0 when it does not need a quorum there (down, or cut off from every
    /// other client), as neither it nor any state below it can have an outage.
    fn takes(&self, c: usize, reach: u64) -> u32 {
        let needs = reach != 0 && (self.clients == 0 || reach & self.clients & !(1 << c) != 0);
        if needs {
            (self.terminals & !reach).count_ones()
        } else {
            0
        }
    }
}

/// Evaluates cells on one failure model; keeps scratch space between calls (one per thread).
#[derive(Debug)]
pub struct RiskEvaluator<'m> {
    model: &'m FailureModel,
    /// Local index of an element among the current cell's touching elements, by epoch.
    local_stamp: Vec<u32>,
    local_index: Vec<u32>,
    epoch: u32,
    terminals: Vec<Terminal>,
    touches: Vec<(ElementId, u8, Touch)>,
    /// Per touching element (local index): its range in `touches`.
    touch_range: Vec<(u32, u32)>,
    /// The special pairs that touch a terminal as pairs (a power pair removing it or
    /// its dead end's anchor, a piece holding its anchor), with those terminals as a bit
    /// mask; `special_stamp[s] == epoch` when special `s` is at `special_slot[s]` there.
    special_touches: Vec<(u32, u64)>,
    special_stamp: Vec<u32>,
    special_slot: Vec<u32>,
    labels: Vec<u64>,
    rank: Vec<u8>,
    /// The dead ends' links, side by side ([`Terminal::links`]).
    links: Vec<u32>,
    /// Buffers of the last call, kept for the next one (a table is built per request).
    spare: Singles,
    scratch: PairScratch,
}

impl<'m> RiskEvaluator<'m> {
    /// An evaluator on `model`, with empty scratch buffers.
    pub fn new(model: &'m FailureModel) -> RiskEvaluator<'m> {
        RiskEvaluator {
            model,
            local_stamp: vec![0; model.element_count()],
            local_index: vec![0; model.element_count()],
            epoch: 0,
            terminals: Vec::new(),
            touches: Vec::new(),
            touch_range: Vec::new(),
            special_touches: Vec::new(),
            special_stamp: vec![0; model.effects().special_count()],
            special_slot: vec![0; model.effects().special_count()],
            labels: Vec::new(),
            rank: Vec::new(),
            links: Vec::new(),
            spare: Singles::default(),
            scratch: PairScratch::default(),
        }
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.local_stamp.iter_mut().for_each(|s| *s = 0);
            self.special_stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
    }

    fn local(&self, e: ElementId) -> Option<u32> {
        (self.local_stamp[e.index()] == self.epoch).then(|| self.local_index[e.index()])
    }

    /// Exact risk of a cell with these clients and nodes (server indices).
    pub fn evaluate(&mut self, clients: &[u32], nodes: &[u32]) -> CellRisk {
        let shape = CellShape::new(clients, nodes);
        self.evaluate_shape(&shape)
    }

    /// [`RiskEvaluator::evaluate`] for a shape already built.
    pub fn evaluate_shape(&mut self, shape: &CellShape) -> CellRisk {
        let model = self.model;
        let mut top: Vec<Scenario> = Vec::new();
        let mut breaking = Vec::new();
        let mut changed = Vec::new();
        // Per visited single (by index): it gives an outage alone.
        let mut single_out: Vec<bool> = Vec::new();
        let mut single = 0.0;
        let mut pair = 0.0;
        let mut pairs = Vec::new();
        let mut down = false;
        self.enumerate_states(
            &shape.terminals,
            &shape.client_slots,
            Watch {
                terminals: shape.node_bits,
                must_lose: (shape.node_bits.count_ones() + 1).saturating_sub(shape.quorum as u32),
                clients: if shape.client_count > 1 {
                    shape.client_bits
                } else {
                    0
                },
            },
            &mut |event| match event {
                StateEvent::Base { state } => down = shape.outage(state),
                StateEvent::Single { element, state, .. } => {
                    let out = shape.outage(state);
                    single_out.push(out);
                    if out != down {
                        changed.push(element);
                    }
                    if out {
                        breaking.push(element);
                        if !down {
                            let w = model.afr(element);
                            single += w;
                            top.push(Scenario {
                                elements: vec![element],
                                weight: w,
                            });
                        }
                    }
                }
                StateEvent::Pair {
                    pair: (e, f),
                    halves,
                    state,
                } => {
                    // A pair is a minimal cut only when neither half breaks alone.
                    let covered = halves
                        .iter()
                        .any(|h| h.is_some_and(|i| single_out[i as usize]));
                    if !down && !covered && shape.outage(state) {
                        let w = model.pair_weight(e, f);
                        pair += w;
                        pairs.push((e.min(f), e.max(f)));
                        top.push(Scenario {
                            elements: vec![e, f],
                            weight: w,
                        });
                    }
                }
            },
        );

        top.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.elements.cmp(&b.elements))
        });
        top.truncate(TOP_SCENARIOS);
        CellRisk {
            risk: if down { 1.0 } else { single + pair },
            single_risk: single,
            pair_risk: pair,
            down,
            breaking_singles: breaking,
            top_scenarios: top,
            pairs,
            singles: SingleFailures {
                down,
                elements: changed,
            },
        }
    }

    /// Which single failures give this cell an outage (for blast radius); cheaper than
    /// [`RiskEvaluator::evaluate`]: no pairs.
    pub fn single_failures(&mut self, clients: &[u32], nodes: &[u32]) -> SingleFailures {
        let shape = CellShape::new(clients, nodes);
        let singles = self.singles(&shape.terminals, &shape.client_slots);
        let nc = shape.client_slots.len();
        let down = shape.outage(&singles.base);
        let elements = singles
            .elements
            .iter()
            .enumerate()
            .filter(|&(i, _)| shape.outage(&singles.reach[i * nc..(i + 1) * nc]) != down)
            .map(|(_, &e)| e)
            .collect();
        self.spare = singles;
        SingleFailures { down, elements }
    }
}
