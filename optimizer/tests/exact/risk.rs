//! The fast evaluator against brute force: random irregular inventories and a structured zone.

use super::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn fast_risk_equals_brute_force(seed in any::<u64>(), cell_seed in any::<u64>()) {
        let inv = random_inventory(seed);
        let model = FailureModel::new(&inv);
        let mut eval = RiskEvaluator::new(&model);
        let mut rng = ChaCha8Rng::seed_from_u64(cell_seed);
        for _ in 0..3 {
            let (clients, nodes) = random_cell(&inv, &mut rng);
            let fast = eval.evaluate(&clients, &nodes);
            let want = reference::risk(&inv, &clients, &nodes);
            prop_assert_eq!(fast.down, want.down, "down for {:?} {:?}", clients, nodes);
            prop_assert!(close(fast.single_risk, want.single), "single part {} != brute force {} for clients {:?} nodes {:?}", fast.single_risk, want.single, clients, nodes);
            prop_assert!(close(fast.pair_risk, want.pair), "pair part {} != brute force {} for clients {:?} nodes {:?}", fast.pair_risk, want.pair, clients, nodes);
            prop_assert!(close(fast.risk, want.risk), "risk {} != brute force {} for clients {:?} nodes {:?}", fast.risk, want.risk, clients, nodes);
            if !want.down {
                prop_assert_eq!(&fast.breaking_singles, &want.breaking);
            }
            let singles = eval.single_failures(&clients, &nodes);
            prop_assert_eq!(&fast.singles, &singles);
            prop_assert_eq!(singles.down, want.down);
            if !want.down {
                prop_assert_eq!(&singles.elements, &want.breaking);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn fleet_report_equals_brute_force(seed in any::<u64>(), cell_seed in any::<u64>()) {
        let inv = random_inventory(seed);
        let model = FailureModel::new(&inv);
        let mut rng = ChaCha8Rng::seed_from_u64(cell_seed);
        let cells: Vec<(Vec<u32>, Vec<u32>)> = (0..6).map(|_| random_cell(&inv, &mut rng)).collect();
        let placements: Vec<Placement> = cells
            .iter()
            .enumerate()
            .map(|(i, (c, n))| Placement { cell_id: format!("c{i}"), clients: c.clone(), nodes: n.clone() })
            .collect();
        let report = fleet_report(&inv, &model, &placements, &ReportOptions { threads: 2, ..ReportOptions::default() });
        prop_assert_eq!(&report.blast_radius, &reference::blast_radius(&inv, &cells));
        for (i, (c, n)) in cells.iter().enumerate() {
            let want = reference::risk(&inv, c, n);
            prop_assert!(close(report.per_cell[i].risk, want.risk));
            prop_assert_eq!(report.unsafe_cells.contains(&i), want.down || !want.breaking.is_empty());
            prop_assert_eq!(report.down_cells.contains(&i), want.down);
        }
        // Without risk, cells known safe are skipped, and the report is the same.
        let no_risk = ReportOptions { risk: false, threads: 2, ..ReportOptions::default() };
        let full = fleet_report(&inv, &model, &placements, &no_risk);
        let known_safe: Vec<bool> = (0..placements.len()).map(|i| !full.unsafe_cells.contains(&i)).collect();
        let known = fleet_report_known(&inv, &model, &placements, &no_risk, &known_safe);
        prop_assert_eq!(&known.blast_radius, &full.blast_radius);
        prop_assert_eq!(&known.top_blast_radius, &full.top_blast_radius);
        prop_assert_eq!(&known.unsafe_cells, &full.unsafe_cells);
        prop_assert_eq!(&known.down_cells, &full.down_cells);
        prop_assert_eq!(&known.load, &full.load);
        // Quorum sharing against the pairwise definition.
        let mut naive = Vec::new();
        for a in 0..placements.len() {
            for b in a + 1..placements.len() {
                let shared = placements[a].nodes.iter().filter(|x| placements[b].nodes.contains(x)).count();
                if shared >= placements[a].quorum().min(placements[b].quorum()) {
                    naive.push((a, b));
                }
            }
        }
        prop_assert_eq!(quorum_sharing_pairs(&placements), naive);
        // Pair blast radius: every pair, with its cells, as the definition gives them.
        let pairs = pair_blast_radius(&model, &placements, usize::MAX, 2);
        let want = reference::pair_blast_radius(&inv, &cells);
        prop_assert_eq!(pairs.len(), want.len());
        for p in &pairs {
            prop_assert_eq!(Some(&p.cells), want.get(&p.pair));
        }
        prop_assert!(pairs.windows(2).all(|w| w[0].cells.len() >= w[1].cells.len()));
        let top = pair_blast_radius(&model, &placements, 3, 1);
        prop_assert_eq!(&top[..], &pairs[..pairs.len().min(3)]);
    }
}

/// The zone-wide effects (special pairs of aggregation switches, uplinks, conduits and
/// A/B power) against brute force on a structured zone.
#[test]
fn fast_risk_equals_brute_force_on_a_structured_zone() {
    for seed in 0..2 {
        let (inv, cells) = structured_zone(seed);
        let model = FailureModel::new(&inv);
        assert!(
            model.effects().special_count() > 0,
            "the zone has special pairs"
        );
        let mut eval = RiskEvaluator::new(&model);
        let hosts: Vec<u32> = (0..inv.servers.len() as u32)
            .filter(|&s| inv.servers[s as usize].capacity > 0)
            .collect();
        for (k, cell) in cells.iter().take(3).enumerate() {
            // Seven hosts, rotated so that the cells differ.
            let nodes: Vec<u32> = (0..7.min(hosts.len()))
                .map(|i| hosts[(i * 2 + k) % hosts.len()])
                .collect();
            let mut nodes = nodes;
            nodes.sort_unstable();
            nodes.dedup();
            let fast = eval.evaluate(&cell.clients, &nodes);
            let want = reference::risk(&inv, &cell.clients, &nodes);
            assert_eq!(fast.down, want.down);
            assert!(
                close(fast.risk, want.risk),
                "zone {seed} cell {k}: risk {} != brute force {}",
                fast.risk,
                want.risk
            );
            assert!(close(fast.single_risk, want.single));
            assert!(close(fast.pair_risk, want.pair));
            if !want.down {
                assert_eq!(fast.breaking_singles, want.breaking);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// A failure scenario of any size: a cell is out under it exactly when the contract's
    /// definition says so, computed from scratch.
    #[test]
    fn scenario_outages_equal_the_definition(seed in any::<u64>(), cell_seed in any::<u64>()) {
        let inv = random_inventory(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(cell_seed);
        let cells: Vec<Placement> = (0..6)
            .map(|i| {
                let (c, n) = random_cell(&inv, &mut rng);
                Placement { cell_id: format!("c{i}"), clients: c, nodes: n }
            })
            .collect();
        let m = inv.elements.len() as u32;
        for size in 0..5 {
            let failed: Vec<ElementId> = (0..size).map(|_| ElementId(rng.random_range(0..m))).collect();
            let got = whatif::scenario(&inv, &failed, &cells);
            for (p, s) in cells.iter().zip(&got) {
                let want = reference::outage(&inv, &p.clients, &p.nodes, &failed);
                prop_assert_eq!(*s == whatif::Standing::Out, want, "{:?} {:?}", failed, p);
            }
        }
    }
}
