//! Tests of rebalancing: drain, repair, improve and balance plans replayed move by move
//! against the hard rules and the risks they state.

use super::*;
use crate::place::batch::place_batch;
use crate::risk::RiskEvaluator;

/// A generated zone with `cells` placed, then `rack` drained and `failed` failed.
fn zone_in_use(cells: usize) -> (Inventory, Vec<Placement>) {
    let raw = fixtures::generate(&fixtures::ZoneParams {
        cells,
        ..fixtures::ZoneParams::small(5)
    });
    let (inv, _) = Inventory::from_raw(&raw).expect("generated zone is valid");
    let model = FailureModel::new(&inv);
    let specs = topology::workload::parse_cells(&raw.tables["cells"], &inv).expect("cells");
    let mut occ = Occupancy::new(&inv);
    let batch = place_batch(&inv, &model, &specs, &mut occ, &PlaceOptions::default());
    assert!(batch.failed.is_empty());
    (inv, batch.placements)
}

/// The rack holding the most nodes, and the server of another rack holding the most.
fn busiest(inv: &Inventory, placements: &[Placement]) -> (u32, u32) {
    let mut per_server = vec![0u32; inv.servers.len()];
    for p in placements {
        for &n in &p.nodes {
            per_server[n as usize] += 1;
        }
    }
    let mut per_rack = vec![0u32; inv.racks.len()];
    for (s, &count) in per_server.iter().enumerate() {
        per_rack[inv.servers[s].rack as usize] += count;
    }
    let rack = (0..inv.racks.len()).max_by_key(|&r| per_rack[r]).unwrap() as u32;
    let server = (0..inv.servers.len())
        .filter(|&s| inv.servers[s].rack != rack)
        .max_by_key(|&s| per_server[s])
        .unwrap() as u32;
    (rack, server)
}

/// Replays `plan` move by move from `placements`: every move is one node of one cell,
/// keeps the hard rules on the occupancy the moves before it leave, has the risk and
/// safety it states, and never makes a cell that was safe at the start unsafe.
fn replay(inv: &Inventory, model: &FailureModel, placements: &[Placement], plan: &Plan) {
    let mut occ = Occupancy::new(inv);
    let slots: Vec<CellSlot> = placements.iter().map(|p| occ.insert(&p.nodes)).collect();
    let mut nodes: Vec<Vec<u32>> = placements.iter().map(|p| p.nodes.clone()).collect();
    let mut evaluator = RiskEvaluator::new(model);
    let safe_at_start: Vec<bool> = placements
        .iter()
        .map(|p| {
            evaluator
                .evaluate(&p.clients, &p.nodes)
                .single_failure_safe()
        })
        .collect();
    let mut last: Vec<Option<usize>> = vec![None; placements.len()];
    for (i, m) in plan.moves.iter().enumerate() {
        let cell = &mut nodes[m.cell];
        assert!(
            cell.contains(&m.remove) && !cell.contains(&m.add),
            "move {i}"
        );
        let next: Vec<u32> = cell
            .iter()
            .map(|&n| if n == m.remove { m.add } else { n })
            .collect();
        let broken = occ.violations(inv, &next, Some(slots[m.cell]));
        assert!(broken.is_empty(), "move {i}: {broken:?}");
        occ.update(slots[m.cell], &next);
        *cell = next;
        let risk = evaluator.evaluate(&placements[m.cell].clients, cell);
        assert!(
            (risk.risk - m.risk_after).abs() <= 1e-9 * risk.risk.max(1e-12),
            "move {i}: {} vs {}",
            risk.risk,
            m.risk_after
        );
        assert_eq!(risk.single_failure_safe(), m.safe_after, "move {i}");
        if safe_at_start[m.cell] && m.reason != Reason::Failed {
            assert!(m.safe_after, "move {i} makes a safe cell unsafe");
        }
        if let Some(previous) = last[m.cell] {
            assert!(m.after.contains(&previous), "move {i} waits for {previous}");
        }
        last[m.cell] = Some(i);
    }
    let after: Vec<&Vec<u32>> = plan.after.iter().map(|p| &p.nodes).collect();
    assert_eq!(after, nodes.iter().collect::<Vec<_>>());
}

