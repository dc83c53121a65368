//! Exactness: the evaluator, the solvers, batches and move paths against brute force on
//! small inventories, and the engine on generated zones. One test binary; a module per
//! job, the shared inventories and brute force here.

use optimizer::mip::SolverKind;
use optimizer::place::{DomainLevel, Occupancy, PlaceOptions, Placer, Solver, Violation};
use optimizer::report::{
    fleet_report, fleet_report_known, pair_blast_radius, quorum_sharing_pairs, ReportOptions,
};
use optimizer::risk::{reference, RiskEvaluator};
use optimizer::whatif;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topology::model::{NetNode, ServerStatus};
use topology::overlay::{Health, Named, Reported};
use topology::raw::{RawInventory, RawTable};
use topology::ElementId;
use topology::Placement;
use topology::{Changed, FailureModel, Inventory};

mod batch;
mod moves;
mod placement;
mod risk;

/// A random, valid, deliberately irregular inventory: servers linked to one or two devices
/// or to each other, random device meshes, shared risk groups, a random power DAG with
/// single and double feeds, failed servers, large afr so that pairs weigh in, and repair
/// times from an hour to a month (or the defaults).
fn random_inventory(seed: u64) -> Inventory {
    Inventory::from_raw(&random_raw(seed))
        .expect("random inventory is valid")
        .0
}

