//! The in-memory mirror of the ledger: the zone, the occupancy of its servers and every
//! cell with its server indices. Pure data, no IO: the service changes it under a write
//! lock and queues the same change to the journal in the same critical section.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, Deref, DerefMut};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use topology::{Inventory, Placement};

use crate::engine::{CellSlot, Occupancy};
use crate::metrics::RISK_BOUNDS;
use crate::store::{CellRecord, MoveRecord, MoveStatus};
use crate::zone::Zone;

/// One cell as the service works with it.
#[derive(Debug, Clone)]
pub struct Cell {
    pub record: CellRecord,
    /// Server indices in the current zone.
    pub clients: Vec<u32>,
    pub nodes: Vec<u32>,
    pub slot: CellSlot,
    /// The cell's latest move, if it ever had one.
    /// Boxed: most cells have none, and an inline record would cost every cell its size.
    pub last_move: Option<Box<MoveRecord>>,
    /// Journal sequence number of the cell's last change: a reader waits for it to be
    /// durable before replying, so no reply shows a change that could still be lost.
    pub seq: u64,
}

impl Cell {
    pub fn pending_move(&self) -> Option<&MoveRecord> {
        self.last_move
            .as_deref()
            .filter(|m| m.status == MoveStatus::Proposed)
    }
}

/// Cells per risk bucket (not cumulative): `risk <= RISK_BOUNDS[i]` in the first bucket
/// that holds it, the last entry for the rest (and NaN).
pub type RiskCounts = [u64; RISK_BOUNDS.len() + 1];

fn risk_bucket(risk: f64) -> usize {
    RISK_BOUNDS
        .iter()
        .position(|&b| risk <= b)
        .unwrap_or(RISK_BOUNDS.len())
}

/// What the ledger keeps indexed about a cell's record: its safety and risk bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    safe: bool,
    bucket: usize,
}

impl Key {
    fn of(record: &CellRecord) -> Key {
        Key {
            safe: record.single_failure_safe,
            bucket: risk_bucket(record.risk),
        }
    }
}

/// The indices over the cells that the ledger keeps up to date on every change, so that
/// listing a page and scraping the metrics never scan or sort every cell.
#[derive(Debug, Default)]
struct Indices {
    /// Every cell id, in order: pages by cursor.
    order: BTreeSet<String>,
    /// Ids of the cells that are not single-failure safe.
    unsafe_ids: BTreeSet<String>,
    by_risk: RiskCounts,
}

impl Indices {
    fn add(&mut self, id: &str, key: Key) {
        if !key.safe {
            self.unsafe_ids.insert(id.to_owned());
        }
        self.by_risk[key.bucket] += 1;
    }

    fn remove(&mut self, id: &str, key: Key) {
        if !key.safe {
            self.unsafe_ids.remove(id);
        }
        self.by_risk[key.bucket] -= 1;
    }
}

/// A cell borrowed for a change; the ledger's indices follow its record when it is
/// dropped (so drop it before the next call on the ledger).
#[derive(Debug)]
pub struct CellMut<'l> {
    cell: &'l mut Cell,
    indices: &'l mut Indices,
    before: Key,
}

impl Deref for CellMut<'_> {
    type Target = Cell;
    fn deref(&self) -> &Cell {
        self.cell
    }
}

impl DerefMut for CellMut<'_> {
    fn deref_mut(&mut self) -> &mut Cell {
        self.cell
    }
}

impl Drop for CellMut<'_> {
    fn drop(&mut self) {
        let after = Key::of(&self.cell.record);
        if after != self.before {
            self.indices.remove(&self.cell.record.cell_id, self.before);
            self.indices.add(&self.cell.record.cell_id, after);
        }
    }
}

/// Which cells a page lists (every given condition holds).
#[derive(Debug, Clone, Default)]
pub struct CellFilter {
    /// Cells with a node on this server.
    pub server: Option<u32>,
    /// Only cells that are not single-failure safe (true), or only safe ones (false).
    pub unsafe_only: Option<bool>,
    /// Cells whose risk was computed on this inventory version.
    pub inventory_version: Option<i64>,
}

