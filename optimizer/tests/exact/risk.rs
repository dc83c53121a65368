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
        let pairs = pair_blast_radius(&model, &placements, usize::MAX, 2, &Default::default());
        let want = reference::pair_blast_radius(&inv, &cells);
        prop_assert_eq!(pairs.len(), want.len());
        for p in &pairs {
            prop_assert_eq!(Some(&p.cells), want.get(&p.pair));
        }
        prop_assert!(pairs.windows(2).all(|w| w[0].cells.len() >= w[1].cells.len()));
        let top = pair_blast_radius(&model, &placements, 3, 1, &Default::default());
        prop_assert_eq!(&top[..], &pairs[..pairs.len().min(3)]);
    }
}

/// The zone-wide effects (special pairs of aggregation switches, uplinks, conduits and
/// A/B power) against brute force on a structured zone.
/// The random zones the brute-force tests draw hold what real zones have: border
/// routers, and partition risk groups whose failure alone splits servers that reach each
/// other with nothing failed, and risks a cell reads (a cell out under the partition
/// alone). Counted over 300 seeds, so a generator that stopped making them fails here.
#[test]
fn random_zones_hold_border_routers_and_partitions_that_split_them() {
    let (mut with_border, mut splitting, mut cells_cut) = (0, 0, 0);
    for seed in 0..300 {
        let inv = random_inventory(seed);
        let border = inv.elements.iter().any(|e| e.label == "border")
            && inv.elements.iter().any(|e| e.id == "partition-dc1");
        if !border {
            continue;
        }
        with_border += 1;
        let whole = topology::failure::reference::state(&inv, &[]);
        let reach = |st: &topology::failure::reference::State, a: usize, b: usize| {
            st.up[a] && st.up[b] && st.component[a] == st.component[b]
        };
        let n = inv.servers.len();
        for group in ["partition-dc1", "partition-dc2"] {
            let e = inv
                .elements
                .iter()
                .position(|e| e.id == group)
                .map(|i| ElementId(i as u32))
                .expect("the partition is an element");
            let cut = topology::failure::reference::state(&inv, &[e]);
            let split = (0..n).any(|a| {
                (0..n).any(|b| reach(&whole, a, b) && cut.up[a] && cut.up[b] && !reach(&cut, a, b))
            });
            if split {
                splitting += 1;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for _ in 0..20 {
                    let (clients, nodes) = random_cell(&inv, &mut rng);
                    let r = reference::risk(&inv, &clients, &nodes);
                    cells_cut += usize::from(!r.down && r.breaking.contains(&e));
                }
            }
        }
    }
    assert!(
        with_border >= 80,
        "{with_border} of 300 zones with border routers"
    );
    assert!(
        splitting >= 35,
        "{splitting} partitions that split their zone"
    );
    assert!(
        cells_cut >= 100,
        "{cells_cut} random cells a partition alone puts out"
    );
}

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

/// A cell's state with elements named by id, in order: down, the breaking singles, the
/// single failures and the pairs (element numbers shift when links are dropped, and with
/// them the order in which the risk's terms are summed).
type ById = (bool, Vec<String>, Vec<String>, Vec<(String, String)>);

fn by_id(inv: &Inventory, r: &optimizer::risk::CellRisk) -> ById {
    let name = |e: &ElementId| inv.elements[e.index()].id.clone();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let mut pairs: Vec<(String, String)> = r
        .pairs
        .iter()
        .map(|(e, f)| (name(e).min(name(f)), name(e).max(name(f))))
        .collect();
    pairs.sort();
    (
        r.down,
        sorted(r.breaking_singles.iter().map(name).collect()),
        sorted(r.singles.elements.iter().map(name).collect()),
        pairs,
    )
}

