//! The simulator checked against the exact risk it knows nothing of: on generated zones
//! with a CRUSH-like placement (clients ignored, so many cells are single-failure unsafe)
//! and failure rates stressed until hundreds of outages begin, the outage events seen agree
//! with the analytic expectation within three standard errors; and the run is the seed's.

use benches::baselines::crush_like;
use optimizer::report::cell_risk_parts;

use super::*;

/// The hand-written tiny inventory, validated (the unit tests' zone).
pub(crate) fn tiny() -> topology::Inventory {
    let raw = topology::ingest::read_dir(&fixtures::tiny_dir()).unwrap();
    topology::Inventory::from_raw(&raw).unwrap().0
}

fn run(
    zone: &benches::Zone,
    placements: &[Placement],
    years: f64,
    stress: f64,
    seed: u64,
) -> Outcome {
    let risks = cell_risk_parts(&zone.model, placements, 0);
    simulate(
        &zone.inventory,
        placements,
        &risks,
        &Params {
            years,
            trace: TraceParams {
                seed,
                stress,
                repair: RepairTimes::Exponential,
            },
            move_h: 0.0,
        },
    )
}

fn agrees(zone: &benches::Zone, years: f64, stress: f64) -> Summary {
    let placements = crush_like(&zone.inventory, &zone.cells, 1);
    let s = run(zone, &placements, years, stress, 42).summary;
    let z = (s.outage_events as f64 - s.expected_outage_events) / s.standard_error;
    eprintln!(
        "{} events seen, {:.1} expected, standard error {:.1}, z {z:.2}; {} transitions",
        s.outage_events, s.expected_outage_events, s.standard_error, s.transitions
    );
    assert!(s.outage_events >= 200, "too few outages to judge: {s:?}");
    assert!(
        z.abs() <= 3.0,
        "the simulation disagrees with the risk: z = {z:.2}, {s:?}"
    );
    s
}

#[test]
fn outage_events_agree_with_the_exact_risk_on_a_zone_with_partitions() {
    let zone = benches::zone(&fixtures::ZoneParams::small(3).with_partitions());
    agrees(&zone, 20.0, 10.0);
}

#[test]
fn outage_events_agree_with_the_exact_risk_on_a_zone_without_partitions() {
    let zone = benches::zone(&fixtures::ZoneParams::small(4));
    agrees(&zone, 20.0, 10.0);
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_another() {
    let zone = benches::zone(&fixtures::ZoneParams::small(5).with_partitions());
    let placements = crush_like(&zone.inventory, &zone.cells, 1);
    let a = run(&zone, &placements, 2.0, 20.0, 9);
    let b = run(&zone, &placements, 2.0, 20.0, 9);
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.events, b.events);
    assert_eq!(a.outages, b.outages);
    let c = run(&zone, &placements, 2.0, 20.0, 10);
    assert_ne!(a.events, c.events);
}

#[test]
fn a_failure_on_a_whole_zone_puts_out_its_blast_radius_and_after_one_other_its_pairs() {
    // Exact, event by event: a failure while nothing else is failed puts out exactly the
    // cells that list it among their breaking singles; one while exactly one other element
    // is failed puts out exactly the cells not out yet for which it breaks alone or forms
    // a minimal cut with the other.
    let zone = benches::zone(&fixtures::ZoneParams::small(6).with_partitions());
    let placements = crush_like(&zone.inventory, &zone.cells, 1);
    let mut eval = optimizer::RiskEvaluator::new(&zone.model);
    let risks: Vec<_> = placements
        .iter()
        .map(|p| eval.evaluate(&p.clients, &p.nodes))
        .collect();
    let mut world = World::new(&zone.inventory, &placements);
    let mut failed: Vec<topology::ElementId> = Vec::new();
    let params = TraceParams {
        seed: 1,
        stress: 3.0,
        repair: RepairTimes::Exponential,
    };
    let (mut singles, mut pairs, mut checked) = (0, 0, 0);
    for t in Trace::new(&zone.inventory, &params).take(12_000) {
        let before = failed.clone();
        if t.fails {
            failed.push(t.element);
        } else {
            failed.retain(|&e| e != t.element);
        }
        let touched = world.transition(t.element, t.fails);
        if !t.fails || before.len() > 1 {
            continue;
        }
        let put_out: Vec<usize> = touched
            .iter()
            .filter(|(c, was)| !was.out && world.cells()[*c as usize].standing.out)
            .map(|(c, _)| *c as usize)
            .collect();
        let f = t.element;
        // Outage is not monotone (a second failure may take a client down and end it), so
        // with another element failed, a cell the new one breaks alone may or may not go
        // out; a cell only their pair breaks must.
        let (mut want, mut may) = (Vec::new(), Vec::new());
        for (c, r) in risks.iter().enumerate() {
            if r.down {
                continue;
            }
            match before.first() {
                None if r.breaking_singles.contains(&f) => want.push(c),
                None => {}
                Some(&e) => {
                    if r.breaking_singles.contains(&e) || r.breaking_singles.contains(&f) {
                        may.push(c);
                    } else if r.pairs.contains(&(e.min(f), e.max(f))) {
                        want.push(c);
                    }
                }
            }
        }
        let unexpected: Vec<usize> = put_out
            .iter()
            .copied()
            .filter(|c| !want.contains(c) && !may.contains(c))
            .collect();
        let missing: Vec<usize> = want
            .iter()
            .copied()
            .filter(|c| !put_out.contains(c))
            .collect();
        assert!(
            unexpected.is_empty() && missing.is_empty(),
            "{t:?} after {before:?}: put out and not expected {unexpected:?}, expected and not out {missing:?}"
        );
        checked += 1;
        if before.is_empty() {
            singles += usize::from(!want.is_empty());
        } else {
            pairs += usize::from(!want.is_empty());
        }
    }
    // Pairs that break a CRUSH-like cell are rare (its nodes sit one per rack); the
    // one-failed-before states are checked all the same (nothing unexpected goes out).
    assert!(
        singles >= 5,
        "{singles} breaking singles seen ({pairs} pairs)"
    );
    assert!(checked >= 3_000, "{checked} transitions checked");
}
