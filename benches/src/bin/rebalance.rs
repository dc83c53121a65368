//! `rebalance`: what rebalancing plans do to a fleet. Places a generated zone's workload
//! the CRUSH-like way, plans `--repair --improve` on it and prints the curve after 1 %,
//! 5 % and 20 % of the nodes moved and at the end, next to cellplacer's own batch
//! placement of the same workload; then fails one rack and compares the repair plan with
//! re-placing every affected cell from scratch.

use std::time::Instant;

use benches::baselines::crush_like;
use clap::{Parser, ValueEnum};
use optimizer::place::{place_batch, Occupancy, PlaceOptions};
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

    // Fail the rack holding the most nodes of cellplacer's placement.
    let mut per_rack = vec![0usize; inv.racks.len()];
    for p in &batch.placements {
        for &n in &p.nodes {
            per_rack[inv.servers[n as usize].rack as usize] += 1;
        }
    }
    let rack = (0..inv.racks.len())
        .max_by_key(|&r| per_rack[r])
        .expect("racks");
    let mut failed = inv.clone();
    for &s in &inv.racks[rack].servers {
        failed.servers[s as usize].status = ServerStatus::Failed;
    }
    let failed_model = FailureModel::new(&failed);
    let start = Instant::now();
    let repaired = plan(
        &failed,
        &failed_model,
        &batch.placements,
        &Goals {
            repair: true,
            ..Goals::default()
        },
        &options,
    );
    println!(
        "rack {} failed ({} nodes): repair plan {} moves in {:.2?}, {} goals unmet",
        inv.racks[rack].id,
        per_rack[rack],
        repaired.moves.len(),
        start.elapsed(),
        repaired.unmet.len()
    );
    line("before the repair", &repaired.curve[0]);
    line("after the repair", repaired.curve.last().expect("curve"));
    // From scratch: every cell with a node on the rack placed again on the rest.
    let affected: Vec<usize> = (0..batch.placements.len())
        .filter(|&i| {
            batch.placements[i]
                .nodes
                .iter()
                .any(|&n| inv.servers[n as usize].rack as usize == rack)
        })
        .collect();
    let mut occ = Occupancy::new(&failed);
    for (i, p) in batch.placements.iter().enumerate() {
        if !affected.contains(&i) {
            occ.insert(&p.nodes);
        }
    }
    let specs: Vec<_> = affected
        .iter()
        .map(|&i| {
            zone.cells
                .iter()
                .find(|c| c.cell_id == batch.placements[i].cell_id)
                .expect("the cell")
                .clone()
        })
        .collect();
    let again = place_batch(&failed, &failed_model, &specs, &mut occ, &options);
    let mut fresh = batch.placements.clone();
    let mut node_moves = 0;
    for p in &again.placements {
        let i = fresh
            .iter()
            .position(|q| q.cell_id == p.cell_id)
            .expect("the cell");
        node_moves += p
            .nodes
            .iter()
            .filter(|n| !fresh[i].nodes.contains(n))
            .count();
        fresh[i] = p.clone();
    }
    let (risk, unsafe_cells) = standing(&failed_model, &fresh);
    println!(
        "{:<34} moves {node_moves:>7}  total risk {risk:.3e}  unsafe {unsafe_cells:>6}  ({} cells placed again)",
        "re-placing affected cells",
        affected.len()
    );
}
