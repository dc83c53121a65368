//! Typed report tables for planners' notebooks (Parquet or CSV): per cell, per element,
//! per element pair and per load domain, for one state (`evaluate --out-dir`) or both sides
//! of a what-if (`whatif --out-dir`).

use std::collections::HashMap;
use std::path::Path;

use optimizer::report::{FleetReport, PairBlast};
use optimizer::whatif::{DomainLoad, Standing, WhatIf};
use topology::ingest::{write_typed, TypedTable, Values};
use topology::{Inventory, Placement};

/// Most cell ids listed per pair in `pairs` (as examples).
const PAIR_EXAMPLES: usize = 10;

/// A text column.
pub fn text<I: IntoIterator<Item = S>, S: Into<String>>(v: I) -> Values {
    Values::Text(v.into_iter().map(|s| Some(s.into())).collect())
}

/// A float column (NaN becomes null).
pub fn float(v: impl IntoIterator<Item = f64>) -> Values {
    Values::Float(v.into_iter().map(|x| (!x.is_nan()).then_some(x)).collect())
}

/// An integer column.
pub fn int(v: impl IntoIterator<Item = u64>) -> Values {
    Values::Int(v.into_iter().map(|x| Some(x as i64)).collect())
}

/// A true/false column.
pub fn boolean(v: impl IntoIterator<Item = bool>) -> Values {
    Values::Bool(v.into_iter().map(Some).collect())
}

