//! The in-memory mirror of the ledger: the zone, the occupancy of its servers and every
//! cell, compact (server indices, one shared id). Pure data, no IO: the service changes it
//! under a write lock and queues the same change to the journal in the same critical
//! section. Store records (servers by id) are built from it only for a write or a view.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, Deref, DerefMut};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use topology::{Inventory, Placement};

use serde_json::json;

use crate::engine::{CellSlot, Occupancy};
use crate::limits::LIST_LIMIT;
use crate::metrics::RISK_BOUNDS;
use crate::zone::Zone;
use crate::Error;
use store::{CellRecord, MoveRecord, MoveStatus};

/// Whether a cell of this risk and safety is down: out with nothing more failed (its risk
/// is then 1, which no sum of yearly probabilities below 1 reaches for a live cell).
pub(crate) fn is_down(risk: f64, single_failure_safe: bool) -> bool {
    !single_failure_safe && risk >= 1.0
}

/// One cell as the service holds it: about 100 bytes besides its nodes (which live in the
/// occupancy, see [`Ledger::nodes`]), the same after a restart as after live traffic.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Shared with the ledger's index by id.
    pub id: Arc<str>,
    /// Server indices in the current zone.
    pub clients: Box<[u32]>,
    /// Its handle in the occupancy, which holds its nodes.
    pub slot: CellSlot,
    /// Interned: a zone has few colours.
    pub colour: Option<Arc<str>>,
    /// Outages per year (1 when the cell is down), on `inventory_version`.
    pub risk: f64,
    /// Not down, and no single element failure puts the cell out.
    pub single_failure_safe: bool,
    /// Inventory version that `risk` was computed on.
    pub inventory_version: i64,
    /// Starts at 1, +1 on every change.
    pub version: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of its last change.
    pub updated_at: i64,
    /// The cell's latest move, if it ever had one.
    /// Boxed: most cells have none, and an inline record would cost every cell its size.
    pub last_move: Option<Box<MoveRecord>>,
    /// Journal sequence number of the cell's last change: a reader waits for it to be
    /// durable before replying, so no reply shows a change that could still be lost.
    pub seq: u64,
}

impl Cell {
    /// The cell's latest move while it waits for its commit.
    pub fn pending_move(&self) -> Option<&MoveRecord> {
        self.last_move
            .as_deref()
            .filter(|m| m.status == MoveStatus::Proposed)
    }
}

/// Cells per risk bucket (not cumulative): `risk <= RISK_BOUNDS[i]` in the first bucket
/// that holds it, the last entry for the rest (and NaN).
pub(crate) type RiskCounts = [u64; RISK_BOUNDS.len() + 1];

fn risk_bucket(risk: f64) -> usize {
    RISK_BOUNDS
        .iter()
        .position(|&b| risk <= b)
        .unwrap_or(RISK_BOUNDS.len())
}

/// What the ledger keeps indexed about a cell: its safety and risk bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    safe: bool,
    bucket: usize,
}

impl Key {
    fn of(cell: &Cell) -> Key {
        Key {
            safe: cell.single_failure_safe,
            bucket: risk_bucket(cell.risk),
        }
    }
}

/// The indices over the cells that the ledger keeps up to date on every change, so that
/// listing a page and scraping the metrics never scan or sort every cell.
#[derive(Debug, Default)]
struct Indices {
    /// Ids of the cells that are not single-failure safe.
    unsafe_ids: BTreeSet<Arc<str>>,
    by_risk: RiskCounts,
}

impl Indices {
    fn add(&mut self, id: &Arc<str>, key: Key) {
        if !key.safe {
            self.unsafe_ids.insert(id.clone());
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

/// A cell borrowed for a change; the ledger's indices follow it when it is dropped (so
/// drop it before the next call on the ledger). Nodes change through
/// [`Ledger::set_nodes`].
#[derive(Debug)]
pub struct CellMut<'l> {
    cell: &'l mut Cell,
    indices: &'l mut Indices,
    colours: &'l mut FxHashSet<Arc<str>>,
    before: Key,
}

impl CellMut<'_> {
    /// Sets the cell's colour (interned).
    pub fn set_colour(&mut self, colour: Option<&str>) {
        self.cell.colour = colour.map(|c| intern(self.colours, c));
    }
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
        let after = Key::of(self.cell);
        if after != self.before {
            self.indices.remove(&self.cell.id, self.before);
            self.indices.add(&self.cell.id, after);
        }
    }
}

