//! Moves toward a target: every step within the rules, never worse, ending well.

use super::*;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Paths planned, steps taken and non-monotone paths over every case (printed with
/// `--nocapture` for the record).
static PATHS: AtomicUsize = AtomicUsize::new(0);
static STEPS: AtomicUsize = AtomicUsize::new(0);
static NOT_MONOTONE: AtomicUsize = AtomicUsize::new(0);

/// (down, unsafe, risk) of a cell, smaller is better.
type Standing = (bool, bool, f64);

/// [`Standing`] by brute force.
fn standing(inv: &Inventory, clients: &[u32], nodes: &[u32]) -> Standing {
    let r = reference::risk(inv, clients, nodes);
    (r.down, r.down || !r.breaking.is_empty(), r.risk)
}

/// Follows every step of `path` on `occ` (the cell in `slot`), checking the rules and the
/// explained risk of each state against `standing` and, for a monotone path, that no
/// step is worse than the state before it. Returns the nodes at the end.
fn follow(
    inv: &Inventory,
    occ: &mut Occupancy,
    slot: optimizer::place::CellSlot,
    (clients, nodes): (&[u32], &[u32]),
    path: &optimizer::place::MovePath,
    standing: &mut dyn FnMut(&[u32], &[u32]) -> Standing,
) -> Result<Vec<u32>, TestCaseError> {
    let mut cur = nodes.to_vec();
    let mut before = standing(clients, &cur);
    prop_assert!(close(path.current.risk, before.2));
    for step in &path.steps {
        prop_assert!(cur.contains(&step.out) && !cur.contains(&step.into));
        let next: Vec<u32> = cur
            .iter()
            .map(|&n| if n == step.out { step.into } else { n })
            .collect();
        // One node in flight: the new server joins while the others stay.
        let v = occ.violations(inv, &next, Some(slot));
        prop_assert!(v.is_empty(), "step {step:?} breaks {v:?}");
        let after = standing(clients, &next);
        prop_assert!(
            close(step.after.risk, after.2),
            "{} vs {}",
            step.after.risk,
            after.2
        );
        prop_assert_eq!(step.after.single_failure_safe, !after.1);
        if path.monotone {
            prop_assert!(
                (after.0, after.1) < (before.0, before.1)
                    || ((after.0, after.1) == (before.0, before.1)
                        && after.2 <= before.2 * (1.0 + 1e-9) + 1e-15),
                "step {step:?} makes {before:?} into {after:?}"
            );
        }
        occ.update(slot, &next);
        cur = next;
        before = after;
    }
    Ok(cur)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    /// From any placement and any new clients, following the proposed moves keeps every
    /// rule at every step and ends at least as well as placing the cell afresh: as safe,
    /// and within the move threshold of its risk.
    #[test]
    fn following_the_moves_ends_as_well_as_placing_afresh(seed in any::<u64>(), cell_seed in any::<u64>()) {
        let inv = random_inventory(seed);
        let model = FailureModel::new(&inv);
        let mut rng = ChaCha8Rng::seed_from_u64(cell_seed);
        let mut occ = Occupancy::new(&inv);
        for _ in 0..rng.random_range(0..=2) {
            let others = pick_servers(&inv, 3, &mut rng);
            occ.insert(&others);
        }
        let nodes = pick_servers(&inv, 3, &mut rng);
        prop_assume!(nodes.len() == 3 && occ.violations(&inv, &nodes, None).is_empty());
        let clients = pick_servers(&inv, rng.random_range(1..=3), &mut rng);
        let slot = occ.insert(&nodes);
        let options = exhaustive_options(Solver::Heuristic);
        let gain = options.move_gain;
        let mut placer = Placer::new(&inv, &model, options);
        let path = placer.plan_moves(&occ, &clients, &nodes, Some(slot)).unwrap();
        PATHS.fetch_add(1, Relaxed);
        STEPS.fetch_add(path.steps.len(), Relaxed);
        NOT_MONOTONE.fetch_add(usize::from(!path.monotone), Relaxed);
        prop_assert!(path.exhaustive);
        let end = follow(&inv, &mut occ, slot, (&clients, &nodes), &path, &mut |c, n| {
            standing(&inv, c, n)
        })?;
        let end = standing(&inv, &clients, &end);
        let (p, s, n) = (PATHS.load(Relaxed), STEPS.load(Relaxed), NOT_MONOTONE.load(Relaxed));
        println!("paths {p}, steps {s}, not monotone {n}");

        // Afresh: the same zone without this cell.
        occ.remove(slot);
        if let Ok(fresh) = placer.place(&occ, &clients, 3) {
            let fresh = standing(&inv, &clients, &fresh.nodes);
            prop_assert!((end.0, end.1) <= (fresh.0, fresh.1), "ends {end:?}, afresh {fresh:?}");
            if (end.0, end.1) == (fresh.0, fresh.1) && !end.0 {
                prop_assert!(
                    end.2 <= fresh.2 * (1.0 + gain) / (1.0 - gain) + 1e-15,
                    "ends {end:?}, afresh {fresh:?}"
                );
            }
        }
    }
}

/// The case behind the path planner: a cell placed for three clients in dc1 (one node in
/// each other datacenter), whose clients then move to dc3. One switchgear in dc1 feeds a
/// room and the dc1 spines, so it takes four nodes away from the new clients: unsafe, and
/// no single move fixes it. The planner proposes the whole path; following it, every
/// step keeps the rules and is no worse than the last, and the cell ends safe.
#[test]
fn clients_that_move_to_another_datacenter_get_a_path() {
    let (inv, _) = generated(&fixtures::ZoneParams::small(0));
    let model = FailureModel::new(&inv);
    // Active client-only servers of a datacenter, one per room and row, three of them.
    let clients_in = |dc: &str| -> Vec<u32> {
        let mut seen = std::collections::HashSet::new();
        (0..inv.servers.len() as u32)
            .filter(|&s| {
                let server = &inv.servers[s as usize];
                let rack = &inv.racks[server.rack as usize];
                server.capacity == 0
                    && server.status == ServerStatus::Active
                    && rack.datacenter == dc
                    && seen.insert(rack.row.clone())
            })
            .step_by(3)
            .take(3)
            .collect()
    };
    let (old, new) = (clients_in("dc1"), clients_in("dc3"));
    let mut placer = Placer::new(&inv, &model, PlaceOptions::default());
    let mut occ = Occupancy::new(&inv);
    let placed = placer.place(&occ, &old, 7).expect("placeable");
    assert!(placed.explanation.single_failure_safe);
    let slot = occ.insert(&placed.nodes);
    let path = placer
        .plan_moves(&occ, &new, &placed.nodes, Some(slot))
        .expect("a path");
    let name = |s: u32| inv.servers[s as usize].id.clone();
    println!(
        "now: risk {:.3e}, safe {}, breaking {:?}",
        path.current.risk,
        path.current.single_failure_safe,
        path.current
            .breaking
            .iter()
            .map(|e| inv.elements[e.index()].id.clone())
            .collect::<Vec<_>>()
    );
    for (i, m) in path.steps.iter().enumerate() {
        println!(
            "step {}: {} -> {}: risk {:.3e}, safe {}",
            i + 1,
            name(m.out),
            name(m.into),
            m.after.risk,
            m.after.single_failure_safe
        );
    }
    assert!(
        !path.current.single_failure_safe,
        "the moved clients make it unsafe"
    );
    assert!(
        path.steps.len() >= 2,
        "more than one move: {}",
        path.steps.len()
    );
    assert!(path.monotone && path.exhaustive);
    // The zone is too large for brute force: the fast evaluator, itself tied to brute force
    // by the tests above.
    let mut eval = RiskEvaluator::new(&model);
    let mut fast = |c: &[u32], n: &[u32]| {
        let r = eval.evaluate(c, n);
        (r.down, !r.single_failure_safe(), r.risk)
    };
    let end = follow(
        &inv,
        &mut occ,
        slot,
        (&new, &placed.nodes),
        &path,
        &mut fast,
    )
    .unwrap();
    let end = fast(&new, &end);
    assert!(!end.0 && !end.1, "ends safe: {end:?}");
    assert!(path.target().single_failure_safe);
}