/// A health event for [`rebuilt_model_answers_as_a_fresh_one`]: mostly what keeps the
/// effects (a server, a server's link), at times anything in the catalogue.
fn random_event(inv: &Inventory, rng: &mut ChaCha8Rng) -> ElementId {
    let server_links: Vec<ElementId> = inv
        .links
        .iter()
        .filter(|l| matches!(l.a, NetNode::Server(_)) || matches!(l.b, NetNode::Server(_)))
        .map(|l| l.element)
        .collect();
    match rng.random_range(0..4) {
        0 | 1 => inv.servers[rng.random_range(0..inv.servers.len())].element,
        2 if !server_links.is_empty() => server_links[rng.random_range(0..server_links.len())],
        _ => ElementId(rng.random_range(0..inv.elements.len() as u32)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    /// A model rebuilt from the last one under a health overlay answers every cell as a
    /// model built afresh; when it kept the effects they are the fresh ones, and every cell
    /// none of whose servers it reports changed answers as before the event.
    #[test]
    fn rebuilt_model_answers_as_a_fresh_one(seed in any::<u64>(), event_seed in any::<u64>()) {
        let raw = random_raw(seed);
        let export = Inventory::from_raw(&raw).expect("random inventory is valid").0;
        let mut rng = ChaCha8Rng::seed_from_u64(event_seed);
        let cells: Vec<(Vec<u32>, Vec<u32>)> = (0..8).map(|_| random_cell(&export, &mut rng)).collect();
        let mut failed: Vec<ElementId> = Vec::new();
        let mut model = FailureModel::new(&export);
        let mut prev = export.clone();
        for _ in 0..5 {
            // Fail an element, or repair one failed before; at times up to four at once (one
            // report may carry many states).
            for _ in 0..rng.random_range(1..=4) {
                let e = random_event(&export, &mut rng);
                match failed.iter().position(|&f| f == e) {
                    Some(i) => { failed.remove(i); }
                    None => failed.push(e),
                }
            }
            let reported: Vec<Reported> = failed
                .iter()
                .map(|&f| Reported { named: Named::Element(f), health: Health::Failed, since: 0 })
                .collect();
            let applied = topology::overlay::apply(&raw, &export, &reported);
            let inv = Inventory::from_raw(&applied.raw).expect("an overlay keeps a valid zone").0;
            let (next, changed) = model.rebuilt(&prev, &inv);
            let fresh = FailureModel::new(&inv);
            let (mut before, mut after, mut want) =
                (RiskEvaluator::new(&model), RiskEvaluator::new(&next), RiskEvaluator::new(&fresh));
            // The same zone: what changed is always named.
            let Changed::Vertices(changed) = changed else {
                panic!("the same zone rebuilt reports everything changed");
            };
            if std::ptr::eq(next.effects(), model.effects()) {
                prop_assert_eq!(next.effects(), fresh.effects());
            }
            for (clients, nodes) in &cells {
                let got = after.evaluate(clients, nodes);
                prop_assert_eq!(&got, &want.evaluate(clients, nodes));
                if !clients.iter().chain(nodes).any(|s| changed.binary_search(s).is_ok()) {
                    // Element numbers shift when links are dropped: compare by id.
                    let was = before.evaluate(clients, nodes);
                    prop_assert_eq!(by_id(&inv, &got), by_id(&prev, &was), "{:?} changed only {:?}", failed, changed);
                    for (a, b) in [(got.risk, was.risk), (got.single_risk, was.single_risk), (got.pair_risk, was.pair_risk)] {
                        prop_assert!(close(a, b), "{} != {} before; {:?} changed only {:?}", a, b, failed, changed);
                    }
                }
            }
            drop((before, after, want));
            model = next;
            prev = inv;
        }
    }
}

/// On a generated zone, the events that touch only dead ends keep the effects (renumbered
/// when a link is dropped) and name the servers they changed; a top-of-rack switch has its
/// effects searched again and changes its rack.
#[test]
fn rebuild_keeps_the_effects_for_servers_and_their_links() {
    let raw = fixtures::generate(&fixtures::ZoneParams::tiny(3).with_partitions());
    let export = Inventory::from_raw(&raw).unwrap().0;
    let model = FailureModel::new(&export);
    let rebuilt = |id: &str| {
        let named = Named::resolve(&export, id).unwrap();
        let reported = [Reported {
            named,
            health: Health::Failed,
            since: 0,
        }];
        let inv = Inventory::from_raw(&topology::overlay::apply(&raw, &export, &reported).raw)
            .unwrap()
            .0;
        let (next, changed) = model.rebuilt(&export, &inv);
        let fresh = FailureModel::new(&inv);
        (
            next.effects() == fresh.effects(),
            std::ptr::eq(next.effects(), model.effects()),
            changed,
        )
    };
    let uplinks = |s: u32| -> Vec<&topology::model::Link> {
        export
            .links
            .iter()
            .filter(|l| l.a == NetNode::Server(s) || l.b == NetNode::Server(s))
            .collect()
    };
    // A server with one uplink, in a rack whose servers all have one.
    let single_homed = |s: u32| uplinks(s).len() == 1;
    let server = (0..export.servers.len() as u32)
        .find(|&s| {
            let rack = export.servers[s as usize].rack;
            (0..export.servers.len() as u32)
                .filter(|&t| export.servers[t as usize].rack == rack)
                .all(single_homed)
        })
        .expect("the tiny zone has a rack of single-homed servers");
    assert_eq!(
        rebuilt(&export.servers[server as usize].id),
        (true, true, Changed::Vertices(vec![server]))
    );
    let (fresh, shared, changed) = rebuilt(&uplinks(server)[0].id);
    assert_eq!(
        (fresh, shared, changed),
        (true, false, Changed::Vertices(vec![server]))
    );
    let rack = export.servers[server as usize].rack;
    let in_rack: Vec<u32> = (0..export.servers.len() as u32)
        .filter(|&s| export.servers[s as usize].rack == rack)
        .collect();
    assert_eq!(
        rebuilt(&export.racks[rack as usize].id),
        (true, true, Changed::Vertices(in_rack.clone()))
    );
    let tor = match uplinks(server)[0] {
        l if l.a == NetNode::Server(server) => l.b,
        l => l.a,
    };
    let NetNode::Device(tor) = tor else {
        panic!("a server's uplink goes to its switch")
    };
    let (fresh, shared, Changed::Vertices(changed)) =
        rebuilt(&export.network_devices[tor as usize].id)
    else {
        panic!("the same zone")
    };
    assert!(fresh && !shared);
    for s in &in_rack {
        assert!(
            changed.contains(s),
            "{s} under the failed switch is changed: {changed:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// A standing cell's explanation (`Placer::explain`, the console's "why it sits
    /// where it does") is its exact risk and breaking elements, by brute force.
    #[test]
    fn a_standing_cells_explanation_equals_brute_force(seed in any::<u64>(), cell_seed in any::<u64>()) {
        let inv = random_inventory(seed);
        let model = FailureModel::new(&inv);
        let mut placer = Placer::new(&inv, &model, PlaceOptions::default());
        let occ = Occupancy::new(&inv);
        let mut rng = ChaCha8Rng::seed_from_u64(cell_seed);
        for _ in 0..3 {
            let (clients, nodes) = random_cell(&inv, &mut rng);
            let x = placer.explain(&occ, &clients, &nodes, None).unwrap();
            let want = reference::risk(&inv, &clients, &nodes);
            prop_assert_eq!(x.down, want.down);
            prop_assert!(close(x.risk, want.risk), "risk {} != brute force {} for clients {:?} nodes {:?}", x.risk, want.risk, clients, nodes);
            prop_assert!(close(x.single_risk, want.single));
            prop_assert!(close(x.pair_risk, want.pair));
            prop_assert_eq!(x.single_failure_safe, !want.down && want.breaking.is_empty());
            if !want.down {
                prop_assert_eq!(&x.breaking, &want.breaking);
            }
            let in_racks: usize = x.domains.iter().filter(|d| d.level == DomainLevel::Rack).map(|d| d.nodes).sum();
            prop_assert_eq!(in_racks, nodes.len(), "the racks hold every node: {:?}", x.domains);
            prop_assert!(x.binding.is_empty());
        }
    }
}