/// Draining a rack moves exactly the nodes on it, each once, and nothing else; every
/// prefix of the plan keeps the rules; the curve ends with nothing left to move.
#[test]
fn a_drain_moves_the_drained_nodes_and_nothing_else() {
    let (mut inv, placements) = zone_in_use(600);
    let (rack, _) = busiest(&inv, &placements);
    for &s in &inv.racks[rack as usize].servers.clone() {
        inv.servers[s as usize].status = ServerStatus::Draining;
    }
    let model = FailureModel::new(&inv);
    let on_rack: usize = placements
        .iter()
        .flat_map(|p| &p.nodes)
        .filter(|&&n| inv.servers[n as usize].rack == rack)
        .count();
    assert!(on_rack > 20, "{on_rack}");
    let goals = Goals {
        drain: true,
        ..Goals::default()
    };
    let plan = plan(&inv, &model, &placements, &goals, &PlaceOptions::default());
    assert!(plan.unmet.is_empty(), "{:?}", plan.unmet);
    assert_eq!(plan.moves.len(), on_rack);
    assert!(plan.moves.iter().all(|m| m.reason == Reason::Drain));
    replay(&inv, &model, &placements, &plan);
    assert!(plan
        .after
        .iter()
        .flat_map(|p| &p.nodes)
        .all(|&n| inv.servers[n as usize].rack != rack));
    assert_eq!(plan.curve.len(), on_rack + 1);
    assert_eq!(plan.curve[0].nodes_to_move, on_rack as u64);
    assert_eq!(plan.curve.last().unwrap().nodes_to_move, 0);
    let mut evaluator = RiskEvaluator::new(&model);
    let total: f64 = plan
        .after
        .iter()
        .map(|p| evaluator.evaluate(&p.clients, &p.nodes).risk)
        .sum();
    let last = plan.curve.last().unwrap().total_risk;
    assert!(
        (total - last).abs() <= 1e-9 * total.max(1e-12),
        "{total} vs {last}"
    );
}

