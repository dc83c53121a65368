//! The zone's exact state under the failures of the moment, and every cell judged by the
//! contract's rules: after each transition the servers' states are computed anew
//! ([`ScenarioState`], linear in the zone), and only the cells with a server whose state
//! changed (up or down, or a different component) are judged again.

use optimizer::CellShape;
use topology::failure::ScenarioState;
use topology::{ElementId, Inventory, Placement};

/// A server's state for the diff: its component, or [`DOWN`].
const DOWN: u32 = u32::MAX;

/// How a cell stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// Some client that needs the cell reaches fewer than a quorum of up nodes.
    pub out: bool,
    /// Every node is up and reaches every client that is up: as it was placed.
    pub whole: bool,
}

/// One cell as simulated.
#[derive(Debug, Clone)]
pub struct SimCell {
    /// The cell's id.
    pub id: String,
    /// Its clients (server indices).
    pub clients: Vec<u32>,
    /// Its nodes (server indices).
    pub nodes: Vec<u32>,
    shape: CellShape,
    /// How it stands now.
    pub standing: Standing,
}

/// The zone and its cells under the failures of the moment.
#[derive(Debug)]
pub struct World<'a> {
    inv: &'a Inventory,
    failed: Vec<bool>,
    /// The failed elements, in no order.
    failed_list: Vec<ElementId>,
    /// Per server: its component, or [`DOWN`].
    key: Vec<u32>,
    cells: Vec<SimCell>,
    /// Per server: the cells it is a client or a node of.
    by_server: Vec<Vec<u32>>,
    /// Per cell: the last transition that collected it.
    stamp: Vec<u64>,
    epoch: u64,
}