fn intern(colours: &mut FxHashSet<Arc<str>>, colour: &str) -> Arc<str> {
    if let Some(c) = colours.get(colour) {
        return c.clone();
    }
    let c: Arc<str> = Arc::from(colour);
    colours.insert(c.clone());
    c
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
    fn matches(&self, cell: &Cell, nodes: &[u32]) -> bool {
        self.unsafe_only
            .is_none_or(|u| u != cell.single_failure_safe)
            && self
                .inventory_version
                .is_none_or(|v| v == cell.inventory_version)
            && self.server.is_none_or(|s| nodes.contains(&s))
    }
}

/// Most cells a page looks at: a filter that few cells match ends a page early, with a
/// cursor, rather than holding the ledger for a walk over every cell.
pub(crate) const PAGE_SCAN_LIMIT: usize = 100_000;

/// One page of cells by id.
#[derive(Debug)]
pub struct Page<'l> {
    /// The matching cells, by id.
    pub cells: Vec<&'l Cell>,
    /// The last cell id looked at, when cells after it may still match: the next page
    /// starts after it.
    pub next: Option<String>,
}

/// The zone, the occupancy of its servers and every cell, indexed by id, safety and risk.
#[derive(Debug)]
pub struct Ledger {
    /// The zone the cells are placed on: inventory version, inventory, failure model.
    pub zone: Arc<Zone>,
    /// Every cell's nodes and every server's load.
    pub occ: Occupancy,
    /// Every cell by its occupancy slot (`None` for a free slot).
    cells: Vec<Option<Cell>>,
    /// Every cell id, in order, with its slot: lookups, and pages by cursor.
    by_id: BTreeMap<Arc<str>, CellSlot>,
    indices: Indices,
    colours: FxHashSet<Arc<str>>,
    /// Journal sequence number of the last change applied here.
    pub seq: u64,
    /// Nodes over all cells.
    pub nodes_placed: u64,
    /// Set after a failed commit until the state is reloaded from the store: changes are
    /// refused meanwhile (the message of the failure).
    pub poisoned: Option<String>,
}

/// Server ids of a record that the inventory does not know: (cell, server).
pub(crate) type Missing = Vec<(String, String)>;

/// The fields of a new cell besides its id, clients and nodes.
#[derive(Debug, Clone, Default)]
pub struct CellState {
    /// Deployment colour shared by the nodes, if they have one.
    pub colour: Option<String>,
    /// Outages per year (1 when the cell is down), on `inventory_version`.
    pub risk: f64,
    /// Not down, and no single element failure puts the cell out.
    pub single_failure_safe: bool,
    /// Inventory version that `risk` was computed on.
    pub inventory_version: i64,
    /// Starts at 1, +1 on every change.
    pub version: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of its last change.
    pub updated_at: i64,
}

impl Ledger {
    /// A ledger with no cells on `zone`.
    pub fn new(zone: Arc<Zone>, seq: u64) -> Ledger {
        Ledger {
            occ: Occupancy::new(&zone.inventory),
            zone,
            cells: Vec::new(),
            by_id: BTreeMap::new(),
            indices: Indices::default(),
            colours: FxHashSet::default(),
            seq,
            nodes_placed: 0,
            poisoned: None,
        }
    }

    /// Rebuilds the state from records: the occupancy is exactly the sum of the cells.
    /// Fails with every (cell, server) the zone does not know.
    pub fn rebuild(
        zone: Arc<Zone>,
        records: impl IntoIterator<Item = (CellRecord, Option<MoveRecord>)>,
        seq: u64,
    ) -> Result<Ledger, Missing> {
        let mut builder = Builder::new(zone, seq);
        for (record, last_move) in records {
            builder.add(record, last_move);
        }
        builder.finish()
    }

