//! The body of a what-if change (a TOML change file for the CLI, JSON for the API) and its
//! conversion into topology edits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use topology::edit::Edit;
use utoipa::ToSchema;

/// A change to an inventory: every list optional; applied in the order removals, re-feeds,
/// server settings, rates, additions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Elements failing in the scenario (any number; after the change's other edits).
    #[serde(default)]
    pub fail: Vec<String>,
    /// Servers, racks, rows, rooms, datacenters, network or power devices to remove, with
    /// what only they contain, connect or feed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Power devices, racks, servers or network devices whose feeds are replaced.
    #[serde(default, deserialize_with = "super::objects")]
    pub refeed: Vec<Refeed>,
    /// New status, capacity or colour of servers.
    #[serde(default, deserialize_with = "super::objects")]
    pub server: Vec<ServerChange>,
    /// New failure rates or repair times of elements.
    #[serde(default, deserialize_with = "super::objects")]
    pub rates: Vec<RatesChange>,
    /// Table name (`racks`, `servers`, ...) to CSV rows to add, header first, with the
    /// contract's columns.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// `POST /v1/ledger/import`: a placement export on the service's host.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Path of a placement export (cell_id, clients, nodes; .csv or .parquet).
    pub path: String,
    /// Import the valid cells and list the others (default: all or nothing).
    #[serde(default)]
    pub skip_invalid: bool,
}

/// A cell of an import that was not taken, and why.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RefusedView {
    /// 1-based data row of the file.
    pub row: usize,
    /// The cell id of the row (empty when the row has none).
    pub cell_id: String,
    /// Why it was refused, for a person to read.
    pub why: String,
}

impl From<&crate::import::Refused> for RefusedView {
    fn from(r: &crate::import::Refused) -> RefusedView {
        RefusedView {
            row: r.row,
            cell_id: r.cell_id.clone(),
            why: r.why.clone(),
        }
    }
}

/// The answer to an import.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ImportResponse {
    /// Cells written to the ledger.
    pub imported: usize,
    /// Cells refused (all of them, listed or not).
    pub refused_count: usize,
    /// The first 1,000 refused cells.
    pub refused: Vec<RefusedView>,
}

/// `POST /v1/whatif`: a change of the active inventory and/or a failure scenario, on the
/// ledger's current cells.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// The change and the failure scenario.
    #[serde(deserialize_with = "super::object")]
    pub change: Change,
    /// Element pairs to rank after the change (default 10, at most 1000).
    pub pairs_top: Option<usize>,
    /// Also count how many more cells of the ledger's client mix (7 nodes each) fit after
    /// the change.
    #[serde(default)]
    pub headroom: bool,
    /// Most cells the headroom count places (default 10,000, at most 2,000,000): past it
    /// the answer is "at least this many", `stopped_by` null.
    pub headroom_limit: Option<usize>,
}

/// New upstream power devices of a PDU, rack, server or network device.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Refeed {
    /// The id of what is fed.
    pub target: String,
    /// The ids of its new upstream power devices; empty removes all its feeds.
    pub upstream: Vec<String>,
}

/// New settings of one server; an absent setting keeps its value.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerChange {
    /// The server id.
    pub id: String,
    /// `active`, `draining` or `failed`.
    pub status: Option<String>,
    /// Nodes it may hold.
    pub node_capacity: Option<u32>,
    /// Its deployment colour.
    pub color: Option<String>,
}

/// A new failure rate or repair time of one element; an absent value keeps it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RatesChange {
    /// The element id (it needs a row of its own to set values on).
    pub element: String,
    /// Annual failure probability.
    pub afr: Option<f64>,
    /// Hours it stays failed once failed.
    pub repair_hours: Option<f64>,
}

impl Change {
    /// The topology edits (the scenario's failures apart); a table fragment that is not
    /// CSV is an error naming it.
    pub fn edits(&self) -> Result<Vec<Edit>, topology::Error> {
        let mut out: Vec<Edit> = self.remove.iter().cloned().map(Edit::Remove).collect();
        out.extend(self.refeed.iter().map(|r| Edit::Refeed {
            target: r.target.clone(),
            upstream: r.upstream.clone(),
        }));
        out.extend(self.server.iter().map(|s| Edit::Server {
            id: s.id.clone(),
            status: s.status.clone(),
            node_capacity: s.node_capacity,
            color: s.color.clone(),
        }));
        out.extend(self.rates.iter().map(|r| Edit::Rates {
            element: r.element.clone(),
            afr: r.afr,
            repair_hours: r.repair_hours,
        }));
        for (table, csv) in &self.add {
            let rows = topology::ingest::parse_csv(&format!("add.{table}"), csv)?;
            out.push(Edit::Add {
                table: table.clone(),
                rows,
            });
        }
        Ok(out)
    }

    /// Nothing to change in the inventory (at most a scenario).
    pub fn is_scenario_only(&self) -> bool {
        self.remove.is_empty()
            && self.refeed.is_empty()
            && self.server.is_empty()
            && self.rates.is_empty()
            && self.add.is_empty()
    }
}
