//! Zone-wide effects of failures, computed once per inventory: which vertices each single
//! element (and each pair that is not simply the sum of its two halves) cuts off from the
//! rest of their component, so that a cell's state under any scenario is a few lookups.
//!
//! Under a scenario X, every component of the zone with nothing failed either stays whole
//! (minus what X removes) or splits into closed *pieces* and one remainder. A search from
//! the vertices next to what X removes (the *seeds*) finds the pieces: groups grow from the
//! seeds, meet, and stop when at most one can still grow; the groups that stopped are the
//! pieces. The paths by which the seeds met form X's *certificate*.
//!
//! For two elements e and f whose union removes nothing that neither removes alone, the
//! components under {e, f} are the meet of those under e and under f (together only where
//! together in both) whenever f removes no link and no inner vertex of e's certificate
//! (ARCHITECTURE.md, "Exact risk", has the proof). Pairs where each harms the other's
//! certificate, and power pairs (A/B feeds), are *special*: their pieces are searched here.
//! Servers with a single neighbour (dead ends) are never searched through; their state
//! follows from their neighbour and their own links.

use std::collections::BinaryHeap;

use super::{Entry, FailureModel, Vertex, NONE};
use crate::model::ElementId;

/// The precomputed effects; see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Per vertex: (element, piece) for each single element that leaves the vertex up but
    /// cut off, in that piece, from the rest of its base component. Sorted by element.
    iso1_start: Vec<u32>,
    iso1: Vec<(ElementId, u32)>,
    /// Pairs whose effect is searched, sorted.
    specials: Vec<(ElementId, ElementId)>,
    /// Per element: (partner, special index), sorted by partner.
    partner_start: Vec<u32>,
    partners: Vec<(ElementId, u32)>,
    /// Per vertex: (special index, piece), sorted by special index.
    iso2_start: Vec<u32>,
    iso2: Vec<(u32, u32)>,
    /// Per vertex: the special index of each power pair that removes it, in the order of
    /// [`FailureModel::pair_hits`].
    power_start: Vec<u32>,
    power: Vec<u32>,
}

impl Effects {
    /// Single elements whose pieces hold `v`, with the piece.
    pub fn single_pieces(&self, v: Vertex) -> &[(ElementId, u32)] {
        &self.iso1[self.iso1_start[v as usize] as usize..self.iso1_start[v as usize + 1] as usize]
    }

    /// Special pairs whose pieces hold `v`, with the piece.
    pub fn special_pieces(&self, v: Vertex) -> &[(u32, u32)] {
        &self.iso2[self.iso2_start[v as usize] as usize..self.iso2_start[v as usize + 1] as usize]
    }

    /// The special index of each pair in [`FailureModel::pair_hits`]`(v)`, in its order.
    pub fn power_specials(&self, v: Vertex) -> &[u32] {
        &self.power
            [self.power_start[v as usize] as usize..self.power_start[v as usize + 1] as usize]
    }

    /// Every special pair with `e` in it: (partner, special index), by partner.
    pub fn partners(&self, e: ElementId) -> &[(ElementId, u32)] {
        &self.partners
            [self.partner_start[e.index()] as usize..self.partner_start[e.index() + 1] as usize]
    }

    /// The index of special pair `(a, b)` (in either order), if it is one.
    pub fn special(&self, a: ElementId, b: ElementId) -> Option<u32> {
        let key = (a.min(b), a.max(b));
        self.specials.binary_search(&key).ok().map(|i| i as u32)
    }

    /// The two elements of special pair `s`.
    pub fn special_pair(&self, s: u32) -> (ElementId, ElementId) {
        self.specials[s as usize]
    }

    /// How many special pairs there are (special indices run below it).
    pub fn special_count(&self) -> usize {
        self.specials.len()
    }

