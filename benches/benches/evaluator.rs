//! Evaluator speed on a generated zone of >= 50,000 servers: one cell's exact risk, and
//! the single-failure blast radius of every element over many cells.

use criterion::{criterion_group, criterion_main, Criterion};
use optimizer::{fleet_report, ReportOptions, RiskEvaluator};

fn evaluator(c: &mut Criterion) {
    let zone = benches::zone(&fixtures::ZoneParams::az_large(1));
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
    let options = ReportOptions {
        risk: false,
        top: 10,
        threads: 2,
    };
    group.bench_function(format!("single_failures_{cells}_cells"), |b| {
        b.iter(|| {
            fleet_report(&zone.inventory, &zone.model, &placements, &options)
                .unsafe_cells
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, evaluator);
criterion_main!(benches);
