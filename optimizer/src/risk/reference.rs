//! The literal definition, by brute force over every single and pair of elements. Only
//! for tests on small inventories: it is quadratic in the zone's elements.

use topology::failure::pair_weight;
use topology::failure::reference::state;
use topology::Inventory;

use super::*;

/// The contract's outage of one cell when `failed` have failed, from scratch.
pub fn outage(inv: &Inventory, clients: &[u32], nodes: &[u32], failed: &[ElementId]) -> bool {
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
        let needs =
            st.up[c as usize] && (cl.len() == 1 || cl.iter().any(|&o| o != c && connected(c, o)));
        needs && nd.iter().filter(|&&n| connected(c, n)).count() < quorum
    })
}

/// The contract's risk of one cell, by brute force.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceRisk {
    /// 1 for a down cell, else `single + pair`.
    pub risk: f64,
    /// 0 for a down cell.
    pub single: f64,
    /// 0 for a down cell.
    pub pair: f64,
    /// Elements whose failure alone gives an outage.
    pub breaking: Vec<ElementId>,
    /// Out with nothing failed.
    pub down: bool,
}

/// Every single and every pair of the zone, straight from the definition: a pair
/// counts when it gives an outage and neither of its elements does alone.
pub fn risk(inv: &Inventory, clients: &[u32], nodes: &[u32]) -> ReferenceRisk {
    let m = inv.elements.len();
    let id = |i: usize| ElementId(i as u32);
    let down = outage(inv, clients, nodes, &[]);
    let alone: Vec<bool> = (0..m)
        .map(|i| outage(inv, clients, nodes, &[id(i)]))
        .collect();
    let mut single = 0.0;
    let mut breaking = Vec::new();
    for i in (0..m).filter(|&i| alone[i]) {
        single += inv.elements[i].afr;
        breaking.push(id(i));
    }
    let mut pair = 0.0;
    for i in 0..m {
        for j in i + 1..m {
            if !alone[i] && !alone[j] && outage(inv, clients, nodes, &[id(i), id(j)]) {
                let (a, b) = (&inv.elements[i], &inv.elements[j]);
                pair += pair_weight(a.afr, a.repair_hours, b.afr, b.repair_hours);
            }
        }
    }
    ReferenceRisk {
        risk: if down { 1.0 } else { single + pair },
        single: if down { 0.0 } else { single },
        pair: if down { 0.0 } else { pair },
        breaking,
        down,
    }
}

/// Every pair of elements (lower id first) with the cells it puts out while neither of its
/// elements does alone (cells that are down with nothing failed are left out).
pub fn pair_blast_radius(
    inv: &Inventory,
    cells: &[(Vec<u32>, Vec<u32>)],
) -> std::collections::BTreeMap<(ElementId, ElementId), Vec<usize>> {
    let m = inv.elements.len();
    let id = |i: usize| ElementId(i as u32);
    let mut out: std::collections::BTreeMap<(ElementId, ElementId), Vec<usize>> =
        Default::default();
    for (c, (clients, nodes)) in cells.iter().enumerate() {
        if outage(inv, clients, nodes, &[]) {
            continue;
        }
        let alone: Vec<bool> = (0..m)
            .map(|i| outage(inv, clients, nodes, &[id(i)]))
            .collect();
        for i in (0..m).filter(|&i| !alone[i]) {
            for j in (i + 1..m).filter(|&j| !alone[j]) {
                if outage(inv, clients, nodes, &[id(i), id(j)]) {
                    out.entry((id(i), id(j))).or_default().push(c);
                }
            }
        }
    }
    out
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