impl<'a> World<'a> {
    /// The zone with nothing failed and the cells of `placements`, judged.
    pub fn new(inv: &'a Inventory, placements: &[Placement]) -> World<'a> {
        let mut world = World {
            inv,
            failed: vec![false; inv.elements.len()],
            failed_list: Vec::new(),
            key: Vec::new(),
            cells: Vec::with_capacity(placements.len()),
            by_server: vec![Vec::new(); inv.servers.len()],
            stamp: vec![0; placements.len()],
            epoch: 0,
        };
        world.key = world.keys();
        for (i, p) in placements.iter().enumerate() {
            let mut cell = SimCell {
                id: p.cell_id.clone(),
                clients: p.clients.clone(),
                nodes: p.nodes.clone(),
                shape: CellShape::new(&p.clients, &p.nodes),
                standing: Standing::default(),
            };
            for &s in &cell.shape.terminals {
                world.by_server[s as usize].push(i as u32);
            }
            cell.standing = world.judge(&cell.shape);
            world.cells.push(cell);
        }
        world
    }

    /// The cells, in the placements' order.
    pub fn cells(&self) -> &[SimCell] {
        &self.cells
    }

    /// Failure elements in the zone.
    pub fn element_count(&self) -> usize {
        self.failed.len()
    }

    /// Whether element `e` is failed now.
    pub fn is_failed(&self, e: ElementId) -> bool {
        self.failed[e.index()]
    }

    /// Whether server `s` is up now.
    pub fn server_up(&self, s: u32) -> bool {
        self.key[s as usize] != DOWN
    }

    /// Element `e` fails (`fails`) or comes back: the zone is computed anew and the cells
    /// with a server whose state changed are judged again. Returns those cells (each once)
    /// with how each stood before.
    pub fn transition(&mut self, e: ElementId, fails: bool) -> Vec<(u32, Standing)> {
        if self.failed[e.index()] == fails {
            return Vec::new();
        }
        self.failed[e.index()] = fails;
        if fails {
            self.failed_list.push(e);
        } else if let Some(at) = self.failed_list.iter().position(|&f| f == e) {
            self.failed_list.swap_remove(at);
        }
        let key = self.keys();
        self.epoch += 1;
        let mut touched = Vec::new();
        for (s, (old, new)) in self.key.iter().zip(&key).enumerate() {
            if old == new {
                continue;
            }
            for &c in &self.by_server[s] {
                if self.stamp[c as usize] != self.epoch {
                    self.stamp[c as usize] = self.epoch;
                    touched.push(c);
                }
            }
        }
        self.key = key;
        touched.sort_unstable();
        touched
            .into_iter()
            .map(|c| {
                let cell = &self.cells[c as usize];
                let before = cell.standing;
                let now = self.judge(&cell.shape);
                self.cells[c as usize].standing = now;
                (c, before)
            })
            .collect()
    }

    /// Cell `c`'s node `out` becomes `into`; the cell is judged again and how it stood
    /// before is returned.
    pub fn move_node(&mut self, c: u32, out: u32, into: u32) -> Standing {
        let cell = &mut self.cells[c as usize];
        let at = cell
            .nodes
            .iter()
            .position(|&n| n == out)
            .expect("a move takes one of the cell's nodes");
        cell.nodes[at] = into;
        let old_terminals = std::mem::take(&mut cell.shape.terminals);
        cell.shape = CellShape::new(&cell.clients, &cell.nodes);
        for s in old_terminals {
            let list = &mut self.by_server[s as usize];
            if let Some(i) = list.iter().position(|&x| x == c) {
                list.swap_remove(i);
            }
        }
        for &s in &cell.shape.terminals {
            self.by_server[s as usize].push(c);
        }
        let before = cell.standing;
        let now = self.judge(&self.cells[c as usize].shape);
        self.cells[c as usize].standing = now;
        before
    }

    /// Every server's component under the failures of the moment, or [`DOWN`].
    fn keys(&self) -> Vec<u32> {
        let state = ScenarioState::new(self.inv, &self.failed_list);
        (0..self.inv.servers.len() as u32)
            .map(|s| state.component(s).unwrap_or(DOWN))
            .collect()
    }

    /// The contract's outage rule on the servers' states now, and whether the cell is
    /// whole.
    fn judge(&self, shape: &CellShape) -> Standing {
        let key = |t: usize| self.key[shape.terminals[t] as usize];
        let mut reach = Vec::with_capacity(shape.client_slots.len());
        let mut whole = (0..shape.terminals.len())
            .filter(|&t| shape.is_node[t])
            .all(|t| key(t) != DOWN);
        for &c in &shape.client_slots {
            let k = key(c);
            if k == DOWN {
                reach.push(0);
                continue;
            }
            let mut bits = 0u64;
            for t in 0..shape.terminals.len() {
                if key(t) == k {
                    bits |= 1 << t;
                }
            }
            whole &= bits & shape.node_bits == shape.node_bits;
            reach.push(bits);
        }
        Standing {
            out: shape.outage(&reach),
            whole,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topology::failure::reference;

    /// The contract's literal rule on the reference semantics.
    fn reference_out(inv: &Inventory, failed: &[ElementId], p: &Placement) -> bool {
        let st = reference::state(inv, failed);
        let connected = |a: u32, b: u32| {
            a == b && st.up[a as usize]
                || st.up[a as usize]
                    && st.up[b as usize]
                    && st.component[a as usize] == st.component[b as usize]
        };
        let mut nodes = p.nodes.clone();
        nodes.sort_unstable();
        nodes.dedup();
        let mut clients = p.clients.clone();
        clients.sort_unstable();
        clients.dedup();
        let quorum = nodes.len() / 2 + 1;
        clients.iter().any(|&c| {
            let needs = st.up[c as usize]
                && (clients.len() == 1 || clients.iter().any(|&o| o != c && connected(c, o)));
            needs && nodes.iter().filter(|&&n| connected(c, n)).count() < quorum
        })
    }

    #[test]
    fn every_cell_stands_as_the_reference_says_through_a_long_trace() {
        // The tiny zone under a stressed trace (several failures at once), with cells
        // spread over its hosts: after every transition every cell (touched or not) is
        // out exactly when the contract's literal rule says so.
        let inv = crate::tests::tiny();
        let hosts: Vec<u32> = (0..inv.servers.len() as u32)
            .filter(|&s| inv.servers[s as usize].capacity > 0)
            .collect();
        let placements: Vec<Placement> = (0..40)
            .map(|i| Placement {
                cell_id: format!("c{i}"),
                clients: vec![
                    (i * 5) % inv.servers.len() as u32,
                    (i * 3 + 1) % inv.servers.len() as u32,
                ],
                nodes: (0..hosts.len().min(7))
                    .map(|k| hosts[(i as usize * 7 + k * 3) % hosts.len()])
                    .collect(),
            })
            .collect();
        let mut world = World::new(&inv, &placements);
        let params = crate::trace::TraceParams {
            seed: 5,
            stress: 400.0,
            repair: crate::trace::RepairTimes::Exponential,
        };
        let mut most_failed = 0;
        let mut outs = 0;
        for t in crate::trace::Trace::new(&inv, &params).take(3_000) {
            world.transition(t.element, t.fails);
            most_failed = most_failed.max(world.failed_list.len());
            for (c, p) in placements.iter().enumerate() {
                let want = reference_out(&inv, &world.failed_list, p);
                assert_eq!(world.cells[c].standing.out, want, "cell {c} after {t:?}");
                outs += usize::from(want);
            }
        }
        assert!(most_failed >= 3, "overlapping failures: {most_failed}");
        assert!(outs > 100, "outages seen: {outs}");
    }
}
