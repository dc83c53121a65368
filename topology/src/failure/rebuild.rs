//! A model rebuilt after a health change: the zone-wide effects kept when the change
//! leaves everything they depend on alone, and the vertices that may answer some scenario
//! differently, so that only the cells on them are judged again.
//!
//! Most health events touch only dead ends: a server failed or back, its rack failed (its
//! servers fail), a server's own link down or up. The effects' searches never pass through
//! a dead end and are seeded only by transit vertices and links between them, so they are a
//! function of the transit part of the network (its vertices, links, ranks and standing)
//! and of what each element and power pair removes. When all of that is equal the effects
//! are equal (tested against a fresh build) and are kept; otherwise they are searched
//! again.
//!
//! Either way the two models are compared vertex by vertex, as the risk evaluator reads
//! them: a vertex's own standing, links and hits; its base component; and, for every
//! element and special pair, the piece it is cut off in. Pieces are compared by their
//! least vertex (their numbers are arbitrary), components by their largest shares (a
//! component that loses a server is still itself for the rest), so a vertex unchanged in
//! all of these is, under every scenario, together with the same unchanged vertices as
//! before. (A pair special on one side only is answered by a search there and by the meet
//! of its halves on the other, both exact: two unchanged vertices that the pair parts on
//! one side only are parted by no half alone there, so the search lists one of them, and
//! that vertex changed.) A dead end answers through its neighbour, so it changes with it.
//! A cell none of whose servers changed keeps its state and its risk (tested on random
//! zones).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Effects, FailureModel, Vertex, NONE};
use crate::model::{ElementId, Inventory};

/// What [`FailureModel::rebuilt`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The effects were searched again: any vertex may answer differently.
    Everything,
    /// The effects were kept: only these vertices (dead ends, sorted) answer differently;
    /// component labels may be renumbered, consistently, and mean the same.
    Vertices(Vec<Vertex>),
}

/// A neighbour as the network names it: the vertex, the link's element and its risk
/// group (link indices shift when a health overlay drops links).
type Named = (Vertex, ElementId, Option<ElementId>);

/// Element numbers across two catalogues of one zone: a health overlay that drops links
/// drops their elements too, and renumbers those after them.
struct Renumbering {
    /// Both catalogues list the same ids in the same order (no link dropped or back).
    identity: bool,
    /// Per element before, its number after (`None` when it is gone).
    to_new: Vec<Option<ElementId>>,
    /// Per element after, its number before; an element new to the catalogue gets a
    /// number past the old catalogue's end, its own.
    to_old: Vec<ElementId>,
}

impl Renumbering {
    fn new(before: &Inventory, after: &Inventory) -> Renumbering {
        let identity = before.elements.len() == after.elements.len()
            && before
                .elements
                .iter()
                .zip(&after.elements)
                .all(|(a, b)| a.id == b.id);
        if identity {
            return Renumbering {
                identity,
                to_new: Vec::new(),
                to_old: Vec::new(),
            };
        }
        let mut to_new = vec![None; before.elements.len()];
        let to_old = after
            .elements
            .iter()
            .enumerate()
            .map(|(i, e)| match before.element(&e.id) {
                Some(old) => {
                    to_new[old.index()] = Some(ElementId(i as u32));
                    old
                }
                None => ElementId((before.elements.len() + i) as u32),
            })
            .collect();
        Renumbering {
            identity,
            to_new,
            to_old,
        }
    }

    /// The number before of element `e` after.
    fn old(&self, e: ElementId) -> ElementId {
        if self.identity {
            e
        } else {
            self.to_old[e.index()]
        }
    }

    /// A pair after, in numbers before, smaller first.
    fn old_pair(&self, (e, f): (ElementId, ElementId)) -> (ElementId, ElementId) {
        let (e, f) = (self.old(e), self.old(f));
        (e.min(f), e.max(f))
    }

    /// A neighbour after, in numbers before.
    fn old_named(&self, (w, l, g): Named) -> Named {
        (w, self.old(l), g.map(|g| self.old(g)))
    }
}