    /// The same cells on another zone (an inventory switch): servers are matched by id.
    /// Fails with every (cell, server) the new zone does not know.
    pub fn rezone(&self, zone: Arc<Zone>, seq: u64) -> Result<Ledger, Missing> {
        let old = &self.zone.inventory;
        let new = &zone.inventory;
        let map: Vec<Option<u32>> = old
            .servers
            .iter()
            .map(|s| new.server_index(&s.id))
            .collect();
        let mut missing = Missing::new();
        let mut ledger = Ledger::new(zone.clone(), seq);
        ledger.cells.reserve_exact(self.by_id.len());
        for slot in self.by_id.values() {
            let cell = self.cells[slot.0 as usize]
                .as_ref()
                .expect("indexed cells exist");
            let mut remap = |servers: &[u32]| -> Vec<u32> {
                servers
                    .iter()
                    .filter_map(|&s| {
                        let n = map[s as usize];
                        if n.is_none() {
                            missing.push((cell.id.to_string(), old.servers[s as usize].id.clone()));
                        }
                        n
                    })
                    .collect()
            };
            let clients = remap(&cell.clients);
            let nodes = remap(self.occ.nodes(cell.slot));
            if missing.is_empty() {
                let mut moved = cell.clone();
                moved.clients = clients.into_boxed_slice();
                moved.seq = seq;
                ledger.put(moved, &nodes);
            }
        }
        if missing.is_empty() {
            Ok(ledger)
        } else {
            Err(missing)
        }
    }

    /// A new cell.
    pub fn insert(
        &mut self,
        id: &str,
        clients: Vec<u32>,
        nodes: &[u32],
        state: CellState,
        last_move: Option<MoveRecord>,
        seq: u64,
    ) {
        // An id is placed once; should it come again, the old cell's nodes go first.
        let old = self.remove(id);
        debug_assert!(old.is_none(), "cell {id} inserted twice");
        let cell = Cell {
            id: Arc::from(id),
            clients: clients.into_boxed_slice(),
            slot: CellSlot(0),
            colour: state
                .colour
                .as_deref()
                .map(|c| intern(&mut self.colours, c)),
            risk: state.risk,
            single_failure_safe: state.single_failure_safe,
            inventory_version: state.inventory_version,
            version: state.version,
            created_at: state.created_at,
            updated_at: state.updated_at,
            last_move: last_move.map(Box::new),
            seq,
        };
        self.put(cell, nodes);
    }

    /// Records `cell` on `nodes`, in the slot the occupancy gives it.
    fn put(&mut self, mut cell: Cell, nodes: &[u32]) {
        cell.slot = self.occ.insert(nodes);
        if let Some(c) = &cell.colour {
            cell.colour = Some(intern(&mut self.colours, c));
        }
        self.nodes_placed += nodes.len() as u64;
        self.by_id.insert(cell.id.clone(), cell.slot);
        self.indices.add(&cell.id, Key::of(&cell));
        let i = cell.slot.0 as usize;
        if i >= self.cells.len() {
            self.cells.resize_with(i + 1, || None);
        }
        self.cells[i] = Some(cell);
    }

    /// Removes the cell `id` and frees its nodes; the cell, if there was one.
    pub fn remove(&mut self, id: &str) -> Option<Cell> {
        let slot = self.by_id.remove(id)?;
        let cell = self.cells[slot.0 as usize]
            .take()
            .expect("indexed cells exist");
        self.nodes_placed -= self.occ.size(slot) as u64;
        self.occ.remove(slot);
        self.indices.remove(id, Key::of(&cell));
        Some(cell)
    }

    /// Replaces a cell's nodes (a replacement or a committed move); the slot stays.
    pub fn set_nodes(&mut self, id: &str, nodes: &[u32]) {
        let Some(&slot) = self.by_id.get(id) else {
            return;
        };
        self.nodes_placed = self.nodes_placed + nodes.len() as u64 - self.occ.size(slot) as u64;
        self.occ.update(slot, nodes);
    }

