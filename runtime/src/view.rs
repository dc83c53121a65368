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
    pub table: String,
    /// The file the table was read from (`servers.csv`), when it came from one.
    pub file: Option<String>,
    /// 1-based data row (the header not counted).
    pub row: Option<usize>,
    /// The line in a CSV file (the header is line 1).
    pub line: Option<usize>,
    pub column: Option<String>,
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountsView {
    pub datacenters: usize,
    pub rooms: usize,
    pub racks: usize,
    pub servers: usize,
    pub cell_hosts: usize,
    pub node_capacity: u64,
    pub network_devices: usize,
    pub links: usize,
    pub risk_groups: usize,
    pub power_devices: usize,
    pub feeds: usize,
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementCount {
    pub element: String,
    pub kind: String,
    pub cells: u32,
}

/// The risk distribution, in outages per year, over the cells that are not down (a down
/// cell's risk is 1; it is counted in `down_cells`, not here).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RiskView {
    /// Cells the distribution is over.
    pub cells: usize,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Expected cell outages per year over those cells.
    pub total: f64,
    pub riskiest_cells: Vec<CellRiskView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellRiskView {
    pub cell_id: String,
    /// Outages per year.
    pub risk: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverCapacityView {
    pub server: String,
    pub load: u32,
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoadView {
    pub hosts: usize,
    pub nodes_placed: u64,
    pub capacity: u64,
    pub max_load: u32,
    pub mean_load: f64,
    pub max_over_mean: f64,
    pub max_utilisation: f64,
    pub over_capacity: Vec<OverCapacityView>,
    pub nodes_on_unusable_servers: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetReportView {
    pub cells: usize,
    pub single_failure_unsafe_cells: usize,
    /// Cells out with nothing failed (risk 1).
    pub down_cells: usize,
    pub unsafe_cell_ids: Vec<String>,
    pub top_blast_radius: Vec<ElementCount>,
    pub risk: Option<RiskView>,
    pub load: LoadView,
    pub quorum_sharing_pairs: usize,
    pub quorum_sharing_examples: Vec<(String, String)>,
}

const EXAMPLES: usize = 20;

impl FleetReportView {
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
