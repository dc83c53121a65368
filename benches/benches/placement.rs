//! Placement speed and quality on a generated zone of >= 20,000 servers (`az`, then `az`
//! with room and datacenter partitions as risk groups): heuristic new cell and
//! replacement, the ILP on the same instances, and the heuristic's risk against the ILP
//! optimum. Criterion reports the means; the percentiles and the quality figures are
//! printed from explicit loops over many cells.

use std::time::Instant;

use criterion::{criterion_main, Criterion};
use optimizer::mip::SolverKind;
use optimizer::place::batch::place_batch;
use optimizer::place::{Occupancy, PlaceOptions, Placer, Solver};

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "{name}: n={} median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

fn placement(c: &mut Criterion) {
    placement_on(c, "place", &fixtures::ZoneParams::az(1));
    placement_on(
        c,
        "place_partitions",
        &fixtures::ZoneParams::az(1).with_partitions(),
    );
}

fn placement_on(c: &mut Criterion, name: &str, params: &fixtures::ZoneParams) {
    let zone = benches::zone(params);
    let inv = &zone.inventory;
    eprintln!(
        "{name}: zone: {} servers, {} elements, {} cells in the workload",
        inv.servers.len(),
        inv.elements.len(),
        zone.cells.len()
    );
    // A zone in use: the first 2,000 cells of the workload already placed, so loads
    // differ and the overlap rule has cells to respect.
    let mut occ = Occupancy::new(inv);
    let warm = place_batch(
        inv,
        &zone.model,
        &zone.cells[..2_000],
        &mut occ,
        &PlaceOptions::default(),
    );
    eprintln!(
        "warm-up batch: {} cells in {:.2?}",
        warm.placements.len(),
        warm.elapsed
    );
    let sample: Vec<_> = zone.cells[2_000..].iter().step_by(397).take(200).collect();

    let heuristic = PlaceOptions::default();
    let exact = PlaceOptions {
        solver: Solver::Exact(SolverKind::Highs),
        mip_gap: 0.0,
        ..PlaceOptions::default()
    };
    let mut fast = Placer::new(inv, &zone.model, heuristic);
    let mut ilp = Placer::new(inv, &zone.model, exact);

    // Percentiles, replacement and quality over the same 200 cells.
    let mut place_ms = Vec::new();
    let mut replace_ms = Vec::new();
    let mut ilp_ms = Vec::new();
    let mut within = 0;
    let mut proven = 0;
    let mut worst: f64 = 0.0;
    for cell in &sample {
        let t = Instant::now();
        let d = fast
            .place(&occ, &cell.clients, cell.size)
            .expect("placeable");
        place_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        fast.replace(&occ, &cell.clients, &d.nodes, d.nodes[0], None)
            .expect("replaceable");
        replace_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let e = ilp
            .place(&occ, &cell.clients, cell.size)
            .expect("placeable");
        ilp_ms.push(t.elapsed().as_secs_f64() * 1e3);
        proven += usize::from(e.solve.gap == Some(0.0));
        let (h, x) = (d.explanation.risk, e.explanation.risk);
        let excess = if x > 0.0 {
            (h - x) / x
        } else if h > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        worst = worst.max(excess);
        within += usize::from(excess <= 0.01);
    }
    summary("heuristic new cell", place_ms);
    summary("heuristic replace one node", replace_ms);
    summary("ilp (HiGHS) new cell", ilp_ms);
    eprintln!(
        "quality: heuristic within 1% of the ILP optimum on {within}/{} cells (worst excess {:.3}%); ILP proven optimal on {proven}/{}",
        sample.len(),
        worst * 100.0,
        sample.len()
    );

    let mut group = c.benchmark_group(name);
    let mut i = 0;
    group.bench_function("heuristic_new_cell", |b| {
        b.iter(|| {
            let cell = sample[i % sample.len()];
            i += 1;
            fast.place(&occ, &cell.clients, cell.size)
                .map(|d| d.nodes.len())
        })
    });
    let placed: Vec<_> = sample
        .iter()
        .map(|cell| {
            fast.place(&occ, &cell.clients, cell.size)
                .expect("placeable")
                .nodes
        })
        .collect();
    group.bench_function("heuristic_replace_one", |b| {
        b.iter(|| {
            let k = i % sample.len();
            i += 1;
            fast.replace(&occ, &sample[k].clients, &placed[k], placed[k][0], None)
                .map(|d| d.nodes.len())
        })
    });
    group.sample_size(20);
    group.bench_function("ilp_new_cell", |b| {
        b.iter(|| {
            let cell = sample[i % sample.len()];
            i += 1;
            ilp.place(&occ, &cell.clients, cell.size)
                .map(|d| d.nodes.len())
        })
    });
    group.finish();
}

/// The group `criterion_main!` runs: `placement` with the default configuration and the
/// command line's options (what `criterion_group!` expands to, but documented).
pub fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    placement(&mut criterion);
}

criterion_main!(benches);
