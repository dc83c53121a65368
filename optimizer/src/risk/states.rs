//! The state machinery behind every risk: the terminals' states under each touching
//! single, the special pairs at the terminals, and the enumeration of every state a risk
//! can count ([`RiskEvaluator::enumerate_states`]).

use topology::failure::Vertex;
use topology::ElementId;

use super::{RiskEvaluator, StateEvent, Watch};

/// Labels of a terminal's component under one scenario; equal labels, same component.
const DOWN_LABEL: u64 = u64::MAX;
const PIECE: u64 = 1 << 40;
const ALONE: u64 = 2 << 40;
const NO_VERTEX: Vertex = u32::MAX;

/// How a terminal connects: itself, or (a dead end) through its one neighbour.
#[derive(Debug, Clone)]
pub(super) struct Terminal {
    vertex: Vertex,
    /// The vertex whose component the terminal shares: itself when it can carry traffic,
    /// its one neighbour when it is a dead end, none when it has no link.
    anchor: Vertex,
    dead_end: bool,
    /// A dead end's links (all to its anchor): `RiskEvaluator::links[from..to]`.
    links: (u32, u32),
    base_label: u64,
}

/// What one element does to one terminal by itself; ordered so that the strongest
/// effect on a terminal comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Touch {
    Down,
    Alone,
    Piece(u32),
}

/// The pair lists [`RiskEvaluator::enumerate_states`] builds, kept between calls.
#[derive(Debug, Default)]
pub(super) struct PairScratch {
    special: Vec<((ElementId, ElementId), Option<u32>)>,
    dead_end: Vec<((ElementId, ElementId), u8)>,
    inner: Vec<(u32, u32, Option<u32>)>,
    with_one: Vec<(u32, ElementId, Option<u32>)>,
    outer: Vec<((ElementId, ElementId), Option<u32>)>,
    loss: Vec<u32>,
    /// Per shortfall `t`, `at_least[at_least_from[t]..at_least_from[t + 1]]`.
    at_least: Vec<u32>,
    at_least_from: Vec<usize>,
    pair_state: Vec<u64>,
}

/// The touching elements of one cell and their single states.
#[derive(Debug, Default)]
pub(super) struct Singles {
    pub(super) elements: Vec<ElementId>,
    /// `reach[i * clients..(i + 1) * clients]`: the state under `elements[i]`.
    pub(super) reach: Vec<u64>,
    /// The terminals `elements[i]` removes or cuts off by itself (down, or a dead end
    /// alone), as a bit mask: what it adds to a special pair's state.
    hit: Vec<u64>,
    pub(super) base: Vec<u64>,
}

