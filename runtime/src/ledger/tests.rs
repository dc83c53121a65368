//! The ledger's indices, records, rezoning and streamed rebuild.

use std::collections::BTreeSet;

use super::*;
use crate::zone::{Candidate, Source};

fn zone() -> Arc<Zone> {
    let c = Candidate::load(Source::Dir(fixtures::tiny_dir())).unwrap();
    Arc::new(c.into_zone(1, 0))
}

/// A small deterministic generator (no dependency for one test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn state(rng: &mut Lcg) -> CellState {
    CellState {
        colour: None,
        risk: [1e-9, 3e-6, 1e-4, 0.5, 1.0, 2.0][rng.next(6) as usize],
        single_failure_safe: rng.next(3) != 0,
        inventory_version: 1 + rng.next(2) as i64,
        version: 1,
        created_at: 0,
        updated_at: 0,
    }
}

fn add(ledger: &mut Ledger, id: &str, rng: &mut Lcg) {
    let n = ledger.zone.inventory.servers.len() as u64;
    let mut nodes: Vec<u32> = Vec::new();
    while nodes.len() < 3 {
        let s = rng.next(n) as u32;
        if !nodes.contains(&s) {
            nodes.push(s);
        }
    }
    let state = state(rng);
    ledger.insert(id, vec![0], &nodes, state, None, 0);
}

/// The indices against a scan of every cell.
fn check_indices(ledger: &Ledger) {
    let unsafe_ids: BTreeSet<&str> = ledger
        .iter()
        .filter(|c| !c.single_failure_safe)
        .map(|c| &*c.id)
        .collect();
    assert_eq!(ledger.unsafe_count(), unsafe_ids.len() as u64);
    let mut by_risk = [0; RISK_BOUNDS.len() + 1];
    for c in ledger.iter() {
        by_risk[risk_bucket(c.risk)] += 1;
    }
    assert_eq!(ledger.risk_counts(), by_risk);
    let order: Vec<&str> = ledger.iter().map(|c| &*c.id).collect();
    let mut ids: Vec<&str> = ledger.cells.iter().flatten().map(|c| &*c.id).collect();
    ids.sort_unstable();
    assert_eq!(order, ids);
    for c in ledger.iter() {
        assert_eq!(ledger.cell_of(c.slot), Some(&*c.id));
    }
    let nodes: u64 = ledger.iter().map(|c| ledger.nodes(c).len() as u64).sum();
    assert_eq!(ledger.nodes_placed, nodes);
}

fn filters(ledger: &Ledger) -> Vec<CellFilter> {
    let busy = (0..ledger.zone.inventory.servers.len() as u32)
        .max_by_key(|&s| ledger.occ.load(s))
        .unwrap();
    let mut out = Vec::new();
    for server in [None, Some(busy)] {
        for unsafe_only in [None, Some(true), Some(false)] {
            for inventory_version in [None, Some(2), Some(9)] {
                out.push(CellFilter {
                    server,
                    unsafe_only,
                    inventory_version,
                });
            }
        }
    }
    out
}

#[test]
fn pages_match_a_sorted_scan_under_every_filter() {
    let zone = zone();
    let mut rng = Lcg(1);
    let mut ledger = Ledger::rebuild(zone, Vec::new(), 0).unwrap();
    while ledger.len() < 400 {
        let id = format!("c{:05}", rng.next(100_000));
        if ledger.cell(&id).is_none() {
            add(&mut ledger, &id, &mut rng);
        }
    }
    check_indices(&ledger);
    for filter in filters(&ledger) {
        let mut want: Vec<&str> = ledger
            .iter()
            .filter(|c| filter.matches(c, ledger.nodes(c)))
            .map(|c| &*c.id)
            .collect();
        want.sort_unstable();
        for (limit, scan) in [(1000, usize::MAX), (7, usize::MAX), (5, 11), (1, 1)] {
            let mut got: Vec<String> = Vec::new();
            let mut after: Option<String> = None;
            let mut pages = 0;
            loop {
                let page = ledger.page_scanning(&filter, after.as_deref(), limit, scan);
                assert!(page.cells.len() <= limit);
                got.extend(page.cells.iter().map(|c| c.id.to_string()));
                pages += 1;
                assert!(pages <= 1000, "no end");
                match page.next {
                    Some(next) => {
                        assert!(after.as_ref().is_none_or(|a| *a < next));
                        after = Some(next);
                    }
                    None => break,
                }
            }
            assert_eq!(got, want, "{filter:?} limit {limit} scan {scan}");
        }
    }
}