impl FailureModel {
    /// The model of `inv`, the zone `self` models (as `before`) under another health
    /// overlay: the same servers and devices in the same order. Returns what changed. The
    /// effects are kept (renumbered when links were dropped or came back) when their
    /// inputs are unchanged, else searched again.
    pub fn rebuilt(&self, before: &Inventory, inv: &Inventory) -> (FailureModel, Changed) {
        let mut next = FailureModel::without_effects(inv);
        if self.vertex_count() != next.vertex_count() {
            next.effects = Arc::new(Effects::build(&next));
            return (next, Changed::Everything);
        }
        let ids = Renumbering::new(before, inv);
        let kept = if !self.same_effect_inputs(&next, &ids) {
            None
        } else if ids.identity {
            Some(self.effects.clone())
        } else {
            self.effects.renumbered(&ids.to_new, &next).map(Arc::new)
        };
        let is_kept = kept.is_some();
        next.effects = kept.unwrap_or_else(|| Arc::new(Effects::build(&next)));
        let changed = self.changed_vertices(&next, &ids, is_kept);
        (next, Changed::Vertices(changed))
    }

    /// Whether `next` has every input of [`Effects::build`] that `self` has: the same
    /// transit part (standing, ranks, links in search order) and what each element and
    /// power pair removes.
    fn same_effect_inputs(&self, next: &FailureModel, ids: &Renumbering) -> bool {
        if self.transit != next.transit
            || self.rank != next.rank
            || self.hit1_start != next.hit1_start
            || self.hit2_start != next.hit2_start
        {
            return false;
        }
        let hits_equal = if ids.identity {
            self.hit1 == next.hit1 && self.hit2 == next.hit2
        } else {
            (0..self.vertex_count() as Vertex).all(|v| self.same_hits(next, ids, v))
        };
        hits_equal
            && (0..self.vertex_count() as Vertex)
                .filter(|&v| self.transit[v as usize])
                .all(|v| {
                    self.always_down[v as usize] == next.always_down[v as usize]
                        && self
                            .named_neighbours(v, true)
                            .eq(next.named_neighbours(v, true).map(|n| ids.old_named(n)))
                })
    }

    /// Whether the same elements and power pairs remove `v` in both models.
    fn same_hits(&self, next: &FailureModel, ids: &Renumbering, v: Vertex) -> bool {
        if ids.identity {
            return self.single_hits(v) == next.single_hits(v)
                && self.pair_hits(v) == next.pair_hits(v);
        }
        let mut singles: Vec<ElementId> = next.single_hits(v).iter().map(|&e| ids.old(e)).collect();
        let mut pairs: Vec<_> = next.pair_hits(v).iter().map(|&p| ids.old_pair(p)).collect();
        // A vertex's own element and its rack's come first, power cuts after, sorted.
        let mut before = self.single_hits(v).to_vec();
        before.sort_unstable();
        singles.sort_unstable();
        pairs.sort_unstable();
        before == singles && self.pair_hits(v) == pairs.as_slice()
    }

