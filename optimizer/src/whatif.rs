//! What-if: the same cells on the inventory before and after a change, side by side: the
//! fleet reports (risk distribution, blast radius, safety), the cells newly unsafe, the
//! cells out or degraded under a failure scenario, load and free capacity per domain, the
//! nodes that must move and the repair plan that moves them. Pure: values in, values out.

use topology::failure::ScenarioState;
use topology::model::ServerStatus;
use topology::{ElementId, FailureModel, Inventory, Placement};

use crate::place::PlaceOptions;
use crate::rebalance::{self, Goals, Plan};
use crate::report::{fleet_report, pair_blast_radius, FleetReport, PairBlast, ReportOptions};

/// A cell under a failure scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Every node reaches every client that needs it.
    Ok,
    /// Some node is down or cut off from a client, but every client keeps a quorum.
    Degraded,
    /// A client that is up (and connected to another client, when there are several)
    /// reaches fewer than a quorum of the nodes: the contract's outage.
    Out,
}

impl Standing {
    /// The standing's name in answers (`ok`, `degraded`, `out`).
    pub fn name(self) -> &'static str {
        match self {
            Standing::Ok => "ok",
            Standing::Degraded => "degraded",
            Standing::Out => "out",
        }
    }
}

/// One cell under the scenario `state` (the contract's outage, or what it lost).
pub fn standing(state: &ScenarioState, clients: &[u32], nodes: &[u32]) -> Standing {
    let quorum = nodes.len() / 2 + 1;
    let mut lost = nodes.iter().any(|&n| !state.up[n as usize]);
    for &c in clients {
        let needs = state.up[c as usize]
            && (clients.len() == 1 || clients.iter().any(|&o| o != c && state.connected(c, o)));
        if !needs {
            continue;
        }
        let reached = nodes.iter().filter(|&&n| state.connected(c, n)).count();
        if reached < quorum {
            return Standing::Out;
        }
        lost |= reached < nodes.len();
    }
    if lost {
        Standing::Degraded
    } else {
        Standing::Ok
    }
}

/// Every cell under one failure scenario (any set of elements).
pub fn scenario(inv: &Inventory, failed: &[ElementId], placements: &[Placement]) -> Vec<Standing> {
    let state = ScenarioState::new(inv, failed);
    placements
        .iter()
        .map(|p| standing(&state, &p.clients, &p.nodes))
        .collect()
}

/// The level of a load domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A datacenter, by label.
    Datacenter,
    /// A room, by label.
    Room,
    /// A row, by label.
    Row,
    /// Every server a power device feeds, directly or through other devices.
    Power,
}

impl Level {
    /// The level's name in answers (`datacenter`, `room`, `row`, `power`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Datacenter => "datacenter",
            Level::Room => "room",
            Level::Row => "row",
            Level::Power => "power",
        }
    }
}

/// Load and capacity of the active hosts in one domain (nodes on other servers count in
/// `load` too, so a domain's load is every node placed in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainLoad {
    /// The domain's level.
    pub level: Level,
    /// Its label (datacenter, room, row) or the power device's id.
    pub domain: String,
    /// Active servers with capacity.
    pub hosts: u32,
    /// Node capacity of those hosts.
    pub capacity: u64,
    /// Nodes placed on the domain's servers.
    pub load: u64,
    /// Capacity left on its active hosts, host by host (a host over capacity adds 0).
    pub free: u64,
}

fn active_host(inv: &Inventory, s: u32) -> bool {
    let server = &inv.servers[s as usize];
    server.status == ServerStatus::Active && server.capacity > 0
}