    /// These effects for `next`, a model of the same zone whose catalogue numbers elements
    /// otherwise (`new_id` of each of ours); `None` when they name an element `next` lacks.
    pub(super) fn renumbered(
        &self,
        new_id: &[Option<ElementId>],
        next: &FailureModel,
    ) -> Option<Effects> {
        let id = |e: ElementId| new_id[e.index()];
        // Specials sorted in the new numbering; `special_of[old index]` is the new index.
        let mut order: Vec<((ElementId, ElementId), u32)> = Vec::with_capacity(self.specials.len());
        for (s, &(e, f)) in self.specials.iter().enumerate() {
            let (e, f) = (id(e)?, id(f)?);
            order.push(((e.min(f), e.max(f)), s as u32));
        }
        order.sort_unstable();
        let mut special_of = vec![0u32; order.len()];
        for (new, &(_, old)) in order.iter().enumerate() {
            special_of[old as usize] = new as u32;
        }
        let specials: Vec<(ElementId, ElementId)> = order.iter().map(|x| x.0).collect();
        let nv = self.iso1_start.len() - 1;
        let mut iso1 = Vec::with_capacity(self.iso1.len());
        let mut iso2 = Vec::with_capacity(self.iso2.len());
        for v in 0..nv as Vertex {
            let from = iso1.len();
            for &(e, p) in self.single_pieces(v) {
                iso1.push((id(e)?, p));
            }
            iso1[from..].sort_unstable();
            let from = iso2.len();
            iso2.extend(
                self.special_pieces(v)
                    .iter()
                    .map(|&(s, p)| (special_of[s as usize], p)),
            );
            iso2[from..].sort_unstable();
        }
        let (power_start, power) = power_specials(next, &specials)?;
        let (partner_start, partners) = partners_of(&specials, next.element_count());
        Some(Effects {
            iso1_start: self.iso1_start.clone(),
            iso1,
            partner_start,
            partners,
            specials,
            iso2_start: self.iso2_start.clone(),
            iso2,
            power_start,
            power,
        })
    }

    pub(super) fn build(model: &FailureModel) -> Effects {
        let nv = model.vertex_count();
        let ne = model.element_count();
        // What each element removes by itself, and what power pairs remove only together.
        let mut removes1: Vec<(u32, Vertex)> = Vec::new();
        let mut removes2: Vec<((ElementId, ElementId), Vertex)> = Vec::new();
        for v in 0..nv as Vertex {
            removes1.extend(model.single_hits(v).iter().map(|e| (e.0, v)));
            removes2.extend(model.pair_hits(v).iter().map(|&p| (p, v)));
        }
        removes1.sort_unstable();
        removes1.dedup();
        removes2.sort_unstable();
        removes2.dedup();
        let removes1 = Csr::new(ne, removes1);
        let mut link_hits: Vec<(u32, u32)> = Vec::new();
        for l in 0..model.link_ends.len() as u32 {
            link_hits.extend(model.link_hits(l).map(|e| (e.0, l)));
        }
        link_hits.sort_unstable();
        link_hits.dedup();
        let links_of = Csr::new(ne, link_hits);

        let mut explorer = Explorer::new(model);
        let mut seeds = Vec::new();
        let mut pieces: Vec<(Vertex, u32)> = Vec::new();
        let mut edges = Vec::new();

        // Singles: pieces and the elements that harm their certificate.
        let mut iso1: Vec<(Vertex, ElementId, u32)> = Vec::new();
        let mut harm: Vec<(ElementId, ElementId)> = Vec::new();
        let mut degree: Vec<u32> = vec![0; nv];
        let mut ends: Vec<Vertex> = Vec::new();
        for e in 0..ne as u32 {
            let e = ElementId(e);
            let scenario = [e];
            model.seeds(removes1.get(e.0), links_of.get(e.0), &scenario, &mut seeds);
            if seeds.len() < 2 {
                continue;
            }
            explorer.explore_by_component(&seeds, &scenario, &mut pieces, &mut edges);
            iso1.extend(pieces.iter().map(|&(v, p)| (v, e, p)));
            // A seed at the end of the certificate may fail with e: it is not on any
            // path between the others. Inner vertices and every link may not.
            ends.clear();
            for &(a, b, l) in &edges {
                degree[a as usize] += 1;
                degree[b as usize] += 1;
                ends.push(a);
                ends.push(b);
                harm.extend(model.link_hits(l).filter(|&f| f != e).map(|f| (e, f)));
            }
            ends.sort_unstable();
            ends.dedup();
            for &v in &ends {
                if degree[v as usize] >= 2 {
                    harm.extend(
                        model
                            .single_hits(v)
                            .iter()
                            .filter(|&&f| f != e)
                            .map(|&f| (e, f)),
                    );
                }
                degree[v as usize] = 0;
            }
        }
        harm.sort_unstable();
        harm.dedup();

        // Special pairs: mutual harm, and power pairs.
        let mut specials: Vec<(ElementId, ElementId)> = harm
            .iter()
            .filter(|&&(e, f)| e < f && harm.binary_search(&(f, e)).is_ok())
            .copied()
            .collect();
        drop(harm);
        specials.extend(removes2.iter().map(|&(p, _)| p));
        specials.sort_unstable();
        specials.dedup();

        let mut iso2: Vec<(Vertex, u32, u32)> = Vec::new();
        let mut pair_removed = Vec::new();
        for (s, &(e, f)) in specials.iter().enumerate() {
            let scenario = [e, f];
            pair_removed.clear();
            pair_removed.extend(removes1.get(e.0).iter().copied());
            pair_removed.extend(removes1.get(f.0).iter().copied());
            let from = removes2.partition_point(|&(p, _)| p < (e, f));
            pair_removed.extend(
                removes2[from..]
                    .iter()
                    .take_while(|&&(p, _)| p == (e, f))
                    .map(|&(_, v)| v),
            );
            let links: Vec<u32> = links_of
                .get(e.0)
                .iter()
                .chain(links_of.get(f.0))
                .copied()
                .collect();
            model.seeds(&pair_removed, &links, &scenario, &mut seeds);
            if seeds.len() < 2 {
                continue;
            }
            explorer.explore_by_component(&seeds, &scenario, &mut pieces, &mut edges);
            iso2.extend(pieces.iter().map(|&(v, p)| (v, s as u32, p)));
        }

        let (partner_start, partners) = partners_of(&specials, ne);

        iso1.sort_unstable();
        let iso1_start = starts(nv, iso1.iter().map(|x| x.0 as usize));
        let iso1 = iso1.into_iter().map(|(_, e, p)| (e, p)).collect();
        iso2.sort_unstable();
        let iso2_start = starts(nv, iso2.iter().map(|x| x.0 as usize));
        let iso2 = iso2.into_iter().map(|(_, s, p)| (s, p)).collect();

        let (power_start, power) =
            power_specials(model, &specials).expect("power pairs are special");
        Effects {
            iso1_start,
            iso1,
            specials,
            partner_start,
            partners,
            iso2_start,
            iso2,
            power_start,
            power,
        }
    }
}

