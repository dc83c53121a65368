//! Stage two of ingest, the work: each table read row by row into the model, every rule
//! of the contract checked and every problem collected (`Inventory::from_raw` runs it).

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex, UnGraph};
use rustc_hash::FxHashMap;

use crate::error::{Error, Problem, Report};
use crate::raw::{RawInventory, RawTable};

use super::*;

impl Inventory {
    /// Validates a raw export. On success returns the model and the warnings; on any
    /// error returns every error and warning found, and nothing is loaded.
    pub fn from_raw(raw: &RawInventory) -> Result<(Inventory, Vec<Problem>), Error> {
        let mut b = Builder::default();
        b.load(raw);
        b.report.sort();
        b.report.locate(|table| raw.files.get(table).cloned());
        if b.report.errors.is_empty() {
            let warnings = std::mem::take(&mut b.report.warnings);
            Ok((b.finish(), warnings))
        } else {
            Err(Error::Invalid(b.report))
        }
    }
}

/// Column access for one table with problems recorded against table, row and column.
pub(crate) struct Rows<'a> {
    name: &'static str,
    table: &'a RawTable,
    cols: HashMap<&'static str, usize>,
}

impl<'a> Rows<'a> {
    pub(crate) fn get(&self, row: usize, column: &str) -> Option<&'a str> {
        let idx = *self.cols.get(column)?;
        self.table.rows[row]
            .get(idx)?
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

#[derive(Default)]
pub(super) struct Builder {
    report: Report,
    elements: Vec<Element>,
    by_id: FxHashMap<String, ElementId>,
    /// Where each id was first defined, for duplicate messages.
    defined_at: FxHashMap<String, (String, usize)>,
    racks: Vec<Rack>,
    servers: Vec<Server>,
    network_devices: Vec<NetworkDevice>,
    links: Vec<Link>,
    risk_groups: Vec<RiskGroup>,
    power_devices: Vec<PowerDevice>,
    feeds: Vec<(u32, PowerNode)>,
    /// For power-cycle messages: feed row of each feed.
    feed_rows: Vec<usize>,
    /// Tables that could not be read (missing, or a required column missing): ids they
    /// would define are unknown, so references to them are not reported one by one.
    unreadable: Vec<&'static str>,
    /// Ids of rows dropped for their own errors: references to them are not errors again.
    rejected: std::collections::HashSet<String>,
    /// Per referencing table: references left unchecked because of `unreadable`.
    unchecked: BTreeMap<&'static str, usize>,
}

/// Opens a table for reading, recording missing tables and columns. `None` when unusable.
pub(crate) fn open_table<'a>(
    raw: Option<&'a RawTable>,
    name: &'static str,
    required: bool,
    report: &mut Report,
) -> Option<Rows<'a>> {
    let Some(table) = raw else {
        if required {
            report
                .errors
                .push(Problem::table(name, "required table is missing"));
        }
        return None;
    };
    let (req, opt) = crate::raw::schema(name).unwrap_or((&[], &[]));
    let mut cols = HashMap::new();
    let mut ok = true;
    for &c in req.iter().chain(opt) {
        match table.column_index(c) {
            Some(i) => {
                cols.insert(c, i);
            }
            None if req.contains(&c) => {
                report
                    .errors
                    .push(Problem::column(name, c, "required column is missing"));
                ok = false;
            }
            None => {}
        }
    }
    ok.then_some(Rows { name, table, cols })
}

/// A probability column: `afr`, in [0, 1).
fn parse_afr(rows: &Rows<'_>, row: usize, report: &mut Report) -> Option<f64> {
    parse_number(rows, row, "afr", report, |v| {
        (!(0.0..1.0).contains(&v)).then(|| format!("afr {v} is outside [0, 1)"))
    })
}

/// A duration column: `repair_hours`, a finite number of hours above 0.
fn parse_repair_hours(rows: &Rows<'_>, row: usize, report: &mut Report) -> Option<f64> {
    parse_number(rows, row, "repair_hours", report, |v| {
        (v <= 0.0).then(|| format!("repair_hours {v} is not above 0"))
    })
}