/// Load per datacenter, room, row and power device, with free capacity (by level, then
/// domain id).
pub fn domain_loads(inv: &Inventory, placements: &[Placement]) -> Vec<DomainLoad> {
    let mut per_server = vec![0u64; inv.servers.len()];
    for p in placements {
        for &n in &p.nodes {
            per_server[n as usize] += 1;
        }
    }
    let mut groups: std::collections::BTreeMap<(Level, String), Vec<u32>> = Default::default();
    for (s, server) in inv.servers.iter().enumerate() {
        let rack = &inv.racks[server.rack as usize];
        for (level, id) in [
            (Level::Datacenter, &rack.datacenter),
            (Level::Room, &rack.room),
            (Level::Row, &rack.row),
        ] {
            groups
                .entry((level, id.clone()))
                .or_default()
                .push(s as u32);
        }
    }
    for d in &inv.power_devices {
        let servers = inv.servers_named(&d.id).unwrap_or_default();
        groups.insert((Level::Power, d.id.clone()), servers);
    }
    groups
        .into_iter()
        .map(|((level, domain), servers)| {
            let hosts: Vec<u32> = servers
                .iter()
                .copied()
                .filter(|&s| active_host(inv, s))
                .collect();
            let capacity = |s: u32| u64::from(inv.servers[s as usize].capacity);
            DomainLoad {
                level,
                domain,
                hosts: hosts.len() as u32,
                capacity: hosts.iter().map(|&s| capacity(s)).sum(),
                load: servers.iter().map(|&s| per_server[s as usize]).sum(),
                free: hosts
                    .iter()
                    .map(|&s| capacity(s).saturating_sub(per_server[s as usize]))
                    .sum(),
            }
        })
        .collect()
}

/// Nodes on servers that are failed or draining (those a repair or drain must move).
pub fn nodes_to_move(inv: &Inventory, placements: &[Placement]) -> Vec<u64> {
    placements
        .iter()
        .map(|p| {
            p.nodes
                .iter()
                .filter(|&&n| inv.servers[n as usize].status != ServerStatus::Active)
                .count() as u64
        })
        .collect()
}

/// Cells per batch of a headroom search.
const HEADROOM_BATCH: usize = 10_000;
/// Most cells a headroom search may be asked to place (a limit, not a result: it is said
/// when reached).
pub const HEADROOM_LIMIT: usize = 2_000_000;

/// How many more cells fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Headroom {
    /// Cells of the mix the engine placed on top of the current ones, in order, before the
    /// first it could not place.
    pub cells: usize,
    /// Why the first cell it could not place failed (`None` when the limit was reached).
    pub stopped_by: Option<String>,
}

/// How many more cells of `mix` (client sets, cycled, `size` nodes each) the engine places
/// under the rules on top of `placements`, in batches, stopping at the first cell it
/// cannot place or at `limit` (at most [`HEADROOM_LIMIT`]). A heuristic's count: a lower
/// bound of what fits, not a proof that no more does.
pub fn headroom(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    mix: &[Vec<u32>],
    (size, limit): (usize, usize),
    options: &PlaceOptions,
) -> Headroom {
    let limit = limit.min(HEADROOM_LIMIT);
    let mut occ = crate::place::Occupancy::new(inv);
    for p in placements {
        occ.insert(&p.nodes);
    }
    let mut out = Headroom {
        cells: 0,
        stopped_by: None,
    };
    if mix.is_empty() {
        out.stopped_by = Some("no client sets in the mix".into());
        return out;
    }
    while out.cells < limit && !options.stop.is_set() {
        let n = HEADROOM_BATCH.min(limit - out.cells);
        let specs: Vec<topology::CellSpec> = (out.cells..out.cells + n)
            .map(|i| topology::CellSpec {
                cell_id: format!("headroom-{i}"),
                clients: mix[i % mix.len()].clone(),
                size,
            })
            .collect();
        let batch = crate::place::batch::place_batch(inv, model, &specs, &mut occ, options);
        if options.stop.is_set() {
            // Cut short: the count is thrown away.
            return out;
        }
        // Cells after the first failure may still have been placed (a smaller need fits
        // elsewhere); count only the prefix before it, so the answer is "this many in a row".
        let first_failed = batch
            .failed
            .first()
            .and_then(|(id, _)| specs.iter().position(|s| &s.cell_id == id));
        let placed_prefix = first_failed.unwrap_or(n);
        out.cells += placed_prefix;
        if let Some((_, why)) = batch.failed.first() {
            out.stopped_by = Some(why.to_string());
            return out;
        }
    }
    out
}