impl CellFilter {
    fn matches(&self, cell: &Cell) -> bool {
        self.unsafe_only
            .is_none_or(|u| u != cell.record.single_failure_safe)
            && self
                .inventory_version
                .is_none_or(|v| v == cell.record.inventory_version)
            && self.server.is_none_or(|s| cell.nodes.contains(&s))
    }
}

/// Most cells a page looks at: a filter that few cells match ends a page early, with a
/// cursor, rather than holding the ledger for a walk over every cell.
pub const PAGE_SCAN_LIMIT: usize = 100_000;

/// One page of cells by id.
#[derive(Debug)]
pub struct Page<'l> {
    pub cells: Vec<&'l Cell>,
    /// The last cell id looked at, when cells after it may still match: the next page
    /// starts after it.
    pub next: Option<String>,
}

#[derive(Debug)]
pub struct Ledger {
    pub zone: Arc<Zone>,
    pub occ: Occupancy,
    cells: FxHashMap<String, Cell>,
    indices: Indices,
    slot_cell: FxHashMap<CellSlot, String>,
    /// Journal sequence number of the last change applied here.
    pub seq: u64,
    pub nodes_placed: u64,
    /// Set after a failed commit until the state is reloaded from the store: changes are
    /// refused meanwhile (the message of the failure).
    pub poisoned: Option<String>,
}

/// Server ids of a record that the inventory does not know: (cell, server).
pub type Missing = Vec<(String, String)>;

fn resolve(inv: &Inventory, cell: &str, ids: &[String], missing: &mut Missing) -> Vec<u32> {
    ids.iter()
        .filter_map(|id| {
            let i = inv.server_index(id);
            if i.is_none() {
                missing.push((cell.to_owned(), id.clone()));
            }
            i
        })
        .collect()
}

impl Ledger {
    /// Rebuilds the state from records: the occupancy is exactly the sum of the cells.
    /// Fails with every (cell, server) the zone does not know.
    pub fn rebuild(
        zone: Arc<Zone>,
        records: impl IntoIterator<Item = (CellRecord, Option<MoveRecord>)>,
        seq: u64,
    ) -> Result<Ledger, Missing> {
        let mut ledger = Ledger {
            occ: Occupancy::new(&zone.inventory),
            zone,
            cells: FxHashMap::default(),
            indices: Indices::default(),
            slot_cell: FxHashMap::default(),
            seq,
            nodes_placed: 0,
            poisoned: None,
        };
        let mut missing = Missing::new();
        for (record, last_move) in records {
            let inv = &ledger.zone.inventory;
            let clients = resolve(inv, &record.cell_id, &record.clients, &mut missing);
            let nodes = resolve(inv, &record.cell_id, &record.nodes, &mut missing);
            if missing.is_empty() {
                ledger.insert(record, clients, nodes, last_move, seq);
            }
        }
        if missing.is_empty() {
            Ok(ledger)
        } else {
            Err(missing)
        }
    }

    /// Every cell's record and last move, for a rebuild on another zone.
    pub fn records(&self) -> Vec<(CellRecord, Option<MoveRecord>)> {
        let mut out: Vec<_> = self
            .cells
            .values()
            .map(|c| (c.record.clone(), c.last_move.as_deref().cloned()))
            .collect();
        out.sort_by(|a, b| a.0.cell_id.cmp(&b.0.cell_id));
        out
    }

    pub fn insert(
        &mut self,
        record: CellRecord,
        clients: Vec<u32>,
        nodes: Vec<u32>,
        last_move: Option<MoveRecord>,
        seq: u64,
    ) {
        // An id is placed once; should it come again, the old cell's nodes go first.
        let old = self.remove(&record.cell_id);
        debug_assert!(old.is_none(), "cell {} inserted twice", record.cell_id);
        let slot = self.occ.insert(&nodes);
        self.nodes_placed += nodes.len() as u64;
        self.slot_cell.insert(slot, record.cell_id.clone());
        self.indices.order.insert(record.cell_id.clone());
        self.indices.add(&record.cell_id, Key::of(&record));
        self.cells.insert(
            record.cell_id.clone(),
            Cell {
                record,
                clients,
                nodes,
                slot,
                last_move: last_move.map(Box::new),
                seq,
            },
        );
    }