fn ids(inv: &Inventory, servers: &[u32]) -> String {
    servers
        .iter()
        .map(|&s| inv.servers[s as usize].id.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// One row per cell: where it is and its exact standing.
pub fn cells(inv: &Inventory, placements: &[Placement], report: &FleetReport) -> TypedTable {
    let c = &report.per_cell;
    TypedTable::default()
        .column(
            "cell_id",
            text(placements.iter().map(|p| p.cell_id.clone())),
        )
        .column(
            "datacenter",
            text(placements.iter().map(|p| {
                p.nodes.first().map_or(String::new(), |&n| {
                    inv.racks[inv.servers[n as usize].rack as usize]
                        .datacenter
                        .clone()
                })
            })),
        )
        .column(
            "clients",
            text(placements.iter().map(|p| ids(inv, &p.clients))),
        )
        .column("nodes", text(placements.iter().map(|p| ids(inv, &p.nodes))))
        .column("risk", float(c.iter().map(|c| c.risk)))
        .column("single_risk", float(c.iter().map(|c| c.single_risk)))
        .column("pair_risk", float(c.iter().map(|c| c.pair_risk)))
        .column(
            "single_failure_safe",
            boolean(c.iter().map(|c| c.single_failure_safe())),
        )
        .column("down", boolean(c.iter().map(|c| c.down)))
        .column(
            "breaking_elements",
            text(c.iter().map(|c| {
                c.breaking
                    .iter()
                    .map(|e| inv.elements[e.index()].id.as_str())
                    .collect::<Vec<_>>()
                    .join(";")
            })),
        )
}

/// One row per element, zeros included: kind, rates and blast radius.
pub fn elements(inv: &Inventory, report: &FleetReport) -> TypedTable {
    let e = &inv.elements;
    TypedTable::default()
        .column("element_id", text(e.iter().map(|e| e.id.clone())))
        .column("kind", text(e.iter().map(|e| e.kind.name())))
        .column("label", text(e.iter().map(|e| e.label.clone())))
        .column("afr", float(e.iter().map(|e| e.afr)))
        .column("repair_hours", float(e.iter().map(|e| e.repair_hours)))
        .column(
            "blast_radius",
            int(report.blast_radius.iter().map(|&b| u64::from(b))),
        )
}

/// One row per element pair: the cells out only when both fail.
pub fn pairs(
    inv: &Inventory,
    model: &topology::FailureModel,
    placements: &[Placement],
    pairs: &[PairBlast],
) -> TypedTable {
    let el = |e: topology::ElementId| &inv.elements[e.index()];
    TypedTable::default()
        .column(
            "element_a",
            text(pairs.iter().map(|p| el(p.pair.0).id.clone())),
        )
        .column(
            "label_a",
            text(pairs.iter().map(|p| el(p.pair.0).label.clone())),
        )
        .column(
            "element_b",
            text(pairs.iter().map(|p| el(p.pair.1).id.clone())),
        )
        .column(
            "label_b",
            text(pairs.iter().map(|p| el(p.pair.1).label.clone())),
        )
        .column("cells", int(pairs.iter().map(|p| p.cells.len() as u64)))
        .column(
            "weight",
            float(pairs.iter().map(|p| model.pair_weight(p.pair.0, p.pair.1))),
        )
        .column(
            "example_cells",
            text(pairs.iter().map(|p| {
                p.cells
                    .iter()
                    .take(PAIR_EXAMPLES)
                    .map(|&c| placements[c].cell_id.as_str())
                    .collect::<Vec<_>>()
                    .join(";")
            })),
        )
}

/// One row per load domain.
pub fn domains(domains: &[DomainLoad]) -> TypedTable {
    TypedTable::default()
        .column("level", text(domains.iter().map(|d| d.level.name())))
        .column("domain", text(domains.iter().map(|d| d.domain.clone())))
        .column("hosts", int(domains.iter().map(|d| u64::from(d.hosts))))
        .column("capacity", int(domains.iter().map(|d| d.capacity)))
        .column("load", int(domains.iter().map(|d| d.load)))
        .column("free", int(domains.iter().map(|d| d.free)))
}

/// The cells on both sides of a what-if (risk and safety null without fleet reports).
pub fn whatif_cells(placements: &[Placement], w: &WhatIf) -> TypedTable {
    let n = placements.len();
    let (b, a) = (
        w.before.report.as_ref().map(|r| &r.per_cell),
        w.after.report.as_ref().map(|r| &r.per_cell),
    );
    let risk = |s: Option<&Vec<optimizer::report::CellOutcome>>| {
        Values::Float(match s {
            Some(v) => v
                .iter()
                .map(|c| (!c.risk.is_nan()).then_some(c.risk))
                .collect(),
            None => vec![None; n],
        })
    };
    let flag = |s: Option<&Vec<optimizer::report::CellOutcome>>,
                f: &dyn Fn(&optimizer::report::CellOutcome) -> bool| {
        Values::Bool(match s {
            Some(v) => v.iter().map(|c| Some(f(c))).collect(),
            None => vec![None; n],
        })
    };
    let scenario = |s: &Option<Vec<Standing>>| {
        Values::Text(match s {
            Some(v) => v.iter().map(|x| Some(x.name().to_owned())).collect(),
            None => vec![None; placements.len()],
        })
    };
    TypedTable::default()
        .column(
            "cell_id",
            text(placements.iter().map(|p| p.cell_id.clone())),
        )
        .column("risk_before", risk(b))
        .column("risk_after", risk(a))
        .column("safe_before", flag(b, &|c| c.single_failure_safe()))
        .column("safe_after", flag(a, &|c| c.single_failure_safe()))
        .column("down_before", flag(b, &|c| c.down))
        .column("down_after", flag(a, &|c| c.down))
        .column("scenario_before", scenario(&w.before.scenario))
        .column("scenario_after", scenario(&w.after.scenario))
        .column("must_move", int(w.after.must_move.iter().copied()))
}

/// Every element of either side, with its blast radius on each (null where it does not
/// exist).
pub fn whatif_elements(before: &Inventory, after: &Inventory, w: &WhatIf) -> TypedTable {
    /// id, kind, label, blast before, blast after.
    type Row = (String, &'static str, String, Option<i64>, Option<i64>);
    let mut rows: Vec<Row> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    let blast =
        |r: &Option<FleetReport>, i: usize| r.as_ref().map(|r| i64::from(r.blast_radius[i]));
    for (i, e) in before.elements.iter().enumerate() {
        at.insert(e.id.as_str(), rows.len());
        let b = blast(&w.before.report, i);
        rows.push((e.id.clone(), e.kind.name(), e.label.clone(), b, None));
    }
    for (i, e) in after.elements.iter().enumerate() {
        let a = blast(&w.after.report, i);
        match at.get(e.id.as_str()) {
            Some(&r) => rows[r].4 = a,
            None => rows.push((e.id.clone(), e.kind.name(), e.label.clone(), None, a)),
        }
    }
    TypedTable::default()
        .column("element_id", text(rows.iter().map(|r| r.0.clone())))
        .column("kind", text(rows.iter().map(|r| r.1)))
        .column("label", text(rows.iter().map(|r| r.2.clone())))
        .column(
            "blast_before",
            Values::Int(rows.iter().map(|r| r.3).collect()),
        )
        .column(
            "blast_after",
            Values::Int(rows.iter().map(|r| r.4).collect()),
        )
}

/// Every load domain of either side, before and after (null where it does not exist).
pub fn whatif_domains(w: &WhatIf) -> TypedTable {
    type Side = Option<(u64, u64, u64)>;
    let mut rows: std::collections::BTreeMap<(String, String), (Side, Side)> = Default::default();
    for d in &w.before.domains {
        rows.entry((d.level.name().into(), d.domain.clone()))
            .or_default()
            .0 = Some((d.capacity, d.load, d.free));
    }
    for d in &w.after.domains {
        rows.entry((d.level.name().into(), d.domain.clone()))
            .or_default()
            .1 = Some((d.capacity, d.load, d.free));
    }
    let col = |pick: &dyn Fn(&(Side, Side)) -> Option<u64>| {
        Values::Int(rows.values().map(|r| pick(r).map(|v| v as i64)).collect())
    };
    TypedTable::default()
        .column("level", text(rows.keys().map(|k| k.0.clone())))
        .column("domain", text(rows.keys().map(|k| k.1.clone())))
        .column("capacity_before", col(&|r| r.0.map(|s| s.0)))
        .column("load_before", col(&|r| r.0.map(|s| s.1)))
        .column("free_before", col(&|r| r.0.map(|s| s.2)))
        .column("capacity_after", col(&|r| r.1.map(|s| s.0)))
        .column("load_after", col(&|r| r.1.map(|s| s.1)))
        .column("free_after", col(&|r| r.1.map(|s| s.2)))
}

/// Writes `tables` as `DIR/NAME.parquet` (creating DIR).
pub fn write(dir: &Path, tables: &[(&str, TypedTable)]) -> Result<(), topology::Error> {
    std::fs::create_dir_all(dir).map_err(|cause| topology::Error::Io {
        path: dir.display().to_string(),
        cause,
    })?;
    for (name, table) in tables {
        write_typed(&dir.join(format!("{name}.parquet")), table)?;
    }
    Ok(())
}