impl RiskEvaluator<'_> {
    /// Terminal data, base labels and every element that touches a terminal, with its
    /// state; local indices of those elements are set.
    pub(super) fn singles(&mut self, terminals: &[Vertex], clients: &[usize]) -> Singles {
        let model = self.model;
        let effects = model.effects();
        assert!(terminals.len() < 64, "at most 63 terminals");
        self.terminals.clear();
        self.touches.clear();
        self.links.clear();
        for (i, &t) in terminals.iter().enumerate() {
            let neighbours = model.neighbours(t);
            let dead_end = !model.is_transit(t) && !neighbours.is_empty();
            let anchor = if model.is_transit(t) {
                t
            } else if dead_end {
                neighbours[0].0
            } else {
                NO_VERTEX
            };
            let from = self.links.len() as u32;
            if dead_end {
                self.links.extend(neighbours.iter().map(|&(_, l)| l));
            }
            let links = &self.links[from as usize..];
            let base_label = if model.always_down(t) {
                DOWN_LABEL
            } else {
                u64::from(model.base_component(t))
            };
            let i8 = i as u8;
            if base_label != DOWN_LABEL {
                self.touches
                    .extend(model.single_hits(t).iter().map(|&e| (e, i8, Touch::Down)));
                if dead_end && !model.always_down(anchor) {
                    self.touches.extend(
                        model
                            .single_hits(anchor)
                            .iter()
                            .map(|&e| (e, i8, Touch::Alone)),
                    );
                    // Elements that take every link of the dead end down by themselves.
                    for e in model.link_hits(links[0]) {
                        if links[1..]
                            .iter()
                            .all(|&l| model.link_hits(l).any(|x| x == e))
                        {
                            self.touches.push((e, i8, Touch::Alone));
                        }
                    }
                }
                if anchor != NO_VERTEX && model.is_transit(anchor) {
                    self.touches.extend(
                        effects
                            .single_pieces(anchor)
                            .iter()
                            .map(|&(e, p)| (e, i8, Touch::Piece(p))),
                    );
                }
            }
            self.terminals.push(Terminal {
                vertex: t,
                anchor,
                dead_end,
                links: (from, self.links.len() as u32),
                base_label,
            });
        }
        self.touches.sort_unstable();

        self.next_epoch();
        self.touch_range.clear();
        let nc = clients.len();
        let mut singles = std::mem::take(&mut self.spare);
        singles.elements.clear();
        singles.reach.clear();
        singles.hit.clear();
        singles.base.clear();
        self.labels.clear();
        self.labels
            .extend(self.terminals.iter().map(|t| t.base_label));
        singles.base.resize(nc, 0);
        reach_of(&self.labels, clients, &mut singles.base);
        let mut at = 0;
        while at < self.touches.len() {
            let e = self.touches[at].0;
            self.local_stamp[e.index()] = self.epoch;
            self.local_index[e.index()] = singles.elements.len() as u32;
            singles.elements.push(e);
            let from = at;
            let mut last_terminal = u8::MAX;
            let mut hit = 0u64;
            let mut changed = 0u64;
            while at < self.touches.len() && self.touches[at].0 == e {
                let (_, i, touch) = self.touches[at];
                at += 1;
                changed |= 1 << i;
                if matches!(touch, Touch::Down | Touch::Alone) {
                    hit |= 1 << i;
                }
                if i == last_terminal {
                    continue; // A stronger effect on this terminal came first.
                }
                last_terminal = i;
                self.labels[i as usize] = match touch {
                    Touch::Down => DOWN_LABEL,
                    Touch::Alone => ALONE | u64::from(i),
                    Touch::Piece(p) => PIECE | u64::from(p),
                };
            }
            self.touch_range.push((from as u32, at as u32));
            singles.hit.push(hit);
            // A client whose label is unchanged keeps its base component less the changed
            // terminals (their new labels are never a base label).
            for (k, &c) in clients.iter().enumerate() {
                let reach = if changed & (1 << c) == 0 {
                    singles.base[k] & !changed
                } else {
                    reach_of_one(&self.labels, c)
                };
                singles.reach.push(reach);
            }
            for &(_, i, _) in &self.touches[from..at] {
                self.labels[i as usize] = self.terminals[i as usize].base_label;
            }
        }
        singles
    }

    /// The special pairs that touch a terminal as pairs ([`Self::special_touches`]);
    /// after [`Self::singles`], in the same epoch.
    fn collect_special_touches(&mut self) {
        let model = self.model;
        let effects = model.effects();
        self.special_touches.clear();
        let (stamp, slot, touches) = (
            &mut self.special_stamp,
            &mut self.special_slot,
            &mut self.special_touches,
        );
        let epoch = self.epoch;
        let mut add = |s: u32, i: usize| {
            let k = s as usize;
            if stamp[k] != epoch {
                stamp[k] = epoch;
                slot[k] = touches.len() as u32;
                touches.push((s, 0));
            }
            touches[slot[k] as usize].1 |= 1 << i;
        };
        for (i, t) in self.terminals.iter().enumerate() {
            if t.base_label == DOWN_LABEL {
                continue;
            }
            for &s in effects.power_specials(t.vertex) {
                add(s, i);
            }
            if t.dead_end && !model.always_down(t.anchor) {
                for &s in effects.power_specials(t.anchor) {
                    add(s, i);
                }
            }
            if t.anchor != NO_VERTEX && model.is_transit(t.anchor) {
                for &(s, _) in effects.special_pieces(t.anchor) {
                    add(s, i);
                }
            }
        }
    }

    /// The terminals special pair `s` touches as a pair (0 when none).
    fn special_mask(&self, s: u32) -> u64 {
        if self.special_stamp[s as usize] == self.epoch {
            self.special_touches[self.special_slot[s as usize] as usize].1
        } else {
            0
        }
    }

    /// The terminals' labels under special pair `s` = {e, f}, into `self.labels`: the base
    /// labels, then what e and f remove by themselves, what they remove together, and the
    /// special's own pieces (the singles' pieces do not apply to the pair).
    fn special_labels(&mut self, s: u32) {
        let model = self.model;
        let effects = model.effects();
        let (e, f) = effects.special_pair(s);
        let as_pair = self.special_mask(s);
        self.labels.clear();
        self.labels
            .extend(self.terminals.iter().map(|t| t.base_label));
        self.rank.clear();
        self.rank.resize(self.terminals.len(), u8::MAX);
        let labels = &mut self.labels;
        let rank = &mut self.rank;
        let mut apply = |i: usize, touch: Touch| {
            let r = match touch {
                Touch::Down => 0,
                Touch::Alone => 1,
                Touch::Piece(_) => 2,
            };
            if r < rank[i] && labels[i] != DOWN_LABEL {
                rank[i] = r;
                labels[i] = match touch {
                    Touch::Down => DOWN_LABEL,
                    Touch::Alone => ALONE | i as u64,
                    Touch::Piece(p) => PIECE | u64::from(p),
                };
            }
        };
        for x in [e, f] {
            if self.local_stamp[x.index()] == self.epoch {
                let (from, to) = self.touch_range[self.local_index[x.index()] as usize];
                for &(_, i, touch) in &self.touches[from as usize..to as usize] {
                    if matches!(touch, Touch::Down | Touch::Alone) {
                        apply(i as usize, touch);
                    }
                }
            }
        }
        let mut rest = as_pair;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let t = &self.terminals[i];
            if effects.power_specials(t.vertex).contains(&s) {
                apply(i, Touch::Down);
            }
            if t.dead_end
                && !model.always_down(t.anchor)
                && effects.power_specials(t.anchor).contains(&s)
            {
                apply(i, Touch::Alone);
            }
            if t.anchor != NO_VERTEX && model.is_transit(t.anchor) {
                let pieces = effects.special_pieces(t.anchor);
                if let Ok(k) = pieces.binary_search_by_key(&s, |x| x.0) {
                    apply(i, Touch::Piece(pieces[k].1));
                }
            }
        }
    }

    /// Pairs {x, y} that take every link of dead-end terminal `i` down together though
    /// neither does alone.
    fn dead_end_pairs(&self, i: usize, out: &mut Vec<((ElementId, ElementId), u8)>) {
        let model = self.model;
        let t = &self.terminals[i];
        let links = &self.links[t.links.0 as usize..t.links.1 as usize];
        if !t.dead_end || links.len() < 2 || t.base_label == DOWN_LABEL {
            return;
        }
        let kills = |e: ElementId, l: u32| model.link_hits(l).any(|x| x == e);
        let mut candidates: Vec<ElementId> =
            links.iter().flat_map(|&l| model.link_hits(l)).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let alone = |e: ElementId| links.iter().all(|&l| kills(e, l));
        for &x in &candidates {
            if alone(x) {
                continue;
            }
            for &y in &candidates {
                if y <= x || alone(y) {
                    continue;
                }
                if links.iter().all(|&l| kills(x, l) || kills(y, l)) {
                    out.push(((x, y), i as u8));
                }
            }
        }
    }

    /// Every state of `terminals` that a risk can count, without enumerating the zone's
    /// pairs: `visit` sees the base state first, then each touching single in order, then
    /// every pair whose state can differ from both of its halves' and may take what
    /// `watch` asks from a client (see [`StateEvent`]). `clients` are the terminal indices
    /// whose components the states report.
    ///
    /// Both the risk of one cell and the placement tables (one cell's clients against a
    /// pool of candidate servers) are sums over these events.
    pub fn enumerate_states(
        &mut self,
        terminals: &[Vertex],
        clients: &[usize],
        watch: Watch,
        visit: &mut dyn FnMut(StateEvent<'_>),
    ) {
        let model = self.model;
        let effects = model.effects();
        let singles = self.singles(terminals, clients);
        self.collect_special_touches();
        let mut scratch = std::mem::take(&mut self.scratch);
        let PairScratch {
            special,
            dead_end,
            inner,
            with_one,
            outer,
            loss,
            at_least,
            at_least_from,
            pair_state,
        } = &mut scratch;
        let nc = clients.len();
        let n = singles.elements.len();
        let single_state = |i: usize| &singles.reach[i * nc..(i + 1) * nc];

        // Whether a state that differs from the base state only on the `touched`
        // terminals may take what `watch` asks from some client: an untouched client
        // keeps its base component less the touched terminals.
        let may_matter = |touched: u64| {
            clients.iter().enumerate().any(|(k, &c)| {
                touched & (1 << c) != 0
                    || watch.takes(c, singles.base[k] & !touched) >= watch.must_lose
            })
        };
        let hit = |this: &Self, x: ElementId| this.local(x).map_or(0, |i| singles.hit[i as usize]);

        // Pairs whose state is not the meet of their halves' states: special pairs with a
        // touching element or touching a terminal themselves, and pairs that cut a dead
        // end's links together. A special pair changes the base state only on the
        // terminals its halves remove alone, those it removes as a power pair and those in
        // its own pieces ([`Self::special_labels`]): it is kept only when that may matter.
        let touched = |this: &Self, s: u32| {
            let (e, f) = effects.special_pair(s);
            hit(this, e) | hit(this, f) | this.special_mask(s)
        };
        special.clear();
        for &(s, _) in &self.special_touches {
            if may_matter(touched(self, s)) {
                special.push((effects.special_pair(s), Some(s)));
            }
        }
        for (i, &e) in singles.elements.iter().enumerate() {
            let alone = singles.hit[i];
            for &(f, s) in effects.partners(e) {
                // Those that touch a terminal as pairs were weighed above.
                if self.special_stamp[s as usize] != self.epoch && may_matter(alone | hit(self, f))
                {
                    special.push(((e.min(f), e.max(f)), Some(s)));
                }
            }
        }
        dead_end.clear();
        for i in 0..self.terminals.len() {
            self.dead_end_pairs(i, dead_end);
        }
        dead_end.sort_unstable();
        special.extend(
            dead_end
                .iter()
                .map(|&((e, f), _)| ((e, f), effects.special(e, f))),
        );
        special.sort_unstable();
        special.dedup();

        pair_state.clear();
        pair_state.resize(nc, 0);
        let dead_end = &*dead_end;
        // The state under an explicit pair (`s`: its special index, if it is one), into
        // `out`; false (and `out` as it was) when the pair cannot take what `watch` asks.
        let explicit_state = |this: &mut Self,
                              (e, f): (ElementId, ElementId),
                              s: Option<u32>,
                              out: &mut [u64]|
         -> bool {
            let from = dead_end.partition_point(|x| x.0 < (e, f));
            let cut_off = dead_end[from..]
                .iter()
                .take_while(|x| x.0 == (e, f))
                .fold(0u64, |m, &(_, i)| m | 1 << i);
            match s {
                Some(s) => {
                    if !may_matter(touched(this, s) | cut_off) {
                        return false;
                    }
                    this.special_labels(s);
                    reach_of(&this.labels, clients, out);
                }
                None => {
                    let half = |x: ElementId| match this.local(x) {
                        Some(i) => single_state(i as usize),
                        None => &singles.base[..],
                    };
                    let (a, b) = (half(e), half(f));
                    for k in 0..nc {
                        out[k] = a[k] & b[k];
                    }
                }
            }
            for &(_, i) in dead_end[from..].iter().take_while(|x| x.0 == (e, f)) {
                let bit = 1u64 << i;
                for (k, &c) in clients.iter().enumerate() {
                    if c == i as usize {
                        out[k] &= bit;
                    } else {
                        out[k] &= !bit;
                    }
                }
            }
            true
        };

        // Explicit pairs by how many touching elements they hold.
        inner.clear();
        with_one.clear();
        outer.clear();
        for &((e, f), s) in special.iter() {
            match (self.local(e), self.local(f)) {
                (Some(i), Some(j)) => inner.push((i.min(j), i.max(j), s)),
                (Some(i), None) => with_one.push((i, f, s)),
                (None, Some(j)) => with_one.push((j, e, s)),
                (None, None) => outer.push(((e, f), s)),
            }
        }
        inner.sort_unstable();
        with_one.sort_unstable();

        visit(StateEvent::Base {
            state: &singles.base,
        });
        for (i, &e) in singles.elements.iter().enumerate() {
            visit(StateEvent::Single {
                element: e,
                index: i as u32,
                state: single_state(i),
            });
        }
        // Most pairs of touching singles take too few watched terminals from every client
        // to matter: the meet of two states loses at most what both halves lose. Per
        // single, the most watched terminals it takes from one client; per shortfall, the
        // singles that take at least that many, in visiting order.
        loss.clear();
        loss.extend((0..n).map(|i| {
            clients
                .iter()
                .zip(single_state(i))
                .map(|(&c, &r)| watch.takes(c, r))
                .max()
                .unwrap_or(0)
        }));
        at_least.clear();
        at_least_from.clear();
        for t in 0..=watch.must_lose {
            at_least_from.push(at_least.len());
            at_least.extend((0..n as u32).filter(|&j| loss[j as usize] >= t));
        }
        at_least_from.push(at_least.len());
        let mut inner_at = 0;
        let mut one_at = 0;
        for (i, &lost_alone) in loss.iter().enumerate() {
            let ei = singles.elements[i];
            let si = single_state(i);
            let t = watch.must_lose.saturating_sub(lost_alone) as usize;
            let partners = &at_least[at_least_from[t]..at_least_from[t + 1]];
            let mut next_partner = partners.partition_point(|&j| j <= i as u32);
            while inner_at < inner.len() && inner[inner_at].0 < i as u32 {
                inner_at += 1;
            }
            loop {
                // The next pair (i, j): a partner that may matter, or an explicit pair.
                let meet = partners.get(next_partner).copied();
                let explicit = inner.get(inner_at).filter(|x| x.0 == i as u32).map(|x| x.1);
                let special_index = inner.get(inner_at).and_then(|x| x.2);
                let j = match (meet, explicit) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => break,
                };
                if meet == Some(j) {
                    next_partner += 1;
                }
                let ej = singles.elements[j as usize];
                if explicit == Some(j) {
                    inner_at += 1;
                    if !explicit_state(self, (ei, ej), special_index, pair_state) {
                        continue;
                    }
                } else {
                    // A meet equal to a half's state is that half's (it never differs
                    // from both halves): not a pair event.
                    let sj = single_state(j as usize);
                    let (mut as_i, mut as_j) = (true, true);
                    for (k, out) in pair_state.iter_mut().enumerate() {
                        *out = si[k] & sj[k];
                        as_i &= *out == si[k];
                        as_j &= *out == sj[k];
                    }
                    if as_i || as_j {
                        continue;
                    }
                }
                visit(StateEvent::Pair {
                    pair: (ei, ej),
                    halves: [Some(i as u32), Some(j)],
                    state: pair_state,
                });
            }
            // Explicit partners that touch nothing alone. Every other element that
            // touches nothing leaves ei's own state: never a pair of its own.
            while one_at < with_one.len() && with_one[one_at].0 == i as u32 {
                let (_, f, special_index) = with_one[one_at];
                one_at += 1;
                let key = (ei.min(f), ei.max(f));
                if !explicit_state(self, key, special_index, pair_state) {
                    continue;
                }
                visit(StateEvent::Pair {
                    pair: key,
                    halves: [Some(i as u32), None],
                    state: pair_state,
                });
            }
        }
        for &(key, special_index) in outer.iter() {
            if !explicit_state(self, key, special_index, pair_state) {
                continue;
            }
            visit(StateEvent::Pair {
                pair: key,
                halves: [None, None],
                state: pair_state,
            });
        }
        self.spare = singles;
        self.scratch = scratch;
    }
}

/// Per client, the terminals with the same label (0 when the client is down).
fn reach_of(labels: &[u64], clients: &[usize], out: &mut [u64]) {
    for (k, &c) in clients.iter().enumerate() {
        out[k] = reach_of_one(labels, c);
    }
}

/// The terminals with the label of terminal `c` (0 when it is down).
fn reach_of_one(labels: &[u64], c: usize) -> u64 {
    let label = labels[c];
    if label == DOWN_LABEL {
        return 0;
    }
    labels
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l == label)
        .fold(0u64, |m, (i, _)| m | (1u64 << i))
}
