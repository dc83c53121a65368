//! TEMPORARY stand-in for `optimizer::place` while the placement engine is being written on
//! main: the same API shape, with real capacity and shared-quorum checks and a greedy
//! rack-spreading choice, so that the service can be built and tested. Replaced by a
//! re-export of the engine when it lands.

use std::collections::HashMap;

use optimizer::RiskEvaluator;
use topology::model::ServerStatus;
use topology::{ElementId, FailureModel, Inventory};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellSlot(pub u32);

#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    OverCapacity {
        server: u32,
        load: u32,
        capacity: u32,
    },
    SharedQuorum {
        other: CellSlot,
        shared: usize,
    },
    Unusable {
        server: u32,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Occupancy {
    load: Vec<u32>,
    on: Vec<Vec<CellSlot>>,
    slots: Vec<Option<Vec<u32>>>,
    free: Vec<u32>,
}

impl Occupancy {
    pub fn new(inv: &Inventory) -> Occupancy {
        Occupancy {
            load: vec![0; inv.servers.len()],
            on: vec![Vec::new(); inv.servers.len()],
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn insert(&mut self, nodes: &[u32]) -> CellSlot {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize] = Some(nodes.to_vec());
        for &n in nodes {
            self.load[n as usize] += 1;
            self.on[n as usize].push(CellSlot(slot));
        }
        CellSlot(slot)
    }

    pub fn remove(&mut self, slot: CellSlot) {
        if let Some(nodes) = self.slots[slot.0 as usize].take() {
            for n in nodes {
                self.load[n as usize] -= 1;
                self.on[n as usize].retain(|&s| s != slot);
            }
            self.free.push(slot.0);
        }
    }

    pub fn load(&self, server: u32) -> u32 {
        self.load[server as usize]
    }

    pub fn cells_on(&self, server: u32) -> &[CellSlot] {
        &self.on[server as usize]
    }

    pub fn violations(
        &self,
        inv: &Inventory,
        nodes: &[u32],
        ignoring: Option<CellSlot>,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut shared: HashMap<CellSlot, usize> = HashMap::new();
        for &n in nodes {
            let s = &inv.servers[n as usize];
            if s.status != ServerStatus::Active {
                out.push(Violation::Unusable { server: n });
            }
            let mine = ignoring.is_some_and(|i| self.on[n as usize].contains(&i));
            let load = self.load[n as usize] - u32::from(mine);
            if load + 1 > s.capacity {
                out.push(Violation::OverCapacity {
                    server: n,
                    load,
                    capacity: s.capacity,
                });
            }
            for &c in &self.on[n as usize] {
                if Some(c) != ignoring {
                    *shared.entry(c).or_default() += 1;
                }
            }
        }
        let quorum = nodes.len() / 2 + 1;
        for (other, k) in shared {
            let other_quorum = self.slots[other.0 as usize]
                .as_ref()
                .map_or(usize::MAX, |v| v.len() / 2 + 1);
            if k >= quorum.min(other_quorum) {
                out.push(Violation::SharedQuorum { other, shared: k });
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PlaceOptions {}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub elements: Vec<ElementId>,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainCount {
    pub level: &'static str,
    pub label: String,
    pub nodes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Capacity,
    Colour,
    SharedQuorum,
    SingleFailureSafe,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Capacity => "capacity",
            Rule::Colour => "colour",
            Rule::SharedQuorum => "shared_quorum",
            Rule::SingleFailureSafe => "single_failure_safe",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub risk: f64,
    pub single_risk: f64,
    pub pair_risk: f64,
    pub single_failure_safe: bool,
    pub breaking: Vec<ElementId>,
    pub top_scenarios: Vec<Scenario>,
    pub domains: Vec<DomainCount>,
    pub binding: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SolveInfo {
    pub solver: &'static str,
    pub pool: usize,
    pub gap: f64,
    pub elapsed: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub nodes: Vec<u32>,
    pub explanation: Explanation,
    pub solve: SolveInfo,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub out: u32,
    pub into: u32,
    pub after: Explanation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MovePlan {
    pub current: Explanation,
    pub proposed: Option<Move>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no feasible placement: {reason}")]
    NoFeasiblePlacement { reason: String, binding: Vec<Rule> },
    #[error("{field}: {message}")]
    InvalidRequest { field: String, message: String },
}

#[derive(Debug)]
pub struct Placer<'m> {
    inv: &'m Inventory,
    eval: RiskEvaluator<'m>,
}

impl<'m> Placer<'m> {
    pub fn new(inv: &'m Inventory, model: &'m FailureModel, _o: PlaceOptions) -> Placer<'m> {
        Placer {
            inv,
            eval: RiskEvaluator::new(model),
        }
    }

    pub fn explain(&mut self, clients: &[u32], nodes: &[u32]) -> Explanation {
        let r = self.eval.evaluate(clients, nodes);
        let mut racks: HashMap<u32, u32> = HashMap::new();
        for &n in nodes {
            *racks.entry(self.inv.servers[n as usize].rack).or_default() += 1;
        }
        let mut domains: Vec<DomainCount> = racks
            .into_iter()
            .map(|(r, k)| DomainCount {
                level: "rack",
                label: self.inv.racks[r as usize].id.clone(),
                nodes: k,
            })
            .collect();
        domains.sort_by(|a, b| b.nodes.cmp(&a.nodes).then(a.label.cmp(&b.label)));
        Explanation {
            risk: r.risk,
            single_risk: r.single_risk,
            pair_risk: r.pair_risk,
            single_failure_safe: r.single_failure_safe(),
            breaking: r.breaking_singles.clone(),
            top_scenarios: r
                .top_scenarios
                .iter()
                .map(|s| Scenario {
                    elements: s.elements.clone(),
                    weight: s.weight,
                })
                .collect(),
            domains,
            binding: Vec::new(),
        }
    }

    fn pick(
        &self,
        occ: &Occupancy,
        size: usize,
        fixed: &[u32],
        exclude: &[u32],
        ignoring: Option<CellSlot>,
    ) -> Result<Vec<u32>, EngineError> {
        let colour = fixed
            .first()
            .map(|&n| self.inv.servers[n as usize].color.clone());
        let mut candidates: Vec<u32> = (0..self.inv.servers.len() as u32)
            .filter(|&s| {
                let srv = &self.inv.servers[s as usize];
                srv.status == ServerStatus::Active
                    && srv.capacity > occ.load(s)
                    && !fixed.contains(&s)
                    && !exclude.contains(&s)
                    && colour.as_ref().is_none_or(|c| &srv.color == c)
            })
            .collect();
        candidates.sort_by_key(|&s| (occ.load(s), s));
        let mut nodes = fixed.to_vec();
        for &c in &candidates {
            if nodes.len() == size {
                break;
            }
            let srv = &self.inv.servers[c as usize];
            if let Some(&first) = nodes.first() {
                if self.inv.servers[first as usize].color != srv.color {
                    continue;
                }
            }
            if nodes
                .iter()
                .any(|&n| self.inv.servers[n as usize].rack == srv.rack)
            {
                continue;
            }
            nodes.push(c);
            if !occ.violations(self.inv, &nodes, ignoring).is_empty() {
                nodes.pop();
            }
        }
        if nodes.len() < size {
            return Err(EngineError::NoFeasiblePlacement {
                reason: format!("only {} of {size} nodes fit", nodes.len()),
                binding: vec![Rule::Capacity],
            });
        }
        Ok(nodes)
    }

    pub fn place(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        size: usize,
    ) -> Result<Decision, EngineError> {
        if size.is_multiple_of(2) || !(3..=15).contains(&size) {
            return Err(EngineError::InvalidRequest {
                field: "size".into(),
                message: format!("{size} is not an odd number from 3 to 15"),
            });
        }
        let start = std::time::Instant::now();
        let nodes = self.pick(occ, size, &[], &[], None)?;
        let explanation = self.explain(clients, &nodes);
        Ok(Decision {
            nodes,
            explanation,
            solve: SolveInfo {
                solver: "stub",
                pool: 0,
                gap: 0.0,
                elapsed: start.elapsed(),
            },
        })
    }

    pub fn replace(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        nodes: &[u32],
        server: u32,
        slot: CellSlot,
    ) -> Result<Decision, EngineError> {
        let start = std::time::Instant::now();
        let keep: Vec<u32> = nodes.iter().copied().filter(|&n| n != server).collect();
        let mut new = self.pick(occ, nodes.len(), &keep, &[server], Some(slot))?;
        // Keep positions: the replacement takes the place of the old node.
        let added = new.pop().expect("one node added");
        new = nodes
            .iter()
            .map(|&n| if n == server { added } else { n })
            .collect();
        let explanation = self.explain(clients, &new);
        Ok(Decision {
            nodes: new,
            explanation,
            solve: SolveInfo {
                solver: "stub",
                pool: 0,
                gap: 0.0,
                elapsed: start.elapsed(),
            },
        })
    }

    pub fn next_move(
        &mut self,
        occ: &Occupancy,
        clients: &[u32],
        nodes: &[u32],
        slot: CellSlot,
    ) -> Result<MovePlan, EngineError> {
        let current = self.explain(clients, nodes);
        // Try moving the node on the first rack that shares a rack with a client, or none.
        let client_racks: Vec<u32> = clients
            .iter()
            .map(|&c| self.inv.servers[c as usize].rack)
            .collect();
        let Some(&out) = nodes
            .iter()
            .find(|&&n| client_racks.contains(&self.inv.servers[n as usize].rack))
        else {
            return Ok(MovePlan {
                current,
                proposed: None,
            });
        };
        let keep: Vec<u32> = nodes.iter().copied().filter(|&n| n != out).collect();
        let Ok(mut new) = self.pick(occ, nodes.len(), &keep, &[out], Some(slot)) else {
            return Ok(MovePlan {
                current,
                proposed: None,
            });
        };
        let into = new.pop().expect("one node added");
        let after_nodes: Vec<u32> = nodes
            .iter()
            .map(|&n| if n == out { into } else { n })
            .collect();
        let after = self.explain(clients, &after_nodes);
        Ok(MovePlan {
            current,
            proposed: Some(Move { out, into, after }),
        })
    }
}
