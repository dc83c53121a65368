//! `rebalance`: what rebalancing plans do to a fleet. Places a generated zone's workload
//! the CRUSH-like way, plans `--repair --improve` on it and prints the curve after 1 %,
//! 5 % and 20 % of the nodes moved and at the end, next to cellplacer's own batch
//! placement of the same workload; then removes a PDU's whole power subtree from the
//! inventory and compares the repair plan with re-placing every affected cell from scratch.

use std::time::Instant;

use benches::baselines::crush_like;
use clap::{Parser, ValueEnum};
use optimizer::place::batch::place_batch;
use optimizer::place::{Occupancy, PlaceOptions};
use optimizer::rebalance::{plan, CurvePoint, Goals};
use optimizer::report::cell_risks;
use topology::model::ServerStatus;
use topology::{FailureModel, Placement};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    Small,
    Az,
}

#[derive(Debug, Parser)]
#[command(
    about = "Rebalancing plans on a generated zone: improve a CRUSH-like fleet, repair a failed rack"
)]
struct Args {
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    #[arg(long, default_value_t = 2000)]
    cells: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn line(name: &str, p: &CurvePoint) {
    println!(
        "{name:<34} moves {:>7}  total risk {:.3e}  unsafe {:>6}  load max/mean {:.3}",
        p.moves, p.total_risk, p.unsafe_cells, p.load_max_over_mean
    );
}

fn standing(model: &FailureModel, placements: &[Placement]) -> (f64, usize) {
    let risks = cell_risks(model, placements, 0);
    (
        risks.iter().map(|r| r.0).sum(),
        risks.iter().filter(|r| !r.1).count(),
    )
}

fn main() {
    let args = Args::parse();
    let params = fixtures::ZoneParams {
        cells: args.cells,
        ..match args.preset {
            Preset::Small => fixtures::ZoneParams::small(args.seed),
            Preset::Az => fixtures::ZoneParams::az(args.seed),
        }
    };
    let zone = benches::zone(&params);
    let (inv, model) = (&zone.inventory, &zone.model);
    let options = PlaceOptions {
        seed: args.seed,
        ..PlaceOptions::default()
    };
    let crush = crush_like(inv, &zone.cells, args.seed);
    let nodes: usize = crush.iter().map(|p| p.nodes.len()).sum();
    println!(
        "zone {:?}: {} servers, {} cells ({nodes} nodes) placed CRUSH-like",
        args.preset,
        inv.servers.len(),
        crush.len()
    );

    let start = Instant::now();
    let goals = Goals {
        repair: true,
        improve: true,
        ..Goals::default()
    };
    let improved = plan(inv, model, &crush, &goals, &options);
    println!(
        "planned --repair --improve: {} moves in {:.2?}, {} goals unmet",
        improved.moves.len(),
        start.elapsed(),
        improved.unmet.len()
    );
    line("CRUSH-like", &improved.curve[0]);
    for percent in [1, 5, 20] {
        let k = (nodes * percent / 100).min(improved.moves.len());
        line(
            &format!("after {percent} % of nodes moved"),
            &improved.curve[k],
        );
    }
    line(
        "after the whole plan",
        improved.curve.last().expect("curve"),
    );
    let mut occ = Occupancy::new(inv);
    let batch = place_batch(inv, model, &zone.cells, &mut occ, &options);
    let (risk, unsafe_cells) = standing(model, &batch.placements);
    println!(
        "{:<34} moves {:>7}  total risk {risk:.3e}  unsafe {unsafe_cells:>6}",
        "cellplacer batch, from scratch", "-"
    );

    // Remove from the inventory the whole power subtree of the PDU that feeds the most
    // nodes of cellplacer's placement: the PDU, everything downstream of it, the servers
    // of its racks. Their nodes are then on servers the inventory no longer has.
    let raw = fixtures::generate(&params);
    let pdu = busiest_pdu(inv, &batch.placements);
    let (removed, racks) = remove_subtree(&raw, &pdu);
    let ids: Vec<Placement> = batch.placements.clone();
    let mut table = topology::raw::RawTable::for_table("placements");
    for p in &ids {
        let list = |v: &[u32]| {
            v.iter()
                .map(|&s| inv.servers[s as usize].id.as_str())
                .collect::<Vec<_>>()
                .join(";")
        };
        table.push(&[p.cell_id.clone(), list(&p.clients), list(&p.nodes)]);
    }
    let mut edited = removed;
    let gone = edited.gone_servers(&table);
    edited.add_gone_servers(&gone);
    let (after_inv, _) = topology::Inventory::from_raw(&edited).expect("the edited zone is valid");
    let after_model = FailureModel::new(&after_inv);
    let current = topology::workload::parse_placements(&table, &after_inv).expect("placements");
    let gone_nodes: usize = gone.iter().map(|g| g.1).sum();
    let start = Instant::now();
    let repaired = plan(
        &after_inv,
        &after_model,
        &current,
        &Goals {
            repair: true,
            ..Goals::default()
        },
        &options,
    );
    println!(
        "{pdu}'s subtree removed ({racks} racks, {} servers gone holding {gone_nodes} nodes): \
         repair plan {} moves in {:.2?}, {} goals unmet",
        gone.len(),
        repaired.moves.len(),
        start.elapsed(),
        repaired.unmet.len()
    );
    line("before the repair", &repaired.curve[0]);
    line("after the repair", repaired.curve.last().expect("curve"));
    // From scratch: every cell with a node on a gone server placed again on the rest.
    let is_gone = |s: u32| after_inv.servers[s as usize].status == ServerStatus::Failed;
    let affected: Vec<usize> = (0..current.len())
        .filter(|&i| current[i].nodes.iter().any(|&n| is_gone(n)))
        .collect();
    let mut occ = Occupancy::new(&after_inv);
    for (i, p) in current.iter().enumerate() {
        if affected.binary_search(&i).is_err() {
            occ.insert(&p.nodes);
        }
    }
    let specs: Vec<_> = affected
        .iter()
        .map(|&i| topology::CellSpec {
            cell_id: current[i].cell_id.clone(),
            clients: current[i].clients.clone(),
            size: current[i].nodes.len(),
        })
        .collect();
    let again = place_batch(&after_inv, &after_model, &specs, &mut occ, &options);
    let mut fresh = current.clone();
    let mut node_moves = 0;
    for (p, &i) in again.placements.iter().zip(&affected) {
        assert_eq!(p.cell_id, fresh[i].cell_id);
        node_moves += p
            .nodes
            .iter()
            .filter(|n| !fresh[i].nodes.contains(n))
            .count();
        fresh[i] = p.clone();
    }
    let (risk, unsafe_cells) = standing(&after_model, &fresh);
    println!(
        "{:<34} moves {node_moves:>7}  total risk {risk:.3e}  unsafe {unsafe_cells:>6}  ({} cells placed again, {} not placed)",
        "re-placing affected cells",
        affected.len(),
        again.failed.len()
    );
}

/// The PDU whose racks hold the most nodes of `placements`.
fn busiest_pdu(inv: &topology::Inventory, placements: &[Placement]) -> String {
    let mut per_rack = vec![0usize; inv.racks.len()];
    for p in placements {
        for &n in &p.nodes {
            per_rack[inv.servers[n as usize].rack as usize] += 1;
        }
    }
    let mut per_pdu: std::collections::BTreeMap<&str, usize> = Default::default();
    for (r, rack) in inv.racks.iter().enumerate() {
        for &feed in &rack.feeds {
            let device = &inv.power_devices[feed as usize];
            if device.kind == "pdu" {
                *per_pdu.entry(device.id.as_str()).or_default() += per_rack[r];
            }
        }
    }
    per_pdu
        .into_iter()
        .max_by_key(|&(id, n)| (n, std::cmp::Reverse(id)))
        .expect("a PDU")
        .0
        .to_owned()
}

/// The export without `root` and everything downstream of it in the power feeds (the
/// servers of removed racks too, and every link or feed that touches a removed element);
/// with the number of racks removed.
fn remove_subtree(
    raw: &topology::raw::RawInventory,
    root: &str,
) -> (topology::raw::RawInventory, usize) {
    use std::collections::HashSet;
    let column = |table: &str, name: &str| -> Vec<String> {
        let t = raw.table(table).expect("table");
        let c = t.column_index(name).expect("column");
        t.rows
            .iter()
            .map(|r| r[c].clone().unwrap_or_default())
            .collect()
    };
    let (up, down) = (
        column("power_feeds", "upstream"),
        column("power_feeds", "downstream"),
    );
    let mut gone: HashSet<String> = HashSet::from([root.to_owned()]);
    let mut frontier = vec![root.to_owned()];
    while let Some(e) = frontier.pop() {
        for (u, d) in up.iter().zip(&down) {
            if *u == e && gone.insert(d.clone()) {
                frontier.push(d.clone());
            }
        }
    }
    let racks = column("racks", "rack_id")
        .into_iter()
        .filter(|r| gone.contains(r))
        .count();
    for (server, rack) in column("servers", "server_id")
        .into_iter()
        .zip(column("servers", "rack_id"))
    {
        if gone.contains(&rack) {
            gone.insert(server);
        }
    }
    let mut out = raw.clone();
    for (table, columns) in [
        ("racks", &["rack_id"][..]),
        ("servers", &["server_id"]),
        ("network_devices", &["device_id"]),
        ("power_devices", &["device_id"]),
        ("power_feeds", &["upstream", "downstream"]),
        ("network_links", &["a_end", "b_end"]),
    ] {
        let t = out.tables.get_mut(table).expect("table");
        let cs: Vec<usize> = columns
            .iter()
            .map(|c| t.column_index(c).expect("column"))
            .collect();
        t.rows.retain(|r| {
            cs.iter()
                .all(|&c| r[c].as_ref().is_none_or(|v| !gone.contains(v)))
        });
    }
    (out, racks)
}