    /// The vertices of `next` (the same zone) that may answer some scenario otherwise
    /// than in `self`; see the module documentation. `kept`: `next` has `self`'s effects,
    /// perhaps renumbered (every vertex's pieces the same).
    fn changed_vertices(&self, next: &FailureModel, ids: &Renumbering, kept: bool) -> Vec<Vertex> {
        let n = self.vertex_count();
        let same_base = if self.base_comp == next.base_comp {
            vec![true; n]
        } else {
            same_components(&self.base_comp, &next.base_comp)
        };
        let leaders = |m: &FailureModel| {
            if kept {
                (HashMap::new(), HashMap::new())
            } else {
                (m.single_leaders(), m.special_leaders())
            }
        };
        let ((old_single, old_special), (new_single, new_special)) = (leaders(self), leaders(next));
        let (old_effects, new_effects) = (&*self.effects, &*next.effects);
        let same_pieces = |v: Vertex| {
            let before: Vec<(ElementId, Vertex)> = old_effects
                .single_pieces(v)
                .iter()
                .map(|&(e, p)| (e, old_single[&(e, p)]))
                .collect();
            let mut after: Vec<(ElementId, Vertex)> = new_effects
                .single_pieces(v)
                .iter()
                .map(|&(e, p)| (ids.old(e), new_single[&(e, p)]))
                .collect();
            after.sort_unstable();
            before == after
        };
        let same_special_pieces = |v: Vertex| {
            let by_pair = |effects: &Effects, leaders: &HashMap<(u32, u32), Vertex>, old: bool| {
                let mut out: Vec<_> = effects
                    .special_pieces(v)
                    .iter()
                    .map(|&(s, p)| {
                        let pair = effects.special_pair(s);
                        (
                            if old { pair } else { ids.old_pair(pair) },
                            leaders[&(s, p)],
                        )
                    })
                    .collect();
                out.sort_unstable();
                out
            };
            let power = |effects: &Effects, old: bool| {
                let mut out: Vec<_> = effects
                    .power_specials(v)
                    .iter()
                    .map(|&s| {
                        let pair = effects.special_pair(s);
                        if old {
                            pair
                        } else {
                            ids.old_pair(pair)
                        }
                    })
                    .collect();
                out.sort_unstable();
                out
            };
            by_pair(old_effects, &old_special, true) == by_pair(new_effects, &new_special, false)
                && power(old_effects, true) == power(new_effects, false)
        };
        let mut changed = vec![false; n];
        for v in 0..n as Vertex {
            let vu = v as usize;
            changed[vu] = self.always_down[vu] != next.always_down[vu]
                || self.transit[vu] != next.transit[vu]
                || !same_base[vu]
                || !self.same_hits(next, ids, v)
                // A transit vertex answers through the effects, a dead end by its links.
                || !self
                    .named_neighbours(v, self.transit[vu])
                    .eq(next.named_neighbours(v, self.transit[vu]).map(|n| ids.old_named(n)))
                || !(kept || same_pieces(v) && same_special_pieces(v));
        }
        // A dead end answers through its neighbour (itself perhaps a dead end).
        for _ in 0..2 {
            for v in 0..n as Vertex {
                if changed[v as usize] || next.transit[v as usize] {
                    continue;
                }
                changed[v as usize] = self
                    .named_neighbours(v, false)
                    .chain(next.named_neighbours(v, false))
                    .any(|(w, ..)| changed[w as usize]);
            }
        }
        (0..n as Vertex).filter(|&v| changed[v as usize]).collect()
    }

    /// The least vertex of every (element, piece).
    fn single_leaders(&self) -> HashMap<(ElementId, u32), Vertex> {
        let mut least = HashMap::new();
        for v in 0..self.vertex_count() as Vertex {
            for &key in self.effects.single_pieces(v) {
                least.entry(key).or_insert(v);
            }
        }
        least
    }

    /// The least vertex of every (special pair, piece).
    fn special_leaders(&self) -> HashMap<(u32, u32), Vertex> {
        let mut least = HashMap::new();
        for v in 0..self.vertex_count() as Vertex {
            for &key in self.effects.special_pieces(v) {
                least.entry(key).or_insert(v);
            }
        }
        least
    }

    /// `v`'s neighbours in search order, by link element; only the transit ones when
    /// `transit_only`.
    fn named_neighbours(&self, v: Vertex, transit_only: bool) -> impl Iterator<Item = Named> + '_ {
        let from = self.adj_start[v as usize] as usize;
        let to = if transit_only {
            self.transit_end[v as usize]
        } else {
            self.adj_start[v as usize + 1]
        } as usize;
        self.adj[from..to].iter().map(|&(w, l)| {
            (
                w,
                self.link_element[l as usize],
                self.link_group[l as usize],
            )
        })
    }
}

