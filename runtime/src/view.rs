//! JSON and text views of reports; serde lives here and nowhere else.

use std::fmt::Write;

use optimizer::FleetReport;
use serde::Serialize;
use topology::model::Counts;
use topology::{Inventory, Placement, Problem};
use utoipa::ToSchema;

/// One located problem of an import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemView {
    /// The contract table the problem is in (`servers`, `power_feeds`, ...); empty when no
    /// table could be read.
    pub table: String,
    /// The file the table was read from (`servers.csv`), when it came from one.
    pub file: Option<String>,
    /// 1-based data row (the header not counted).
    pub row: Option<usize>,
    /// The line in a CSV file (the header is line 1).
    pub line: Option<usize>,
    /// The column at fault; absent for a problem with a whole table or row.
    pub column: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> ProblemView {
        ProblemView {
            table: p.table.clone(),
            file: p.file.clone(),
            row: p.row,
            line: p.line(),
            column: p.column.clone(),
            message: p.message.clone(),
        }
    }
}

/// The size of an inventory, table by table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountsView {
    /// Distinct datacenters of the racks.
    pub datacenters: usize,
    /// Distinct rooms of the racks.
    pub rooms: usize,
    /// Racks.
    pub racks: usize,
    /// Servers, hosts and clients alike.
    pub servers: usize,
    /// Servers with a node capacity above 0.
    pub cell_hosts: usize,
    /// The node capacity of all servers together, in nodes.
    pub node_capacity: u64,
    /// Network devices.
    pub network_devices: usize,
    /// Network links.
    pub links: usize,
    /// Risk groups, declared or only named.
    pub risk_groups: usize,
    /// Power devices.
    pub power_devices: usize,
    /// Distinct power feeds.
    pub feeds: usize,
    /// Failure elements of all kinds.
    pub failure_elements: usize,
}

impl From<Counts> for CountsView {
    fn from(c: Counts) -> CountsView {
        CountsView {
            datacenters: c.datacenters,
            rooms: c.rooms,
            racks: c.racks,
            servers: c.servers,
            cell_hosts: c.cell_hosts,
            node_capacity: c.node_capacity,
            network_devices: c.network_devices,
            links: c.links,
            risk_groups: c.risk_groups,
            power_devices: c.power_devices,
            feeds: c.feeds,
            failure_elements: c.elements,
        }
    }
}

/// The size of an inventory on one line, as `cellplacer validate` prints it.
pub fn counts_text(c: &Counts) -> String {
    format!(
        "datacenters {}, rooms {}, racks {}, servers {} ({} cell hosts, node capacity {}), \
         network devices {}, links {}, risk groups {}, power devices {}, feeds {}, \
         failure elements {}",
        c.datacenters,
        c.rooms,
        c.racks,
        c.servers,
        c.cell_hosts,
        c.node_capacity,
        c.network_devices,
        c.links,
        c.risk_groups,
        c.power_devices,
        c.feeds,
        c.elements
    )
}

/// The blast radius of one failure element.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementCount {
    /// The element id.
    pub element: String,
    /// The device kind label (`tor`, `ups`, ...) or the element kind (`rack`, `server`,
    /// ...).
    pub kind: String,
    /// Cells out when this element alone fails.
    pub cells: u32,
}

/// The risk distribution, in outages per year, over the cells that are not down (a down
/// cell's risk is 1; it is counted in `down_cells`, not here).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RiskView {
    /// Cells the distribution is over.
    pub cells: usize,
    /// Mean risk, in outages per year.
    pub mean: f64,
    /// Median risk (nearest rank), in outages per year.
    pub p50: f64,
    /// 99th-percentile risk (nearest rank), in outages per year.
    pub p99: f64,
    /// Highest risk, in outages per year.
    pub max: f64,
    /// Expected cell outages per year over those cells.
    pub total: f64,
    /// The riskiest cells that are not down, riskiest first.
    pub riskiest_cells: Vec<CellRiskView>,
}

/// One of the riskiest cells.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellRiskView {
    /// The cell id.
    pub cell_id: String,
    /// Outages per year.
    pub risk: f64,
}

