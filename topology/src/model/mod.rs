//! Stage two of ingest: the validated inventory model, its failure-element catalogue and graphs.
//!
//! `Inventory::from_raw` (in `build`, with the rules and their tests) checks every rule of
//! the inventory contract and collects all problems before failing, so that one run of
//! `cellplacer validate` names every bad row. Here: the model's types and lookups.

use petgraph::graph::{DiGraph, UnGraph};
use rustc_hash::FxHashMap;

/// Index into [`Inventory::elements`]: the one catalogue of things that fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElementId(pub u32);

impl ElementId {
    /// The position in [`Inventory::elements`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Which kind of row (and so which table) a failure element comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementKind {
    /// A row of `racks`.
    Rack,
    /// A row of `servers`.
    Server,
    /// A row of `network_devices`.
    NetworkDevice,
    /// A row of `network_links`.
    Link,
    /// A shared-risk group of links (a row of `risk_groups`, or only named by links).
    RiskGroup,
    /// A row of `power_devices`.
    PowerDevice,
}

impl ElementKind {
    /// The kind's name in messages (`rack`, `network_device`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElementKind::Rack => "rack",
            ElementKind::Server => "server",
            ElementKind::NetworkDevice => "network_device",
            ElementKind::Link => "network_link",
            ElementKind::RiskGroup => "risk_group",
            ElementKind::PowerDevice => "power_device",
        }
    }
}

/// A failure element: anything that can fail on its own with probability `afr` a year,
/// and then stays failed for `repair_hours`.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// Its id, unique across all tables.
    pub id: String,
    /// Which table it comes from.
    pub kind: ElementKind,
    /// The device kind label (`tor`, `ups`, ...) or the element kind name.
    pub label: String,
    /// Annual failure probability, as given or its kind's default.
    pub afr: f64,
    /// Hours it stays failed once failed, as given or its kind's default.
    pub repair_hours: f64,
    /// Index into the table of its kind (`racks`, `servers`, ...).
    pub index: u32,
}

/// A server's `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerStatus {
    /// In service: may host new nodes.
    Active,
    /// Up, but takes no new nodes; rebalancing moves its nodes away.
    Draining,
    /// Down in every scenario, even with nothing else failed.
    Failed,
}

impl ServerStatus {
    /// The `status` value as written in the export.
    pub fn name(self) -> &'static str {
        match self {
            ServerStatus::Active => "active",
            ServerStatus::Draining => "draining",
            ServerStatus::Failed => "failed",
        }
    }
}

/// A rack: a failure element that takes its servers down with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rack {
    /// Its entry in the failure-element catalogue.
    pub element: ElementId,
    /// The `rack_id`.
    pub id: String,
    /// The building it stands in.
    pub datacenter: String,
    /// The hall inside the datacenter.
    pub room: String,
    /// The row inside the room.
    pub row: String,
    /// The servers in it (indices into `servers`).
    pub servers: Vec<u32>,
    /// Power devices feeding the rack (indices into `power_devices`).
    pub feeds: Vec<u32>,
}

/// A server: a possible cell host (when its capacity is above 0) and a possible client.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Its entry in the failure-element catalogue.
    pub element: ElementId,
    /// The `server_id`.
    pub id: String,
    /// The rack it sits in (index into `racks`).
    pub rack: u32,
    /// Its `status`.
    pub status: ServerStatus,
    /// How many cell nodes it may host; 0 for a server that is only ever a client.
    pub capacity: u32,
    /// Deployment colour: all nodes of one cell share one colour.
    pub color: Option<String>,
    /// Its own power feeds; empty means it takes power from its rack's feeds.
    pub feeds: Vec<u32>,
}

/// A switch or router of the network graph (`tor`, `aggregation`, `spine`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkDevice {
    /// Its entry in the failure-element catalogue.
    pub element: ElementId,
    /// The `device_id`.
    pub id: String,
    /// The kind label (`tor`, `spine`, ...), which picks its defaults.
    pub kind: String,
    /// The building it stands in; empty when not given.
    pub datacenter: String,
    /// Power devices feeding it (indices into `power_devices`); it is powered when any of them is
    /// on, or when it has none.
    pub feeds: Vec<u32>,
}

