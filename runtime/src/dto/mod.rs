//! The JSON bodies of the HTTP API: requests, responses, and the conversions from engine and
//! ledger values (which need the zone to turn indices back into ids).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use topology::Inventory;
use utoipa::ToSchema;

use crate::engine::{Binding, Decision, Explanation, SolveInfo, Violation};
use crate::ledger::{Cell, Ledger};
use crate::view::{CountsView, OverCapacityView, ProblemView};
use crate::zone::Zone;
use store::{CellRecord, MoveRecord};

mod health;
mod plans;
mod whatif;
mod zone;

pub use health::{
    ActionView, AutopilotSettings, AutopilotUpdate, AutopilotView, CannotFixView, CauseView,
    ElementList, ElementStateItem, ElementStateRequest, ElementStatesRequest,
    ElementStatesResponse, ElementView, StateName,
};
pub use plans::{
    CurvePointView, ExecuteRequest, PlanList, PlanProgress, PlanRequest, PlanStepView,
    PlanSummaryView, PlanView, UnmetView,
};
pub use whatif::{
    Change, ImportRequest, ImportResponse, RatesChange, Refeed, RefusedView, ServerChange,
    WhatIfRequest,
};
pub use zone::{
    BlastView, ElementBlastView, ElementDetail, FleetView, RackBlastView, RackCountView,
    RackMapView, RackTileView, RackView, RiskBucketView,
};

/// Place a new cell.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceRequest {
    /// Letters, digits and `._:-`, at most 128 characters.
    #[schema(example = "vol-0000001")]
    pub cell_id: String,
    /// Server ids of the cell's clients (at least one, no repeats).
    #[schema(example = json!(["dc1-h1-row01-rk01-s05", "dc1-h1-row02-rk03-s09"]))]
    pub clients: Vec<String>,
    /// Number of nodes; 7 when absent.
    #[schema(example = 7)]
    pub size: Option<u32>,
}

/// Replace one node of a cell; the others stay.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRequest {
    /// The node to replace (a server id).
    pub server: String,
}

/// The cell's clients after they moved.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientsRequest {
    /// Server ids of the cell's new clients (at least one, no repeats).
    pub clients: Vec<String>,
}

/// A new inventory: a directory the service can read, or the tables themselves.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryRequest {
    /// An export directory on the service's host (CSV or Parquet per table).
    pub path: Option<String>,
    /// Table name (`racks`, `servers`, ...) to its CSV text, header row first.
    pub tables: Option<BTreeMap<String, String>>,
}

/// An element of the failure model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ElementRef {
    /// The element id, unique across the inventory's tables.
    pub id: String,
    /// rack, server, tor, aggregation, link, risk_group, utility, ups, ...
    pub kind: String,
}

/// A failure scenario: one element, or two, whose failure puts the cell out.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScenarioView {
    /// The failed elements: one, or two.
    pub elements: Vec<ElementRef>,
    /// Outages per year this scenario contributes: afr for one element,
    /// afr·afr·(repair hours of both)/8760 for a pair.
    pub weight: f64,
}

/// How many of the cell's nodes share one failure domain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainView {
    /// datacenter, room, row, rack, tor or pdu.
    pub level: String,
    /// The domain's label or id (a room label, a ToR's id, ...).
    pub label: String,
    /// The cell's nodes in it.
    pub nodes: usize,
}

/// A hard rule that shaped the answer, and what it did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BindingView {
    /// capacity, colour, overlap, safety or balance.
    pub rule: String,
    /// What the rule did, with counts, for a person to read.
    pub detail: String,
}

impl From<&Binding> for BindingView {
    fn from(b: &Binding) -> BindingView {
        BindingView {
            rule: b.rule.name().to_owned(),
            detail: b.detail.clone(),
        }
    }
}

/// Why a placement is what it is: its exact risk, what would break it, how it spreads,
/// and which rules were binding.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExplanationView {
    /// Outages per year: the yearly probability of an outage over the minimal cut sets of
    /// one and two elements; 1 when the cell is down.
    pub risk: f64,
    /// Outages per year from single elements that break the cell alone (0 when down).
    pub single_risk: f64,
    /// Outages per year from pairs that break the cell while neither element does alone,
    /// each weighted by afr·afr·(repair hours of both)/8760 (0 when down).
    pub pair_risk: f64,
    /// Not down, and no single element failure puts the cell out.
    pub single_failure_safe: bool,
    /// The cell is out with nothing failed (its risk is then 1).
    pub down: bool,
    /// Elements whose failure alone puts the cell out.
    pub breaking: Vec<ElementRef>,
    /// The heaviest failure scenarios that put the cell out.
    pub top_scenarios: Vec<ScenarioView>,
    /// Nodes per failure domain, by level, largest first.
    pub domains: Vec<DomainView>,
    /// The hard rules that shaped the answer, with what each did.
    pub binding: Vec<BindingView>,
}