/// A server holding more nodes than its capacity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverCapacityView {
    /// The server id.
    pub server: String,
    /// Nodes it holds.
    pub load: u32,
    /// Nodes it may hold.
    pub capacity: u32,
}

impl OverCapacityView {
    /// Views of a report's (server index, load, capacity) entries.
    pub fn list(inv: &Inventory, over: &[(u32, u32, u32)]) -> Vec<OverCapacityView> {
        over.iter()
            .map(|&(s, load, capacity)| OverCapacityView {
                server: inv.servers[s as usize].id.clone(),
                load,
                capacity,
            })
            .collect()
    }
}

/// How the placed nodes load the servers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoadView {
    /// Servers that may host nodes (capacity above 0).
    pub hosts: usize,
    /// Nodes over all cells, on any server.
    pub nodes_placed: u64,
    /// Node capacity of the hosts, in nodes.
    pub capacity: u64,
    /// Most nodes on one server.
    pub max_load: u32,
    /// Mean nodes per host.
    pub mean_load: f64,
    /// `max_load / mean_load` (0 when no node is placed).
    pub max_over_mean: f64,
    /// Highest load / capacity over the hosts (1 = full).
    pub max_utilisation: f64,
    /// Servers holding more nodes than their capacity.
    pub over_capacity: Vec<OverCapacityView>,
    /// Nodes on servers that are not active (draining or failed) or not hosts.
    pub nodes_on_unusable_servers: u64,
}

/// The fleet report: single-failure safety, blast radius, risk, load and quorum sharing
/// of the placed cells.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetReportView {
    /// Cells the report is over.
    pub cells: usize,
    /// Cells that some single element failure puts out (down cells included).
    pub single_failure_unsafe_cells: usize,
    /// Cells out with nothing failed (risk 1).
    pub down_cells: usize,
    /// The first 20 of those, by cell id.
    pub unsafe_cell_ids: Vec<String>,
    /// Elements by blast radius, largest first, then likeliest first.
    pub top_blast_radius: Vec<ElementCount>,
    /// The risk distribution; absent when the risk was not computed.
    pub risk: Option<RiskView>,
    /// How the nodes load the servers.
    pub load: LoadView,
    /// Pairs of cells that share at least a quorum of one of them.
    pub quorum_sharing_pairs: usize,
    /// The first 20 of those pairs, as cell ids.
    pub quorum_sharing_examples: Vec<(String, String)>,
}

const EXAMPLES: usize = 20;

impl FleetReportView {
    /// The view of a report over `placements` (cell indices become cell ids, elements
    /// and servers their ids), with at most 20 examples per list.
    pub fn new(inv: &Inventory, placements: &[Placement], r: &FleetReport) -> FleetReportView {
        let cell = |i: usize| placements[i].cell_id.clone();
        let load = &r.load;
        FleetReportView {
            cells: r.cells,
            single_failure_unsafe_cells: r.unsafe_cells.len(),
            down_cells: r.down_cells.len(),
            unsafe_cell_ids: r
                .unsafe_cells
                .iter()
                .take(EXAMPLES)
                .map(|&i| cell(i))
                .collect(),
            top_blast_radius: r
                .top_blast_radius
                .iter()
                .map(|&(e, cells)| {
                    let el = &inv.elements[e.index()];
                    ElementCount {
                        element: el.id.clone(),
                        kind: el.label.clone(),
                        cells,
                    }
                })
                .collect(),
            risk: r.risk.as_ref().map(|s| RiskView {
                cells: s.cells,
                mean: s.mean,
                p50: s.p50,
                p99: s.p99,
                max: s.max,
                total: s.total,
                riskiest_cells: s
                    .riskiest
                    .iter()
                    .map(|&(i, risk)| CellRiskView {
                        cell_id: cell(i),
                        risk,
                    })
                    .collect(),
            }),
            load: LoadView {
                hosts: load.hosts,
                nodes_placed: load.nodes_placed,
                capacity: load.capacity,
                max_load: load.max_load,
                mean_load: load.mean_load,
                max_over_mean: if load.mean_load > 0.0 {
                    f64::from(load.max_load) / load.mean_load
                } else {
                    0.0
                },
                max_utilisation: load.max_utilisation,
                over_capacity: OverCapacityView::list(inv, &load.over_capacity),
                nodes_on_unusable_servers: load.nodes_on_unusable_servers,
            },
            quorum_sharing_pairs: r.quorum_sharing_pairs.len(),
            quorum_sharing_examples: r
                .quorum_sharing_pairs
                .iter()
                .take(EXAMPLES)
                .map(|&(a, b)| (cell(a), cell(b)))
                .collect(),
        }
    }

