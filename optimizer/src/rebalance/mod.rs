//! Rebalancing plans: ordered single-node moves that take every node off failed and
//! draining servers and make unsafe cells single-failure safe, each move checked against
//! the hard rules on the occupancy that the moves before it leave, with what every
//! prefix of the plan achieves.
//!
//! A plan is built move by move on one [`Occupancy`]: a move is a repair of one node
//! ([`Placer::replace`]) or a step of a cell's path to a safe placement
//! ([`Placer::plan_moves`]), so after every prefix no server is over capacity, every cell
//! keeps one colour and no two cells share a quorum, and no cell has more than one node
//! in flight. Mandatory moves come first (failed servers, then draining ones); a drain
//! never makes a single-failure-safe cell unsafe (the node stays, and the plan says why).

use topology::model::ServerStatus;
use topology::{FailureModel, Inventory, Placement};

use crate::place::{CellSlot, Occupancy, PlaceOptions, Placer};

/// What a plan must achieve.
#[derive(Debug, Clone, Copy, Default)]
pub struct Goals {
    /// Every node off `draining` servers (a drain marks the servers it empties so).
    pub drain: bool,
    /// Every node off `failed` servers, and every cell that is not single-failure safe
    /// made safe where the rules allow.
    pub repair: bool,
    /// Bring the most nodes on one server down to at most this many times the mean over
    /// the servers holding any, by moving nodes off the most loaded server that never
    /// raise a cell's risk above its start nor make a safe cell unsafe.
    pub balance: Option<f64>,
    /// Lower the total risk by moves that each cell's path makes no worse at any step
    /// and that gain at least `PlaceOptions::move_gain` of the cell's risk (so a second
    /// plan on the result has little or nothing left to do); best gain per move first.
    pub improve: bool,
    /// Most moves in the plan; mandatory moves (failed, then draining) come first.
    pub max_moves: Option<usize>,
}

/// Why a move is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The node is on a failed server.
    Failed,
    /// The node is on a draining server.
    Drain,
    /// The cell is not single-failure safe.
    Unsafe,
    /// The server is over the balance target.
    Balance,
    /// The cell's risk drops.
    Improve,
}

impl Reason {
    /// The reason's name in plans (`failed`, `drain`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Failed => "failed",
            Reason::Drain => "drain",
            Reason::Unsafe => "unsafe",
            Reason::Balance => "balance",
            Reason::Improve => "improve",
        }
    }
}

/// One node of one cell: off `remove`, onto `add`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMove {
    /// Index into the placements.
    pub cell: usize,
    /// The server the node leaves.
    pub remove: u32,
    /// The server the node goes to.
    pub add: u32,
    /// Why the move is in the plan.
    pub reason: Reason,
    /// The cell's risk (outages per year) before the move.
    pub risk_before: f64,
    /// The cell's risk (outages per year) after the move.
    pub risk_after: f64,
    /// The cell is single-failure safe after the move.
    pub safe_after: bool,
    /// Earlier moves (indices into the plan) this one must wait for: the cell's own, and
    /// the last one that took a node off `add` (it may have freed the room).
    pub after: Vec<usize>,
}

/// A goal the plan does not meet for a cell, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmet {
    /// The cell (index into the placements); none for a goal of the whole fleet.
    pub cell: Option<usize>,
    /// The node that stays where it is (none for a cell left unsafe).
    pub server: Option<u32>,
    /// The goal not met.
    pub reason: Reason,
    /// Why, for a person to read.
    pub why: String,
}

/// The fleet after the first `moves` moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// Moves made so far.
    pub moves: usize,
    /// Sum of the cells' risks (outages per year).
    pub total_risk: f64,
    /// Cells that are not single-failure safe.
    pub unsafe_cells: usize,
    /// Most nodes on one server over the mean of the servers that hold any.
    pub load_max_over_mean: f64,
    /// Nodes still on failed or draining servers.
    pub nodes_to_move: u64,
}

/// Ordered single-node moves towards the goals, with what each prefix achieves.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The moves, in the order they are made.
    pub moves: Vec<PlannedMove>,
    /// The placements after every move, in the input's order.
    pub after: Vec<Placement>,
    /// Goals the plan leaves unmet, cell by cell.
    pub unmet: Vec<Unmet>,
    /// Before any move, then after each one.
    pub curve: Vec<CurvePoint>,
}

/// Where the fleet stands while a plan is built: each cell's risk and safety, the loads.
struct Fleet {
    risk: Vec<f64>,
    safe: Vec<bool>,
    total_risk: f64,
    unsafe_cells: usize,
    /// Servers per load, the highest load, servers holding any node, nodes placed.
    at_load: Vec<u64>,
    max_load: usize,
    used: u64,
    nodes: u64,
    nodes_to_move: u64,
}