/// The reference to element `e` of `inv`: its id and label.
pub(crate) fn element(inv: &Inventory, e: topology::ElementId) -> ElementRef {
    let el = &inv.elements[e.index()];
    ElementRef {
        id: el.id.clone(),
        kind: el.label.clone(),
    }
}

impl ExplanationView {
    /// The view of an explanation, elements by id.
    pub fn new(inv: &Inventory, x: &Explanation) -> ExplanationView {
        ExplanationView {
            risk: x.risk,
            single_risk: x.single_risk,
            pair_risk: x.pair_risk,
            single_failure_safe: x.single_failure_safe,
            down: x.down,
            breaking: x.breaking.iter().map(|&e| element(inv, e)).collect(),
            top_scenarios: x
                .top_scenarios
                .iter()
                .map(|s| ScenarioView {
                    elements: s.elements.iter().map(|&e| element(inv, e)).collect(),
                    weight: s.weight,
                })
                .collect(),
            domains: x
                .domains
                .iter()
                .map(|d| DomainView {
                    level: d.level.name().to_owned(),
                    label: d.label.clone(),
                    nodes: d.nodes,
                })
                .collect(),
            binding: x.binding.iter().map(BindingView::from).collect(),
        }
    }
}

/// How the placement engine found the answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SolveView {
    /// The solver that found the answer: `heuristic`, `highs` or `microlp`.
    pub solver: String,
    /// Candidate servers considered.
    pub pool: usize,
    /// Scenario groups that mattered for the choice.
    pub groups: usize,
    /// Proven relative gap to the optimum over the pool (exact solver only).
    pub gap: Option<f64>,
    /// Wall-clock time of the solve, in milliseconds.
    pub elapsed_ms: f64,
}

impl From<&SolveInfo> for SolveView {
    fn from(s: &SolveInfo) -> SolveView {
        SolveView {
            solver: s.solver.to_string(),
            pool: s.pool,
            groups: s.groups,
            gap: s.gap,
            elapsed_ms: s.elapsed.as_secs_f64() * 1e3,
        }
    }
}

/// RFC 3339 from unix milliseconds.
pub fn timestamp(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A move of one of a cell's nodes to another server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoveView {
    /// The move's number: per cell, from 1.
    pub n: i64,
    /// The node that leaves.
    pub out: String,
    /// The server that takes its place.
    pub into: String,
    /// proposed, committed or superseded.
    pub status: String,
    /// The cell's risk before and after the move, in outages per year.
    pub risk_before: f64,
    /// The cell's risk after the move, in outages per year.
    pub risk_after: f64,
    /// Whether the cell is single-failure safe after the move.
    pub single_failure_safe_after: bool,
    /// When the move was proposed (RFC 3339, UTC).
    pub created_at: String,
    /// When its status last changed (RFC 3339, UTC).
    pub updated_at: String,
}

impl From<&MoveRecord> for MoveView {
    fn from(m: &MoveRecord) -> MoveView {
        MoveView {
            n: m.n,
            out: m.out_server.clone(),
            into: m.into_server.clone(),
            status: m.status.name().to_owned(),
            risk_before: m.risk_before,
            risk_after: m.risk_after,
            single_failure_safe_after: m.safe_after,
            created_at: timestamp(m.created_at),
            updated_at: timestamp(m.updated_at),
        }
    }
}

/// A placed cell as the ledger holds it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellView {
    /// The cell id.
    pub cell_id: String,
    /// Server ids of the cell's clients.
    pub clients: Vec<String>,
    /// Number of nodes.
    pub size: usize,
    /// Server ids of the cell's nodes, in position order.
    pub nodes: Vec<String>,
    /// Deployment colour shared by all nodes, if the servers have one.
    pub colour: Option<String>,
    /// Outages per year (1 when the cell is down), on `inventory_version`.
    pub risk: f64,
    /// Not down, and no single element failure puts the cell out (on `inventory_version`).
    pub single_failure_safe: bool,
    /// Out with nothing more failed: some client that needs the cell reaches less than a
    /// quorum of its nodes now (risk 1).
    pub down: bool,
    /// Inventory version the risk was computed on.
    pub inventory_version: i64,
    /// +1 on every change of the cell.
    pub version: i64,
    /// When the cell was placed (RFC 3339, UTC).
    pub created_at: String,
    /// When the cell last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// The proposed move waiting for its commit, if any.
    pub pending_move: Option<MoveView>,
    /// The cell's latest move whatever its status (a plan's steps show here as they
    /// commit), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_move: Option<MoveView>,
}

