//! Stage one of ingest: tables exactly as exported, every cell a string or empty.
//!
//! Nothing here is validated; `crate::model::Inventory::from_raw` turns a
//! [`RawInventory`] into a checked model and collects every error on the way.

use std::collections::BTreeMap;

/// The tables of the contract, in the order they are validated and written.
pub const TABLES: [&str; 8] = [
    "racks",
    "servers",
    "network_devices",
    "network_links",
    "risk_groups",
    "power_devices",
    "power_feeds",
    "cells",
];

/// The columns of a contract table: (required, optional), in export order. `None` for a
/// table the contract does not define.
pub fn schema(table: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match table {
        "racks" => (
            &["rack_id", "datacenter", "room", "row"],
            &["afr", "repair_hours"],
        ),
        "servers" => (
            &["server_id", "rack_id", "status", "node_capacity"],
            &["color", "afr", "repair_hours"],
        ),
        "network_devices" => (
            &["device_id", "kind"],
            &["datacenter", "afr", "repair_hours"],
        ),
        "network_links" => (
            &["link_id", "a_end", "b_end"],
            &["risk_group", "afr", "repair_hours"],
        ),
        "risk_groups" => (&["risk_group"], &["afr", "repair_hours"]),
        "power_devices" => (
            &["device_id", "kind"],
            &["datacenter", "afr", "repair_hours"],
        ),
        "power_feeds" => (&["upstream", "downstream"], &[]),
        "cells" => (&["cell_id", "clients"], &["size"]),
        "placements" => (&["cell_id", "clients", "nodes"], &[]),
        _ => return None,
    })
}

/// One table: a header and its rows; `None` is an empty cell ("not given").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTable {
    /// Column names, in file order.
    pub columns: Vec<String>,
    /// The data rows, each as long as `columns`.
    pub rows: Vec<Vec<Option<String>>>,
}

impl RawTable {
    /// An empty table with these columns.
    pub fn new(columns: &[&str]) -> RawTable {
        RawTable {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// An empty contract table with every column, required then optional.
    ///
    /// # Panics
    /// On a table name the contract does not define.
    pub fn for_table(name: &str) -> RawTable {
        let (required, optional) =
            schema(name).unwrap_or_else(|| panic!("'{name}' is not a contract table"));
        let columns: Vec<&str> = required.iter().chain(optional).copied().collect();
        RawTable::new(&columns)
    }

    /// Appends a row given as strings; empty strings become `None`.
    pub fn push<S: AsRef<str>>(&mut self, row: &[S]) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(
            row.iter()
                .map(|cell| {
                    let cell = cell.as_ref();
                    (!cell.is_empty()).then(|| cell.to_string())
                })
                .collect(),
        );
    }

    /// The position of the column with this name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// How many data rows it has.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Every table found in an export, by name (`racks`, `servers`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawInventory {
    /// The tables, by name.
    pub tables: BTreeMap<String, RawTable>,
    /// The file each table was read from (`servers.csv`), for problem messages; empty for
    /// tables built in memory.
    pub files: BTreeMap<String, String>,
}

impl RawInventory {
    /// The table with this name, if the export has it.
    pub fn table(&self, name: &str) -> Option<&RawTable> {
        self.tables.get(name)
    }

    /// Adds a table, replacing one of the same name.
    pub fn insert(&mut self, name: &str, table: RawTable) {
        self.tables.insert(name.to_string(), table);
    }

    /// The servers that a `placements` table names (as nodes or clients) and the
    /// `servers` table lacks, in first-seen order, each with the nodes it holds.
    pub fn gone_servers(&self, placements: &RawTable) -> Vec<(String, usize)> {
        let known: std::collections::HashSet<&str> = self
            .table("servers")
            .and_then(|t| t.column_index("server_id").map(|c| (t, c)))
            .map(|(t, c)| t.rows.iter().filter_map(|r| r[c].as_deref()).collect())
            .unwrap_or_default();
        let mut gone: Vec<(String, usize)> = Vec::new();
        let mut at: BTreeMap<String, usize> = BTreeMap::new();
        for (column, nodes) in [("nodes", 1), ("clients", 0)] {
            let Some(c) = placements.column_index(column) else {
                continue;
            };
            for text in placements.rows.iter().filter_map(|r| r[c].as_deref()) {
                for id in text.split(';').map(str::trim).filter(|id| !id.is_empty()) {
                    if known.contains(id) {
                        continue;
                    }
                    let i = *at.entry(id.to_string()).or_insert_with(|| {
                        gone.push((id.to_string(), 0));
                        gone.len() - 1
                    });
                    gone[i].1 += nodes;
                }
            }
        }
        gone
    }

    /// Adds `gone` servers (id, nodes held) as `failed`, in one rack [`GONE`] of its own
    /// datacenter, room and row that nothing links or powers, with no failure rates.
    ///
    /// So a plan can take nodes off servers removed from the inventory: a failed server
    /// is down in every state, and a rack that holds only failed servers adds no outage.
    /// Each keeps capacity for the nodes it holds, so none of them reads as over capacity.
    pub fn add_gone_servers(&mut self, gone: &[(String, usize)]) {
        if gone.is_empty() {
            return;
        }
        let racks = self
            .tables
            .entry("racks".into())
            .or_insert_with(|| RawTable::for_table("racks"));
        let id = racks.column_index("rack_id");
        // Servers gone in an earlier round already have their rack.
        if !racks
            .rows
            .iter()
            .any(|r| id.is_some_and(|c| r[c].as_deref() == Some(GONE)))
        {
            let row: Vec<&str> = racks
                .columns
                .iter()
                .map(|c| match c.as_str() {
                    "rack_id" | "datacenter" | "room" | "row" => GONE,
                    "afr" => "0",
                    _ => "",
                })
                .collect();
            racks.push(&row);
        }
        let servers = self
            .tables
            .entry("servers".into())
            .or_insert_with(|| RawTable::for_table("servers"));
        for (id, nodes) in gone {
            let capacity = nodes.to_string();
            let row: Vec<&str> = servers
                .columns
                .iter()
                .map(|c| match c.as_str() {
                    "server_id" => id.as_str(),
                    "rack_id" => GONE,
                    "status" => "failed",
                    "node_capacity" => capacity.as_str(),
                    "afr" => "0",
                    _ => "",
                })
                .collect();
            servers.push(&row);
        }
    }
}

/// The rack, row, room and datacenter of servers that placements name and the inventory
/// no longer has (see [`RawInventory::add_gone_servers`]).
pub const GONE: &str = "(gone)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_servers_are_the_unknown_ones_with_their_nodes() {
        let mut raw = RawInventory::default();
        let mut servers = RawTable::for_table("servers");
        servers.push(&["s1", "r1", "active", "4", "", "", ""]);
        raw.insert("servers", servers);
        let mut placements = RawTable::for_table("placements");
        placements.push(&["c1", "s1;x9", "s1;x1;x2"]);
        placements.push(&["c2", "x1", "x1"]);
        let gone = raw.gone_servers(&placements);
        assert_eq!(
            gone,
            vec![("x1".into(), 2), ("x2".into(), 1), ("x9".into(), 0)]
        );
        raw.add_gone_servers(&gone);
        let servers = raw.table("servers").unwrap();
        assert_eq!(servers.len(), 4);
        assert_eq!(
            servers.rows[1],
            ["x1", GONE, "failed", "2", "", "0", ""]
                .map(|c| (!c.is_empty()).then(|| c.to_string()))
        );
        assert_eq!(
            raw.table("racks").unwrap().rows[0][0].as_deref(),
            Some(GONE)
        );
    }
}