impl Fleet {
    fn point(&self, moves: usize) -> CurvePoint {
        CurvePoint {
            moves,
            total_risk: self.total_risk,
            unsafe_cells: self.unsafe_cells,
            load_max_over_mean: if self.used == 0 {
                0.0
            } else {
                self.max_load as f64 * self.used as f64 / self.nodes as f64
            },
            nodes_to_move: self.nodes_to_move,
        }
    }

    fn load_changes(&mut self, load: u32, by: i32) {
        let (from, to) = (load as usize, (i64::from(load) + i64::from(by)) as usize);
        if to >= self.at_load.len() {
            self.at_load.resize(to + 1, 0);
        }
        self.at_load[from] -= 1;
        self.at_load[to] += 1;
        self.used = self.used + u64::from(from == 0) - u64::from(to == 0);
        self.max_load = self.max_load.max(to);
        while self.max_load > 0 && self.at_load[self.max_load] == 0 {
            self.max_load -= 1;
        }
    }

    fn standing(&mut self, cell: usize, risk: f64, safe: bool) {
        self.total_risk += risk - self.risk[cell];
        self.unsafe_cells = self.unsafe_cells + usize::from(!safe) - usize::from(!self.safe[cell]);
        self.risk[cell] = risk;
        self.safe[cell] = safe;
    }
}

/// Whether a node on `server` must move, and why, under `goals`.
fn must_move(inv: &Inventory, server: u32, goals: &Goals) -> Option<Reason> {
    match inv.servers[server as usize].status {
        ServerStatus::Failed if goals.repair => Some(Reason::Failed),
        ServerStatus::Draining if goals.drain => Some(Reason::Drain),
        _ => None,
    }
}

/// A plan for `placements` (on `inv`) that meets `goals`, solved with `options`.
pub fn plan(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    goals: &Goals,
    options: &PlaceOptions,
) -> Plan {
    plan_with_progress(inv, model, placements, goals, options, &mut |_| {})
}

