//! The zone's views for a console: the fleet at a glance, the racks of the map, one
//! rack's servers, one element and what its failure would do, every element's blast radius.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::ServerView;
use crate::ledger::Ledger;

/// `GET /v1/fleet`: the zone at a glance, as the ledger keeps it current (no cell is
/// evaluated again: cheap at any scale, for a console that refreshes on its own).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetView {
    /// Cells in the ledger.
    pub cells: u64,
    /// Cells out: down with nothing more failed.
    pub cells_out: u64,
    /// Cells some single element failure puts out (down cells included).
    pub cells_unsafe: u64,
    /// Servers the health overlay has down.
    pub servers_down: u64,
    /// Servers draining (in the export or reported).
    pub servers_draining: u64,
    /// The highest utilisation of an active host: its nodes over its node capacity.
    pub utilisation_max: f64,
    /// Nodes placed.
    pub nodes_placed: u64,
    /// Node capacity of the active hosts.
    pub node_capacity: u64,
    /// Active hosts above the balance ceiling.
    pub servers_over_balance_ceiling: u64,
    /// The active inventory version.
    pub inventory_version: i64,
    /// Cells by risk, in outages per year: each bucket up to `below` (inclusive), above
    /// the one before; the last (`below` null) above every bound.
    pub risk: Vec<RiskBucketView>,
    /// Plans by state.
    pub plans: BTreeMap<String, u64>,
}

/// One bucket of [`FleetView::risk`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RiskBucketView {
    /// The bucket's upper bound; null for the last.
    pub below: Option<f64>,
    /// Cells in it.
    pub cells: u64,
}

impl From<&crate::metrics::Gauges> for FleetView {
    fn from(g: &crate::metrics::Gauges) -> FleetView {
        let bounds = crate::metrics::RISK_BOUNDS;
        FleetView {
            cells: g.cells,
            cells_out: g.cells_out,
            cells_unsafe: g.cells_unsafe,
            servers_down: g.servers_down,
            servers_draining: g.servers_draining,
            utilisation_max: g.utilisation_max,
            nodes_placed: g.nodes_placed,
            node_capacity: g.node_capacity,
            servers_over_balance_ceiling: g.servers_over_balance_ceiling,
            inventory_version: g.inventory_version,
            risk: g
                .cells_by_risk
                .iter()
                .enumerate()
                .map(|(i, &cells)| RiskBucketView {
                    below: bounds.get(i).copied(),
                    cells,
                })
                .collect(),
            plans: store::PlanState::ALL
                .iter()
                .zip(g.plans_by_state)
                .map(|(s, n)| (s.name().to_owned(), n))
                .collect(),
        }
    }
}

/// `GET /v1/racks`: every rack with what a map colours it by.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RackMapView {
    /// The inventory version the racks are of.
    pub inventory_version: i64,
    /// The racks, by datacenter, room, row and id.
    pub racks: Vec<RackTileView>,
}

/// One rack on the map.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RackTileView {
    /// The rack id.
    pub rack: String,
    /// Its datacenter.
    pub datacenter: String,
    /// Its room.
    pub room: String,
    /// Its row.
    pub row: String,
    /// Its servers.
    pub servers: u32,
    /// Of those, failed (in the export or reported).
    pub failed: u32,
    /// Of those, draining.
    pub draining: u32,
    /// Nodes on its servers.
    pub nodes: u64,
    /// Node capacity of its active servers.
    pub capacity: u64,
    /// Cells with a node here that are not single-failure safe.
    pub cells_unsafe: u64,
    /// Cells with a node here that are out.
    pub cells_out: u64,
}

/// `GET /v1/racks/{id}`: a rack's servers, each with its load and cells.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RackView {
    /// The rack, as on the map.
    pub rack: RackTileView,
    /// Its servers, in the inventory's order.
    pub servers: Vec<ServerView>,
    /// The network devices its servers link to directly (its ToRs), by id.
    pub network: Vec<super::ElementRef>,
    /// The power devices feeding it or its servers, directly or upstream, by id.
    pub power: Vec<super::ElementRef>,
}

impl RackMapView {
    /// Every rack of the ledger's zone. Unsafe and out cells are counted from the
    /// ledger's index of unsafe cells (no cell is evaluated again), once per rack.
    pub fn new(ledger: &Ledger) -> RackMapView {
        let inv = &ledger.zone.inventory;
        let mut tiles: Vec<RackTileView> = inv.racks.iter().map(|r| tile(ledger, r)).collect();
        let mut seen: Vec<u32> = Vec::new();
        for id in ledger.unsafe_ids() {
            let Some(cell) = ledger.cell(id) else {
                continue;
            };
            let out = crate::ledger::is_down(cell.risk, cell.single_failure_safe);
            seen.clear();
            seen.extend(
                ledger
                    .nodes(cell)
                    .iter()
                    .map(|&s| inv.servers[s as usize].rack),
            );
            seen.sort_unstable();
            seen.dedup();
            for &r in &seen {
                tiles[r as usize].cells_unsafe += 1;
                tiles[r as usize].cells_out += u64::from(out);
            }
        }
        tiles.sort_by(|a, b| {
            (&a.datacenter, &a.room, &a.row, &a.rack).cmp(&(
                &b.datacenter,
                &b.room,
                &b.row,
                &b.rack,
            ))
        });
        RackMapView {
            inventory_version: ledger.zone.version,
            racks: tiles,
        }
    }
}

