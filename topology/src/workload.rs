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

/// Most bytes in a cell id.
pub const MAX_CELL_ID_LEN: usize = 128;

/// What a cell id may be, wherever a cell enters (requests, workload and placement files,
/// imports): ids travel in URL paths and CSV cells, so a safe alphabet.
pub const CELL_ID_RULE: &str = "1 to 128 letters, digits or '._:-'";

/// Whether `id` keeps [`CELL_ID_RULE`].
pub fn is_cell_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CELL_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The problem with row `line`'s cell id, if it breaks [`CELL_ID_RULE`] (the id shown cut
/// to 40 characters).
fn cell_id_problem(table: &str, line: usize, id: &str) -> Option<Problem> {
    if is_cell_id(id) {
        return None;
    }
    let mut shown: String = id.chars().take(40).collect();
    if shown.len() < id.len() {
        shown.push_str("...");
    }
    Some(Problem::cell(
        table,
        line,
        "cell_id",
        format!("{shown:?} is not a cell id: {CELL_ID_RULE}"),
    ))
}

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
        report.errors.extend(cell_id_problem("cells", line, id));
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
        report
            .errors
            .extend(cell_id_problem("placements", line, id));
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
        if let Some(nodes) = nodes.as_ref().filter(|n| n.len() > MAX_CELL_SIZE) {
            report.errors.push(Problem::cell(
                "placements",
                line,
                "nodes",
                format!("{} nodes: a cell has 1 to {MAX_CELL_SIZE}", nodes.len()),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny fixture with servers added to its first rack, to 20.
    fn twenty_servers() -> Inventory {
        let mut raw = crate::testing::tiny_raw();
        let mut servers = raw.table("servers").expect("servers").clone();
        let rack = servers.rows[0][1].clone().expect("a rack");
        for i in servers.len()..20 {
            servers.push(&[
                format!("extra-{i}"),
                rack.clone(),
                "active".into(),
                "4".into(),
                "c1".into(),
                String::new(),
                String::new(),
            ]);
        }
        raw.insert("servers", servers);
        Inventory::from_raw(&raw).expect("still valid").0
    }

    /// Each problem as `row column: message`.
    fn problems(report: &Report) -> Vec<String> {
        report
            .errors
            .iter()
            .map(|p| {
                format!(
                    "{} {}: {}",
                    p.row.unwrap_or(0),
                    p.column.as_deref().unwrap_or(""),
                    p.message
                )
            })
            .collect()
    }

    /// The rules a cell keeps wherever it enters: an id of the safe alphabet, at most
    /// [`MAX_CELL_SIZE`] nodes. Every row breaking one is named with its column; the good
    /// rows are not.
    #[test]
    fn placements_and_cells_refuse_bad_ids_and_oversized_cells_by_row() {
        let inv = twenty_servers();
        // Parsing checks the rows, not the servers' use (the ledger does): any 16 will do.
        let servers: Vec<&str> = inv.servers.iter().map(|s| s.id.as_str()).collect();
        let seven = servers[..7].join(";");
        let sixteen = servers[..16].join(";");
        let long = "x".repeat(300);
        let mut placements = RawTable::for_table("placements");
        for (id, nodes) in [
            ("good-1", &seven),
            ("wide", &sixteen),
            ("imp bad id", &seven),
            (long.as_str(), &seven),
            ("csv,comma", &seven),
            ("csv\"quote", &seven),
            ("ok:with.all_chars-1", &seven),
        ] {
            placements.push(&[id, servers[0], nodes.as_str()]);
        }
        let report = parse_placements(&placements, &inv).expect_err("bad rows");
        let want = [
            "2 nodes: 16 nodes: a cell has 1 to 15".to_owned(),
            format!("3 cell_id: \"imp bad id\" is not a cell id: {CELL_ID_RULE}"),
            format!(
                "4 cell_id: \"{}...\" is not a cell id: {CELL_ID_RULE}",
                "x".repeat(40)
            ),
            format!("5 cell_id: \"csv,comma\" is not a cell id: {CELL_ID_RULE}"),
            format!("6 cell_id: \"csv\\\"quote\" is not a cell id: {CELL_ID_RULE}"),
        ];
        assert_eq!(problems(&report), want);

        let mut cells = RawTable::for_table("cells");
        cells.push(&["good", servers[0], "7"]);
        cells.push(&["imp bad id", servers[0], "7"]);
        cells.push(&["wide", servers[0], "16"]);
        let got = problems(&parse_cells(&cells, &inv).expect_err("bad rows"));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("2 cell_id: "), "{got:?}");
        assert!(got[1].starts_with("3 size: "), "{got:?}");
    }
}