/// Per element (of `element_count`), its partners in the sorted `specials` with the
/// special index of each, by partner: (starts, entries).
fn partners_of(
    specials: &[(ElementId, ElementId)],
    element_count: usize,
) -> (Vec<u32>, Vec<(ElementId, u32)>) {
    let mut partners: Vec<(ElementId, ElementId, u32)> = Vec::new();
    for (s, &(e, f)) in specials.iter().enumerate() {
        partners.push((e, f, s as u32));
        partners.push((f, e, s as u32));
    }
    partners.sort_unstable();
    let start = starts(element_count, partners.iter().map(|p| p.0.index()));
    (
        start,
        partners.into_iter().map(|(_, f, s)| (f, s)).collect(),
    )
}

/// Per vertex of `model`, the index in the sorted `specials` of each of its power pairs,
/// in [`FailureModel::pair_hits`] order: (starts, entries); `None` when one is missing.
fn power_specials(
    model: &FailureModel,
    specials: &[(ElementId, ElementId)],
) -> Option<(Vec<u32>, Vec<u32>)> {
    let nv = model.vertex_count();
    let mut start = Vec::with_capacity(nv + 1);
    let mut power = Vec::new();
    for v in 0..nv as Vertex {
        start.push(power.len() as u32);
        for &(a, b) in model.pair_hits(v) {
            power.push(specials.binary_search(&(a.min(b), a.max(b))).ok()? as u32);
        }
    }
    start.push(power.len() as u32);
    Some((start, power))
}

/// `start[k]..start[k + 1]` indexes the entries with key `k` in a list sorted by key.
fn starts(n: usize, keys: impl Iterator<Item = usize>) -> Vec<u32> {
    let mut count = vec![0u32; n + 1];
    for k in keys {
        count[k + 1] += 1;
    }
    for i in 0..n {
        count[i + 1] += count[i];
    }
    count
}

/// A compressed list of values per key.
struct Csr {
    start: Vec<u32>,
    values: Vec<u32>,
}

impl Csr {
    /// From (key, value) pairs sorted by key.
    fn new(n: usize, pairs: Vec<(u32, u32)>) -> Csr {
        Csr {
            start: starts(n, pairs.iter().map(|p| p.0 as usize)),
            values: pairs.into_iter().map(|p| p.1).collect(),
        }
    }

    fn get(&self, k: u32) -> &[u32] {
        &self.values[self.start[k as usize] as usize..self.start[k as usize + 1] as usize]
    }
}

