//! Evaluator speed on a generated zone of >= 50,000 servers: one cell's exact risk, and
//! the single-failure blast radius of every element over many cells.

use criterion::{criterion_main, Criterion};
use optimizer::report::blast_radius;
use optimizer::RiskEvaluator;

fn evaluator(c: &mut Criterion) {
    let start = std::time::Instant::now();
    let zone = benches::zone(&fixtures::ZoneParams::az_large(1));
    eprintln!(
        "zone generated, validated and modelled in {:.1?}",
        start.elapsed()
    );
    let start = std::time::Instant::now();
    let model = topology::FailureModel::new(&zone.inventory);
    eprintln!(
        "failure model alone: {:.1?} ({} special pairs)",
        start.elapsed(),
        model.effects().special_count()
    );
    drop(model);
    let cells: usize = std::env::var("BLAST_CELLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let placements = benches::spread_placements(&zone, cells);
    eprintln!(
        "zone: {} servers, {} elements; {} placed cells",
        zone.inventory.servers.len(),
        zone.inventory.elements.len(),
        placements.len()
    );

    let mut group = c.benchmark_group("risk");
    let mut eval = RiskEvaluator::new(&zone.model);
    let mut i = 0;
    group.bench_function("one_cell_exact", |b| {
        b.iter(|| {
            let p = &placements[i % 1000];
            i += 1;
            eval.evaluate(&p.clients, &p.nodes).risk
        })
    });
    group.finish();

    let mut group = c.benchmark_group("blast_radius");
    group.sample_size(10);
    // The blast radius of every element and the unsafe cells, on two threads (the fleet
    // report adds load and quorum sharing, which do not depend on the failure model).
    group.bench_function(format!("single_failures_{cells}_cells"), |b| {
        b.iter(|| blast_radius(&zone.model, &placements, 2).unsafe_cells.len())
    });
    group.finish();
}

/// The group `criterion_main!` runs: `evaluator` with the default configuration and the
/// command line's options (what `criterion_group!` expands to, but documented).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    evaluator(&mut criterion);
}

criterion_main!(benches);
