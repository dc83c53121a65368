//! Shared set-up for the benchmarks: generated zones and deterministic placements; the
//! baseline placers ([`baselines`], the real CRUSH through [`crushtool`]) and the
//! side-by-side comparison ([`compare`]).

pub mod baselines;
pub mod compare;
pub mod crushtool;

#[cfg(test)]
mod testing;

use topology::model::ServerStatus;
use topology::{FailureModel, Inventory, Placement};

/// A generated zone, validated, with its failure model and its cell workload.
#[derive(Debug)]
pub struct Zone {
    /// The validated inventory.
    pub inventory: Inventory,
    /// Its failure model.
    pub model: FailureModel,
    /// The generated workload: one spec per cell.
    pub cells: Vec<topology::CellSpec>,
}

/// Generates, validates and models the zone of `params`, with its cells.
pub fn zone(params: &fixtures::ZoneParams) -> Zone {
    let raw = fixtures::generate(params);
    let (inventory, _) = Inventory::from_raw(&raw).expect("generated zones are valid");
    let cells = topology::workload::parse_cells(raw.table("cells").expect("cells"), &inventory)
        .expect("generated cells are valid");
    let model = FailureModel::new(&inventory);
    Zone {
        inventory,
        model,
        cells,
    }
}

/// A simple client-aware spread, standing in for the placement engine in evaluator
/// benchmarks: 7 active hosts of one colour in the first client's datacenter, one per
/// rack, racks taken round-robin over the rooms. Deterministic.
pub fn spread_placements(zone: &Zone, count: usize) -> Vec<Placement> {
    let inv = &zone.inventory;
    // Hosts by (datacenter, colour), ordered so that consecutive entries change room.
    let mut by_key: std::collections::BTreeMap<(String, String), Vec<Vec<u32>>> =
        Default::default();
    for (r, rack) in inv.racks.iter().enumerate() {
        for &s in &rack.servers {
            let server = &inv.servers[s as usize];
            if server.capacity == 0 || server.status != ServerStatus::Active {
                continue;
            }
            let color = server.color.clone().unwrap_or_default();
            let racks = by_key.entry((rack.datacenter.clone(), color)).or_default();
            if racks
                .last()
                .is_none_or(|l| inv.servers[l[0] as usize].rack != r as u32)
            {
                racks.push(Vec::new());
            }
            racks.last_mut().expect("pushed").push(s);
        }
    }
    let keys: Vec<(String, String)> = by_key.keys().cloned().collect();
    zone.cells
        .iter()
        .take(count)
        .enumerate()
        .map(|(i, cell)| {
            let dc = &inv.racks[inv.servers[cell.clients[0] as usize].rack as usize].datacenter;
            let options: Vec<&(String, String)> = keys.iter().filter(|k| &k.0 == dc).collect();
            let racks = &by_key[options[i % options.len()]];
            let n = racks.len();
            // A stride coprime with most rack counts spreads over rows and rooms.
            let stride = (n / 7).max(1) | 1;
            let mut nodes = Vec::with_capacity(7);
            let mut k = (i * 7919) % n;
            while nodes.len() < 7.min(n) {
                let rack = &racks[k % n];
                let s = rack[i % rack.len()];
                if !nodes.contains(&s) {
                    nodes.push(s);
                }
                k += stride;
            }
            Placement {
                cell_id: cell.cell_id.clone(),
                clients: cell.clients.clone(),
                nodes,
            }
        })
        .collect()
}
