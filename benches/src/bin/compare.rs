//! `compare`: generates a zone and its cell workload, places the cells with each baseline
//! and with cellplacer's batch placer, and prints the comparison table.

use std::time::Instant;

use benches::baselines::{crush_like, rack_spread_random};
use benches::compare::{compare_with_model, Method};
use benches::Zone;
use clap::{Parser, ValueEnum};
use optimizer::place::{place_batch, Occupancy, PlaceOptions};
use topology::{CellSpec, Placement};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    /// 2,304 servers (576 hosts, 2 colours).
    Small,
    /// 23,040 servers (5,760 hosts, 4 colours).
    Az,
}

#[derive(Debug, Parser)]
#[command(about = "Place one generated workload with every method and compare the results")]
struct Args {
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Cells in the workload.
    #[arg(long, default_value_t = 2000)]
    cells: usize,
    /// Seed of the zone, the workload and the placers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// cellplacer's weight of utilisation against risk (default: PlaceOptions').
    #[arg(long)]
    load_weight: Option<f64>,
    /// cellplacer's balance ceiling (times the mean utilisation); 0 turns the rule off.
    #[arg(long)]
    balance: Option<f64>,
    /// Only run cellplacer (skip the baselines).
    #[arg(long)]
    only_cellplacer: bool,
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
    println!(
        "zone {:?} seed {}: {} racks, {} servers, {} elements; {} cells",
        args.preset,
        args.seed,
        zone.inventory.racks.len(),
        zone.inventory.servers.len(),
        zone.inventory.elements.len(),
        zone.cells.len()
    );

    let mut methods = Vec::new();
    if !args.only_cellplacer {
        methods.push(timed("crush_like", &zone.cells, || {
            crush_like(&zone.inventory, &zone.cells, args.seed)
        }));
        methods.push(timed("rack_spread_random", &zone.cells, || {
            rack_spread_random(&zone.inventory, &zone.cells, args.seed)
        }));
    }
    let mut options = PlaceOptions {
        seed: args.seed,
        ..PlaceOptions::default()
    };
    if let Some(w) = args.load_weight {
        options.load_weight = w;
    }
    if let Some(b) = args.balance {
        options.balance = (b > 0.0).then_some(b);
    }
    methods.extend(cellplacer_method(&zone, &options));
    println!();
    print!(
        "{}",
        compare_with_model(&zone.inventory, &zone.model, methods)
    );
}

/// Runs one placer, timing it and counting the cells it skipped.
fn timed(name: &str, cells: &[CellSpec], place: impl FnOnce() -> Vec<Placement>) -> Method {
    let start = Instant::now();
    let placements = place();
    let elapsed = start.elapsed();
    Method {
        name: name.to_string(),
        unplaced: cells.len() - placements.len(),
        placements,
        elapsed,
    }
}

/// cellplacer's batch placement (heuristic, seeded).
fn cellplacer_method(zone: &Zone, options: &PlaceOptions) -> Option<Method> {
    let mut occupancy = Occupancy::new(&zone.inventory);
    let outcome = place_batch(
        &zone.inventory,
        &zone.model,
        &zone.cells,
        &mut occupancy,
        options,
    );
    Some(Method {
        name: "cellplacer".to_string(),
        unplaced: outcome.failed.len(),
        placements: outcome.placements,
        elapsed: outcome.elapsed,
    })
}