/// A vertex of the network graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetNode {
    /// A server (index into `servers`).
    Server(u32),
    /// A network device (index into `network_devices`).
    Device(u32),
}

/// An undirected network link between two servers or devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Its entry in the failure-element catalogue.
    pub element: ElementId,
    /// The `link_id`.
    pub id: String,
    /// One end.
    pub a: NetNode,
    /// The other end.
    pub b: NetNode,
    /// The shared-risk group that takes it down with the rest of the group (index into
    /// `risk_groups`).
    pub risk_group: Option<u32>,
}

/// A shared-risk group (a conduit, a fibre trench): when it fails, every member link fails.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskGroup {
    /// Its entry in the failure-element catalogue.
    pub element: ElementId,
    /// The group's name.
    pub id: String,
    /// Its member links (indices into `links`).
    pub links: Vec<u32>,
    /// False when a link names the group but `risk_groups` has no row for it.
    pub declared: bool,
}

/// A device of the power graph (`utility`, `ups`, `pdu`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct PowerDevice {
    /// Its entry in the failure-element catalogue.
    pub element: ElementId,
    /// The `device_id`.
    pub id: String,
    /// The kind label (`utility`, `ups`, ...), which picks its defaults.
    pub kind: String,
    /// The building it stands in; empty when not given.
    pub datacenter: String,
    /// Power devices upstream of it (indices into `power_devices`); it is on when any of them is,
    /// or when it has none.
    pub feeds: Vec<u32>,
}

/// A vertex of the power graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PowerNode {
    /// A power device (index into `power_devices`).
    Device(u32),
    /// A rack (index into `racks`).
    Rack(u32),
    /// A server with feeds of its own (index into `servers`).
    Server(u32),
    /// A network device (index into `network_devices`).
    NetworkDevice(u32),
}

/// A vertex of the containment tree (datacenter > room > row > rack > server).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Place {
    /// The root: the whole inventory.
    Zone,
    /// A datacenter, by label.
    Datacenter(String),
    /// A room, by label.
    Room(String),
    /// A row, by label.
    Row(String),
    /// A rack (index into `racks`).
    Rack(u32),
    /// A server (index into `servers`).
    Server(u32),
}

/// A validated inventory. Built only by [`Inventory::from_raw`]; immutable afterwards.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Every failure element, indexed by [`ElementId`].
    pub elements: Vec<Element>,
    /// The `racks` table, in file order.
    pub racks: Vec<Rack>,
    /// The `servers` table, in file order.
    pub servers: Vec<Server>,
    /// The `network_devices` table, in file order.
    pub network_devices: Vec<NetworkDevice>,
    /// The `network_links` table, in file order.
    pub links: Vec<Link>,
    /// Declared risk groups in file order, then those only named by links.
    pub risk_groups: Vec<RiskGroup>,
    /// The `power_devices` table, in file order.
    pub power_devices: Vec<PowerDevice>,
    /// Directed feeds, upstream power device to downstream node.
    pub feeds: Vec<(u32, PowerNode)>,
    /// The network graph: servers and devices joined by links (edge weight: index into `links`).
    pub network: UnGraph<NetNode, u32>,
    /// The power graph: feeds from power devices down to what they power.
    pub power: DiGraph<PowerNode, ()>,
    /// The containment tree, from [`Place::Zone`] down to servers.
    pub containment: DiGraph<Place, ()>,
    by_id: FxHashMap<String, ElementId>,
}

/// Default annual failure probability by element kind and label (contract table).
pub fn default_afr(kind: ElementKind, label: &str) -> f64 {
    match kind {
        ElementKind::Rack => 0.005,
        ElementKind::Server => 0.03,
        ElementKind::Link => 0.005,
        ElementKind::RiskGroup => 0.02,
        ElementKind::NetworkDevice => match label {
            "tor" => 0.02,
            "aggregation" => 0.01,
            "spine" | "border" => 0.005,
            _ => 0.01,
        },
        ElementKind::PowerDevice => match label {
            "utility" => 0.3,
            "generator" => 0.05,
            "switchgear" => 0.005,
            "ups" => 0.01,
            "pdu" => 0.005,
            _ => 0.01,
        },
    }
}

