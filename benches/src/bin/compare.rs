//! `compare`: generates a zone and its cell workload, places the cells with each baseline
//! (and cellplacer, once its batch placer exists), and prints the comparison table.

use std::time::Instant;

use benches::baselines::{crush_like, rack_spread_random};
use benches::compare::{compare_with_model, Method};
use benches::Zone;
use clap::{Parser, ValueEnum};
use topology::{CellSpec, Inventory, Placement};

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

    let mut methods = vec![
        timed("crush_like", &zone.cells, || {
            crush_like(&zone.inventory, &zone.cells, args.seed)
        }),
        timed("rack_spread_random", &zone.cells, || {
            rack_spread_random(&zone.inventory, &zone.cells, args.seed)
        }),
    ];
    match cellplacer_method(&zone, args.seed) {
        Some(method) => methods.push(method),
        None => println!("cellplacer: no batch placer wired in yet (see cellplacer_method)"),
    }
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

/// HOOK for the real placer: cellplacer's batch placement (`optimizer::place`, written
/// concurrently on another branch) goes here, as `timed("cellplacer", &zone.cells, ...)`.
/// Until that API exists this returns `None` and the table has the baselines only; it must
/// not be filled with a stand-in.
fn cellplacer_method(zone: &Zone, seed: u64) -> Option<Method> {
    let _: (&Inventory, &[CellSpec], u64) = (&zone.inventory, &zone.cells, seed);
    None
}
