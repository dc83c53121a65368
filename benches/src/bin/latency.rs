//! temp profile harness
use optimizer::place::{place_batch, Occupancy, PlaceOptions, Placer};
use std::time::Instant;

fn main() {
    let warm: usize = std::env::args().nth(1).map_or(2000, |s| s.parse().unwrap());
    let reps: usize = std::env::args().nth(2).map_or(1, |s| s.parse().unwrap());
    let zone = benches::zone(&fixtures::ZoneParams {
        cells: warm + 2000,
        ..fixtures::ZoneParams::az(1)
    });
    let inv = &zone.inventory;
    let mut occ = Occupancy::new(inv);
    let t = Instant::now();
    let out = place_batch(
        inv,
        &zone.model,
        &zone.cells[..warm],
        &mut occ,
        &PlaceOptions::default(),
    );
    let mut h: u64 = 0;
    for p in &out.placements {
        for &n in &p.nodes {
            h = h.wrapping_mul(1_000_003).wrapping_add(n as u64);
        }
    }
    eprintln!(
        "warm {} in {:?} checksum {h:x}",
        out.placements.len(),
        t.elapsed()
    );
    let mut fast = Placer::new(inv, &zone.model, PlaceOptions::default());
    let sample: Vec<_> = zone.cells[warm..].iter().take(2000).collect();
    let mut p = Vec::new();
    let mut r = Vec::new();
    let mut h: u64 = 0;
    let mut risk = 0.0;
    for _ in 0..reps {
        for cell in &sample {
            let t = Instant::now();
            let d = fast.place(&occ, &cell.clients, cell.size).unwrap();
            p.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            let e = fast
                .replace(&occ, &cell.clients, &d.nodes, d.nodes[0], None)
                .unwrap();
            r.push(t.elapsed().as_secs_f64() * 1e6);
            for &n in d.nodes.iter().chain(&e.nodes) {
                h = h.wrapping_mul(1_000_003).wrapping_add(n as u64);
            }
            risk += d.explanation.risk + e.explanation.risk;
        }
    }
    eprintln!("sample checksum {h:x} risk {risk:e}");
    p.sort_by(f64::total_cmp);
    r.sort_by(f64::total_cmp);
    eprintln!(
        "place median {:.1} p99 {:.1}; replace median {:.1} p99 {:.1}",
        p[p.len() / 2],
        p[p.len() * 99 / 100],
        r[r.len() / 2],
        r[r.len() * 99 / 100]
    );
}
