//! Cell workloads (`cells`) and placement exports (`placements`), validated against an inventory.

use std::collections::HashSet;

use crate::error::{Problem, Report};
use crate::model::{open_table, Inventory};
use crate::raw::RawTable;

/// A cell to place: who its clients are and how many nodes it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpec {
    /// The cell's id, unique in the workload.
    pub cell_id: String,
    /// Server indices of the clients, distinct, in the order given.
    pub clients: Vec<u32>,
    /// How many nodes it needs (1 to [`MAX_CELL_SIZE`]).
    pub size: usize,
}

/// A placed cell: its clients and the servers holding its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The cell's id.
    pub cell_id: String,
    /// Server indices of the clients.
    pub clients: Vec<u32>,
    /// Server indices holding its nodes, one entry per node.
    pub nodes: Vec<u32>,
}

impl Placement {
    /// Majority of the nodes.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }
}

/// The size of a cell whose `size` is not given.
pub const DEFAULT_CELL_SIZE: usize = 7;

/// Most nodes in one cell (quorum 8), wherever a size is accepted: workload files, the
/// placer and the service. Pools and scenario tables are sized with it in mind.
pub const MAX_CELL_SIZE: usize = 15;

/// Most distinct servers (clients and nodes together) in one cell: the width of the bit
/// masks that hold a cell's state.
pub const MAX_CELL_SERVERS: usize = 63;

fn server_list(
    inventory: &Inventory,
    allow_repeats: bool,
    table: &str,
    row: usize,
    column: &str,
    text: &str,
    report: &mut Report,
) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut ok = true;
    for id in text.split(';').map(str::trim) {
        if id.is_empty() {
            continue;
        }
        match inventory.server_index(id) {
            Some(s) if seen.insert(s) => out.push(s),
            // A client named twice (instance host = primary host) is one client.
            Some(_) if allow_repeats => {}
            Some(_) => {
                report.errors.push(Problem::cell(
                    table,
                    row,
                    column,
                    format!("server '{id}' is listed twice"),
                ));
                ok = false;
            }
            None => {
                report.errors.push(Problem::cell(
                    table,
                    row,
                    column,
                    format!("unknown server '{id}'"),
                ));
                ok = false;
            }
        }
    }
    if out.is_empty() && ok {
        report
            .errors
            .push(Problem::cell(table, row, column, "no servers given"));
        ok = false;
    }
    ok.then_some(out)
}

/// Validates a `cells` table (cell_id, clients, optional size).
pub fn parse_cells(table: &RawTable, inventory: &Inventory) -> Result<Vec<CellSpec>, Report> {
    let mut report = Report::default();
    let Some(rows) = open_table(Some(table), "cells", true, &mut report) else {
        return Err(report);
    };
    let mut seen = HashSet::new();
    let mut cells = Vec::with_capacity(table.len());
    for row in 0..table.len() {
        let line = row + 1;
        let Some(id) = rows.get(row, "cell_id") else {
            report
                .errors
                .push(Problem::cell("cells", line, "cell_id", "value is required"));
            continue;
        };
        if !seen.insert(id) {
            report.errors.push(Problem::cell(
                "cells",
                line,
                "cell_id",
                format!("duplicate cell id '{id}'"),
            ));
        }
        let clients = match rows.get(row, "clients") {
            Some(text) => server_list(inventory, true, "cells", line, "clients", text, &mut report),
            None => {
                report
                    .errors
                    .push(Problem::cell("cells", line, "clients", "value is required"));
                None
            }
        };
        let size = match rows.get(row, "size") {
            None => Some(DEFAULT_CELL_SIZE),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_CELL_SIZE).contains(&n) => Some(n),
                _ => {
                    report.errors.push(Problem::cell(
                        "cells",
                        line,
                        "size",
                        format!("'{text}' is not a cell size between 1 and {MAX_CELL_SIZE}"),
                    ));
                    None
                }
            },
        };
        if let (Some(clients), Some(size)) = (&clients, size) {
            if clients.len() + size > MAX_CELL_SERVERS {
                report.errors.push(Problem::cell(
                    "cells",
                    line,
                    "clients",
                    format!(
                        "{} clients and {size} nodes exceed {MAX_CELL_SERVERS} servers in one cell",
                        clients.len()
                    ),
                ));
            }
        }
        if let (Some(clients), Some(size)) = (clients, size) {
            cells.push(CellSpec {
                cell_id: id.to_string(),
                clients,
                size,
            });
        }
    }
    if report.errors.is_empty() {
        Ok(cells)
    } else {
        Err(report)
    }
}

/// Validates a `placements` table (cell_id, clients, nodes).
pub fn parse_placements(table: &RawTable, inventory: &Inventory) -> Result<Vec<Placement>, Report> {
    let mut report = Report::default();
    let Some(rows) = open_table(Some(table), "placements", true, &mut report) else {
        return Err(report);
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(table.len());
    for row in 0..table.len() {
        let line = row + 1;
        let Some(id) = rows.get(row, "cell_id") else {
            report.errors.push(Problem::cell(
                "placements",
                line,
                "cell_id",
                "value is required",
            ));
            continue;
        };
        if !seen.insert(id) {
            report.errors.push(Problem::cell(
                "placements",
                line,
                "cell_id",
                format!("duplicate cell id '{id}'"),
            ));
        }
        let mut list = |column: &str| match rows.get(row, column) {
            Some(text) => server_list(
                inventory,
                column == "clients",
                "placements",
                line,
                column,
                text,
                &mut report,
            ),
            None => {
                report.errors.push(Problem::cell(
                    "placements",
                    line,
                    column,
                    "value is required",
                ));
                None
            }
        };
        let clients = list("clients");
        let nodes = list("nodes");
        if let (Some(clients), Some(nodes)) = (&clients, &nodes) {
            let mut all: Vec<u32> = clients.iter().chain(nodes).copied().collect();
            all.sort_unstable();
            all.dedup();
            if all.len() > MAX_CELL_SERVERS {
                report.errors.push(Problem::cell(
                    "placements",
                    line,
                    "nodes",
                    format!(
                        "clients and nodes name {} distinct servers, more than {MAX_CELL_SERVERS}",
                        all.len()
                    ),
                ));
            }
        }
        if let (Some(clients), Some(nodes)) = (clients, nodes) {
            out.push(Placement {
                cell_id: id.to_string(),
                clients,
                nodes,
            });
        }
    }
    if report.errors.is_empty() {
        Ok(out)
    } else {
        Err(report)
    }
}
