//! Bulk load of an existing fleet into a ledger (`cellplacer ledger import`) and its
//! export: every cell checked as the service would take it (servers known and active,
//! capacity, one colour, no quorum shared with any cell in the ledger or before it in the
//! file, a new id), then written in chunks of one transaction each. A file with problems
//! changes nothing, unless told to skip the bad cells (and say which and why).

use std::collections::HashSet;
use std::sync::Arc;

use topology::raw::RawTable;
use topology::Placement;

use crate::clock::{Clock, SystemClock};
use crate::engine::Violation;
use crate::ledger::{colour, ids, missing_error};
use crate::ledger::{Builder, CellState, Ledger};
use crate::zone::{Candidate, Source};
use crate::Error;
use store::{CellRecord, Change, InventoryRecord, Store};

/// Cells per transaction.
pub const CHUNK: usize = 10_000;

/// A cell of the file that is not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1-based data row of the file.
    pub row: usize,
    /// The cell id of the row (empty when the row has none).
    pub cell_id: String,
    /// Why it was refused, for a person to read.
    pub why: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Cells written.
    pub imported: usize,
    /// Cells not written, with why (all of them when nothing was written).
    pub refused: Vec<Refused>,
    /// The inventory version the cells' risks were computed on.
    pub inventory_version: i64,
    /// Transactions used.
    pub transactions: usize,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("background task: {e}")))
}