/// One side of a what-if.
#[derive(Debug, Clone)]
pub struct Side {
    /// The fleet report (`None` when not asked for: a scenario alone changes no risk).
    pub report: Option<FleetReport>,
    /// Under the scenario, when one was given and its elements exist on this side.
    pub scenario: Option<Vec<Standing>>,
    /// Load per domain (empty when not asked for).
    pub domains: Vec<DomainLoad>,
    /// Per cell: nodes on failed or draining servers.
    pub must_move: Vec<u64>,
}

/// What to compute.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fleet reports of both sides (`None`: skip them, e.g. for a scenario alone).
    pub report: Option<ReportOptions>,
    /// Element ids failing in the scenario before the change (`None`: no scenario there).
    pub fail_before: Option<Vec<ElementId>>,
    /// Element ids failing in the scenario after the change (`None`: no scenario there).
    pub fail_after: Option<Vec<ElementId>>,
    /// Element pairs to rank after the change (0: none).
    pub pairs_top: usize,
    /// Plan the repair (moves off failed and draining servers) after the change.
    pub plan: Option<PlaceOptions>,
    /// Load and free capacity per domain on both sides.
    pub domains: bool,
    /// Ends the comparison early once set (its answer is then to be thrown away): the
    /// reports, the pairs and the plan all look at it.
    pub stop: crate::Stop,
}

/// The same cells before and after a change, side by side.
#[derive(Debug, Clone)]
pub struct WhatIf {
    /// The inventory before the change.
    pub before: Side,
    /// The inventory after the change.
    pub after: Side,
    /// Cells single-failure safe before and not after.
    pub newly_unsafe: Vec<usize>,
    /// The top element pairs after the change.
    pub pairs: Vec<PairBlast>,
    /// The repair plan after the change (moves off failed and draining servers).
    pub plan: Option<Plan>,
}

fn side(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    fail: Option<&[ElementId]>,
    options: &Options,
) -> Side {
    Side {
        report: options.report.as_ref().map(|r| {
            let r = ReportOptions {
                stop: options.stop.clone(),
                ..r.clone()
            };
            fleet_report(inv, model, placements, &r)
        }),
        scenario: fail.map(|f| scenario(inv, f, placements)),
        domains: if options.domains {
            domain_loads(inv, placements)
        } else {
            Vec::new()
        },
        must_move: nodes_to_move(inv, placements),
    }
}

