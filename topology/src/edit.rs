//! Topology edits for what-if planning: a list of changes applied to an export's tables,
//! checked like an import (every problem named, by edit), never touching files.
//!
//! Removals follow the inventory's graphs: a rack, row, room or datacenter takes its
//! racks and servers (containment tree); a power device takes everything that only it
//! feeds, directly or through other removed devices (power graph); a network device takes
//! the servers that only it connects (network graph); a network device left without any
//! of the servers it linked (a removed rack's ToR) goes too. Links and feeds that touch a
//! removed element go with it. The edited tables are then validated by
//! [`Inventory::from_raw`] like any export.

use std::collections::{HashMap, HashSet};

use petgraph::graph::NodeIndex;
use petgraph::visit::Dfs;
use petgraph::Direction;

use crate::error::{Problem, Report};
use crate::model::{ElementKind, Inventory, NetNode, Place, PowerNode};
use crate::raw::{schema, RawInventory, RawTable};

/// One change of a what-if.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// A server, rack, row, room, datacenter, network device or power device id, with
    /// what only it contains, connects or feeds.
    Remove(String),
    /// New upstream power devices of a power device, rack, server or network device
    /// (replacing its feeds).
    Refeed {
        /// The id of what is fed.
        target: String,
        /// The ids of its new upstream power devices; empty removes all its feeds.
        upstream: Vec<String>,
    },
    /// A server's status, capacity or colour.
    Server {
        /// The `server_id`.
        id: String,
        /// A new `status`; `None` keeps it.
        status: Option<String>,
        /// A new `node_capacity`; `None` keeps it.
        node_capacity: Option<u32>,
        /// A new `color`; `None` keeps it.
        color: Option<String>,
    },
    /// An element's failure rate or repair time.
    Rates {
        /// The element's id (it needs a row of its own to set values on).
        element: String,
        /// A new `afr`; `None` keeps it.
        afr: Option<f64>,
        /// A new `repair_hours`; `None` keeps it.
        repair_hours: Option<f64>,
    },
    /// Rows to add to a contract table (same columns as the contract).
    Add {
        /// The contract table to add to (not `placements`).
        table: String,
        /// The new rows; every column must be one of that table's.
        rows: RawTable,
    },
}

impl Edit {
    /// The change file's name for this kind of edit (the column of its problems).
    pub fn kind(&self) -> &'static str {
        match self {
            Edit::Remove(_) => "remove",
            Edit::Refeed { .. } => "refeed",
            Edit::Server { .. } => "server",
            Edit::Rates { .. } => "rates",
            Edit::Add { .. } => "add",
        }
    }
}

/// The table holding an element kind, and its id column.
fn table_of(kind: ElementKind) -> (&'static str, &'static str) {
    match kind {
        ElementKind::Rack => ("racks", "rack_id"),
        ElementKind::Server => ("servers", "server_id"),
        ElementKind::NetworkDevice => ("network_devices", "device_id"),
        ElementKind::Link => ("network_links", "link_id"),
        ElementKind::RiskGroup => ("risk_groups", "risk_group"),
        ElementKind::PowerDevice => ("power_devices", "device_id"),
    }
}

/// What a set of removals takes away, by id.
struct Removal<'i> {
    inv: &'i Inventory,
    ids: HashSet<String>,
    racks: HashSet<u32>,
    servers: HashSet<u32>,
    devices: HashSet<u32>,
    power: HashSet<u32>,
}