/// Random placements of `params`' workload (one colour, the overlap rule kept).
fn random_placements(params: &fixtures::ZoneParams) -> (Inventory, Vec<Placement>) {
    use rand::{Rng, SeedableRng};
    let raw = fixtures::generate(params);
    let (inv, _) = Inventory::from_raw(&raw).expect("generated zone is valid");
    let specs = topology::workload::parse_cells(&raw.tables["cells"], &inv).expect("cells");
    let hosts: Vec<u32> = (0..inv.servers.len() as u32)
        .filter(|&s| {
            let server = &inv.servers[s as usize];
            server.status == ServerStatus::Active
                && server.capacity > 0
                && server.color.as_deref() == Some("c1")
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut occ = Occupancy::new(&inv);
    let mut placements = Vec::new();
    for spec in &specs {
        let nodes = loop {
            let mut nodes: Vec<u32> = Vec::new();
            while nodes.len() < 7 {
                let s = hosts[rng.random_range(0..hosts.len())];
                if !nodes.contains(&s) {
                    nodes.push(s);
                }
            }
            if occ.violations(&inv, &nodes, None).is_empty() {
                break nodes;
            }
        };
        occ.insert(&nodes);
        placements.push(Placement {
            cell_id: spec.cell_id.clone(),
            clients: spec.clients.clone(),
            nodes,
        });
    }
    (inv, placements)
}

/// Random placements on a zone with room partitions leave many cells unsafe (two
/// clients in a room that holds fewer than a quorum): a repair moves each of them,
/// along its path, to a safe placement, or says why it cannot.
#[test]
fn a_repair_makes_unsafe_cells_safe_along_their_paths() {
    let params = fixtures::ZoneParams {
        cells: 150,
        ..fixtures::ZoneParams::small(6)
    }
    .with_partitions();
    let (inv, placements) = random_placements(&params);
    let model = FailureModel::new(&inv);
    let goals = Goals {
        repair: true,
        ..Goals::default()
    };
    let plan = plan(&inv, &model, &placements, &goals, &PlaceOptions::default());
    replay(&inv, &model, &placements, &plan);
    let unsafe_before = plan.curve[0].unsafe_cells;
    assert!(unsafe_before > 20, "{unsafe_before}");
    assert!(plan.moves.iter().all(|m| m.reason == Reason::Unsafe));
    let last = plan.curve.last().unwrap();
    assert_eq!(last.unsafe_cells, plan.unmet.len(), "{:?}", plan.unmet);
    assert!(last.unsafe_cells < unsafe_before / 4, "{last:?}");
}

/// A repair moves the nodes off a failed server first, then makes safe the cells it
/// can; a budget keeps the mandatory moves first and says what it left.
#[test]
fn a_repair_moves_off_failed_servers_first_and_keeps_to_the_budget() {
    let (mut inv, placements) = zone_in_use(600);
    let (rack, server) = busiest(&inv, &placements);
    inv.servers[server as usize].status = ServerStatus::Failed;
    for &s in &inv.racks[rack as usize].servers.clone() {
        inv.servers[s as usize].status = ServerStatus::Draining;
    }
    let model = FailureModel::new(&inv);
    let on_failed = placements
        .iter()
        .filter(|p| p.nodes.contains(&server))
        .count();
    assert!(on_failed > 2, "{on_failed}");
    let goals = Goals {
        drain: true,
        repair: true,
        ..Goals::default()
    };
    let full = plan(&inv, &model, &placements, &goals, &PlaceOptions::default());
    replay(&inv, &model, &placements, &full);
    let reasons: Vec<Reason> = full.moves.iter().map(|m| m.reason).collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(reasons, sorted, "failed, then drain, then unsafe");
    assert_eq!(
        reasons.iter().filter(|&&r| r == Reason::Failed).count(),
        on_failed
    );
    // Every cell is safe at the end, or the plan says why not.
    let mut evaluator = RiskEvaluator::new(&model);
    for (i, p) in full.after.iter().enumerate() {
        let safe = evaluator
            .evaluate(&p.clients, &p.nodes)
            .single_failure_safe();
        assert!(
            safe || full.unmet.iter().any(|u| u.cell == Some(i)),
            "cell {i} left unsafe without a reason"
        );
    }

    let budget = on_failed + 3;
    let capped = plan(
        &inv,
        &model,
        &placements,
        &Goals {
            max_moves: Some(budget),
            ..goals
        },
        &PlaceOptions::default(),
    );
    replay(&inv, &model, &placements, &capped);
    assert_eq!(capped.moves.len(), budget);
    assert_eq!(capped.moves[..budget], full.moves[..budget]);
    assert!(capped
        .unmet
        .iter()
        .any(|u| u.why.contains("budget") && u.reason == Reason::Drain));
}

/// Improving random placements lowers the total risk by moves that never make a cell
/// worse, best gain per move first, within a budget; a second plan on the result
/// finds little left to gain.
#[test]
fn improving_lowers_the_risk_and_settles() {
    let params = fixtures::ZoneParams {
        cells: 150,
        ..fixtures::ZoneParams::small(7)
    };
    let (inv, placements) = random_placements(&params);
    let model = FailureModel::new(&inv);
    let goals = Goals {
        repair: true,
        improve: true,
        ..Goals::default()
    };
    let options = PlaceOptions::default();
    let first = plan(&inv, &model, &placements, &goals, &options);
    replay(&inv, &model, &placements, &first);
    let improving: Vec<&PlannedMove> = first
        .moves
        .iter()
        .filter(|m| m.reason == Reason::Improve)
        .collect();
    assert!(improving.len() > 20, "{}", improving.len());
    assert!(improving
        .iter()
        .all(|m| m.risk_after <= m.risk_before * (1.0 + 1e-9)));
    let (start, end) = (first.curve[0], *first.curve.last().unwrap());
    assert!(
        end.total_risk < start.total_risk / 2.0,
        "{start:?} -> {end:?}"
    );
    let budget = first.moves.len() / 3;
    let capped = plan(
        &inv,
        &model,
        &placements,
        &Goals {
            max_moves: Some(budget),
            ..goals
        },
        &options,
    );
    assert!(capped.moves.len() <= budget);
    // A caller that gave up (its time limit ran out) gets no move planned at all.
    let stop = crate::Stop::new();
    stop.set();
    let stopped = plan(
        &inv,
        &model,
        &placements,
        &Goals {
            balance: Some(1.0),
            ..goals
        },
        &PlaceOptions {
            stop,
            ..options.clone()
        },
    );
    assert!(stopped.moves.is_empty(), "{:?}", stopped.moves.len());
    let second = plan(&inv, &model, &first.after, &goals, &options);
    eprintln!(
        "improve: {} moves, risk {:.3e} -> {:.3e}; budget {budget}: {:.3e}; again: {} moves",
        first.moves.len(),
        start.total_risk,
        end.total_risk,
        capped.curve.last().unwrap().total_risk,
        second.moves.len()
    );
    assert!(
        second.moves.len() * 10 <= first.moves.len(),
        "{}",
        second.moves.len()
    );
}

/// Balancing random placements brings load max/mean down to the target, or says it
/// cannot, by moves off the most loaded servers that never raise a cell's risk above
/// its start nor make a safe cell unsafe.
#[test]
fn balancing_lowers_the_most_loaded_servers_without_raising_risk() {
    let params = fixtures::ZoneParams {
        cells: 150,
        ..fixtures::ZoneParams::small(8)
    };
    let (inv, placements) = random_placements(&params);
    let model = FailureModel::new(&inv);
    let goals = Goals {
        balance: Some(1.6),
        ..Goals::default()
    };
    let plan = plan(&inv, &model, &placements, &goals, &PlaceOptions::default());
    replay(&inv, &model, &placements, &plan);
    let (first, last) = (plan.curve[0], *plan.curve.last().unwrap());
    assert!(first.load_max_over_mean > 2.0, "{first:?}");
    assert!(plan.moves.iter().all(|m| m.reason == Reason::Balance));
    let start = crate::report::cell_risks(&model, &placements, 1);
    for m in &plan.moves {
        assert!(m.risk_after <= start[m.cell].0.max(m.risk_before) * (1.0 + 1e-9));
    }
    assert!(
        last.load_max_over_mean <= 1.6 || plan.unmet.iter().any(|u| u.reason == Reason::Balance),
        "{last:?}"
    );
    assert!(
        last.load_max_over_mean < first.load_max_over_mean,
        "{last:?}"
    );
}