    /// The report as text for a terminal, one fact per line.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "cells: {}", self.cells);
        let _ = writeln!(
            s,
            "single-failure unsafe cells: {} (of which {} down: out with nothing failed)",
            self.single_failure_unsafe_cells, self.down_cells
        );
        for id in &self.unsafe_cell_ids {
            let _ = writeln!(s, "  unsafe: {id}");
        }
        if let Some(r) = &self.risk {
            let _ = writeln!(
                s,
                "risk per cell (outages per year, over {} cells not down): mean {:.3e}, \
                 p50 {:.3e}, p99 {:.3e}, max {:.3e}; fleet total {:.3e}",
                r.cells, r.mean, r.p50, r.p99, r.max, r.total
            );
            for c in &r.riskiest_cells {
                let _ = writeln!(s, "  {:<24} {:.3e}", c.cell_id, c.risk);
            }
        }
        let _ = writeln!(
            s,
            "top elements by blast radius (cells out when it alone fails):"
        );
        if self.top_blast_radius.iter().all(|e| e.cells == 0) {
            let _ = writeln!(s, "  (no single failure puts any cell out)");
        }
        for e in &self.top_blast_radius {
            let _ = writeln!(s, "  {:<32} {:<12} {}", e.element, e.kind, e.cells);
        }
        let l = &self.load;
        let _ = writeln!(
            s,
            "load: {} nodes on {} hosts (capacity {}), mean {:.2}, max {} (max/mean {:.3}), \
             max utilisation {:.1}%",
            l.nodes_placed,
            l.hosts,
            l.capacity,
            l.mean_load,
            l.max_load,
            l.max_over_mean,
            l.max_utilisation * 100.0
        );
        let _ = writeln!(
            s,
            "servers over capacity: {}; nodes on servers that are not active hosts: {}",
            l.over_capacity.len(),
            l.nodes_on_unusable_servers
        );
        for o in l.over_capacity.iter().take(EXAMPLES) {
            let _ = writeln!(
                s,
                "  {} holds {} nodes, capacity {}",
                o.server, o.load, o.capacity
            );
        }
        let _ = writeln!(
            s,
            "cell pairs sharing a quorum of servers: {}",
            self.quorum_sharing_pairs
        );
        for (a, b) in &self.quorum_sharing_examples {
            let _ = writeln!(s, "  {a} ~ {b}");
        }
        s
    }
}

/// The columns of a per-cell export (`cellplacer evaluate --cells-out`).
pub const CELL_COLUMNS: [&str; 7] = [
    "cell_id",
    "risk",
    "single_risk",
    "pair_risk",
    "single_failure_safe",
    "breaking_elements",
    "down",
];

/// One row per cell: its risk in outages per year and its parts (shortest exact decimal
/// in scientific notation; empty when the risk was not computed), its single-failure
/// safety, the elements that break it alone (`;`-joined) and whether it is down.
pub fn cells_table(
    inv: &Inventory,
    placements: &[Placement],
    report: &FleetReport,
) -> topology::raw::RawTable {
    let mut table = topology::raw::RawTable::new(&CELL_COLUMNS);
    let number = |x: f64| {
        if x.is_nan() {
            String::new()
        } else {
            format!("{x:e}")
        }
    };
    for (p, c) in placements.iter().zip(&report.per_cell) {
        let breaking: Vec<&str> = c
            .breaking
            .iter()
            .map(|e| inv.elements[e.index()].id.as_str())
            .collect();
        table.push(&[
            p.cell_id.clone(),
            number(c.risk),
            number(c.single_risk),
            number(c.pair_risk),
            c.single_failure_safe().to_string(),
            breaking.join(";"),
            c.down.to_string(),
        ]);
    }
    table
}
