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
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl RawTable {
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

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Every table found in an export, by name (`racks`, `servers`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawInventory {
    pub tables: BTreeMap<String, RawTable>,
    /// The file each table was read from (`servers.csv`), for problem messages; empty for
    /// tables built in memory.
    pub files: BTreeMap<String, String>,
}

impl RawInventory {
    pub fn table(&self, name: &str) -> Option<&RawTable> {
        self.tables.get(name)
    }

    pub fn insert(&mut self, name: &str, table: RawTable) {
        self.tables.insert(name.to_string(), table);
    }
}
