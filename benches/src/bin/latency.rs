//! `latency`: single-cell placement and replacement latency on a zone in use. Places
//! `--prefill` cells of a generated zone's workload in batch, then times a new cell and
//! the replacement of its first node for each of `--samples` further cells of the same
//! workload (placed against the prefilled occupancy, not committed), on one thread, and
//! prints the percentiles. `criterion` benches keep the means; this harness gives the
//! tail and the zone-in-use setting the issue targets are stated for.

use std::time::Instant;

use clap::{Parser, ValueEnum};
use optimizer::place::batch::place_batch;
use optimizer::place::{Occupancy, PlaceOptions, Placer};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preset {
    /// 2,304 servers.
    Small,
    /// 23,040 servers (5,760 hosts, 4 colours).
    Az,
    /// 53,760 servers (26,880 hosts, 4 colours).
    AzLarge,
}

#[derive(Debug, Parser)]
#[command(about = "Time single placements and replacements on a zone with cells already placed")]
struct Args {
    #[arg(long, value_enum, default_value = "az")]
    preset: Preset,
    /// Cells placed (in batch) before timing.
    #[arg(long, default_value_t = 100_000)]
    prefill: usize,
    /// Cells timed.
    #[arg(long, default_value_t = 2_000)]
    samples: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zones with room and datacenter partitions as risk groups.
    #[arg(long)]
    partitions: bool,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(name: &str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        us.len(),
        percentile(&us, 0.5),
        percentile(&us, 0.9),
        percentile(&us, 0.99),
        us[us.len() - 1]
    );
}

fn main() {
    let args = Args::parse();
    let base = match args.preset {
        Preset::Small => fixtures::ZoneParams::small(args.seed),
        Preset::Az => fixtures::ZoneParams::az(args.seed),
        Preset::AzLarge => fixtures::ZoneParams::az_large(args.seed),
    };
    let base = if args.partitions {
        base.with_partitions()
    } else {
        base
    };
    let zone = benches::zone(&fixtures::ZoneParams {
        cells: args.prefill + args.samples,
        ..base
    });
    let inv = &zone.inventory;
    let mut occ = Occupancy::new(inv);
    let options = PlaceOptions {
        seed: args.seed,
        ..PlaceOptions::default()
    };
    let prefill = place_batch(
        inv,
        &zone.model,
        &zone.cells[..args.prefill],
        &mut occ,
        &options,
    );
    println!(
        "zone {:?}: {} servers; prefilled {} cells in {:.2?} ({} not placed)",
        args.preset,
        inv.servers.len(),
        prefill.placements.len(),
        prefill.elapsed,
        prefill.failed.len()
    );
    let mut placer = Placer::new(inv, &zone.model, options);
    let (mut place_us, mut replace_us) = (Vec::new(), Vec::new());
    for cell in &zone.cells[args.prefill..] {
        let start = Instant::now();
        let placed = placer
            .place(&occ, &cell.clients, cell.size)
            .expect("a cell of the workload is placeable");
        place_us.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        placer
            .replace(&occ, &cell.clients, &placed.nodes, placed.nodes[0], None)
            .expect("a placed cell's node is replaceable");
        replace_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    summary("new cell", place_us);
    summary("replace one node", replace_us);
}