/// Per vertex, whether its base component is the same before and after: the two
/// components it is in are each other's largest share (a component split keeps its
/// identity in its largest part, a merge in the largest it took in), so that any two such
/// vertices are together after exactly when they were before. Down on both sides is the
/// same; down on one side only is not.
fn same_components(before: &[u32], after: &[u32]) -> Vec<bool> {
    let mut shares: HashMap<(u32, u32), u32> = HashMap::new();
    for (&b, &a) in before.iter().zip(after) {
        if b != NONE && a != NONE {
            *shares.entry((b, a)).or_default() += 1;
        }
    }
    // The largest share of each component on either side (ties to the smaller number).
    let mut best_after: HashMap<u32, (u32, u32)> = HashMap::new();
    let mut best_before: HashMap<u32, (u32, u32)> = HashMap::new();
    for (&(b, a), &n) in &shares {
        let better = |(m, c): (u32, u32), other: u32| n > m || (n == m && other < c);
        let e = best_after.entry(b).or_insert((n, a));
        if better(*e, a) {
            *e = (n, a);
        }
        let e = best_before.entry(a).or_insert((n, b));
        if better(*e, b) {
            *e = (n, b);
        }
    }
    before
        .iter()
        .zip(after)
        .map(|(&b, &a)| {
            (b == NONE && a == NONE)
                || (b != NONE && a != NONE && best_after[&b].1 == a && best_before[&a].1 == b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::{apply, Health, Named, Reported};
    use crate::raw::{RawInventory, RawTable};

    /// A core (k1, k2, k4 around k3, in a line; server sk on k3) and a region (the same with
    /// r) joined by three links (k1-r1, k2-r2, k4-r4): nothing short of three failures
    /// parts them, and none of the three is next to k3 or r3 or leaves a device a dead end.
    fn two_parts() -> RawInventory {
        let mut raw = RawInventory::default();
        let mut t = RawTable::for_table("racks");
        t.push(&["rk", "dc1", "h1", "w1", "", ""]);
        t.push(&["rr", "dc1", "h1", "w2", "", ""]);
        raw.insert("racks", t);
        let mut t = RawTable::for_table("servers");
        t.push(&["sk", "rk", "active", "4", "", "", ""]);
        t.push(&["sr", "rr", "active", "4", "", "", ""]);
        raw.insert("servers", t);
        let mut t = RawTable::for_table("network_devices");
        for id in ["k1", "k2", "k3", "k4", "r1", "r2", "r3", "r4"] {
            t.push(&[id, "aggregation", "dc1", "", ""]);
        }
        raw.insert("network_devices", t);
        let mut t = RawTable::for_table("network_links");
        for (id, a, b) in [
            ("sk-k3", "sk", "k3"),
            ("k3-k1", "k3", "k1"),
            ("k3-k2", "k3", "k2"),
            ("k3-k4", "k3", "k4"),
            ("k1-k2", "k1", "k2"),
            ("k2-k4", "k2", "k4"),
            ("sr-r3", "sr", "r3"),
            ("r3-r1", "r3", "r1"),
            ("r3-r2", "r3", "r2"),
            ("r3-r4", "r3", "r4"),
            ("r1-r2", "r1", "r2"),
            ("r2-r4", "r2", "r4"),
            ("a", "r1", "k1"),
            ("b", "r2", "k2"),
            ("c", "r4", "k4"),
        ] {
            t.push(&[id, a, b, "", "", ""]);
        }
        raw.insert("network_links", t);
        raw.insert("risk_groups", RawTable::for_table("risk_groups"));
        raw.insert("power_devices", RawTable::for_table("power_devices"));
        raw.insert("power_feeds", RawTable::for_table("power_feeds"));
        raw
    }

    /// Three links failing in one report part the region from the core, which no single
    /// element or pair of the model before does, and leave k3 and r3 as they were: only the
    /// components say that the servers, together before, are apart after.
    #[test]
    fn a_split_by_three_failures_at_once_is_named() {
        let raw = two_parts();
        let export = Inventory::from_raw(&raw).unwrap().0;
        let model = FailureModel::new(&export);
        let reported: Vec<Reported> = ["a", "b", "c"]
            .iter()
            .map(|id| Reported {
                named: Named::resolve(&export, id).unwrap(),
                health: Health::Failed,
                since: 0,
            })
            .collect();
        let inv = Inventory::from_raw(&apply(&raw, &export, &reported).raw)
            .unwrap()
            .0;
        let (next, changed) = model.rebuilt(&export, &inv);
        let (sk, sr) = (0, 1);
        assert_eq!(model.base_component(sk), model.base_component(sr));
        assert_ne!(next.base_component(sk), next.base_component(sr));
        let Changed::Vertices(changed) = changed else {
            panic!("the same zone")
        };
        assert!(
            changed.contains(&sk) || changed.contains(&sr),
            "neither server named: {changed:?}"
        );
    }
}
