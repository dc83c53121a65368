//! One failure scenario, exactly and fast: which servers are up, and which up servers
//! reach which, when a given set of elements has failed (any number of them). Linear in
//! the zone: power by memoised relaxation, connectivity by union-find over live links.

use rustc_hash::FxHashSet;

use crate::model::{ElementId, Inventory, NetNode, ServerStatus};

/// The zone under one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioState {
    /// Per server: powered, its rack standing, not failed itself.
    pub up: Vec<bool>,
    /// Per server: its connected component (meaningful only when up).
    component: Vec<u32>,
}

impl ScenarioState {
    /// Computes the zone's state with the elements `failed` failed.
    pub fn new(inv: &Inventory, failed: &[ElementId]) -> ScenarioState {
        let failed: FxHashSet<ElementId> = failed.iter().copied().collect();
        let down = |e: ElementId| failed.contains(&e);
        // Power devices: on when not failed and fed by one that is on (or fed by none).
        let mut on: Vec<Option<bool>> = vec![None; inv.power_devices.len()];
        fn device_on(
            inv: &Inventory,
            d: usize,
            down: &dyn Fn(ElementId) -> bool,
            on: &mut [Option<bool>],
        ) -> bool {
            if let Some(v) = on[d] {
                return v;
            }
            // Cycles are refused at import; the guard only keeps a bug from recursing.
            on[d] = Some(false);
            let dev = &inv.power_devices[d];
            let v = !down(dev.element)
                && (dev.feeds.is_empty()
                    || dev
                        .feeds
                        .iter()
                        .any(|&u| device_on(inv, u as usize, down, on)));
            on[d] = Some(v);
            v
        }
        let mut fed = |feeds: &[u32]| {
            feeds.is_empty()
                || feeds
                    .iter()
                    .any(|&u| device_on(inv, u as usize, &down, &mut on))
        };
        let up: Vec<bool> = inv
            .servers
            .iter()
            .map(|s| {
                let rack = &inv.racks[s.rack as usize];
                let feeds = inv.feeds_of(s);
                s.status != ServerStatus::Failed
                    && !down(s.element)
                    && !down(rack.element)
                    && fed(feeds)
            })
            .collect();
        let device_up: Vec<bool> = inv
            .network_devices
            .iter()
            .map(|d| !down(d.element) && fed(&d.feeds))
            .collect();
        let servers = inv.servers.len();
        let vertex = |n: NetNode| match n {
            NetNode::Server(s) => s as usize,
            NetNode::Device(d) => servers + d as usize,
        };
        let alive = |n: NetNode| match n {
            NetNode::Server(s) => up[s as usize],
            NetNode::Device(d) => device_up[d as usize],
        };
        let mut parent: Vec<u32> = (0..(servers + inv.network_devices.len()) as u32).collect();
        fn root(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                let up = parent[parent[x as usize] as usize];
                parent[x as usize] = up;
                x = up;
            }
            x
        }
        for l in &inv.links {
            let live = !down(l.element)
                && l.risk_group
                    .is_none_or(|g| !down(inv.risk_groups[g as usize].element))
                && alive(l.a)
                && alive(l.b);
            if live {
                let (a, b) = (
                    root(&mut parent, vertex(l.a) as u32),
                    root(&mut parent, vertex(l.b) as u32),
                );
                if a != b {
                    parent[a.max(b) as usize] = a.min(b);
                }
            }
        }
        let component = (0..servers as u32).map(|s| root(&mut parent, s)).collect();
        ScenarioState { up, component }
    }

    /// The connected component of server `s` (the least vertex index in it), or `None`
    /// when it is down: two up servers are connected exactly when these are equal.
    pub fn component(&self, s: u32) -> Option<u32> {
        self.up[s as usize].then(|| self.component[s as usize])
    }

    /// Both up and in one component (a server always reaches itself when up).
    pub fn connected(&self, a: u32, b: u32) -> bool {
        self.up[a as usize]
            && self.up[b as usize]
            && self.component[a as usize] == self.component[b as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::reference;

    #[test]
    fn equals_the_reference_on_every_single_and_many_sets() {
        let (_, inv) = crate::testing::tiny();
        let m = inv.elements.len() as u32;
        let mut sets: Vec<Vec<ElementId>> = vec![vec![]];
        sets.extend((0..m).map(|e| vec![ElementId(e)]));
        // A deterministic spread of larger scenarios.
        for k in 0..200u32 {
            let n = 2 + k % 4;
            sets.push(
                (0..n)
                    .map(|j| ElementId((k * 7919 + j * 104_729) % m))
                    .collect(),
            );
        }
        for failed in &sets {
            let fast = ScenarioState::new(&inv, failed);
            let slow = reference::state(&inv, failed);
            assert_eq!(fast.up, slow.up, "{failed:?}");
            for a in 0..inv.servers.len() as u32 {
                for b in 0..inv.servers.len() as u32 {
                    let want = slow.up[a as usize]
                        && slow.up[b as usize]
                        && slow.component[a as usize] == slow.component[b as usize];
                    assert_eq!(fast.connected(a, b), want, "{failed:?} {a} {b}");
                }
            }
        }
    }
}