/// The tables of [`random_inventory`].
fn random_raw(seed: u64) -> RawInventory {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // The element columns `afr, repair_hours`, each left empty (the default) at times.
    let afr = |rng: &mut ChaCha8Rng| -> [String; 2] {
        let afr = if rng.random_bool(0.2) {
            String::new()
        } else {
            format!("{:.3}", rng.random_range(0.01..0.4))
        };
        let hours = if rng.random_bool(0.3) {
            String::new()
        } else {
            format!("{:.2}", rng.random_range(0.5..720.0))
        };
        [afr, hours]
    };
    let mut raw = RawInventory::default();
    let n_racks = rng.random_range(1..=4);
    let mut racks = RawTable::for_table("racks");
    for r in 0..n_racks {
        let [a, h] = afr(&mut rng);
        racks.push(&[
            format!("r{r}"),
            "dc1".into(),
            format!("h{}", r % 2),
            format!("w{r}"),
            a,
            h,
        ]);
    }
    let n_servers = rng.random_range(2..=9);
    let mut servers = RawTable::for_table("servers");
    for s in 0..n_servers {
        let status = match rng.random_range(0..10) {
            0 => "failed",
            1 => "draining",
            _ => "active",
        };
        let rack = rng.random_range(0..n_racks);
        let [a, h] = afr(&mut rng);
        servers.push(&[
            format!("s{s}"),
            format!("r{rack}"),
            status.into(),
            "10".into(),
            "".into(),
            a,
            h,
        ]);
    }
    let kinds = ["tor", "aggregation", "spine", "other"];
    let n_dev = rng.random_range(1..=5);
    // Half the zones are two sites joined only through border routers, as the generator's
    // partitions are: each site's devices reach their border router over links in the
    // site's partition risk group (whose failure cuts the site off), the border routers
    // link to each other, and devices mesh only within their site.
    let partitioned = n_dev >= 2 && rng.random_bool(0.5);
    let site = |d: usize| if partitioned { d % 2 } else { 0 };
    let mut devices = RawTable::for_table("network_devices");
    for d in 0..n_dev {
        let [a, h] = afr(&mut rng);
        devices.push(&[
            format!("d{d}"),
            kinds[rng.random_range(0..4)].into(),
            format!("dc{}", site(d) + 1),
            a,
            h,
        ]);
    }
    let n_border = if partitioned { 2 } else { 0 };
    for b in 0..n_border {
        let [a, h] = afr(&mut rng);
        devices.push(&[
            format!("b{b}"),
            "border".into(),
            format!("dc{}", b + 1),
            a,
            h,
        ]);
    }
    let n_groups = rng.random_range(0..=2);
    let mut links = RawTable::for_table("network_links");
    let mut nl = 0;
    // The next link, numbered, in `group` (empty: none).
    let mut push_link =
        |a: String, b: String, group: String, rng: &mut ChaCha8Rng, links: &mut RawTable| {
            let [a_fr, h] = afr(rng);
            links.push(&[format!("l{nl}"), a, b, group, a_fr, h]);
            nl += 1;
        };
    // A link in one of the random groups, at times.
    let mut link = |a: String, b: String, rng: &mut ChaCha8Rng, links: &mut RawTable| {
        let g = if n_groups > 0 && rng.random_bool(0.3) {
            format!("g{}", rng.random_range(0..n_groups))
        } else {
            String::new()
        };
        push_link(a, b, g, rng, links);
    };
    for s in 0..n_servers {
        let homes = rng.random_range(0..=2);
        for _ in 0..homes {
            let d = rng.random_range(0..n_dev);
            link(format!("s{s}"), format!("d{d}"), &mut rng, &mut links);
        }
        if rng.random_bool(0.1) && n_servers > 1 {
            let o = (s + 1) % n_servers;
            link(format!("s{s}"), format!("s{o}"), &mut rng, &mut links);
        }
    }
    for a in 0..n_dev {
        for b in a + 1..n_dev {
            if site(a) == site(b) && rng.random_bool(0.5) {
                link(format!("d{a}"), format!("d{b}"), &mut rng, &mut links);
            }
        }
    }
    let mut groups = RawTable::for_table("risk_groups");
    if partitioned {
        for d in 0..n_dev {
            let (border, group) = (site(d), format!("partition-dc{}", site(d) + 1));
            push_link(
                format!("d{d}"),
                format!("b{border}"),
                group,
                &mut rng,
                &mut links,
            );
        }
        push_link(
            "b0".into(),
            "b1".into(),
            String::new(),
            &mut rng,
            &mut links,
        );
        for g in 1..=2 {
            let [a, h] = afr(&mut rng);
            groups.push(&[format!("partition-dc{g}"), a, h]);
        }
    }
    for g in 0..n_groups {
        // One group is left undeclared: it must get the default afr.
        if g == 0 && rng.random_bool(0.5) {
            continue;
        }
        let [a, h] = afr(&mut rng);
        groups.push(&[format!("g{g}"), a, h]);
    }
    let n_power = rng.random_range(1..=5);
    let pkinds = ["utility", "generator", "switchgear", "ups", "pdu", "other"];
    let mut power = RawTable::for_table("power_devices");
    for p in 0..n_power {
        let [a, h] = afr(&mut rng);
        power.push(&[
            format!("p{p}"),
            pkinds[rng.random_range(0..6)].into(),
            "dc1".into(),
            a,
            h,
        ]);
    }
    let mut feeds = RawTable::for_table("power_feeds");
    let feed_some = |target: String, max_up: usize, rng: &mut ChaCha8Rng, feeds: &mut RawTable| {
        if max_up == 0 {
            return;
        }
        let k = rng.random_range(0..=2usize.min(max_up));
        let mut ups: Vec<usize> = (0..max_up).collect();
        for _ in 0..k {
            let i = rng.random_range(0..ups.len());
            let u = ups.swap_remove(i);
            feeds.push(&[format!("p{u}"), target.clone()]);
        }
    };
    for p in 1..n_power {
        feed_some(format!("p{p}"), p, &mut rng, &mut feeds);
    }
    for r in 0..n_racks {
        feed_some(format!("r{r}"), n_power, &mut rng, &mut feeds);
    }
    for d in 0..n_dev {
        feed_some(format!("d{d}"), n_power, &mut rng, &mut feeds);
    }
    for b in 0..n_border {
        feed_some(format!("b{b}"), n_power, &mut rng, &mut feeds);
    }
    for s in 0..n_servers {
        if rng.random_bool(0.15) {
            feed_some(format!("s{s}"), n_power, &mut rng, &mut feeds);
        }
    }
    raw.insert("racks", racks);
    raw.insert("servers", servers);
    raw.insert("network_devices", devices);
    raw.insert("network_links", links);
    raw.insert("risk_groups", groups);
    raw.insert("power_devices", power);
    raw.insert("power_feeds", feeds);
    raw
}

fn random_cell(inv: &Inventory, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<u32>) {
    let n = inv.servers.len() as u32;
    let pick = |k: usize, rng: &mut ChaCha8Rng| {
        let mut all: Vec<u32> = (0..n).collect();
        let mut out = Vec::new();
        for _ in 0..k.min(all.len()) {
            out.push(all.swap_remove(rng.random_range(0..all.len())));
        }
        out
    };
    let clients = pick(rng.random_range(1..=3), rng);
    let nodes = pick(rng.random_range(1..=7), rng);
    (clients, nodes)
}