impl CellView {
    /// The view of a store record and the cell's latest move.
    pub fn new(record: &CellRecord, last: Option<&MoveRecord>) -> CellView {
        let pending = last.filter(|m| m.status == store::MoveStatus::Proposed);
        CellView {
            cell_id: record.cell_id.clone(),
            clients: record.clients.clone(),
            size: record.nodes.len(),
            nodes: record.nodes.clone(),
            colour: record.colour.clone(),
            risk: record.risk,
            single_failure_safe: record.single_failure_safe,
            down: crate::ledger::is_down(record.risk, record.single_failure_safe),
            inventory_version: record.inventory_version,
            version: record.version,
            created_at: timestamp(record.created_at),
            updated_at: timestamp(record.updated_at),
            pending_move: pending.map(MoveView::from),
            last_move: last.map(MoveView::from),
        }
    }

    /// The view of a cell of the ledger.
    pub fn of(ledger: &Ledger, cell: &Cell) -> CellView {
        CellView::new(&ledger.record(cell), cell.last_move.as_deref())
    }
}

/// One page of `GET /v1/cells`, by cell id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellPage {
    /// The page's cells, by cell id.
    pub cells: Vec<CellView>,
    /// Pass as `cursor` for the next page; null when no cell is left. A page can hold
    /// fewer than `limit` cells (even none) while this is set: follow it until null.
    pub next_cursor: Option<String>,
}

/// The opaque cursor of a page that ends after cell `id`: the id's bytes in hex.
pub fn encode_cursor(id: &str) -> String {
    use std::fmt::Write;
    id.bytes()
        .fold(String::with_capacity(2 * id.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The cell id of a cursor made by [`encode_cursor`]; `None` for anything else.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    if cursor.is_empty() || cursor.len() > 512 {
        return None;
    }
    let bytes = cursor
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair)
                .ok()
                .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Deserializes a nested request struct only from a JSON object: serde would also take an
/// array of its fields in order, which the API's schema does not allow.
pub(crate) fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    only_object(&value)?;
    T::deserialize(value).map_err(serde::de::Error::custom)
}

/// As [`object`], for an optional one (null or absent: `None`).
pub(crate) fn optional_object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    if value.is_null() {
        return Ok(None);
    }
    only_object(&value)?;
    T::deserialize(value)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// As [`object`], for a list of them.
pub(crate) fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let values = Vec::<serde_json::Value>::deserialize(d)?;
    values
        .into_iter()
        .map(|v| {
            only_object(&v)?;
            T::deserialize(v).map_err(serde::de::Error::custom)
        })
        .collect()
}

fn only_object<E: serde::de::Error>(value: &serde_json::Value) -> Result<(), E> {
    if value.is_object() {
        Ok(())
    } else {
        Err(E::custom(format!("expected an object, not {value}")))
    }
}

/// A cell with, when it was just (re)placed, why and how.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellResponse {
    /// The cell as the ledger holds it.
    pub cell: CellView,
    /// Present when the placement was computed by this request.
    pub explanation: Option<ExplanationView>,
    /// How the engine found the placement; present with `explanation`.
    pub solve: Option<SolveView>,
}

impl CellResponse {
    /// The cell alone: nothing was computed by this request.
    pub fn plain(cell: CellView) -> CellResponse {
        CellResponse {
            cell,
            explanation: None,
            solve: None,
        }
    }

    /// The cell with the engine's decision that just placed it.
    pub fn decided(cell: CellView, inv: &Inventory, d: &Decision) -> CellResponse {
        CellResponse {
            cell,
            explanation: Some(ExplanationView::new(inv, &d.explanation)),
            solve: Some(SolveView::from(&d.solve)),
        }
    }
}

/// `GET /v1/cells/{id}/moves`: a cell's latest moves, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellMoves {
    /// The cell id.
    pub cell_id: String,
    /// Its moves (proposed, committed or superseded), newest first, as the ledger's store
    /// has them.
    pub moves: Vec<MoveView>,
}