/// [`plan`], calling `progress` with the number of moves planned after each move.
pub fn plan_with_progress(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    goals: &Goals,
    options: &PlaceOptions,
    progress: &mut dyn FnMut(usize),
) -> Plan {
    let mut occ = Occupancy::new(inv);
    let slots: Vec<CellSlot> = placements.iter().map(|p| occ.insert(&p.nodes)).collect();
    let mut nodes: Vec<Vec<u32>> = placements.iter().map(|p| p.nodes.clone()).collect();
    let stop = &options.stop;
    let start = crate::report::cell_risks_until(model, placements, 0, stop);
    let mut fleet = Fleet {
        risk: start.iter().map(|s| s.0).collect(),
        safe: start.iter().map(|s| s.1).collect(),
        total_risk: start.iter().map(|s| s.0).sum(),
        unsafe_cells: start.iter().filter(|s| !s.1).count(),
        at_load: Vec::new(),
        max_load: 0,
        used: 0,
        nodes: occ.total_nodes(),
        nodes_to_move: 0,
    };
    for &load in occ.loads() {
        let l = load as usize;
        if l >= fleet.at_load.len() {
            fleet.at_load.resize(l + 1, 0);
        }
        fleet.at_load[l] += 1;
        fleet.used += u64::from(l > 0);
        fleet.max_load = fleet.max_load.max(l);
    }
    fleet.nodes_to_move = nodes
        .iter()
        .flatten()
        .filter(|&&s| must_move_any(inv, s))
        .count() as u64;

    let mut placer = Placer::new(inv, model, options.clone());
    let mut moves: Vec<PlannedMove> = Vec::new();
    let mut unmet: Vec<Unmet> = Vec::new();
    let mut curve = vec![fleet.point(0)];
    // The last move of each cell, and the last move off each server.
    let mut last_of_cell: Vec<Option<usize>> = vec![None; placements.len()];
    let mut last_off: rustc_hash::FxHashMap<u32, usize> = rustc_hash::FxHashMap::default();
    let budget = goals.max_moves.unwrap_or(usize::MAX);

    // Moves node `remove` of `cell` to `add` (in place in its node list), on the
    // occupancy and the fleet, and records it with its dependencies and the curve.
    let mut apply = |cell: usize,
                     (remove, add): (u32, u32),
                     reason: Reason,
                     (risk, safe): (f64, bool),
                     occ: &mut Occupancy,
                     nodes: &mut [Vec<u32>],
                     fleet: &mut Fleet,
                     moves: &mut Vec<PlannedMove>| {
        for n in nodes[cell].iter_mut().filter(|n| **n == remove) {
            *n = add;
        }
        occ.update(slots[cell], &nodes[cell]);
        let mut after: Vec<usize> = last_of_cell[cell].into_iter().collect();
        if let Some(&m) = last_off.get(&add) {
            after.push(m);
        }
        after.sort_unstable();
        after.dedup();
        let index = moves.len();
        moves.push(PlannedMove {
            cell,
            remove,
            add,
            reason,
            risk_before: fleet.risk[cell],
            risk_after: risk,
            safe_after: safe,
            after,
        });
        last_of_cell[cell] = Some(index);
        last_off.insert(remove, index);
        fleet.load_changes(occ.load(remove) + 1, -1);
        fleet.load_changes(occ.load(add) - 1, 1);
        fleet.nodes_to_move -= u64::from(must_move_any(inv, remove));
        fleet.standing(cell, risk, safe);
        curve.push(fleet.point(moves.len()));
        progress(moves.len());
    };

    // Mandatory moves: failed servers first, then draining ones, cell by cell.
    for reason in [Reason::Failed, Reason::Drain] {
        for cell in 0..placements.len() {
            if stop.is_set() {
                break;
            }
            let on: Vec<u32> = nodes[cell]
                .iter()
                .copied()
                .filter(|&s| must_move(inv, s, goals) == Some(reason))
                .collect();
            for server in on {
                if moves.len() >= budget {
                    unmet.push(Unmet {
                        cell: Some(cell),
                        server: Some(server),
                        reason,
                        why: format!("over the budget of {budget} moves"),
                    });
                    continue;
                }
                let clients = &placements[cell].clients;
                let decision =
                    match placer.replace(&occ, clients, &nodes[cell], server, Some(slots[cell])) {
                        Ok(d) => d,
                        Err(e) => {
                            unmet.push(Unmet {
                                cell: Some(cell),
                                server: Some(server),
                                reason,
                                why: e.to_string(),
                            });
                            continue;
                        }
                    };
                let safe = decision.explanation.single_failure_safe;
                if reason == Reason::Drain && fleet.safe[cell] && !safe {
                    unmet.push(Unmet {
                        cell: Some(cell),
                        server: Some(server),
                        reason,
                        why: "every replacement in reach leaves the cell not single-failure safe"
                            .into(),
                    });
                    continue;
                }
                let add = *decision
                    .nodes
                    .iter()
                    .find(|s| !nodes[cell].contains(s))
                    .expect("a replacement adds one server");
                apply(
                    cell,
                    (server, add),
                    reason,
                    (decision.explanation.risk, safe),
                    &mut occ,
                    &mut nodes,
                    &mut fleet,
                    &mut moves,
                );
            }
        }
    }

    // Then every cell that is still not single-failure safe, along its path of moves.
    if goals.repair {
        for cell in 0..placements.len() {
            if stop.is_set() {
                break;
            }
            if fleet.safe[cell] {
                continue;
            }
            let clients = &placements[cell].clients;
            let path = match placer.plan_moves(&occ, clients, &nodes[cell], Some(slots[cell])) {
                Ok(p) => p,
                Err(e) => {
                    unmet.push(Unmet {
                        cell: Some(cell),
                        server: None,
                        reason: Reason::Unsafe,
                        why: e.to_string(),
                    });
                    continue;
                }
            };
            if !path.target().single_failure_safe {
                unmet.push(Unmet {
                    cell: Some(cell),
                    server: None,
                    reason: Reason::Unsafe,
                    why: "no single-failure-safe placement in reach of its clients".into(),
                });
                continue;
            }
            if moves.len() + path.steps.len() > budget {
                unmet.push(Unmet {
                    cell: Some(cell),
                    server: None,
                    reason: Reason::Unsafe,
                    why: format!(
                        "{} moves would pass the budget of {budget}",
                        path.steps.len()
                    ),
                });
                continue;
            }
            for step in &path.steps {
                apply(
                    cell,
                    (step.out, step.into),
                    Reason::Unsafe,
                    (step.after.risk, step.after.single_failure_safe),
                    &mut occ,
                    &mut nodes,
                    &mut fleet,
                    &mut moves,
                );
            }
        }
    }

    // Then balance: a node off the most loaded server, as long as one can move without
    // raising its cell's risk above the start or its safety.
    if let Some(target) = goals.balance {
        let start_risk: Vec<f64> = start.iter().map(|s| s.0).collect();
        let cell_of: rustc_hash::FxHashMap<CellSlot, usize> = slots
            .iter()
            .enumerate()
            .map(|(c, &slot)| (slot, c))
            .collect();
        // Servers that could not give a node up: not tried again.
        let mut stuck: Vec<bool> = vec![false; inv.servers.len()];
        while fleet.point(moves.len()).load_max_over_mean > target
            && moves.len() < budget
            && !stop.is_set()
        {
            let most = (0..inv.servers.len() as u32)
                .filter(|&s| !stuck[s as usize])
                .max_by_key(|&s| (occ.load(s), std::cmp::Reverse(s)));
            let Some(server) = most.filter(|&s| occ.load(s) as usize == fleet.max_load) else {
                unmet.push(Unmet {
                    cell: None,
                    server: None,
                    reason: Reason::Balance,
                    why: format!(
                        "load max/mean {:.3}: no node of the most loaded servers can move \
                         without raising its cell's risk or breaking its safety",
                        fleet.point(moves.len()).load_max_over_mean
                    ),
                });
                break;
            };
            let mut cells: Vec<usize> = occ.cells_on(server).iter().map(|s| cell_of[s]).collect();
            cells.sort_unstable();
            let moved = cells.into_iter().find_map(|cell| {
                let d = placer
                    .replace(
                        &occ,
                        &placements[cell].clients,
                        &nodes[cell],
                        server,
                        Some(slots[cell]),
                    )
                    .ok()?;
                let e = &d.explanation;
                let add = *d.nodes.iter().find(|s| !nodes[cell].contains(s))?;
                let keeps = (e.single_failure_safe || !fleet.safe[cell])
                    && e.risk <= start_risk[cell].max(fleet.risk[cell]) * (1.0 + 1e-9)
                    && occ.load(add) + 1 < occ.load(server);
                keeps.then_some((cell, add, (e.risk, e.single_failure_safe)))
            });
            match moved {
                Some((cell, add, standing)) => apply(
                    cell,
                    (server, add),
                    Reason::Balance,
                    standing,
                    &mut occ,
                    &mut nodes,
                    &mut fleet,
                    &mut moves,
                ),
                None => stuck[server as usize] = true,
            }
        }
    }

    // Then lower risk: cells by gain per move, each path planned again on the occupancy
    // the moves before it leave.
    if goals.improve {
        // Every safe cell's path, on all cores (read-only: the occupancy as it is now).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cells: Vec<usize> = (0..placements.len()).filter(|&c| fleet.safe[c]).collect();
        let chunk = cells.len().div_ceil(threads).max(1);
        let (occ_now, nodes_now, risk_now, slots) = (&occ, &nodes, &fleet.risk, &slots);
        let mut candidates: Vec<(f64, usize)> = std::thread::scope(|scope| {
            let handles: Vec<_> = cells
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut placer = Placer::new(inv, model, options.clone()).lean();
                        part.iter()
                            .take_while(|_| !stop.is_set())
                            .filter_map(|&cell| {
                                let path = placer
                                    .plan_moves(
                                        occ_now,
                                        &placements[cell].clients,
                                        &nodes_now[cell],
                                        Some(slots[cell]),
                                    )
                                    .ok()?;
                                let gain = risk_now[cell] - path.target().risk;
                                (path.monotone && !path.steps.is_empty() && gain > 0.0)
                                    .then(|| (gain / path.steps.len() as f64, cell))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a planning worker panicked"))
                .collect()
        });
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, cell) in candidates {
            if stop.is_set() {
                break;
            }
            let clients = &placements[cell].clients;
            let Ok(path) = placer.plan_moves(&occ, clients, &nodes[cell], Some(slots[cell])) else {
                continue;
            };
            let target = path.target();
            if !path.monotone
                || path.steps.is_empty()
                || !target.single_failure_safe
                || target.risk >= fleet.risk[cell]
                || moves.len() + path.steps.len() > budget
            {
                continue;
            }
            for step in &path.steps {
                apply(
                    cell,
                    (step.out, step.into),
                    Reason::Improve,
                    (step.after.risk, step.after.single_failure_safe),
                    &mut occ,
                    &mut nodes,
                    &mut fleet,
                    &mut moves,
                );
            }
        }
    }

    let after = placements
        .iter()
        .zip(nodes)
        .map(|(p, nodes)| Placement {
            cell_id: p.cell_id.clone(),
            clients: p.clients.clone(),
            nodes,
        })
        .collect();
    Plan {
        moves,
        after,
        unmet,
        curve,
    }
}

/// Whether a node on `server` is on a failed or draining server (counted as to move).
fn must_move_any(inv: &Inventory, server: u32) -> bool {
    matches!(
        inv.servers[server as usize].status,
        ServerStatus::Failed | ServerStatus::Draining
    )
}

#[cfg(test)]
mod tests;