/// Equal to 1e-12 relative (sums of the same positive terms in another order).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// Options under which the pool is every eligible server, so brute force over the
/// eligible servers is brute force over the pool; no load term, so risk alone decides.
fn exhaustive_options(solver: Solver) -> PlaceOptions {
    PlaceOptions {
        pool_size: 63,
        repair_pool_size: 63,
        per_rack: 63,
        load_weight: 0.0,
        solver,
        mip_gap: 0.0,
        // Brute force ranges over every eligible server; the balance ceiling has its
        // own test (`batch_keeps_every_rule_and_the_balance`).
        balance: None,
        ..PlaceOptions::default()
    }
}

fn combinations(items: &[u32], k: usize) -> Vec<Vec<u32>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if items.len() < k {
        return Vec::new();
    }
    let mut out = combinations(&items[1..], k);
    for mut rest in combinations(&items[1..], k - 1) {
        rest.insert(0, items[0]);
        out.push(rest);
    }
    out
}

/// (risk, safe) of the best allowed choice by the rules: a cell that is up before one that
/// is down, then the lowest risk among safe choices when one exists, else the lowest
/// risk; `None` when no choice is allowed.
fn brute_force_best(
    inv: &Inventory,
    occ: &Occupancy,
    clients: &[u32],
    keep: &[u32],
    exclude: &[u32],
    size: usize,
) -> Option<(f64, bool)> {
    let eligible: Vec<u32> = (0..inv.servers.len() as u32)
        .filter(|s| {
            let server = &inv.servers[*s as usize];
            server.status == ServerStatus::Active
                && server.capacity > occ.load(*s)
                && !keep.contains(s)
                && !exclude.contains(s)
        })
        .collect();
    let mut best: Option<(bool, bool, f64)> = None;
    for mut nodes in combinations(&eligible, size - keep.len()) {
        nodes.extend_from_slice(keep);
        // Kept nodes stay whatever their status; only the overlap rule binds them.
        if occ
            .violations(inv, &nodes, None)
            .iter()
            .any(|v| matches!(v, Violation::SharedQuorum { .. }))
        {
            continue;
        }
        let r = reference::risk(inv, clients, &nodes);
        let safe = !r.down && r.breaking.is_empty();
        // Smaller is better: down, unsafe, risk.
        let key = (r.down, !safe, r.risk);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    best.map(|(_, unsafe_, risk)| (risk, !unsafe_))
}

fn pick_servers(inv: &Inventory, k: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let mut all: Vec<u32> = (0..inv.servers.len() as u32).collect();
    let mut out = Vec::new();
    for _ in 0..k.min(all.len()) {
        out.push(all.swap_remove(rng.random_range(0..all.len())));
    }
    out
}

fn solvers() -> [Solver; 3] {
    [
        Solver::Heuristic,
        Solver::Exact(SolverKind::MicroLp),
        Solver::Exact(SolverKind::Highs),
    ]
}

/// A generated zone and its cell workload, validated.
fn generated(params: &fixtures::ZoneParams) -> (Inventory, Vec<topology::CellSpec>) {
    let raw = fixtures::generate(params);
    let (inv, _) = Inventory::from_raw(&raw).expect("generated zone is valid");
    let cells = topology::workload::parse_cells(raw.table("cells").expect("cells"), &inv)
        .expect("generated cells are valid");
    (inv, cells)
}

/// A generated zone small enough for brute force but with the real structure: two
/// datacenters joined by conduits, rooms with two aggregation switches, single- and
/// dual-ToR racks, A/B power with single- and dual-fed racks.
fn structured_zone(seed: u64) -> (Inventory, Vec<topology::CellSpec>) {
    let params = fixtures::ZoneParams {
        seed,
        datacenters: 2,
        rooms_per_dc: 2,
        rows_per_room: 1,
        racks_per_row: 2,
        servers_per_rack: 3,
        dual_tor_fraction: 0.5,
        single_fed_fraction: 0.3,
        host_fraction: 0.67,
        cells: 8,
        same_dc_fraction: 0.5,
        explicit_afr_fraction: 0.3,
        ..fixtures::ZoneParams::default()
    };
    generated(&params)
}

/// The fleet report without the per-cell risk: safety, blast radius, load and sharing.
fn rules_report(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
) -> optimizer::FleetReport {
    fleet_report(
        inv,
        model,
        placements,
        &ReportOptions {
            risk: false,
            ..ReportOptions::default()
        },
    )
}