#[test]
fn paging_is_stable_under_inserts_and_removes() {
    let zone = zone();
    let mut rng = Lcg(2);
    let mut ledger = Ledger::rebuild(zone, Vec::new(), 0).unwrap();
    for i in 0..300 {
        add(&mut ledger, &format!("s{:05}", i * 10), &mut rng);
    }
    let filter = CellFilter::default();
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut inserted_later: Vec<String> = Vec::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut i = 0;
    loop {
        let page = ledger.page(&filter, after.as_deref(), 13);
        seen.extend(page.cells.iter().map(|c| c.id.to_string()));
        let Some(next) = page.next else { break };
        // Between pages: a cell before the cursor, one after it, and a removal.
        let before = format!("s{:05}", rng.next(3000) * 10 + 1);
        let later = format!("{next}5");
        for id in [&before, &later] {
            if ledger.cell(id).is_none() {
                add(&mut ledger, id, &mut rng);
            }
        }
        inserted_later.push(later);
        let victim = format!("s{:05}", (rng.next(300) as usize) * 10);
        if ledger.remove(&victim).is_some() {
            removed.insert(victim);
        }
        after = Some(next);
        i += 1;
        assert!(i < 1000);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a cell came twice");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "out of order");
    for id in &inserted_later {
        assert!(
            unique.contains(id),
            "{id}, placed after the cursor, never came"
        );
    }
    // Every cell there from start to end came.
    for n in 0..300 {
        let id = format!("s{:05}", n * 10);
        if !removed.contains(&id) {
            assert!(unique.contains(&id), "{id} was skipped");
        }
    }
    check_indices(&ledger);
}

#[test]
fn indices_follow_changes_through_cell_mut() {
    let zone = zone();
    let mut rng = Lcg(3);
    let mut ledger = Ledger::rebuild(zone, Vec::new(), 0).unwrap();
    for i in 0..50 {
        add(&mut ledger, &format!("m{i:02}"), &mut rng);
    }
    for i in 0..200 {
        let id = format!("m{:02}", rng.next(50));
        if let Some(mut cell) = ledger.cell_mut(&id) {
            cell.single_failure_safe = rng.next(2) == 0;
            cell.risk = [1e-8, 1e-3, 1.0, f64::NAN][rng.next(4) as usize];
        }
        if i % 17 == 0 {
            ledger.remove(&id);
            add(&mut ledger, &id, &mut rng);
        }
        check_indices(&ledger);
    }
    let total: u64 = ledger.risk_counts().iter().sum();
    assert_eq!(total, ledger.len() as u64);
}

/// The tiny zone with its servers in reverse order (every index differs), less the
/// first `drop` of them.
fn reversed_zone(drop: usize) -> Arc<Zone> {
    let mut raw = topology::ingest::read_dir(&fixtures::tiny_dir()).unwrap();
    let servers = raw.tables.get_mut("servers").unwrap();
    let gone: Vec<Option<String>> = servers.rows.drain(..drop).map(|r| r[0].clone()).collect();
    servers.rows.reverse();
    // Links name servers too.
    let links = raw.tables.get_mut("network_links").unwrap();
    links.rows.retain(|r| !r.iter().any(|v| gone.contains(v)));
    let (inventory, warnings) = Inventory::from_raw(&raw).unwrap();
    let model = topology::FailureModel::new(&inventory);
    let candidate = crate::zone::Candidate {
        source: Source::Bundled,
        raw,
        inventory,
        model,
        warnings,
    };
    Arc::new(candidate.into_zone(2, 0))
}

fn records(ledger: &Ledger) -> Vec<(CellRecord, Option<MoveRecord>)> {
    ledger.iter().map(|c| (ledger.record(c), None)).collect()
}

#[test]
fn records_round_trip_and_a_new_zone_keeps_servers_by_id() {
    let zone = zone();
    let mut rng = Lcg(4);
    let mut ledger = Ledger::new(zone.clone(), 0);
    for i in 0..60 {
        add(&mut ledger, &format!("r{i:02}"), &mut rng);
    }
    ledger.cell_mut("r01").unwrap().set_colour(Some("blue"));
    let records = records(&ledger);
    let again = Ledger::rebuild(zone.clone(), records.clone(), 5).unwrap();
    assert_eq!(records, self::records(&again));
    check_indices(&again);

    let reversed = Ledger::rezone(&ledger, reversed_zone(0), 6).unwrap();
    assert_eq!(records, self::records(&reversed));
    check_indices(&reversed);
    assert!(reversed.iter().all(|c| c.seq == 6));
    let first = ledger.cell("r00").unwrap();
    assert_ne!(
        ledger.nodes(first),
        reversed.nodes(reversed.cell("r00").unwrap())
    );
    assert_eq!(ledger.server_loads(), reversed.server_loads());

    // A zone without a server that cells use: every such (cell, server), nothing built.
    let gone = &zone.inventory.servers[0].id;
    let missing = Ledger::rezone(&ledger, reversed_zone(1), 7).unwrap_err();
    let want: Vec<(String, String)> = records
        .iter()
        .flat_map(|(r, _)| {
            r.clients
                .iter()
                .chain(&r.nodes)
                .filter(|s| *s == gone)
                .map(|s| (r.cell_id.clone(), s.clone()))
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(missing, want);
    let rebuilt = Ledger::rebuild(reversed_zone(1), records, 0).unwrap_err();
    assert_eq!(rebuilt, want);
}