    pub fn remove(&mut self, id: &str) -> Option<Cell> {
        let cell = self.cells.remove(id)?;
        self.occ.remove(cell.slot);
        self.slot_cell.remove(&cell.slot);
        self.indices.order.remove(id);
        self.indices.remove(id, Key::of(&cell.record));
        self.nodes_placed -= cell.nodes.len() as u64;
        Some(cell)
    }

    /// Replaces a cell's nodes (a replacement or a committed move); the slot stays.
    pub fn set_nodes(&mut self, id: &str, nodes: Vec<u32>) {
        let Some(cell) = self.cells.get_mut(id) else {
            return;
        };
        self.occ.update(cell.slot, &nodes);
        self.nodes_placed = self.nodes_placed + nodes.len() as u64 - cell.nodes.len() as u64;
        cell.nodes = nodes;
    }

    /// Every cell, by id (in no order).
    pub fn cells(&self) -> &FxHashMap<String, Cell> {
        &self.cells
    }

    pub fn cell(&self, id: &str) -> Option<&Cell> {
        self.cells.get(id)
    }

    /// A cell to change; see [`CellMut`]. Nodes change through [`Ledger::set_nodes`].
    pub fn cell_mut(&mut self, id: &str) -> Option<CellMut<'_>> {
        let cell = self.cells.get_mut(id)?;
        let before = Key::of(&cell.record);
        Some(CellMut {
            cell,
            indices: &mut self.indices,
            before,
        })
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Cells that are not single-failure safe.
    pub fn unsafe_count(&self) -> u64 {
        self.indices.unsafe_ids.len() as u64
    }

    /// Cells per risk bucket (see [`RiskCounts`]).
    pub fn risk_counts(&self) -> RiskCounts {
        self.indices.by_risk
    }