/// An optional finite number in `column`; `check` names what is wrong with a value.
fn parse_number(
    rows: &Rows<'_>,
    row: usize,
    column: &str,
    report: &mut Report,
    check: impl Fn(f64) -> Option<String>,
) -> Option<f64> {
    let text = rows.get(row, column)?;
    let problem = match text.parse::<f64>() {
        Ok(v) if v.is_finite() => match check(v) {
            None => return Some(v),
            Some(message) => message,
        },
        Ok(v) => format!("{column} {v} is not a finite number"),
        Err(_) => format!("'{text}' is not a number"),
    };
    report
        .errors
        .push(Problem::cell(rows.name, row + 1, column, problem));
    None
}

impl Builder {
    fn error(&mut self, table: &str, row: usize, column: &str, message: String) {
        self.report
            .errors
            .push(Problem::cell(table, row + 1, column, message));
    }

    /// Registers a new element id (one id namespace for every table, as the contract says); records a duplicate-id error and returns `None` on clash.
    #[allow(clippy::too_many_arguments)] // a row's location and the element's identity
    fn define(
        &mut self,
        rows: &Rows<'_>,
        row: usize,
        column: &str,
        id: &str,
        kind: ElementKind,
        label: &str,
        index: usize,
    ) -> Option<ElementId> {
        if let Some((table, first_row)) = self.defined_at.get(id) {
            let message = format!("duplicate id '{id}' (first defined in {table} row {first_row})");
            self.error(rows.name, row, column, message);
            return None;
        }
        let afr =
            parse_afr(rows, row, &mut self.report).unwrap_or_else(|| default_afr(kind, label));
        let repair_hours = parse_repair_hours(rows, row, &mut self.report)
            .unwrap_or_else(|| default_repair_hours(kind, label));
        let eid = ElementId(self.elements.len() as u32);
        self.elements.push(Element {
            id: id.to_string(),
            kind,
            label: label.to_string(),
            afr,
            repair_hours,
            index: index as u32,
        });
        self.by_id.insert(id.to_string(), eid);
        self.defined_at
            .insert(id.to_string(), (rows.name.to_string(), row + 1));
        Some(eid)
    }