/// `GET /v1/cells/{id}/explanation`: a cell as it stands, and why: its exact risk, the
/// elements that break it alone, its heaviest outage scenarios and its failure domains.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CellExplanation {
    /// The cell as the ledger holds it.
    pub cell: CellView,
    /// The explanation of its placement on the zone as it is now (with `binding` empty:
    /// nothing was chosen).
    pub explanation: ExplanationView,
}

/// The answer to new clients: the cell as it is now and the next single move, if any.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientsResponse {
    /// The cell as the ledger holds it (with its new clients).
    pub cell: CellView,
    /// The cell's placement judged against its new clients (absent when nothing changed
    /// and a proposed move was already waiting).
    pub current: Option<ExplanationView>,
    /// The proposed move; commit it with `POST /v1/cells/{id}/moves/{n}/commit`.
    #[serde(rename = "move")]
    pub proposed: Option<MoveView>,
    /// The placement after the move.
    pub after: Option<ExplanationView>,
    /// Moves on the planned path from here to its target, the proposed one included (0:
    /// the cell stays). After committing a move, `PUT` the same clients again for the next
    /// one; every step keeps the hard rules with one node in flight.
    pub steps_remaining: Option<usize>,
    /// The cell at the end of the path (absent when nothing was planned).
    pub target: Option<ExplanationView>,
    /// Every step of the path leaves the cell at least as good as before it (risk and
    /// single-failure safety); false only when no order of the moves can.
    pub monotone: Option<bool>,
}

/// A server of the active inventory, with the cells that have a node on it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerView {
    /// The server id.
    pub server_id: String,
    /// The id of its rack.
    pub rack: String,
    /// Its rack's row.
    pub row: String,
    /// Its rack's room.
    pub room: String,
    /// Its rack's datacenter.
    pub datacenter: String,
    /// active, draining or failed.
    pub status: String,
    /// Its deployment colour, if it has one.
    pub colour: Option<String>,
    /// Nodes it may hold.
    pub capacity: u32,
    /// Nodes it holds.
    pub load: u32,
    /// Capacity left (0 when over capacity).
    pub free: u32,
    /// Cells with a node here, by id.
    pub cells: Vec<String>,
}

impl ServerView {
    /// The view of the server with index `s` in the ledger's zone.
    pub fn new(ledger: &Ledger, s: u32) -> ServerView {
        let inv = &ledger.zone.inventory;
        let srv = &inv.servers[s as usize];
        let rack = &inv.racks[srv.rack as usize];
        let load = ledger.occ.load(s);
        let mut cells: Vec<String> = ledger
            .occ
            .cells_on(s)
            .iter()
            .filter_map(|&slot| ledger.cell_of(slot).map(str::to_owned))
            .collect();
        cells.sort();
        ServerView {
            server_id: srv.id.clone(),
            rack: rack.id.clone(),
            row: rack.row.clone(),
            room: rack.room.clone(),
            datacenter: rack.datacenter.clone(),
            status: srv.status.name().to_owned(),
            colour: srv.color.clone(),
            capacity: srv.capacity,
            load,
            free: srv.capacity.saturating_sub(load),
            cells,
        }
    }
}

/// One broken rule of a change that was refused.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ViolationView {
    /// duplicate, not_active, over_capacity, mixed_colour or shared_quorum.
    pub rule: String,
    /// The server at fault (absent for mixed_colour and shared_quorum).
    pub server: Option<String>,
    /// The other cell, for shared_quorum.
    pub cell: Option<String>,
    /// What is wrong, for a person to read.
    pub message: String,
}

impl ViolationView {
    /// The view of a violation, servers and cells by id, with its message.
    pub fn new(ledger: &Ledger, v: &Violation) -> ViolationView {
        let inv = &ledger.zone.inventory;
        let id = |s: u32| inv.servers[s as usize].id.clone();
        let on = |rule: &str, s: u32, message: String| ViolationView {
            rule: rule.to_owned(),
            server: Some(id(s)),
            cell: None,
            message,
        };
        match v {
            Violation::Duplicate { server } => on(
                "duplicate",
                *server,
                format!("server '{}' appears twice", id(*server)),
            ),
            Violation::NotActive { server } => on(
                "not_active",
                *server,
                format!("server '{}' is not active", id(*server)),
            ),
            Violation::OverCapacity { server } => {
                let s = *server;
                on(
                    "over_capacity",
                    s,
                    format!(
                        "server '{}' already holds {} of {} nodes",
                        id(s),
                        ledger.occ.load(s),
                        inv.servers[s as usize].capacity
                    ),
                )
            }
            Violation::MixedColour => ViolationView {
                rule: "mixed_colour".into(),
                server: None,
                cell: None,
                message: "the nodes would not share one colour".into(),
            },
            Violation::SharedQuorum { other, shared } => {
                let cell = ledger.cell_of(*other).map(str::to_owned);
                ViolationView {
                    rule: "shared_quorum".into(),
                    server: None,
                    message: format!(
                        "would share {shared} servers with cell '{}'",
                        cell.as_deref().unwrap_or("?")
                    ),
                    cell,
                }
            }
        }
    }
}