/// The placements the table gives on `inv`, row by row: a row with problems (unknown
/// servers, repeats, missing values) is refused with them.
pub(crate) fn parse_rows(
    table: &RawTable,
    inv: &topology::Inventory,
) -> (Vec<(usize, Placement)>, Vec<Refused>) {
    let id_col = table.column_index("cell_id");
    let mut good = Vec::new();
    let mut refused = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let one = RawTable {
            columns: table.columns.clone(),
            rows: vec![row.clone()],
        };
        match topology::workload::parse_placements(&one, inv) {
            Ok(mut p) => good.push((i + 1, p.remove(0))),
            Err(report) => refused.push(Refused {
                row: i + 1,
                cell_id: id_col.and_then(|c| row[c].clone()).unwrap_or_default(),
                why: report
                    .errors
                    .iter()
                    .map(|p| format!("{}: {}", p.column.as_deref().unwrap_or(""), p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
    (good, refused)
}

fn violation_text(ledger: &Ledger, v: &Violation) -> String {
    let inv = &ledger.zone.inventory;
    let server = |s: &u32| inv.servers[*s as usize].id.as_str();
    match v {
        Violation::Duplicate { server: s } => format!("server {} twice", server(s)),
        Violation::NotActive { server: s } => format!(
            "server {} is {}",
            server(s),
            inv.servers[*s as usize].status.name()
        ),
        Violation::OverCapacity { server: s } => format!(
            "server {} over its capacity of {}",
            server(s),
            inv.servers[*s as usize].capacity
        ),
        Violation::MixedColour => "nodes of more than one colour".into(),
        Violation::SharedQuorum { other, shared } => format!(
            "shares {shared} servers (a quorum) with cell {}",
            ledger.cell_of(*other).unwrap_or("?")
        ),
    }
}

/// Checks `rows` in order against `ledger` as the service would take each cell, and puts
/// the ones that keep every rule into it (risk not yet known: NaN), so that later rows
/// are checked against them; the others go to `refused` with why.
pub(crate) fn check_rows(
    ledger: &mut Ledger,
    rows: Vec<(usize, Placement)>,
    version: i64,
    refused: &mut Vec<Refused>,
) -> Vec<(usize, Placement)> {
    let zone = ledger.zone.clone();
    let mut seen: HashSet<String> = HashSet::new();
    let mut accepted = Vec::with_capacity(rows.len());
    for (row, p) in rows {
        let refuse = |why: String| Refused {
            row,
            cell_id: p.cell_id.clone(),
            why,
        };
        if !seen.insert(p.cell_id.clone()) {
            refused.push(refuse("the id comes twice in the file".into()));
            continue;
        }
        if ledger.cell(&p.cell_id).is_some() {
            refused.push(refuse("a cell with this id is in the ledger".into()));
            continue;
        }
        let violations = ledger.occ.violations(&zone.inventory, &p.nodes, None);
        if !violations.is_empty() {
            let why: Vec<String> = violations
                .iter()
                .map(|v| violation_text(ledger, v))
                .collect();
            refused.push(refuse(why.join("; ")));
            continue;
        }
        let state = CellState {
            risk: f64::NAN,
            inventory_version: version,
            version: 1,
            ..CellState::default()
        };
        ledger.insert(&p.cell_id, p.clients.clone(), &p.nodes, state, None, 0);
        accepted.push((row, p));
    }
    accepted
}

/// The records of checked cells, with their exact risk and safety.
pub(crate) fn records(
    zone: &crate::zone::Zone,
    accepted: &[Placement],
    version: i64,
) -> Vec<CellRecord> {
    let risks = optimizer::report::cell_risks(&zone.model, accepted, 0);
    let inv = &zone.inventory;
    let now = SystemClock.now_ms();
    accepted
        .iter()
        .zip(risks)
        .map(|(p, (risk, safe))| CellRecord {
            cell_id: p.cell_id.clone(),
            clients: ids(inv, &p.clients),
            nodes: ids(inv, &p.nodes),
            colour: colour(inv, &p.nodes),
            risk,
            single_failure_safe: safe,
            inventory_version: version,
            version: 1,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

/// Imports `table` (a placement export) into the ledger `store` on the inventory `source`.
/// The ledger must serve that inventory already, or none yet.
pub async fn import(
    store: &dyn Store,
    source: Source,
    table: RawTable,
    skip_invalid: bool,
) -> Result<Outcome, Error> {
    let snapshot = store.load().await?;
    let label = source.label();
    if let Some(active) = &snapshot.active_inventory {
        if active.source != label {
            return Err(Error::InventoryConflict {
                message: format!(
                    "the ledger serves the inventory {}, not {label}: import with that one",
                    active.source
                ),
                details: serde_json::json!({ "active": active.source }),
            });
        }
    }
    let (version, activate) = match &snapshot.active_inventory {
        Some(rec) => (rec.version, None),
        None => {
            let version = snapshot.max_inventory_version + 1;
            let rec = InventoryRecord {
                version,
                source: label,
                path: source.path().map(|p| p.display().to_string()),
                loaded_at: SystemClock.now_ms(),
            };
            (version, Some(rec))
        }
    };
    let zone = blocking(move || Candidate::load(source)).await??;
    let zone = Arc::new(zone.into_zone(version, SystemClock.now_ms()));
    // The cells already in the ledger, which the new ones must keep every rule with.
    let mut builder = Builder::new(zone.clone(), 0);
    store.load_cells(&mut |c, m| builder.add(c, m)).await?;
    let mut ledger = builder.finish().map_err(|m| missing_error(&m))?;
    let checked = blocking(move || -> Result<_, Error> {
        let (rows, mut refused) = parse_rows(&table, &zone.inventory);
        let accepted = check_rows(&mut ledger, rows, version, &mut refused);
        refused.sort_by_key(|r| r.row);
        let accepted: Vec<Placement> = accepted.into_iter().map(|(_, p)| p).collect();
        Ok((zone, accepted, refused))
    })
    .await??;
    let (zone, accepted, refused) = checked;
    if !refused.is_empty() && !skip_invalid {
        return Ok(Outcome {
            imported: 0,
            refused,
            inventory_version: version,
            transactions: 0,
        });
    }
    let records = blocking(move || records(&zone, &accepted, version)).await?;
    let mut transactions = 0;
    let mut first = activate.map(Change::ActivateInventory);
    for chunk in records.chunks(CHUNK) {
        let mut changes: Vec<Change> = first.take().into_iter().collect();
        changes.push(Change::InsertCells(chunk.to_vec()));
        store.apply(&changes).await?;
        transactions += 1;
    }
    if let Some(change) = first {
        store.apply(&[change]).await?;
        transactions += 1;
    }
    Ok(Outcome {
        imported: records.len(),
        refused,
        inventory_version: version,
        transactions,
    })
}

/// The ledger's cells as a placement export (cell_id, clients, nodes), by cell id.
pub async fn export(store: &dyn Store) -> Result<RawTable, Error> {
    let mut table = RawTable::new(&["cell_id", "clients", "nodes"]);
    store
        .load_cells(&mut |c, _| {
            table.push(&[c.cell_id, c.clients.join(";"), c.nodes.join(";")]);
        })
        .await?;
    Ok(table)
}
