//! The in-memory mirror of the ledger: the zone, the occupancy of its servers and every
//! cell with its server indices. Pure data, no IO: the service changes it under a write
//! lock and queues the same change to the journal in the same critical section.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use topology::{Inventory, Placement};

use crate::engine::{CellSlot, Occupancy};
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
    pub last_move: Option<MoveRecord>,
    /// Journal sequence number of the cell's last change: a reader waits for it to be
    /// durable before replying, so no reply shows a change that could still be lost.
    pub seq: u64,
}

impl Cell {
    pub fn pending_move(&self) -> Option<&MoveRecord> {
        self.last_move
            .as_ref()
            .filter(|m| m.status == MoveStatus::Proposed)
    }
}

#[derive(Debug)]
pub struct Ledger {
    pub zone: Arc<Zone>,
    pub occ: Occupancy,
    pub cells: HashMap<String, Cell>,
    slot_cell: HashMap<CellSlot, String>,
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
            cells: HashMap::new(),
            slot_cell: HashMap::new(),
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
            .map(|c| (c.record.clone(), c.last_move.clone()))
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
        let slot = self.occ.insert(&nodes);
        self.nodes_placed += nodes.len() as u64;
        self.slot_cell.insert(slot, record.cell_id.clone());
        self.cells.insert(
            record.cell_id.clone(),
            Cell {
                record,
                clients,
                nodes,
                slot,
                last_move,
                seq,
            },
        );
    }

    pub fn remove(&mut self, id: &str) -> Option<Cell> {
        let cell = self.cells.remove(id)?;
        self.occ.remove(cell.slot);
        self.slot_cell.remove(&cell.slot);
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