impl RackView {
    /// The rack `id` of the ledger's zone; `None` when it has none of that id.
    pub fn new(ledger: &Ledger, id: &str) -> Option<RackView> {
        let map = RackMapView::new(ledger);
        let rack = map.racks.into_iter().find(|r| r.rack == id)?;
        let inv = &ledger.zone.inventory;
        let index = inv.racks.iter().position(|r| r.id == id)?;
        let servers = inv.racks[index]
            .servers
            .iter()
            .map(|&s| ServerView::new(ledger, s))
            .collect();
        let element = |e: topology::ElementId| super::element(inv, e);
        let by_id = |mut refs: Vec<super::ElementRef>| {
            refs.sort_by(|a, b| a.id.cmp(&b.id));
            refs
        };
        let network = by_id(
            inv.rack_network_devices()[index]
                .iter()
                .map(|&d| element(inv.network_devices[d as usize].element))
                .collect(),
        );
        let power = by_id(
            inv.rack_power_devices(index)
                .iter()
                .map(|&d| element(inv.power_devices[d as usize].element))
                .collect(),
        );
        Some(RackView {
            rack,
            servers,
            network,
            power,
        })
    }
}

/// A rack's own counts (the cells' are added by [`RackMapView::new`]).
fn tile(ledger: &Ledger, rack: &topology::model::Rack) -> RackTileView {
    use topology::model::ServerStatus;
    let inv = &ledger.zone.inventory;
    let mut t = RackTileView {
        rack: rack.id.clone(),
        datacenter: rack.datacenter.clone(),
        room: rack.room.clone(),
        row: rack.row.clone(),
        servers: rack.servers.len() as u32,
        failed: 0,
        draining: 0,
        nodes: 0,
        capacity: 0,
        cells_unsafe: 0,
        cells_out: 0,
    };
    for &s in &rack.servers {
        let server = &inv.servers[s as usize];
        match server.status {
            ServerStatus::Failed => t.failed += 1,
            ServerStatus::Draining => t.draining += 1,
            ServerStatus::Active => t.capacity += u64::from(server.capacity),
        }
        t.nodes += u64::from(ledger.occ.load(s));
    }
    t
}

/// `GET /v1/elements/{id}`: one element of the inventory, its state, and what its failure
/// would do to the cells on the zone as it is now (the elements failed now stay failed).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementDetail {
    /// The element as the health overlay holds it.
    pub reported: super::ElementView,
    /// Its device kind (`tor`, `pdu`, `ups`, ...) or its table's (`rack`, `server`, ...).
    pub label: String,
    /// Annual failure probability, as exported or its kind's default.
    pub afr: f64,
    /// Hours it stays failed once failed, as exported or its kind's default.
    pub repair_hours: f64,
    /// The inventory version judged.
    pub inventory_version: i64,
    /// Cells judged (every cell of the ledger).
    pub cells: u64,
    /// Servers up now that its failure takes down (unpowered, or their rack or
    /// themselves failed).
    pub servers_down: u64,
    /// Its blast radius: cells out when it fails.
    pub blast_radius: u64,
    /// Of those, cells out already, with nothing more failed.
    pub out_already: u64,
    /// Cells that lose a node, or a client's path to one, and keep a quorum.
    pub degraded: u64,
    /// The racks holding nodes of the cells its failure would put out (not out already),
    /// most such cells first: where a map shows them.
    pub racks: Vec<RackCountView>,
    /// A page of the cells its failure puts out, by id.
    pub out_cells: Vec<String>,
    /// The cursor of the next page of `out_cells`; absent on the last.
    pub next_cursor: Option<String>,
}

/// A rack and a number of cells with a node in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RackCountView {
    /// The rack id.
    pub rack: String,
    /// The cells.
    pub cells: u64,
}

/// `GET /v1/blast`: every element's blast radius on the zone as it is now, and per rack
/// the largest of the rack's own, its network's and its power's (a map's measures).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlastView {
    /// The inventory version judged.
    pub inventory_version: i64,
    /// Cells judged again: the ones not known single-failure safe on this version (a
    /// safe cell is out under no single failure, so it adds to no element's blast radius).
    pub cells_judged: u64,
    /// Elements whose failure alone puts a cell out, largest blast radius first (then by
    /// id).
    pub elements: Vec<ElementBlastView>,
    /// Every rack, in the inventory's order.
    pub racks: Vec<RackBlastView>,
}

/// One element's blast radius.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementBlastView {
    /// The element id.
    pub element: String,
    /// Its device kind (`tor`, `pdu`, ...) or its table's (`rack`, `server`, ...).
    pub label: String,
    /// Cells its failure alone puts out.
    pub blast_radius: u64,
}

/// A rack's blast radii.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RackBlastView {
    /// The rack id.
    pub rack: String,
    /// The rack's own failure's.
    pub own: u64,
    /// The largest of the network devices its servers link to directly.
    pub network: u64,
    /// The largest of the power devices feeding it or its servers, directly or upstream.
    pub power: u64,
}
