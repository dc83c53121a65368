//! Request and response bodies of health events (`/v1/elements`) and of the autopilot
//! (`/v1/autopilot`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A reported state.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    /// Down: it and what needs it.
    Failed,
    /// A server that stays up but takes no new nodes (servers only).
    Draining,
    /// Up again (for a server: in service, whatever the export's status).
    Active,
}

impl From<StateName> for store::ElementState {
    fn from(s: StateName) -> store::ElementState {
        match s {
            StateName::Failed => store::ElementState::Failed,
            StateName::Draining => store::ElementState::Draining,
            StateName::Active => store::ElementState::Active,
        }
    }
}

/// `PUT /v1/elements/{id}/state`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementStateRequest {
    /// The element's state now.
    pub state: StateName,
    /// Why (at most 500 characters), kept with the state.
    #[schema(example = "ToR power supply failed")]
    pub reason: Option<String>,
}

/// One state of `POST /v1/elements/states`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementStateItem {
    /// A server, rack, network device, link, risk group or power device id, or a row,
    /// room or datacenter label.
    #[schema(example = "dc1-h1-row01-rk01")]
    pub element: String,
    /// Its state now.
    pub state: StateName,
    /// Why (at most 500 characters).
    pub reason: Option<String>,
}

/// `POST /v1/elements/states`: many states at once, all or nothing.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementStatesRequest {
    /// The states (1 to 10,000; an element at most once).
    pub states: Vec<ElementStateItem>,
}

/// An element's state as the overlay holds it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ElementView {
    /// The id (or row, room, datacenter label).
    pub element: String,
    /// `server`, `rack`, `row`, `room`, `datacenter`, `network_device`, `network_link`,
    /// `risk_group` or `power_device`.
    pub kind: String,
    /// `failed`, `draining` or `active`.
    pub state: String,
    /// Why, as reported.
    pub reason: Option<String>,
    /// Since when it holds (RFC 3339).
    pub since: String,
}

/// `GET /v1/elements`: the overlay, by id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementList {
    /// The inventory version the overlay applies to.
    pub inventory_version: i64,
    /// Elements whose reported state differs from the export's, by id.
    pub elements: Vec<ElementView>,
}

/// What a report of states did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementStatesResponse {
    /// The inventory version the overlay applies to.
    pub inventory_version: i64,
    /// The reported elements as the overlay now holds them (state `active` and no entry
    /// when the export says so too).
    pub elements: Vec<ElementView>,
    /// Whether the overlay changed (a repeated report changes nothing).
    pub changed: bool,
    /// Cells evaluated on the new state of the zone: those on the servers the change may
    /// touch (the others keep their standing).
    pub cells_judged: u64,
    /// Cells whose risk, safety or down state changed, and were recorded.
    pub cells_changed: u64,
    /// Cells not single-failure safe now.
    pub cells_unsafe: u64,
    /// Cells out (down with nothing more failed) now.
    pub cells_out: u64,
    /// Servers the overlay has down.
    pub servers_down: u64,
}

/// The autopilot's settings.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutopilotSettings {
    /// Whether it acts.
    pub enabled: bool,
    /// Seconds a server stays failed before its nodes move (a server back within it
    /// causes no move).
    pub grace_s: f64,
    /// Moves per second, at most.
    pub rate: f64,
    /// Moves committed but not yet durable, at most.
    pub max_in_flight: u32,
    /// Moves per hour for the optional goals (following moved clients, lowering risk).
    pub max_moves_per_hour: u32,
    /// Pursue the optional goals.
    pub improve: bool,
}

/// `PUT /v1/autopilot`: the settings to change; absent ones stay.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AutopilotUpdate {
    /// Whether it acts.
    pub enabled: Option<bool>,
    /// Seconds (0 to 604,800).
    pub grace_s: Option<f64>,
    /// Moves per second (0.01 to 100,000).
    pub rate: Option<f64>,
    /// 1 to 1,024.
    pub max_in_flight: Option<u32>,
    /// 0 to 1,000,000.
    pub max_moves_per_hour: Option<u32>,
    /// Pursue the optional goals.
    pub improve: Option<bool>,
}

/// The health event behind an action.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CauseView {
    /// The element reported.
    pub element: String,
    /// Its state.
    pub state: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One move the autopilot made.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ActionView {
    /// When (RFC 3339).
    pub at: String,
    /// The cell.
    pub cell_id: String,
    /// The server its node left.
    pub remove: String,
    /// The server its node went to.
    pub add: String,
    /// `out`, `failed`, `unsafe`, `drain`, `follow` or `improve`.
    pub reason: String,
    /// The cell's risk before and after (outages per year).
    pub risk_before: f64,
    /// See `risk_before`.
    pub risk_after: f64,
    /// Single-failure safe after the move.
    pub safe_after: bool,
    /// The health event that made the move needed, when one did.
    pub cause: Option<CauseView>,
}

/// A cell the autopilot cannot fix, until the fleet changes.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CannotFixView {
    /// The cell.
    pub cell_id: String,
    /// What it needs (`out`, `failed`, `unsafe`, `drain`).
    pub reason: String,
    /// Why no move does it.
    pub why: String,
    /// When it was found (RFC 3339).
    pub since: String,
}

/// `GET /v1/autopilot`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AutopilotView {
    /// The settings.
    pub settings: AutopilotSettings,
    /// Whether this replica's autopilot acts (it holds the zone's executor lease).
    pub acting: bool,
    /// Passes over the ledger since this process started (each looks at the work and
    /// makes the moves the pace allows).
    pub passes: u64,
    /// Work waiting, by reason (`out`, `failed`, `unsafe`, `drain`, and `waiting` for
    /// nodes on servers failed less than `grace_s` ago).
    pub queue: BTreeMap<String, u64>,
    /// Moves committed, not yet durable.
    pub in_flight: u64,
    /// Moves made since this process started, by reason.
    pub moves: BTreeMap<String, u64>,
    /// The latest moves, newest first (at most 100).
    pub last_actions: Vec<ActionView>,
    /// Cells it cannot fix on this state of the fleet, by cell id (at most 1,000).
    pub cannot_fix: Vec<CannotFixView>,
    /// How many more cannot be fixed than listed.
    pub cannot_fix_more: u64,
}