impl<'i> Removal<'i> {
    fn new(inv: &'i Inventory) -> Removal<'i> {
        Removal {
            inv,
            ids: HashSet::new(),
            racks: HashSet::new(),
            servers: HashSet::new(),
            devices: HashSet::new(),
            power: HashSet::new(),
        }
    }

    /// Everything under `place` in the containment tree.
    fn contained(&mut self, place: &Place) -> bool {
        let g = &self.inv.containment;
        let Some(start) = g.node_indices().find(|&n| &g[n] == place) else {
            return false;
        };
        let mut dfs = Dfs::new(g, start);
        while let Some(n) = dfs.next(g) {
            match g[n] {
                Place::Rack(r) => {
                    self.racks.insert(r);
                }
                Place::Server(s) => {
                    self.servers.insert(s);
                }
                _ => {}
            }
        }
        true
    }

    /// `root` and everything fed only by removed devices, through the power graph.
    fn power_subtree(&mut self, root: u32) {
        let g = &self.inv.power;
        let index: HashMap<PowerNode, NodeIndex> = g.node_indices().map(|n| (g[n], n)).collect();
        let mut gone: HashSet<NodeIndex> = HashSet::new();
        let mut frontier = vec![index[&PowerNode::Device(root)]];
        while let Some(n) = frontier.pop() {
            if !gone.insert(n) {
                continue;
            }
            for down in g.neighbors_directed(n, Direction::Outgoing) {
                let fed_only_by_gone = g
                    .neighbors_directed(down, Direction::Incoming)
                    .all(|u| gone.contains(&u) || u == n);
                if fed_only_by_gone && !gone.contains(&down) {
                    frontier.push(down);
                }
            }
        }
        for n in gone {
            match g[n] {
                PowerNode::Device(d) => {
                    self.power.insert(d);
                }
                PowerNode::Rack(r) => {
                    self.contained(&Place::Rack(r));
                }
                PowerNode::Server(s) => {
                    self.servers.insert(s);
                }
                PowerNode::NetworkDevice(d) => {
                    self.devices.insert(d);
                }
            }
        }
    }

    /// Servers linked to removed network devices only, through the network graph.
    fn orphaned_servers(&mut self) {
        let g = &self.inv.network;
        for n in g.node_indices() {
            let NetNode::Server(s) = g[n] else { continue };
            let mut neighbours = g.neighbors(n).peekable();
            if neighbours.peek().is_none() {
                continue;
            }
            if neighbours.all(|m| matches!(g[m], NetNode::Device(d) if self.devices.contains(&d))) {
                self.servers.insert(s);
            }
        }
    }

    /// Network devices that linked servers and link none that stays.
    fn orphaned_devices(&mut self) {
        let g = &self.inv.network;
        for n in g.node_indices() {
            let NetNode::Device(d) = g[n] else { continue };
            let servers: Vec<u32> = g
                .neighbors(n)
                .filter_map(|m| match g[m] {
                    NetNode::Server(s) => Some(s),
                    NetNode::Device(_) => None,
                })
                .collect();
            if !servers.is_empty() && servers.iter().all(|s| self.servers.contains(s)) {
                self.devices.insert(d);
            }
        }
    }

    /// Adds `id`; false when it names nothing removable.
    fn add(&mut self, id: &str) -> bool {
        let inv = self.inv;
        if let Some(e) = inv.element(id) {
            let el = &inv.elements[e.index()];
            match el.kind {
                ElementKind::Server => {
                    self.servers.insert(el.index);
                }
                ElementKind::Rack => {
                    self.contained(&Place::Rack(el.index));
                }
                ElementKind::PowerDevice => self.power_subtree(el.index),
                ElementKind::NetworkDevice => {
                    self.devices.insert(el.index);
                }
                ElementKind::Link | ElementKind::RiskGroup => return false,
            }
            return true;
        }
        self.contained(&Place::Row(id.to_owned()))
            || self.contained(&Place::Room(id.to_owned()))
            || self.contained(&Place::Datacenter(id.to_owned()))
    }

    /// Every removed id: the elements above, the servers of removed racks, and the links
    /// that touch a removed server or device.
    fn finish(mut self) -> HashSet<String> {
        self.orphaned_servers();
        for &r in &self.racks {
            self.servers
                .extend(self.inv.racks[r as usize].servers.iter().copied());
        }
        self.orphaned_devices();
        let inv = self.inv;
        let mut ids = std::mem::take(&mut self.ids);
        ids.extend(self.racks.iter().map(|&r| inv.racks[r as usize].id.clone()));
        ids.extend(
            self.servers
                .iter()
                .map(|&s| inv.servers[s as usize].id.clone()),
        );
        ids.extend(
            self.devices
                .iter()
                .map(|&d| inv.network_devices[d as usize].id.clone()),
        );
        ids.extend(
            self.power
                .iter()
                .map(|&d| inv.power_devices[d as usize].id.clone()),
        );
        let gone = |n: NetNode| match n {
            NetNode::Server(s) => self.servers.contains(&s),
            NetNode::Device(d) => self.devices.contains(&d),
        };
        ids.extend(
            inv.links
                .iter()
                .filter(|l| gone(l.a) || gone(l.b))
                .map(|l| l.id.clone()),
        );
        ids
    }
}

/// A column's index, added (empty) to the table when the contract has it and the table
/// does not.
fn column(table: &mut RawTable, name: &str) -> usize {
    table.column_index(name).unwrap_or_else(|| {
        table.columns.push(name.to_owned());
        for row in &mut table.rows {
            row.push(None);
        }
        table.columns.len() - 1
    })
}

/// Sets `column` of the row whose `key` column is `id`; false when there is no such row.
fn set(raw: &mut RawInventory, table: &str, key: &str, id: &str, col: &str, value: String) -> bool {
    let Some(t) = raw.tables.get_mut(table) else {
        return false;
    };
    let (Some(k), c) = (t.column_index(key), column(t, col)) else {
        return false;
    };
    match t.rows.iter_mut().find(|r| r[k].as_deref() == Some(id)) {
        Some(row) => {
            row[c] = Some(value);
            true
        }
        None => false,
    }
}

/// Applies `edits` (in order) to `raw`, whose validated form is `inv`; the edited tables,
/// or every problem, each naming its edit (table `change`, row = the edit's 1-based
/// position, column = its kind). Removals are resolved on `inv`: they name what exists
/// before the change.
pub fn apply(raw: &RawInventory, inv: &Inventory, edits: &[Edit]) -> Result<RawInventory, Report> {
    let mut out = raw.clone();
    let mut report = Report::default();
    let problem =
        |i: usize, e: &Edit, message: String| Problem::cell("change", i + 1, e.kind(), message);
    let mut removal = Removal::new(inv);
    for (i, edit) in edits.iter().enumerate() {
        match edit {
            Edit::Remove(id) => {
                if !removal.add(id) {
                    report.errors.push(problem(
                        i,
                        edit,
                        format!(
                            "'{id}' names no server, rack, row, room, datacenter, network \
                             device or power device"
                        ),
                    ));
                }
            }
            Edit::Refeed { target, upstream } => {
                let kind = inv.element(target).map(|e| inv.elements[e.index()].kind);
                if !matches!(
                    kind,
                    Some(
                        ElementKind::PowerDevice
                            | ElementKind::Rack
                            | ElementKind::Server
                            | ElementKind::NetworkDevice
                    )
                ) {
                    report.errors.push(problem(
                        i,
                        edit,
                        format!("'{target}' is not a power device, rack, server or network device"),
                    ));
                    continue;
                }
                for u in upstream {
                    let is_power = inv
                        .element(u)
                        .is_some_and(|e| inv.elements[e.index()].kind == ElementKind::PowerDevice);
                    if !is_power {
                        report.errors.push(problem(
                            i,
                            edit,
                            format!("upstream '{u}' is not a power device"),
                        ));
                    }
                }
                let feeds = out
                    .tables
                    .entry("power_feeds".into())
                    .or_insert_with(|| RawTable::for_table("power_feeds"));
                let (up, down) = (column(feeds, "upstream"), column(feeds, "downstream"));
                feeds
                    .rows
                    .retain(|r| r[down].as_deref() != Some(target.as_str()));
                for u in upstream {
                    let mut row = vec![None; feeds.columns.len()];
                    row[up] = Some(u.clone());
                    row[down] = Some(target.clone());
                    feeds.rows.push(row);
                }
            }
            Edit::Server {
                id,
                status,
                node_capacity,
                color,
            } => {
                if inv.server_index(id).is_none() {
                    report
                        .errors
                        .push(problem(i, edit, format!("'{id}' is not a server")));
                    continue;
                }
                let values = [
                    ("status", status.clone()),
                    ("node_capacity", node_capacity.map(|c| c.to_string())),
                    ("color", color.clone()),
                ];
                for (col, value) in values {
                    if let Some(v) = value {
                        set(&mut out, "servers", "server_id", id, col, v);
                    }
                }
            }
            Edit::Rates {
                element,
                afr,
                repair_hours,
            } => {
                let Some(e) = inv.element(element) else {
                    report
                        .errors
                        .push(problem(i, edit, format!("'{element}' names no element")));
                    continue;
                };
                let (table, key) = table_of(inv.elements[e.index()].kind);
                for (col, value) in [("afr", afr), ("repair_hours", repair_hours)] {
                    if let Some(v) = value {
                        if !set(&mut out, table, key, element, col, v.to_string()) {
                            report.errors.push(problem(
                                i,
                                edit,
                                format!(
                                    "'{element}' has no row of its own in {table} to set {col} on"
                                ),
                            ));
                        }
                    }
                }
            }
            Edit::Add { table, rows } => {
                let Some((required, optional)) = schema(table).filter(|_| table != "placements")
                else {
                    report.errors.push(problem(
                        i,
                        edit,
                        format!("'{table}' is not a contract table"),
                    ));
                    continue;
                };
                let unknown: Vec<&String> = rows
                    .columns
                    .iter()
                    .filter(|c| !required.contains(&c.as_str()) && !optional.contains(&c.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    report.errors.push(problem(
                        i,
                        edit,
                        format!("{table}: unknown columns {unknown:?}"),
                    ));
                    continue;
                }
                let target = out
                    .tables
                    .entry(table.clone())
                    .or_insert_with(|| RawTable::for_table(table));
                let at: Vec<usize> = rows.columns.iter().map(|c| column(target, c)).collect();
                for r in &rows.rows {
                    let mut row = vec![None; target.columns.len()];
                    for (&c, v) in at.iter().zip(r) {
                        row[c] = v.clone();
                    }
                    target.rows.push(row);
                }
            }
        }
    }
    let removed = removal.finish();
    if !removed.is_empty() {
        for (table, keys) in [
            ("racks", &["rack_id"][..]),
            ("servers", &["server_id"]),
            ("network_devices", &["device_id"]),
            ("power_devices", &["device_id"]),
            ("network_links", &["link_id", "a_end", "b_end"]),
            ("power_feeds", &["upstream", "downstream"]),
        ] {
            let Some(t) = out.tables.get_mut(table) else {
                continue;
            };
            let cols: Vec<usize> = keys.iter().filter_map(|k| t.column_index(k)).collect();
            t.rows.retain(|r| {
                cols.iter()
                    .all(|&c| r[c].as_ref().is_none_or(|v| !removed.contains(v)))
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

    use crate::testing::tiny as zone;

    fn ids(raw: &RawInventory, table: &str, key: &str) -> HashSet<String> {
        let t = raw.table(table).unwrap();
        let c = t.column_index(key).unwrap();
        t.rows.iter().filter_map(|r| r[c].clone()).collect()
    }

    #[test]
    fn removing_a_rack_takes_its_servers_and_their_links() {
        let (raw, inv) = zone();
        let rack = &inv.racks[0];
        let edited = apply(&raw, &inv, &[Edit::Remove(rack.id.clone())]).unwrap();
        let servers = ids(&edited, "servers", "server_id");
        for &s in &rack.servers {
            assert!(!servers.contains(&inv.servers[s as usize].id));
        }
        assert_eq!(servers.len(), inv.servers.len() - rack.servers.len());
        assert!(!ids(&edited, "racks", "rack_id").contains(&rack.id));
        let links = edited.table("network_links").unwrap();
        let (a, b) = (
            links.column_index("a_end").unwrap(),
            links.column_index("b_end").unwrap(),
        );
        for r in &links.rows {
            for end in [&r[a], &r[b]] {
                let end = end.as_deref().unwrap();
                assert!(rack
                    .servers
                    .iter()
                    .all(|&s| inv.servers[s as usize].id != end));
            }
        }
        // The rest still validates.
        Inventory::from_raw(&edited).unwrap();
    }

    #[test]
    fn removing_a_power_device_takes_what_only_it_feeds() {
        let (raw, inv) = zone();
        // Every power device: what goes is exactly what loses all its feeds.
        for d in &inv.power_devices {
            let edited = apply(&raw, &inv, &[Edit::Remove(d.id.clone())]).unwrap();
            let left = ids(&edited, "power_devices", "device_id");
            assert!(!left.contains(&d.id));
            for other in inv.power_devices.iter().filter(|o| left.contains(&o.id)) {
                let feeds_left = other
                    .feeds
                    .iter()
                    .any(|&u| left.contains(&inv.power_devices[u as usize].id));
                assert!(
                    other.feeds.is_empty() || feeds_left,
                    "{} kept unfed",
                    other.id
                );
            }
            Inventory::from_raw(&edited).unwrap();
        }
    }

    #[test]
    fn every_bad_edit_is_named_and_nothing_changes() {
        let (raw, inv) = zone();
        let server = inv.servers[0].id.clone();
        let edits = [
            Edit::Remove("nowhere".into()),
            Edit::Refeed {
                target: server.clone(),
                upstream: vec!["not-a-device".into()],
            },
            Edit::Server {
                id: "ghost".into(),
                status: Some("failed".into()),
                node_capacity: None,
                color: None,
            },
            Edit::Rates {
                element: "ghost".into(),
                afr: Some(0.1),
                repair_hours: None,
            },
            Edit::Add {
                table: "servers".into(),
                rows: RawTable::new(&["server_id", "shoe_size"]),
            },
        ];
        let report = apply(&raw, &inv, &edits).unwrap_err();
        let rows: Vec<(Option<usize>, Option<String>)> = report
            .errors
            .iter()
            .map(|p| (p.row, p.column.clone()))
            .collect();
        assert_eq!(
            rows,
            [
                (Some(1), Some("remove".into())),
                (Some(2), Some("refeed".into())),
                (Some(3), Some("server".into())),
                (Some(4), Some("rates".into())),
                (Some(5), Some("add".into())),
            ]
        );
        assert!(report.errors.iter().all(|p| p.table == "change"));
    }

    #[test]
    fn settings_and_additions_land_in_the_tables() {
        let (raw, inv) = zone();
        let server = inv.servers[0].id.clone();
        let rack = inv.racks[0].id.clone();
        let mut rows = RawTable::new(&["server_id", "rack_id", "status", "node_capacity"]);
        rows.push(&["new-s1", rack.as_str(), "active", "9"]);
        let edits = [
            Edit::Server {
                id: server.clone(),
                status: Some("draining".into()),
                node_capacity: Some(3),
                color: None,
            },
            Edit::Rates {
                element: rack.clone(),
                afr: Some(0.25),
                repair_hours: Some(12.0),
            },
            Edit::Add {
                table: "servers".into(),
                rows,
            },
        ];
        let edited = apply(&raw, &inv, &edits).unwrap();
        let (after, _) = Inventory::from_raw(&edited).unwrap();
        let s = &after.servers[after.server_index(&server).unwrap() as usize];
        assert_eq!(s.status, crate::model::ServerStatus::Draining);
        assert_eq!(s.capacity, 3);
        let r = &after.elements[after.element(&rack).unwrap().index()];
        assert_eq!((r.afr, r.repair_hours), (0.25, 12.0));
        let new = after.server_index("new-s1").unwrap();
        assert_eq!(after.servers[new as usize].capacity, 9);
    }

    mod arbitrary {
        //! Edits of any shape (ids the zone has or not, any numbers, tables and columns of
        //! the contract or not): applied, then the result validated, never a panic, and
        //! every refusal names the edit.

        use proptest::prelude::*;

        use super::*;

        /// An id the tiny zone has, or not.
        fn id() -> impl Strategy<Value = String> {
            let (_, inv) = zone();
            let known: Vec<String> = inv
                .elements
                .iter()
                .map(|e| e.id.clone())
                .chain(inv.racks.iter().map(|r| r.row.clone()))
                .collect();
            prop_oneof![
                3 => proptest::sample::select(known),
                1 => "[a-z0-9-]{0,12}",
                1 => any::<String>(),
            ]
        }

        fn number() -> impl Strategy<Value = f64> {
            prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(-1.0),
                Just(0.0),
                0.0..1.0f64,
                any::<f64>(),
            ]
        }

        fn table() -> impl Strategy<Value = (String, RawTable)> {
            let name = prop_oneof![
                proptest::sample::select(vec![
                    "racks",
                    "servers",
                    "network_devices",
                    "network_links",
                    "risk_groups",
                    "power_devices",
                    "power_feeds",
                    "placements",
                ])
                .prop_map(str::to_owned),
                "[a-z_]{0,10}",
            ];
            (name, 0..4usize).prop_flat_map(|(name, width)| {
                let known: Vec<String> = schema(&name)
                    .map(|(r, o)| r.iter().chain(o).map(|c| c.to_string()).collect())
                    .unwrap_or_default();
                let column = if known.is_empty() {
                    "[a-z_]{0,8}".boxed()
                } else {
                    prop_oneof![3 => proptest::sample::select(known), 1 => "[a-z_]{0,8}"].boxed()
                };
                let cell = proptest::option::of(prop_oneof![id(), "[0-9.e-]{0,6}"]);
                (
                    Just(name),
                    proptest::collection::vec(column, width),
                    proptest::collection::vec(proptest::collection::vec(cell, width), 0..4),
                )
                    .prop_map(|(name, columns, rows)| (name, RawTable { columns, rows }))
            })
        }

        fn edit() -> impl Strategy<Value = Edit> {
            prop_oneof![
                id().prop_map(Edit::Remove),
                (id(), proptest::collection::vec(id(), 0..3))
                    .prop_map(|(target, upstream)| Edit::Refeed { target, upstream }),
                (
                    id(),
                    proptest::option::of(prop_oneof![
                        Just("failed".to_owned()),
                        Just("draining".to_owned()),
                        "[a-z]{0,8}"
                    ]),
                    proptest::option::of(any::<u32>()),
                    proptest::option::of("[a-z0-9]{0,4}"),
                )
                    .prop_map(|(id, status, node_capacity, color)| Edit::Server {
                        id,
                        status,
                        node_capacity,
                        color
                    }),
                (
                    id(),
                    proptest::option::of(number()),
                    proptest::option::of(number())
                )
                    .prop_map(|(element, afr, repair_hours)| Edit::Rates {
                        element,
                        afr,
                        repair_hours
                    }),
                table().prop_map(|(table, rows)| Edit::Add { table, rows }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn any_edits_are_applied_or_refused_by_name(
                edits in proptest::collection::vec(edit(), 1..5)
            ) {
                let (raw, inv) = zone();
                match apply(&raw, &inv, &edits) {
                    Ok(edited) => {
                        // The edited tables are validated like any export.
                        if let Err(e) = Inventory::from_raw(&edited) {
                            prop_assert!(!e.to_string().is_empty());
                        }
                    }
                    Err(report) => {
                        prop_assert!(!report.errors.is_empty());
                        for p in &report.errors {
                            prop_assert_eq!(p.table.as_str(), "change");
                            prop_assert!(p.row.is_some_and(|r| r >= 1 && r <= edits.len()));
                        }
                    }
                }
            }
        }
    }
}