/// An inventory version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventoryView {
    /// The inventory version; every inventory the ledger switches to gets a higher one.
    pub version: i64,
    /// `bundled:small:0`, `dir:PATH` or `upload:PATH`.
    pub source: String,
    /// When this version was loaded (RFC 3339, UTC).
    pub loaded_at: String,
    /// The inventory's size, table by table.
    pub counts: CountsView,
    /// How many problems were found that did not stop the load.
    pub warnings: usize,
    /// The latest re-evaluation of the cells (on this version, or superseded by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reevaluation: Option<ReevaluationView>,
}

impl InventoryView {
    /// The view of a zone (without its re-evaluation).
    pub fn new(zone: &Zone) -> InventoryView {
        InventoryView {
            version: zone.version,
            source: zone.source.label(),
            loaded_at: timestamp(zone.loaded_at),
            counts: CountsView::from(zone.inventory.counts()),
            warnings: zone.warnings.len(),
            reevaluation: None,
        }
    }
}

/// The result of validating an inventory without switching to it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationView {
    /// The inventory loads and validates.
    pub valid: bool,
    /// Its size, table by table (when valid).
    pub counts: Option<CountsView>,
    /// Why it is not valid (empty when valid).
    pub errors: Vec<ProblemView>,
    /// Problems that do not stop it from loading.
    pub warnings: Vec<ProblemView>,
    /// When valid: what it would do to the ledger's cells, the active inventory before and
    /// this one after, as `POST /v1/whatif` answers (servers it lacks count as failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub impact: Option<serde_json::Value>,
}

/// Existing cells judged against a new inventory version (after a switch, or on start for
/// cells recorded on another version), in the background. Lists hold at most 1,000 ids
/// each; the counts are complete for the cells judged so far.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ReevaluationView {
    /// running, done, superseded (a later switch took over) or failed.
    pub state: String,
    /// The version the cells are judged on.
    pub inventory_version: i64,
    /// Cells to judge: those whose risk was recorded on another version.
    pub cells: usize,
    /// Cells judged so far.
    pub evaluated: usize,
    /// Judged cells whose new risk is recorded (a cell changed meanwhile was judged on
    /// this version by its change instead).
    pub recorded: usize,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended (RFC 3339, UTC); absent while running.
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Cells that some single failure now puts out.
    pub unsafe_count: usize,
    /// Their ids, in the order judged.
    pub unsafe_cells: Vec<String>,
    /// Of those, cells that were single-failure safe before the switch.
    pub became_unsafe_count: usize,
    /// Their ids, in the order judged.
    pub became_unsafe: Vec<String>,
    /// Cells with a node on a server that is now draining.
    pub on_draining_count: usize,
    /// Their ids, in the order judged.
    pub on_draining: Vec<String>,
    /// Cells with a node on a server that is now failed.
    pub on_failed_count: usize,
    /// Their ids, in the order judged.
    pub on_failed: Vec<String>,
    /// Servers holding more nodes than their capacity on this inventory, once done.
    pub over_capacity: Vec<OverCapacityView>,
}

/// The answer to an inventory switch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SwitchResponse {
    /// The inventory now active.
    pub inventory: InventoryView,
    /// The version that was active before.
    pub previous_version: i64,
    /// The re-evaluation of the cells on the new version: as it started, or as it ended
    /// when the switch waited for it.
    pub reevaluation: ReevaluationView,
    /// Reported element states dropped because the new inventory no longer names their
    /// ids (the others stay on it).
    pub overlay_dropped: Vec<String>,
}

/// The body of `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// ok, or why not ready.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        for id in ["a", "vol-0000001", "x.y_z:1-2", &"z".repeat(128)] {
            let c = encode_cursor(id);
            assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(decode_cursor(&c).as_deref(), Some(id));
        }
        for bad in ["", "a", "abc", "zz", "+a", "-1", "ff", &"61".repeat(257)] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
