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
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementKind {
    Rack,
    Server,
    NetworkDevice,
    Link,
    RiskGroup,
    PowerDevice,
}

impl ElementKind {
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
    pub id: String,
    pub kind: ElementKind,
    /// The device kind label (`tor`, `ups`, ...) or the element kind name.
    pub label: String,
    pub afr: f64,
    pub repair_hours: f64,
    /// Index into the table of its kind (`racks`, `servers`, ...).
    pub index: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerStatus {
    Active,
    Draining,
    Failed,
}

impl ServerStatus {
    pub fn name(self) -> &'static str {
        match self {
            ServerStatus::Active => "active",
            ServerStatus::Draining => "draining",
            ServerStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rack {
    pub element: ElementId,
    pub id: String,
    pub datacenter: String,
    pub room: String,
    pub row: String,
    pub servers: Vec<u32>,
    /// Power devices feeding the rack (indices into `power_devices`).
    pub feeds: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub element: ElementId,
    pub id: String,
    pub rack: u32,
    pub status: ServerStatus,
    pub capacity: u32,
    pub color: Option<String>,
    /// Its own power feeds; empty means it takes power from its rack's feeds.
    pub feeds: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkDevice {
    pub element: ElementId,
    pub id: String,
    pub kind: String,
    pub datacenter: String,
    pub feeds: Vec<u32>,
}

/// A vertex of the network graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetNode {
    Server(u32),
    Device(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub element: ElementId,
    pub id: String,
    pub a: NetNode,
    pub b: NetNode,
    pub risk_group: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskGroup {
    pub element: ElementId,
    pub id: String,
    pub links: Vec<u32>,
    /// False when a link names the group but `risk_groups` has no row for it.
    pub declared: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PowerDevice {
    pub element: ElementId,
    pub id: String,
    pub kind: String,
    pub datacenter: String,
    pub feeds: Vec<u32>,
}

/// A vertex of the power graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PowerNode {
    Device(u32),
    Rack(u32),
    Server(u32),
    NetworkDevice(u32),
}

/// A vertex of the containment tree (datacenter > room > row > rack > server).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Place {
    Zone,
    Datacenter(String),
    Room(String),
    Row(String),
    Rack(u32),
    Server(u32),
}

/// A validated inventory. Built only by [`Inventory::from_raw`]; immutable afterwards.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub elements: Vec<Element>,
    pub racks: Vec<Rack>,
    pub servers: Vec<Server>,
    pub network_devices: Vec<NetworkDevice>,
    pub links: Vec<Link>,
    pub risk_groups: Vec<RiskGroup>,
    pub power_devices: Vec<PowerDevice>,
    /// Directed feeds, upstream power device to downstream node.
    pub feeds: Vec<(u32, PowerNode)>,
    pub network: UnGraph<NetNode, u32>,
    pub power: DiGraph<PowerNode, ()>,
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
    pub elements: usize,
}

impl Inventory {
    pub fn element(&self, id: &str) -> Option<ElementId> {
        self.by_id.get(id).copied()
    }

    pub fn server_index(&self, id: &str) -> Option<u32> {
        let e = self.element(id)?;
        let el = &self.elements[e.index()];
        (el.kind == ElementKind::Server).then_some(el.index)
    }

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