    fn required<'a>(&mut self, rows: &Rows<'a>, row: usize, column: &str) -> Option<&'a str> {
        let v = rows.get(row, column);
        if v.is_none() {
            self.error(rows.name, row, column, "value is required".to_string());
        }
        v
    }

    fn lookup(&self, id: &str) -> Option<&Element> {
        self.by_id.get(id).map(|e| &self.elements[e.index()])
    }

    /// Resolves the required reference in `column` to an element that `accept` takes;
    /// records "unknown {expected}" or "is a {kind}, not a {expected}" otherwise. An
    /// unknown id is not reported when one of `tables` (where it could be defined) could
    /// not be read: that table's own error is the cause.
    fn reference<T>(
        &mut self,
        t: &Rows<'_>,
        row: usize,
        column: &str,
        (expected, tables): (&str, &[&str]),
        accept: impl Fn(&Element) -> Option<T>,
    ) -> Option<T> {
        let id = self.required(t, row, column)?;
        let message = match self.lookup(id) {
            Some(e) => match accept(e) {
                Some(v) => return Some(v),
                None => format!("'{id}' is a {}, not a {expected}", e.kind.name()),
            },
            None if self.rejected.contains(id) => return None,
            None if tables.iter().any(|x| self.unreadable.contains(x)) => {
                *self.unchecked.entry(t.name).or_default() += 1;
                return None;
            }
            None => format!("unknown {expected} '{id}'"),
        };
        self.error(t.name, row, column, message);
        None
    }

    fn load(&mut self, raw: &RawInventory) {
        let mut report = std::mem::take(&mut self.report);
        let racks = open_table(raw.table("racks"), "racks", true, &mut report);
        let servers = open_table(raw.table("servers"), "servers", true, &mut report);
        let netdevs = open_table(
            raw.table("network_devices"),
            "network_devices",
            true,
            &mut report,
        );
        let links = open_table(
            raw.table("network_links"),
            "network_links",
            true,
            &mut report,
        );
        let groups = open_table(raw.table("risk_groups"), "risk_groups", false, &mut report);
        let powers = open_table(
            raw.table("power_devices"),
            "power_devices",
            true,
            &mut report,
        );
        let feeds = open_table(raw.table("power_feeds"), "power_feeds", true, &mut report);
        self.report = report;
        for (name, table) in [
            ("racks", &racks),
            ("servers", &servers),
            ("network_devices", &netdevs),
            ("network_links", &links),
            ("power_devices", &powers),
            ("power_feeds", &feeds),
        ] {
            if table.is_none() {
                self.unreadable.push(name);
            }
        }

        // Definitions first (every id in the one namespace), then references.
        if let Some(t) = &racks {
            self.load_racks(t);
        }
        if let Some(t) = &netdevs {
            self.load_devices(t, ElementKind::NetworkDevice);
        }
        if let Some(t) = &powers {
            self.load_devices(t, ElementKind::PowerDevice);
        }
        if let Some(t) = &groups {
            self.load_risk_groups(t);
        }
        if let Some(t) = &servers {
            self.load_servers(t);
        }
        if let Some(t) = &links {
            self.load_links(t);
        }
        if let Some(t) = &feeds {
            self.load_feeds(t);
        }
        self.check_power_cycles();
        // With a table unreadable, links and feeds are missing for that reason alone.
        if self.unreadable.is_empty() && self.unchecked.is_empty() {
            self.collect_warnings();
        }
        for (table, count) in std::mem::take(&mut self.unchecked) {
            let unreadable = self.unreadable.join(", ");
            self.report.warnings.push(Problem::table(
                table,
                format!("{count} reference(s) not checked: {unreadable} could not be read"),
            ));
        }
    }

    fn load_racks(&mut self, t: &Rows<'_>) {
        for row in 0..t.table.len() {
            let Some(id) = self.required(t, row, "rack_id") else {
                continue;
            };
            let dc = self.required(t, row, "datacenter").unwrap_or_default();
            let room = self.required(t, row, "room").unwrap_or_default();
            let row_label = self.required(t, row, "row").unwrap_or_default();
            let index = self.racks.len();
            if let Some(element) =
                self.define(t, row, "rack_id", id, ElementKind::Rack, "rack", index)
            {
                self.racks.push(Rack {
                    element,
                    id: id.to_string(),
                    datacenter: dc.to_string(),
                    room: room.to_string(),
                    row: row_label.to_string(),
                    servers: Vec::new(),
                    feeds: Vec::new(),
                });
            }
        }
    }

    fn load_devices(&mut self, t: &Rows<'_>, kind: ElementKind) {
        for row in 0..t.table.len() {
            let Some(id) = self.required(t, row, "device_id") else {
                continue;
            };
            let label = self.required(t, row, "kind").unwrap_or_default();
            let dc = t.get(row, "datacenter").unwrap_or_default().to_string();
            let index = match kind {
                ElementKind::NetworkDevice => self.network_devices.len(),
                _ => self.power_devices.len(),
            };
            let Some(element) = self.define(t, row, "device_id", id, kind, label, index) else {
                continue;
            };
            let (id, kind_label) = (id.to_string(), label.to_string());
            match kind {
                ElementKind::NetworkDevice => self.network_devices.push(NetworkDevice {
                    element,
                    id,
                    kind: kind_label,
                    datacenter: dc,
                    feeds: Vec::new(),
                }),
                _ => self.power_devices.push(PowerDevice {
                    element,
                    id,
                    kind: kind_label,
                    datacenter: dc,
                    feeds: Vec::new(),
                }),
            }
        }
    }

    fn load_risk_groups(&mut self, t: &Rows<'_>) {
        for row in 0..t.table.len() {
            let Some(id) = self.required(t, row, "risk_group") else {
                continue;
            };
            let index = self.risk_groups.len();
            let kind = ElementKind::RiskGroup;
            if let Some(element) = self.define(t, row, "risk_group", id, kind, "risk_group", index)
            {
                self.risk_groups.push(RiskGroup {
                    element,
                    id: id.to_string(),
                    links: Vec::new(),
                    declared: true,
                });
            }
        }
    }

    fn load_servers(&mut self, t: &Rows<'_>) {
        for row in 0..t.table.len() {
            let Some(id) = self.required(t, row, "server_id") else {
                continue;
            };
            let rack = self.reference(t, row, "rack_id", ("rack", &["racks"]), |e| {
                (e.kind == ElementKind::Rack).then_some(e.index)
            });
            let status = self.required(t, row, "status").and_then(|s| match s {
                "active" => Some(ServerStatus::Active),
                "draining" => Some(ServerStatus::Draining),
                "failed" => Some(ServerStatus::Failed),
                other => {
                    let msg =
                        format!("unknown status '{other}' (expected active, draining or failed)");
                    self.error(t.name, row, "status", msg);
                    None
                }
            });
            let capacity =
                self.required(t, row, "node_capacity")
                    .and_then(|c| match c.parse::<u32>() {
                        Ok(v) => Some(v),
                        Err(_) => {
                            let msg = format!("'{c}' is not a non-negative integer capacity");
                            self.error(t.name, row, "node_capacity", msg);
                            None
                        }
                    });
            let color = t.get(row, "color").map(str::to_string);
            let index = self.servers.len();
            let element = self.define(
                t,
                row,
                "server_id",
                id,
                ElementKind::Server,
                "server",
                index,
            );
            if let (Some(element), Some(rack), Some(status), Some(capacity)) =
                (element, rack, status, capacity)
            {
                self.racks[rack as usize].servers.push(index as u32);
                self.servers.push(Server {
                    element,
                    id: id.to_string(),
                    rack,
                    status,
                    capacity,
                    color,
                    feeds: Vec::new(),
                });
            } else if let Some(element) = element {
                // Keep the id reserved for duplicate checks but drop the broken row.
                self.elements.pop();
                debug_assert_eq!(element.index(), self.elements.len());
                self.by_id.remove(id);
                self.rejected.insert(id.to_string());
            }
        }
    }

    fn net_end(&mut self, t: &Rows<'_>, row: usize, column: &str) -> Option<NetNode> {
        let expected = (
            "server or network device",
            &["servers", "network_devices"][..],
        );
        self.reference(t, row, column, expected, |e| match e.kind {
            ElementKind::Server => Some(NetNode::Server(e.index)),
            ElementKind::NetworkDevice => Some(NetNode::Device(e.index)),
            _ => None,
        })
    }

    fn load_links(&mut self, t: &Rows<'_>) {
        for row in 0..t.table.len() {
            let Some(id) = self.required(t, row, "link_id") else {
                continue;
            };
            let a = self.net_end(t, row, "a_end");
            let b = self.net_end(t, row, "b_end");
            if let (Some(a), Some(b)) = (a, b) {
                if a == b {
                    let msg = format!(
                        "link joins '{}' to itself",
                        t.get(row, "a_end").unwrap_or("")
                    );
                    self.error(t.name, row, "b_end", msg);
                }
            }
            let risk_group = match t.get(row, "risk_group") {
                None => None,
                Some(group) => match self.lookup(group) {
                    Some(e) if e.kind == ElementKind::RiskGroup => Some(e.index),
                    Some(e) => {
                        let msg = format!("'{group}' is a {}, not a risk group", e.kind.name());
                        self.error(t.name, row, "risk_group", msg);
                        None
                    }
                    None => {
                        // Named by a link only: the group exists with the defaults.
                        let index = self.risk_groups.len() as u32;
                        let element = ElementId(self.elements.len() as u32);
                        let kind = ElementKind::RiskGroup;
                        self.elements.push(Element {
                            id: group.to_string(),
                            kind,
                            label: "risk_group".to_string(),
                            afr: default_afr(kind, ""),
                            repair_hours: default_repair_hours(kind, ""),
                            index,
                        });
                        self.by_id.insert(group.to_string(), element);
                        self.defined_at
                            .insert(group.to_string(), (t.name.to_string(), row + 1));
                        self.risk_groups.push(RiskGroup {
                            element,
                            id: group.to_string(),
                            links: Vec::new(),
                            declared: false,
                        });
                        Some(index)
                    }
                },
            };
            let index = self.links.len();
            let element = self.define(t, row, "link_id", id, ElementKind::Link, "link", index);
            match (element, a, b) {
                (Some(element), Some(a), Some(b)) if a != b => {
                    if let Some(g) = risk_group {
                        self.risk_groups[g as usize].links.push(index as u32);
                    }
                    self.links.push(Link {
                        element,
                        id: id.to_string(),
                        a,
                        b,
                        risk_group,
                    });
                }
                (Some(_), _, _) => {
                    self.elements.pop();
                    self.by_id.remove(id);
                    self.rejected.insert(id.to_string());
                }
                _ => {}
            }
        }
    }

    fn load_feeds(&mut self, t: &Rows<'_>) {
        for row in 0..t.table.len() {
            let up = self.reference(
                t,
                row,
                "upstream",
                ("power device", &["power_devices"]),
                |e| (e.kind == ElementKind::PowerDevice).then_some(e.index),
            );
            let expected = (
                "power device, rack, server or network device",
                &["power_devices", "racks", "servers", "network_devices"][..],
            );
            let down = self.reference(t, row, "downstream", expected, |e| match e.kind {
                ElementKind::PowerDevice => Some(PowerNode::Device(e.index)),
                ElementKind::Rack => Some(PowerNode::Rack(e.index)),
                ElementKind::Server => Some(PowerNode::Server(e.index)),
                ElementKind::NetworkDevice => Some(PowerNode::NetworkDevice(e.index)),
                _ => None,
            });
            let (Some(up), Some(down)) = (up, down) else {
                continue;
            };
            let list = match down {
                PowerNode::Device(i) => &mut self.power_devices[i as usize].feeds,
                PowerNode::Rack(i) => &mut self.racks[i as usize].feeds,
                PowerNode::Server(i) => &mut self.servers[i as usize].feeds,
                PowerNode::NetworkDevice(i) => &mut self.network_devices[i as usize].feeds,
            };
            if list.contains(&up) {
                // The same feed twice changes nothing; say so but accept it.
                self.report.warnings.push(Problem::cell(
                    t.name,
                    row + 1,
                    "downstream",
                    "duplicate feed row".to_string(),
                ));
                continue;
            }
            list.push(up);
            self.feeds.push((up, down));
            self.feed_rows.push(row + 1);
        }
    }

    /// Finds every cycle among power devices (only devices have outgoing feeds).
    fn check_power_cycles(&mut self) {
        let mut graph = DiGraph::<u32, usize>::new();
        let nodes: Vec<NodeIndex> = (0..self.power_devices.len())
            .map(|i| graph.add_node(i as u32))
            .collect();
        for (k, &(up, down)) in self.feeds.iter().enumerate() {
            if let PowerNode::Device(d) = down {
                graph.add_edge(nodes[up as usize], nodes[d as usize], self.feed_rows[k]);
            }
        }
        for scc in petgraph::algo::tarjan_scc(&graph) {
            let is_cycle = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
            if !is_cycle {
                continue;
            }
            let mut members: Vec<&str> = scc
                .iter()
                .map(|n| self.power_devices[graph[*n] as usize].id.as_str())
                .collect();
            members.sort_unstable();
            let mut rows: Vec<usize> = graph
                .edge_indices()
                .filter(|e| {
                    let (a, b) = graph.edge_endpoints(*e).expect("edge exists");
                    scc.contains(&a) && scc.contains(&b)
                })
                .map(|e| graph[e])
                .collect();
            rows.sort_unstable();
            let message = format!("power feeds form a cycle through {}", members.join(", "));
            self.report
                .errors
                .push(Problem::cell("power_feeds", rows[0], "downstream", message));
        }
    }

    fn collect_warnings(&mut self) {
        let mut linked = vec![false; self.servers.len()];
        for l in &self.links {
            for end in [l.a, l.b] {
                if let NetNode::Server(s) = end {
                    linked[s as usize] = true;
                }
            }
        }
        for (s, server) in self.servers.iter().enumerate() {
            if !linked[s] {
                let (_, row) = &self.defined_at[&server.id];
                self.report.warnings.push(Problem::cell(
                    "servers",
                    *row,
                    "server_id",
                    format!("server '{}' has no network link", server.id),
                ));
            }
        }
        for rack in &self.racks {
            if rack.feeds.is_empty() {
                let (_, row) = &self.defined_at[&rack.id];
                self.report.warnings.push(Problem::cell(
                    "racks",
                    *row,
                    "rack_id",
                    format!("rack '{}' has no power feed", rack.id),
                ));
            }
        }
    }

    fn finish(self) -> Inventory {
        let mut network = UnGraph::<NetNode, u32>::default();
        let server_nodes: Vec<NodeIndex> = (0..self.servers.len())
            .map(|i| network.add_node(NetNode::Server(i as u32)))
            .collect();
        let device_nodes: Vec<NodeIndex> = (0..self.network_devices.len())
            .map(|i| network.add_node(NetNode::Device(i as u32)))
            .collect();
        let net_index = |n: NetNode| match n {
            NetNode::Server(i) => server_nodes[i as usize],
            NetNode::Device(i) => device_nodes[i as usize],
        };
        for (i, l) in self.links.iter().enumerate() {
            network.add_edge(net_index(l.a), net_index(l.b), i as u32);
        }

        let mut power = DiGraph::<PowerNode, ()>::default();
        let mut power_nodes: HashMap<PowerNode, NodeIndex> = HashMap::new();
        let mut power_index = |g: &mut DiGraph<PowerNode, ()>, n: PowerNode| {
            *power_nodes.entry(n).or_insert_with(|| g.add_node(n))
        };
        for i in 0..self.power_devices.len() {
            power_index(&mut power, PowerNode::Device(i as u32));
        }
        for &(up, down) in &self.feeds {
            let a = power_index(&mut power, PowerNode::Device(up));
            let b = power_index(&mut power, down);
            power.add_edge(a, b, ());
        }

        let mut containment = DiGraph::<Place, ()>::default();
        let zone = containment.add_node(Place::Zone);
        let mut places: BTreeMap<(u8, String), NodeIndex> = BTreeMap::new();
        let mut child = |g: &mut DiGraph<Place, ()>, parent: NodeIndex, level: u8, place: Place| {
            let key = match &place {
                Place::Datacenter(s) | Place::Room(s) | Place::Row(s) => (level, s.clone()),
                _ => (level, String::new()),
            };
            if key.1.is_empty() {
                let n = g.add_node(place);
                g.add_edge(parent, n, ());
                return n;
            }
            *places.entry(key).or_insert_with(|| {
                let n = g.add_node(place);
                g.add_edge(parent, n, ());
                n
            })
        };
        for (r, rack) in self.racks.iter().enumerate() {
            let dc = child(
                &mut containment,
                zone,
                1,
                Place::Datacenter(rack.datacenter.clone()),
            );
            let room = child(&mut containment, dc, 2, Place::Room(rack.room.clone()));
            let row = child(&mut containment, room, 3, Place::Row(rack.row.clone()));
            let rack_node = child(&mut containment, row, 4, Place::Rack(r as u32));
            for &s in &rack.servers {
                child(&mut containment, rack_node, 5, Place::Server(s));
            }
        }

        Inventory {
            elements: self.elements,
            racks: self.racks,
            servers: self.servers,
            network_devices: self.network_devices,
            links: self.links,
            risk_groups: self.risk_groups,
            power_devices: self.power_devices,
            feeds: self.feeds,
            network,
            power,
            containment,
            by_id: self.by_id,
        }
    }
}

#[cfg(test)]
mod tests;