    /// Makes the cells `ids` as the store has them: each removed, then `records` (those of
    /// them the store still has) put back under `seq`. A record naming a server the zone
    /// lacks is left out, and every such server is returned.
    pub fn put_back(
        &mut self,
        ids: &[String],
        records: Vec<store::CellWithMove>,
        seq: u64,
    ) -> Result<(), Missing> {
        for id in ids {
            self.remove(id);
        }
        let mut missing = Missing::new();
        for (record, last_move) in records {
            if let Err(m) = self.put_record(record, last_move, seq) {
                missing.extend(m);
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }

    /// Puts a cell as a store record has it (another replica's commit), replacing the one
    /// with its id; fails, changing nothing, if the zone lacks one of its servers.
    pub fn put_record(
        &mut self,
        record: CellRecord,
        last_move: Option<MoveRecord>,
        seq: u64,
    ) -> Result<(), Missing> {
        let inv = &self.zone.inventory;
        let mut missing = Missing::new();
        let mut resolve = |ids: &[String]| -> Vec<u32> {
            ids.iter()
                .filter_map(|id| {
                    let i = inv.server_index(id);
                    if i.is_none() {
                        missing.push((record.cell_id.clone(), id.clone()));
                    }
                    i
                })
                .collect()
        };
        let clients = resolve(&record.clients);
        let nodes = resolve(&record.nodes);
        if !missing.is_empty() {
            return Err(missing);
        }
        self.remove(&record.cell_id);
        let state = CellState {
            colour: record.colour,
            risk: record.risk,
            single_failure_safe: record.single_failure_safe,
            inventory_version: record.inventory_version,
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        };
        self.insert(&record.cell_id, clients, &nodes, state, last_move, seq);
        Ok(())
    }

    /// A cell's nodes, in position order.
    pub fn nodes(&self, cell: &Cell) -> &[u32] {
        self.occ.nodes(cell.slot)
    }

    /// Every cell, by id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Cell> + '_ {
        self.by_id.values().map(|slot| {
            self.cells[slot.0 as usize]
                .as_ref()
                .expect("indexed cells exist")
        })
    }

    /// The cell `id`.
    pub fn cell(&self, id: &str) -> Option<&Cell> {
        let slot = self.by_id.get(id)?;
        self.cells[slot.0 as usize].as_ref()
    }

    /// A cell to change; see [`CellMut`].
    pub fn cell_mut(&mut self, id: &str) -> Option<CellMut<'_>> {
        let slot = self.by_id.get(id)?;
        let cell = self.cells[slot.0 as usize].as_mut()?;
        let before = Key::of(cell);
        Some(CellMut {
            cell,
            indices: &mut self.indices,
            colours: &mut self.colours,
            before,
        })
    }

    /// The cell in an occupancy slot.
    pub fn cell_at(&self, slot: CellSlot) -> Option<&Cell> {
        self.cells.get(slot.0 as usize)?.as_ref()
    }

    /// The id of the cell in an occupancy slot.
    pub fn cell_of(&self, slot: CellSlot) -> Option<&str> {
        self.cell_at(slot).map(|c| &*c.id)
    }

    /// The store's record of a cell (servers by id).
    pub fn record(&self, cell: &Cell) -> CellRecord {
        let inv = &self.zone.inventory;
        CellRecord {
            cell_id: cell.id.to_string(),
            clients: ids(inv, &cell.clients),
            nodes: ids(inv, self.nodes(cell)),
            colour: cell.colour.as_deref().map(str::to_owned),
            risk: cell.risk,
            single_failure_safe: cell.single_failure_safe,
            inventory_version: cell.inventory_version,
            version: cell.version,
            created_at: cell.created_at,
            updated_at: cell.updated_at,
        }
    }

    /// Marks every proposed move superseded (they were computed on another inventory) and
    /// returns them, by cell id, to record.
    pub fn supersede_moves(&mut self, now: i64) -> Vec<MoveRecord> {
        let mut out = Vec::new();
        for cell in self.cells.iter_mut().flatten() {
            if let Some(m) = cell
                .last_move
                .as_deref_mut()
                .filter(|m| m.status == MoveStatus::Proposed)
            {
                m.status = MoveStatus::Superseded;
                m.updated_at = now;
                out.push(m.clone());
            }
        }
        out.sort_by(|a, b| a.cell_id.cmp(&b.cell_id));
        out
    }

    /// The store's record of the cell `id`, if there is one.
    pub fn record_of(&self, id: &str) -> Option<CellRecord> {
        self.cell(id).map(|c| self.record(c))
    }

    /// Marks the cell `id` (and the ledger) as changed by the journal entry `seq`.
    pub fn stamp(&mut self, id: &str, seq: u64) {
        if let Some(mut c) = self.cell_mut(id) {
            c.seq = seq;
        }
        self.seq = seq;
    }

    /// How many cells it holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// It holds no cell.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Cells that are not single-failure safe.
    pub fn unsafe_count(&self) -> u64 {
        self.indices.unsafe_ids.len() as u64
    }

