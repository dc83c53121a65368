//! Ad-hoc probe of placement speed (development aid).
use std::time::Instant;

use optimizer::place::{Occupancy, PlaceOptions, Placer};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(50, |a| a.parse().unwrap());
    let pool: usize = std::env::args().nth(2).map_or(40, |a| a.parse().unwrap());
    let t = Instant::now();
    let zone = benches::zone(&fixtures::ZoneParams::az(1));
    eprintln!("zone in {:?}", t.elapsed());
    let occ = Occupancy::new(&zone.inventory);
    let mut opts = PlaceOptions::default();
    opts.pool_size = pool;
    let mut placer = Placer::new(&zone.inventory, &zone.model, opts);
    let mut times = Vec::new();
    let mut groups = 0;
    let mut unsafe_n = 0;
    let mut risk = 0.0;
    for cell in zone.cells.iter().take(n) {
        let t = Instant::now();
        let d = placer.place(&occ, &cell.clients, cell.size).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        groups += d.solve.groups;
        unsafe_n += usize::from(!d.explanation.single_failure_safe);
        if !d.explanation.single_failure_safe && unsafe_n < 3 {
            let inv = &zone.inventory;
            let name = |s: &u32| {
                format!(
                    "{}@{}",
                    inv.servers[*s as usize].id,
                    inv.racks[inv.servers[*s as usize].rack as usize].room
                )
            };
            eprintln!(
                "UNSAFE clients {:?} nodes {:?} base {} breaking {:?} binding {:?}",
                cell.clients.iter().map(name).collect::<Vec<_>>(),
                d.nodes.iter().map(name).collect::<Vec<_>>(),
                d.explanation.baseline_outage,
                d.explanation
                    .breaking
                    .iter()
                    .take(5)
                    .map(|e| inv.elements[e.index()].id.clone())
                    .collect::<Vec<_>>(),
                d.explanation.binding
            );
        }
        risk += d.explanation.risk;
        if std::env::var_os("NO_CHECK").is_some() {
            continue;
        }
        let check = placer.explain(&cell.clients, &d.nodes);
        assert!(
            (check.risk - d.explanation.risk).abs() <= 1e-12 + 1e-9 * check.risk,
            "{} vs {}",
            check.risk,
            d.explanation.risk
        );
    }
    times.sort_by(f64::total_cmp);
    eprintln!(
        "n={n} pool={pool} median {:.2} ms p99 {:.2} ms max {:.2}; groups avg {}; unsafe {unsafe_n}; mean risk {:.3e}",
        times[n / 2],
        times[(n * 99) / 100],
        times[n - 1],
        groups / n,
        risk / n as f64
    );
}