/// The same cells (`before[i]` and `after[i]` are one cell, by server indices of each
/// inventory) before and after a change.
pub fn compare(
    before: (&Inventory, &FailureModel, &[Placement]),
    after: (&Inventory, &FailureModel, &[Placement]),
    options: &Options,
) -> WhatIf {
    assert_eq!(
        before.2.len(),
        after.2.len(),
        "the same cells on both sides"
    );
    let b = side(
        before.0,
        before.1,
        before.2,
        options.fail_before.as_deref(),
        options,
    );
    let a = side(
        after.0,
        after.1,
        after.2,
        options.fail_after.as_deref(),
        options,
    );
    let newly_unsafe = match (&b.report, &a.report) {
        (Some(rb), Some(ra)) => {
            let before: std::collections::HashSet<usize> =
                rb.unsafe_cells.iter().copied().collect();
            ra.unsafe_cells
                .iter()
                .copied()
                .filter(|c| !before.contains(c))
                .collect()
        }
        _ => Vec::new(),
    };
    let threads = options.report.as_ref().map_or(0, |r| r.threads);
    let pairs = if options.pairs_top > 0 {
        pair_blast_radius(after.1, after.2, options.pairs_top, threads, &options.stop)
    } else {
        Vec::new()
    };
    let plan = options.plan.as_ref().map(|place| {
        let goals = Goals {
            drain: true,
            repair: true,
            ..Goals::default()
        };
        let place = PlaceOptions {
            stop: options.stop.clone(),
            ..place.clone()
        };
        rebalance::plan(after.0, after.1, after.2, &goals, &place)
    });
    WhatIf {
        before: b,
        after: a,
        newly_unsafe,
        pairs,
        plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_degraded_then_out_as_its_nodes_fail() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/tiny");
        let raw = topology::ingest::read_dir(&dir).unwrap();
        let (inv, _) = Inventory::from_raw(&raw).unwrap();
        let active: Vec<u32> = (0..inv.servers.len() as u32)
            .filter(|&s| inv.servers[s as usize].status == ServerStatus::Active)
            .collect();
        let (clients, nodes) = (vec![active[0]], active[1..4].to_vec());
        let element = |s: u32| inv.servers[s as usize].element;
        let at =
            |failed: &[ElementId]| standing(&ScenarioState::new(&inv, failed), &clients, &nodes);
        assert_eq!(at(&[]), Standing::Ok);
        assert_eq!(at(&[element(nodes[0])]), Standing::Degraded);
        assert_eq!(at(&[element(nodes[0]), element(nodes[1])]), Standing::Out);
        // With its only client down, no cell is out: the contract conditions on clients.
        assert_eq!(
            at(&[element(clients[0]), element(nodes[0]), element(nodes[1])]),
            Standing::Degraded
        );
    }

    /// Headroom on a zone of single-node hosts: the engine fills it to the last host it
    /// can (never beyond capacity), and what it placed keeps every rule.
    #[test]
    fn headroom_fills_capacity_and_keeps_the_rules() {
        let params = fixtures::ZoneParams {
            node_capacity: 1,
            colors: 1,
            failed_fraction: 0.0,
            draining_fraction: 0.0,
            cells: 10,
            ..fixtures::ZoneParams::tiny(3)
        };
        let raw = fixtures::generate(&params);
        let (inv, _) = Inventory::from_raw(&raw).unwrap();
        let model = FailureModel::new(&inv);
        let cells = topology::workload::parse_cells(raw.table("cells").unwrap(), &inv).unwrap();
        let mix: Vec<Vec<u32>> = cells.iter().map(|c| c.clients.clone()).collect();
        let hosts = inv.servers.iter().filter(|s| s.capacity > 0).count();
        let h = headroom(
            &inv,
            &model,
            &[],
            &mix,
            (3, HEADROOM_LIMIT),
            &PlaceOptions::default(),
        );
        assert!(h.cells <= hosts / 3, "{h:?} with {hosts} hosts");
        assert!(h.cells >= hosts / 3 - 1, "{h:?} with {hosts} hosts");
        // Stopped (its caller's time limit ran out): nothing more is placed.
        let stop = crate::Stop::new();
        stop.set();
        let stopped = PlaceOptions {
            stop,
            ..PlaceOptions::default()
        };
        assert_eq!(
            headroom(&inv, &model, &[], &mix, (3, HEADROOM_LIMIT), &stopped).cells,
            0
        );
        // A limit is kept, and said to be what stopped the count.
        let capped = headroom(&inv, &model, &[], &mix, (3, 2), &PlaceOptions::default());
        assert_eq!((capped.cells, capped.stopped_by), (2, None));
        assert!(h.stopped_by.is_some());
        // On top of what it found room for, one cell less fits.
        let placed: Vec<Placement> = {
            let mut occ = crate::place::Occupancy::new(&inv);
            let specs: Vec<topology::CellSpec> = (0..h.cells)
                .map(|i| topology::CellSpec {
                    cell_id: format!("headroom-{i}"),
                    clients: mix[i % mix.len()].clone(),
                    size: 3,
                })
                .collect();
            crate::place::batch::place_batch(
                &inv,
                &model,
                &specs,
                &mut occ,
                &PlaceOptions::default(),
            )
            .placements
        };
        assert_eq!(placed.len(), h.cells);
        let again = headroom(
            &inv,
            &model,
            &placed,
            &mix,
            (3, HEADROOM_LIMIT),
            &PlaceOptions::default(),
        );
        assert_eq!(again.cells, 0, "{again:?}");
    }
}
