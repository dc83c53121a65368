//! Test inventories for the baselines and the comparison: hand-shaped racks, and a check
//! of the rules every placement must keep.

use std::collections::HashSet;

use topology::model::ServerStatus;
use topology::raw::{RawInventory, RawTable};
use topology::{CellSpec, Inventory, Placement};

/// One server of a hand-shaped inventory.
pub(crate) struct HostSpec {
    pub status: &'static str,
    pub capacity: u32,
    pub colour: &'static str,
}

pub(crate) fn host(capacity: u32, colour: &'static str) -> HostSpec {
    HostSpec {
        status: "active",
        capacity,
        colour,
    }
}

/// An inventory of the given racks (each a list of servers), all in one row, without
/// network or power: enough for placers, which look only at racks, status, capacity and
/// colour. Server `s` of rack `r` is `rk{r}-s{s}`.
pub(crate) fn racks_inventory(racks: &[Vec<HostSpec>]) -> Inventory {
    let mut raw = RawInventory::default();
    let mut rack_table = RawTable::for_table("racks");
    let mut servers = RawTable::for_table("servers");
    for (r, hosts) in racks.iter().enumerate() {
        rack_table.push(&[
            format!("rk{r}"),
            "dc1".into(),
            "h1".into(),
            "row1".into(),
            "".into(),
            "".into(),
        ]);
        for (s, h) in hosts.iter().enumerate() {
            servers.push(&[
                format!("rk{r}-s{s}"),
                format!("rk{r}"),
                h.status.to_string(),
                h.capacity.to_string(),
                h.colour.to_string(),
                String::new(),
                String::new(),
            ]);
        }
    }
    raw.insert("racks", rack_table);
    raw.insert("servers", servers);
    for table in [
        "network_devices",
        "network_links",
        "power_devices",
        "power_feeds",
    ] {
        raw.insert(table, RawTable::for_table(table));
    }
    Inventory::from_raw(&raw)
        .expect("hand-shaped inventory is valid")
        .0
}

/// `count` cells of `size` nodes named `cell-00000`, ..., each with server 0 as client.
pub(crate) fn cells(count: usize, size: usize) -> Vec<CellSpec> {
    (0..count)
        .map(|i| CellSpec {
            cell_id: format!("cell-{i:05}"),
            clients: vec![0],
            size,
        })
        .collect()
}

/// Panics unless every placement keeps the hard rules: placed cells in `cells` order with
/// their size and clients, active hosts only, capacity kept, distinct racks, one colour.
pub(crate) fn assert_rules_kept(inv: &Inventory, cells: &[CellSpec], placements: &[Placement]) {
    let mut load = vec![0u32; inv.servers.len()];
    let mut specs = cells.iter();
    for p in placements {
        let spec = specs
            .find(|c| c.cell_id == p.cell_id)
            .unwrap_or_else(|| panic!("{} is not in cells order", p.cell_id));
        assert_eq!(p.nodes.len(), spec.size, "{}: size", p.cell_id);
        assert_eq!(p.clients, spec.clients, "{}: clients", p.cell_id);
        let mut racks = HashSet::new();
        let mut colours = HashSet::new();
        for &n in &p.nodes {
            let server = &inv.servers[n as usize];
            assert_eq!(server.status, ServerStatus::Active, "{}: status", p.cell_id);
            assert!(
                racks.insert(server.rack),
                "{}: two nodes in a rack",
                p.cell_id
            );
            colours.insert(server.color.clone());
            load[n as usize] += 1;
        }
        assert_eq!(colours.len(), 1, "{}: colours {colours:?}", p.cell_id);
    }
    for (s, server) in inv.servers.iter().enumerate() {
        assert!(
            load[s] <= server.capacity,
            "{}: load {} over capacity {}",
            server.id,
            load[s],
            server.capacity
        );
    }
}

/// A generated zone small enough for unit tests.
pub(crate) fn small_zone(node_capacity: u32, cells: usize) -> crate::Zone {
    crate::zone(&fixtures::ZoneParams {
        node_capacity,
        cells,
        ..fixtures::ZoneParams::tiny(7)
    })
}