    /// The ids of the cells that are not single-failure safe, in order.
    pub fn unsafe_ids(&self) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.indices.unsafe_ids.iter()
    }

    /// Cells out (down with nothing more failed): among the unsafe ones, risk 1.
    pub fn out_count(&self) -> u64 {
        self.unsafe_ids()
            .filter_map(|id| self.cell(id))
            .filter(|c| is_down(c.risk, c.single_failure_safe))
            .count() as u64
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
                    .map(|id| &**id),
            )
        } else {
            Box::new(
                self.by_id
                    .range::<str, _>((from, Bound::Unbounded))
                    .map(|(id, _)| &**id),
            )
        };
        for (scanned, id) in ids.enumerate() {
            if cells.len() == limit || scanned == scan_limit {
                more = true;
                break;
            }
            last = Some(id);
            let Some(cell) = self.cell(id) else {
                continue;
            };
            if filter.matches(cell, self.nodes(cell)) {
                cells.push(cell);
            }
        }
        Page {
            cells,
            next: if more { last.map(str::to_owned) } else { None },
        }
    }

    /// The cells as the fleet report takes them, by cell id.
    pub fn placements(&self) -> Vec<Placement> {
        self.placements_where(|_| true)
    }

    /// The placements of the cells that pass `keep`, in the ledger's order.
    pub fn placements_where(&self, keep: impl Fn(&Cell) -> bool) -> Vec<Placement> {
        self.iter()
            .filter(|&c| keep(c))
            .map(|c| Placement {
                cell_id: c.id.to_string(),
                clients: c.clients.to_vec(),
                nodes: self.nodes(c).to_vec(),
            })
            .collect()
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

/// The ids of servers given by index.
pub(crate) fn ids(inv: &Inventory, servers: &[u32]) -> Vec<String> {
    servers
        .iter()
        .map(|&s| inv.servers[s as usize].id.clone())
        .collect()
}

/// Builds a ledger from store records streamed one at a time (a restart reads a million
/// without holding them): each is resolved on the zone and recorded at once.
#[derive(Debug)]
pub(crate) struct Builder {
    ledger: Ledger,
    /// Server id to index, for resolving records.
    index: FxHashMap<String, u32>,
    missing: Missing,
    /// Cells whose risk was computed on another inventory version.
    stale: usize,
}

impl Builder {
    /// A builder of a ledger on `zone` whose last applied journal entry is `seq`.
    pub(crate) fn new(zone: Arc<Zone>, seq: u64) -> Builder {
        let index = zone
            .inventory
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i as u32))
            .collect();
        Builder {
            ledger: Ledger::new(zone, seq),
            index,
            missing: Missing::new(),
            stale: 0,
        }
    }

    /// Resolves a cell's record on the zone and records it with its latest move. Servers
    /// the zone does not know are noted instead, and from then on cells are only resolved,
    /// not recorded: [`Builder::finish`] will fail.
    pub(crate) fn add(&mut self, record: CellRecord, last_move: Option<MoveRecord>) {
        let mut resolve = |ids: &[String]| -> Vec<u32> {
            ids.iter()
                .filter_map(|id| {
                    let i = self.index.get(id.as_str()).copied();
                    if i.is_none() {
                        self.missing.push((record.cell_id.clone(), id.clone()));
                    }
                    i
                })
                .collect()
        };
        let clients = resolve(&record.clients);
        let nodes = resolve(&record.nodes);
        if !self.missing.is_empty() {
            return;
        }
        if record.inventory_version != self.ledger.zone.version {
            self.stale += 1;
        }
        let seq = self.ledger.seq;
        let state = CellState {
            colour: record.colour,
            risk: record.risk,
            single_failure_safe: record.single_failure_safe,
            inventory_version: record.inventory_version,
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        };
        self.ledger
            .insert(&record.cell_id, clients, &nodes, state, last_move, seq);
    }

    /// Cells added so far whose risk was computed on another inventory version.
    pub(crate) fn stale(&self) -> usize {
        self.stale
    }

    /// The ledger, or every (cell, server) the zone did not know.
    pub(crate) fn finish(self) -> Result<Ledger, Missing> {
        if self.missing.is_empty() {
            Ok(self.ledger)
        } else {
            Err(self.missing)
        }
    }
}

/// The colour of a cell on `nodes` (its first node's).
pub(crate) fn colour(inv: &Inventory, nodes: &[u32]) -> Option<String> {
    nodes
        .first()
        .and_then(|&n| inv.servers[n as usize].color.clone())
}

/// The error of an inventory that lacks servers the cells use (the first
/// [`LIST_LIMIT`] of them named).
pub(crate) fn missing_error(missing: &Missing) -> Error {
    let list: Vec<_> = missing
        .iter()
        .take(LIST_LIMIT)
        .map(|(cell, server)| json!({"cell": cell, "server": server}))
        .collect();
    Error::InventoryConflict {
        message: format!(
            "{} cell node(s) or client(s) name servers the inventory does not have",
            missing.len()
        ),
        details: json!({ "missing": list }),
    }
}

#[cfg(test)]
mod tests;