impl FailureModel {
    /// The search seeds of a scenario: transit vertices that stay up next to a transit
    /// vertex or a link between two that it removes (`removed` vertices, `links`). Sorted,
    /// distinct.
    fn seeds(
        &self,
        removed: &[Vertex],
        links: &[u32],
        scenario: &[ElementId],
        out: &mut Vec<Vertex>,
    ) {
        out.clear();
        let consider = |w: Vertex, out: &mut Vec<Vertex>| {
            if self.transit[w as usize]
                && !self.always_down[w as usize]
                && !self.vertex_removed(w, scenario)
            {
                out.push(w);
            }
        };
        // A dead end, and a link to one, carries no traffic between others: removing it
        // cuts nothing off, so it seeds nothing. The effects then depend on the transit
        // part of the network alone (what `FailureModel::rebuilt` relies on).
        for &v in removed.iter().filter(|&&v| self.transit[v as usize]) {
            let (s, t) = (self.adj_start[v as usize], self.adj_start[v as usize + 1]);
            for &(w, _) in &self.adj[s as usize..t as usize] {
                consider(w, out);
            }
        }
        for &l in links {
            let (a, b) = self.link_ends[l as usize];
            if self.transit[a as usize] && self.transit[b as usize] {
                consider(a, out);
                consider(b, out);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// A search that grows groups from many seeds (not bounded to 63 like the terminal
/// searches) and reports which groups stopped growing.
struct Explorer<'m> {
    model: &'m FailureModel,
    epoch: u32,
    stamp: Vec<u32>,
    owner: Vec<u32>,
    parent: Vec<(Vertex, u32)>,
    depth: Vec<u16>,
    forest_stamp: Vec<u32>,
    visited: Vec<Vertex>,
    group: Vec<u32>,
    heaps: Vec<BinaryHeap<Entry>>,
    meetings: Vec<(Vertex, Vertex, u32)>,
    by_component: Vec<(u32, Vertex)>,
    part_pieces: Vec<(Vertex, u32)>,
}

fn find(group: &mut [u32], mut g: u32) -> u32 {
    while group[g as usize] != g {
        let up = group[group[g as usize] as usize];
        group[g as usize] = up;
        g = up;
    }
    g
}

impl<'m> Explorer<'m> {
    fn new(model: &'m FailureModel) -> Explorer<'m> {
        let n = model.vertex_count();
        Explorer {
            model,
            epoch: 0,
            stamp: vec![0; n],
            owner: vec![0; n],
            parent: vec![(NONE, NONE); n],
            depth: vec![0; n],
            forest_stamp: vec![0; n],
            visited: Vec::new(),
            group: Vec::new(),
            heaps: Vec::new(),
            meetings: Vec::new(),
            by_component: Vec::new(),
            part_pieces: Vec::new(),
        }
    }

    /// Pieces (vertex, piece number, numbered across components) and certificate edges of
    /// a scenario, searching each base component's seeds apart so that two large
    /// components never have to be exhausted.
    fn explore_by_component(
        &mut self,
        seeds: &[Vertex],
        scenario: &[ElementId],
        pieces: &mut Vec<(Vertex, u32)>,
        edges: &mut Vec<(Vertex, Vertex, u32)>,
    ) {
        pieces.clear();
        edges.clear();
        let mut by_component = std::mem::take(&mut self.by_component);
        by_component.clear();
        by_component.extend(seeds.iter().map(|&s| (self.model.base_comp[s as usize], s)));
        by_component.sort_unstable();
        let mut at = 0;
        let mut next_piece = 0;
        let mut part_seeds = Vec::new();
        let mut part_pieces = std::mem::take(&mut self.part_pieces);
        while at < by_component.len() {
            let comp = by_component[at].0;
            part_seeds.clear();
            while at < by_component.len() && by_component[at].0 == comp {
                part_seeds.push(by_component[at].1);
                at += 1;
            }
            if part_seeds.len() < 2 {
                continue;
            }
            let count = self.explore(&part_seeds, scenario, &mut part_pieces, edges);
            pieces.extend(part_pieces.iter().map(|&(v, p)| (v, p + next_piece)));
            next_piece += count;
        }
        self.by_component = by_component;
        self.part_pieces = part_pieces;
    }

    /// Grows one group per seed (all in one base component) under `scenario` until at most
    /// one group can still grow. Returns the number of pieces; `pieces` gets each transit
    /// vertex of a stopped group with its piece number, `edges` the certificate.
    fn explore(
        &mut self,
        seeds: &[Vertex],
        scenario: &[ElementId],
        pieces: &mut Vec<(Vertex, u32)>,
        edges: &mut Vec<(Vertex, Vertex, u32)>,
    ) -> u32 {
        let m = self.model;
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.forest_stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        let k = seeds.len();
        if self.heaps.len() < k {
            self.heaps.resize_with(k, BinaryHeap::new);
        }
        for h in &mut self.heaps[..k] {
            h.clear();
        }
        self.group.clear();
        self.group.extend(0..k as u32);
        self.meetings.clear();
        self.visited.clear();
        for (i, &t) in seeds.iter().enumerate() {
            let tu = t as usize;
            self.stamp[tu] = epoch;
            self.owner[tu] = i as u32;
            self.parent[tu] = (NONE, NONE);
            self.depth[tu] = 0;
            self.visited.push(t);
            let start = m.adj_start[tu];
            if start < m.transit_end[tu] {
                let first = m.adj[start as usize].0;
                self.heaps[i].push((m.rank[first as usize], std::cmp::Reverse(0), t, start));
            }
        }
        let mut live: Vec<u32> = (0..k as u32).collect();
        let mut next_live: Vec<u32> = Vec::with_capacity(k);
        loop {
            next_live.clear();
            for &g in &live {
                if find(&mut self.group, g) != g {
                    continue;
                }
                let Some((_, std::cmp::Reverse(d), v, cursor)) = self.heaps[g as usize].pop()
                else {
                    continue;
                };
                next_live.push(g);
                // Only transit neighbours: a dead end leads nowhere (and leaving them out
                // keeps the effects independent of dead ends, see `seeds`).
                let end = m.transit_end[v as usize];
                if cursor + 1 < end {
                    let next = m.adj[cursor as usize + 1].0;
                    self.heaps[g as usize].push((
                        m.rank[next as usize],
                        std::cmp::Reverse(d),
                        v,
                        cursor + 1,
                    ));
                }
                if cursor >= end {
                    continue;
                }
                let (w, l) = m.adj[cursor as usize];
                if m.link_removed(l, scenario) {
                    continue;
                }
                let wu = w as usize;
                if self.stamp[wu] == epoch {
                    let other = find(&mut self.group, self.owner[wu]);
                    if other != g {
                        let (lo, hi) = (g.min(other), g.max(other));
                        self.group[hi as usize] = lo;
                        let moved = std::mem::take(&mut self.heaps[hi as usize]);
                        if self.heaps[lo as usize].len() < moved.len() {
                            let small = std::mem::replace(&mut self.heaps[lo as usize], moved);
                            self.heaps[lo as usize].extend(small);
                        } else {
                            self.heaps[lo as usize].extend(moved);
                        }
                        next_live.push(lo);
                        self.meetings.push((v, w, l));
                    }
                    continue;
                }
                if m.always_down[wu] || m.vertex_removed(w, scenario) {
                    continue;
                }
                let dw = d.saturating_add(1);
                self.stamp[wu] = epoch;
                self.owner[wu] = g;
                self.parent[wu] = (v, l);
                self.depth[wu] = dw;
                self.visited.push(w);
                let (ws, we) = (m.adj_start[wu], m.transit_end[wu]);
                if ws < we {
                    let first = m.adj[ws as usize].0;
                    let root = find(&mut self.group, g) as usize;
                    self.heaps[root].push((m.rank[first as usize], std::cmp::Reverse(dw), w, ws));
                }
            }
            // Groups still able to grow.
            let group = &mut self.group;
            let heaps = &self.heaps;
            next_live.retain(|&g| find(group, g) == g && !heaps[g as usize].is_empty());
            next_live.sort_unstable();
            next_live.dedup();
            std::mem::swap(&mut live, &mut next_live);
            if live.len() <= 1 {
                break;
            }
        }

        // Every group that stopped is a closed piece; a group still growing is the rest.
        let remainder = live.first().copied();
        pieces.clear();
        let mut piece_of_root: Vec<u32> = vec![u32::MAX; k];
        let mut count = 0;
        for i in 0..self.visited.len() {
            let v = self.visited[i];
            if !m.transit[v as usize] {
                continue;
            }
            let root = find(&mut self.group, self.owner[v as usize]);
            if Some(root) == remainder {
                continue;
            }
            if piece_of_root[root as usize] == u32::MAX {
                piece_of_root[root as usize] = count;
                count += 1;
            }
            pieces.push((v, piece_of_root[root as usize]));
        }

        // Certificate: meeting links and the paths from their ends back to the seeds.
        for &(v, w, l) in &self.meetings {
            edges.push((v, w, l));
            for mut x in [v, w] {
                while self.forest_stamp[x as usize] != epoch {
                    self.forest_stamp[x as usize] = epoch;
                    let (p, pl) = self.parent[x as usize];
                    if p == NONE {
                        break;
                    }
                    edges.push((p, x, pl));
                    x = p;
                }
            }
        }
        count
    }
}