    /// Up to `limit` cells that match `filter`, by id, after the id `after`. Reads the
    /// server's own cells for a server filter, the unsafe cells for `unsafe_only`, else
    /// the ordered ids from `after` on; never sorts the ledger. A page ends early (with
    /// `next` set) after looking at [`PAGE_SCAN_LIMIT`] cells.
    pub fn page(&self, filter: &CellFilter, after: Option<&str>, limit: usize) -> Page<'_> {
        self.page_scanning(filter, after, limit, PAGE_SCAN_LIMIT)
    }

    fn page_scanning(
        &self,
        filter: &CellFilter,
        after: Option<&str>,
        limit: usize,
        scan_limit: usize,
    ) -> Page<'_> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut cells = Vec::with_capacity(limit.min(1024));
        let mut last: Option<&str> = None;
        let mut more = false;
        let server_ids: Vec<&str>;
        let ids: Box<dyn Iterator<Item = &str> + '_> = if let Some(s) = filter.server {
            let mut v: Vec<&str> = self
                .occ
                .cells_on(s)
                .iter()
                .filter_map(|&slot| self.cell_of(slot))
                .filter(|id| after.is_none_or(|a| *id > a))
                .collect();
            v.sort_unstable();
            v.dedup();
            server_ids = v;
            Box::new(server_ids.iter().copied())
        } else if filter.unsafe_only == Some(true) {
            Box::new(
                self.indices
                    .unsafe_ids
                    .range::<str, _>((from, Bound::Unbounded))
                    .map(String::as_str),
            )
        } else {
            Box::new(
                self.indices
                    .order
                    .range::<str, _>((from, Bound::Unbounded))
                    .map(String::as_str),
            )
        };
        for (scanned, id) in ids.enumerate() {
            if cells.len() == limit || scanned == scan_limit {
                more = true;
                break;
            }
            last = Some(id);
            let Some(cell) = self.cells.get(id) else {
                continue;
            };
            if filter.matches(cell) {
                cells.push(cell);
            }
        }
        Page {
            cells,
            next: if more { last.map(str::to_owned) } else { None },
        }
    }

    pub fn cell_of(&self, slot: CellSlot) -> Option<&str> {
        self.slot_cell.get(&slot).map(String::as_str)
    }

    /// The cells as the fleet report takes them, by cell id.
    pub fn placements(&self) -> Vec<Placement> {
        let mut out: Vec<Placement> = self
            .cells
            .values()
            .map(|c| Placement {
                cell_id: c.record.cell_id.clone(),
                clients: c.clients.clone(),
                nodes: c.nodes.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.cell_id.cmp(&b.cell_id));
        out
    }

    /// Node count per server id, from the occupancy (for the start-up cross-check).
    pub fn server_loads(&self) -> BTreeMap<String, u32> {
        let inv = &self.zone.inventory;
        (0..inv.servers.len() as u32)
            .filter(|&s| self.occ.load(s) > 0)
            .map(|s| (inv.servers[s as usize].id.clone(), self.occ.load(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
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

    fn record(zone: &Zone, id: &str, rng: &mut Lcg) -> (CellRecord, Vec<u32>) {
        let inv = &zone.inventory;
        let n = inv.servers.len() as u64;
        let mut nodes: Vec<u32> = Vec::new();
        while nodes.len() < 3 {
            let s = rng.next(n) as u32;
            if !nodes.contains(&s) {
                nodes.push(s);
            }
        }
        let record = CellRecord {
            cell_id: id.to_owned(),
            clients: vec![inv.servers[0].id.clone()],
            nodes: nodes
                .iter()
                .map(|&s| inv.servers[s as usize].id.clone())
                .collect(),
            colour: None,
            risk: [1e-9, 3e-6, 1e-4, 0.5, 1.0, 2.0][rng.next(6) as usize],
            single_failure_safe: rng.next(3) != 0,
            inventory_version: 1 + rng.next(2) as i64,
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        (record, nodes)
    }

    fn add(ledger: &mut Ledger, id: &str, rng: &mut Lcg) {
        let (record, nodes) = record(&ledger.zone.clone(), id, rng);
        ledger.insert(record, vec![0], nodes, None, 0);
    }

    /// The indices against a scan of every cell.
    fn check_indices(ledger: &Ledger) {
        let unsafe_ids: BTreeSet<&str> = ledger
            .cells()
            .values()
            .filter(|c| !c.record.single_failure_safe)
            .map(|c| c.record.cell_id.as_str())
            .collect();
        assert_eq!(ledger.unsafe_count(), unsafe_ids.len() as u64);
        let mut by_risk = [0; RISK_BOUNDS.len() + 1];
        for c in ledger.cells().values() {
            by_risk[risk_bucket(c.record.risk)] += 1;
        }
        assert_eq!(ledger.risk_counts(), by_risk);
        let order: Vec<&str> = ledger.indices.order.iter().map(String::as_str).collect();
        let mut ids: Vec<&str> = ledger.cells().keys().map(String::as_str).collect();
        ids.sort_unstable();
        assert_eq!(order, ids);
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
                .cells()
                .values()
                .filter(|c| filter.matches(c))
                .map(|c| c.record.cell_id.as_str())
                .collect();
            want.sort_unstable();
            for (limit, scan) in [(1000, usize::MAX), (7, usize::MAX), (5, 11), (1, 1)] {
                let mut got: Vec<String> = Vec::new();
                let mut after: Option<String> = None;
                let mut pages = 0;
                loop {
                    let page = ledger.page_scanning(&filter, after.as_deref(), limit, scan);
                    assert!(page.cells.len() <= limit);
                    got.extend(page.cells.iter().map(|c| c.record.cell_id.clone()));
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
            seen.extend(page.cells.iter().map(|c| c.record.cell_id.clone()));
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
                cell.record.single_failure_safe = rng.next(2) == 0;
                cell.record.risk = [1e-8, 1e-3, 1.0, f64::NAN][rng.next(4) as usize];
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
}