/// Default repair time in hours by element kind and label (contract table): how long an
/// element stays failed, which decides how likely a second failure meets it.
pub fn default_repair_hours(kind: ElementKind, label: &str) -> f64 {
    match kind {
        ElementKind::Rack => 24.0,
        ElementKind::Server => 48.0,
        ElementKind::Link => 12.0,
        ElementKind::RiskGroup => 24.0,
        ElementKind::NetworkDevice => 4.0,
        ElementKind::PowerDevice => match label {
            "utility" => 4.0,
            "generator" => 24.0,
            "switchgear" => 72.0,
            "ups" | "pdu" => 8.0,
            _ => 8.0,
        },
    }
}

/// Counts shown by `cellplacer validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
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
    /// The node capacity of all servers together.
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
    pub elements: usize,
}

impl Inventory {
    /// Per rack: the network devices its servers link to directly (its ToRs), ascending.
    pub fn rack_network_devices(&self) -> Vec<Vec<u32>> {
        let mut by_rack = vec![Vec::new(); self.racks.len()];
        for link in &self.links {
            for (end, other) in [(link.a, link.b), (link.b, link.a)] {
                if let (NetNode::Server(s), NetNode::Device(d)) = (end, other) {
                    by_rack[self.servers[s as usize].rack as usize].push(d);
                }
            }
        }
        for devices in &mut by_rack {
            devices.sort_unstable();
            devices.dedup();
        }
        by_rack
    }

    /// The power devices feeding rack `r` or one of its servers, directly or upstream,
    /// ascending.
    pub fn rack_power_devices(&self, r: usize) -> Vec<u32> {
        let rack = &self.racks[r];
        let mut stack: Vec<u32> = rack.feeds.clone();
        for &s in &rack.servers {
            stack.extend(&self.servers[s as usize].feeds);
        }
        let mut seen = Vec::new();
        while let Some(d) = stack.pop() {
            if !seen.contains(&d) {
                seen.push(d);
                stack.extend(&self.power_devices[d as usize].feeds);
            }
        }
        seen.sort_unstable();
        seen
    }

    /// The element with this id, of any kind.
    pub fn element(&self, id: &str) -> Option<ElementId> {
        self.by_id.get(id).copied()
    }

    /// The index into `servers` of the server with this id (`None` for other kinds).
    pub fn server_index(&self, id: &str) -> Option<u32> {
        let e = self.element(id)?;
        let el = &self.elements[e.index()];
        (el.kind == ElementKind::Server).then_some(el.index)
    }

    /// The power devices that feed `server` directly: its own feeds, or its rack's when it
    /// has none (the contract: a server with no feeds of its own takes its rack's power).
    pub fn feeds_of<'a>(&'a self, server: &'a Server) -> &'a [u32] {
        if server.feeds.is_empty() {
            &self.racks[server.rack as usize].feeds
        } else {
            &server.feeds
        }
    }

    /// The size of the inventory, as `cellplacer validate` prints it.
    pub fn counts(&self) -> Counts {
        let mut dcs: Vec<&str> = self.racks.iter().map(|r| r.datacenter.as_str()).collect();
        dcs.sort_unstable();
        dcs.dedup();
        let mut rooms: Vec<&str> = self.racks.iter().map(|r| r.room.as_str()).collect();
        rooms.sort_unstable();
        rooms.dedup();
        Counts {
            datacenters: dcs.len(),
            rooms: rooms.len(),
            racks: self.racks.len(),
            servers: self.servers.len(),
            cell_hosts: self.servers.iter().filter(|s| s.capacity > 0).count(),
            node_capacity: self.servers.iter().map(|s| u64::from(s.capacity)).sum(),
            network_devices: self.network_devices.len(),
            links: self.links.len(),
            risk_groups: self.risk_groups.len(),
            power_devices: self.power_devices.len(),
            feeds: self.feeds.len(),
            elements: self.elements.len(),
        }
    }
}

mod build;

pub(crate) use build::open_table;
