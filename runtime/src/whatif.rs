//! What-if at the edge: an export's tables, placements and a change become the two
//! inventories (servers the placements name and a side lacks count as failed there), the
//! same cells on both, and the scenario's elements on each side.

use std::borrow::Cow;

use topology::edit;
use topology::raw::{RawInventory, RawTable};
use topology::{ElementId, FailureModel, Inventory, Placement, Problem, Report};

use crate::dto::Change;

/// Both sides of a what-if, ready for [`optimizer::whatif::compare`]. The side before is
/// borrowed when the caller already holds it validated and modelled (the service's active
/// zone); the side after exists only when the change edits the inventory.
#[derive(Debug)]
pub struct Sides<'z> {
    /// The inventory before the change.
    pub before: Cow<'z, Inventory>,
    /// Its failure model.
    pub before_model: Cow<'z, FailureModel>,
    /// The inventory and model after the change; `None` when it edits nothing.
    changed: Option<(Inventory, FailureModel)>,
    /// The cells on the inventory before.
    pub placements_before: Vec<Placement>,
    /// The same cells on the inventory after.
    pub placements_after: Vec<Placement>,
    /// The scenario's elements before (`None`: no scenario, or an element the side lacks).
    pub fail_before: Option<Vec<ElementId>>,
    /// The scenario's elements after.
    pub fail_after: Option<Vec<ElementId>>,
}

impl Sides<'_> {
    /// The inventory after the change.
    pub fn after(&self) -> &Inventory {
        self.changed.as_ref().map_or(&*self.before, |(inv, _)| inv)
    }

    /// The failure model after the change.
    pub fn after_model(&self) -> &FailureModel {
        self.changed
            .as_ref()
            .map_or(&*self.before_model, |(_, model)| model)
    }

    /// The same cells on both sides, compared.
    pub fn compare(&self, options: &optimizer::whatif::Options) -> optimizer::whatif::WhatIf {
        optimizer::whatif::compare(
            (&self.before, &self.before_model, &self.placements_before),
            (self.after(), self.after_model(), &self.placements_after),
            options,
        )
    }
}

fn with_gone(mut raw: RawInventory, placements: &RawTable) -> Result<Inventory, topology::Error> {
    Ok(crate::load::validate_with_gone(&mut raw, placements)?.0)
}

/// The scenario's elements on `inv`; an id it does not have is a problem naming it.
pub fn resolve_fail(fail: &[String], inv: &Inventory) -> Result<Vec<ElementId>, topology::Error> {
    let mut report = Report::default();
    let mut out = Vec::with_capacity(fail.len());
    for (i, id) in fail.iter().enumerate() {
        match inv.element(id) {
            Some(e) => out.push(e),
            None => report.errors.push(Problem::cell(
                "change",
                i + 1,
                "fail",
                format!("'{id}' names no element"),
            )),
        }
    }
    if report.errors.is_empty() {
        Ok(out)
    } else {
        Err(topology::Error::Invalid(report))
    }
}

/// Applies `change` to the export `raw` and reads `placements` on both sides; every problem
/// (of the change, of the edited tables, of the placements, of the scenario) named. The
/// side before is validated and modelled here (for the command line, which has only files).
pub fn prepare(
    raw: &RawInventory,
    placements: &RawTable,
    change: &Change,
) -> Result<Sides<'static>, topology::Error> {
    let mut raw_before = raw.clone();
    let before = crate::load::validate_with_gone(&mut raw_before, placements)?.0;
    let changed = changed_side(&raw_before, &before, placements, change)?;
    let model = FailureModel::new(&before);
    finish(
        Cow::Owned(before),
        Cow::Owned(model),
        changed,
        placements,
        change,
    )
}

/// As [`prepare`], on a side before that is already validated and modelled (`raw` its
/// export's tables, read once for the edits): only the side after, when the change edits
/// the inventory, is validated and modelled.
pub fn prepare_on<'z>(
    before: &'z Inventory,
    before_model: &'z FailureModel,
    raw: &RawInventory,
    placements: &RawTable,
    change: &Change,
) -> Result<Sides<'z>, topology::Error> {
    let changed = changed_side(raw, before, placements, change)?;
    finish(
        Cow::Borrowed(before),
        Cow::Borrowed(before_model),
        changed,
        placements,
        change,
    )
}

/// The inventory and model after `change`'s edits, or `None` when it has none.
fn changed_side(
    raw_before: &RawInventory,
    before: &Inventory,
    placements: &RawTable,
    change: &Change,
) -> Result<Option<(Inventory, FailureModel)>, topology::Error> {
    let edits = change.edits()?;
    if edits.is_empty() {
        return Ok(None);
    }
    let edited = edit::apply(raw_before, before, &edits).map_err(topology::Error::Invalid)?;
    let after = with_gone(edited, placements)?;
    let model = FailureModel::new(&after);
    Ok(Some((after, model)))
}

fn finish<'z>(
    before: Cow<'z, Inventory>,
    before_model: Cow<'z, FailureModel>,
    changed: Option<(Inventory, FailureModel)>,
    placements: &RawTable,
    change: &Change,
) -> Result<Sides<'z>, topology::Error> {
    let after = changed.as_ref().map_or(&*before, |(inv, _)| inv);
    let invalid = topology::Error::Invalid;
    let placements_before =
        topology::workload::parse_placements(placements, &before).map_err(invalid)?;
    let placements_after =
        topology::workload::parse_placements(placements, after).map_err(invalid)?;
    let resolve = |inv: &Inventory| -> Option<Vec<ElementId>> {
        change.fail.iter().map(|id| inv.element(id)).collect()
    };
    let mut report = Report::default();
    for (i, id) in change.fail.iter().enumerate() {
        if before.element(id).is_none() && after.element(id).is_none() {
            report.errors.push(Problem::cell(
                "change",
                i + 1,
                "fail",
                format!("'{id}' names no element before or after the change"),
            ));
        }
    }
    if !report.errors.is_empty() {
        return Err(topology::Error::Invalid(report));
    }
    let scenario = !change.fail.is_empty();
    let fail_before = resolve(&before).filter(|_| scenario);
    let fail_after = resolve(after).filter(|_| scenario);
    Ok(Sides {
        before,
        before_model,
        changed,
        placements_before,
        placements_after,
        fail_before,
        fail_after,
    })
}

/// The cells of the active inventory `before` against a whole new inventory, validated
/// and modelled once by the caller (`after`, with `raw_after` its tables). Only when the
/// cells use servers the new tables lack are the tables validated again, with those
/// servers added as failed, so that the cells can be judged on them.
pub fn between<'z>(
    before: &'z Inventory,
    before_model: &'z FailureModel,
    after: (Inventory, FailureModel),
    raw_after: RawInventory,
    placements: &[Placement],
) -> Result<Sides<'z>, topology::Error> {
    let all: Vec<&Placement> = placements.iter().collect();
    let table = crate::load::placement_table(before, &all);
    let changed = if raw_after.gone_servers(&table).is_empty() {
        after
    } else {
        let inv = with_gone(raw_after, &table)?;
        let model = FailureModel::new(&inv);
        (inv, model)
    };
    let placements_after = topology::workload::parse_placements(&table, &changed.0)
        .map_err(topology::Error::Invalid)?;
    Ok(Sides {
        before: Cow::Borrowed(before),
        before_model: Cow::Borrowed(before_model),
        changed: Some(changed),
        placements_before: placements.to_vec(),
        placements_after,
        fail_before: None,
        fail_after: None,
    })
}

/// How many more cells of a client mix fit after the change: `mix` a cells table (its
/// client sets, cycled) or, when `None`, the placed cells' own client sets; `size` nodes
/// each.
pub fn headroom(
    sides: &Sides<'_>,
    mix: Option<&RawTable>,
    (size, limit): (usize, usize),
    options: &optimizer::place::PlaceOptions,
) -> Result<serde_json::Value, topology::Error> {
    let sets: Vec<Vec<u32>> = match mix {
        Some(table) => topology::workload::parse_cells(table, sides.after())
            .map_err(topology::Error::Invalid)?
            .into_iter()
            .map(|c| c.clients)
            .collect(),
        None => sides
            .placements_after
            .iter()
            .map(|p| p.clients.clone())
            .collect(),
    };
    let started = std::time::Instant::now();
    let h = optimizer::whatif::headroom(
        sides.after(),
        sides.after_model(),
        &sides.placements_after,
        &sets,
        (size, limit),
        options,
    );
    Ok(serde_json::json!({
        "cells": h.cells,
        "size": size,
        "client_sets": sets.len(),
        "stopped_by": h.stopped_by,
        "limit": limit.min(optimizer::whatif::HEADROOM_LIMIT),
        "elapsed_ms": started.elapsed().as_secs_f64() * 1e3,
    }))
}

/// The answer as JSON: counts and ids side by side (the per-cell tables are the Parquet
/// output).
pub fn summary(
    before: &Inventory,
    after: &Inventory,
    placements: &[Placement],
    w: &optimizer::whatif::WhatIf,
    elapsed_ms: f64,
) -> serde_json::Value {
    use optimizer::whatif::Standing;
    use serde_json::json;
    let ids = |cells: &[usize]| -> Vec<&str> {
        cells
            .iter()
            .take(crate::limits::LIST_LIMIT)
            .map(|&c| placements[c].cell_id.as_str())
            .collect()
    };
    let scenario = |s: &Option<Vec<Standing>>| {
        s.as_ref().map(|v| {
            let of =
                |want: Standing| -> Vec<usize> { (0..v.len()).filter(|&i| v[i] == want).collect() };
            let (out, degraded) = (of(Standing::Out), of(Standing::Degraded));
            json!({
                "out": out.len(), "degraded": degraded.len(),
                "out_cells": ids(&out), "degraded_cells": ids(&degraded),
            })
        })
    };
    let side = |inv: &Inventory, s: &optimizer::whatif::Side| {
        let report = s.report.as_ref().map(|r| {
            let top: Vec<_> = r
                .top_blast_radius
                .iter()
                .take(10)
                .map(|(e, n)| json!({"element": inv.elements[e.index()].id, "cells": n}))
                .collect();
            json!({
                "unsafe": r.unsafe_cells.len(),
                "down": r.down_cells.len(),
                "risk": r.risk.as_ref().map(|k| json!({
                    "mean": k.mean, "p50": k.p50, "p99": k.p99, "max": k.max, "total": k.total,
                })),
                "top_blast_radius": top,
                "nodes_placed": r.load.nodes_placed,
                "capacity": r.load.capacity,
            })
        });
        json!({
            "report": report,
            "scenario": scenario(&s.scenario),
            "nodes_to_move": s.must_move.iter().sum::<u64>(),
        })
    };
    let pairs: Vec<_> = w
        .pairs
        .iter()
        .map(|p| {
            json!({
                "a": after.elements[p.pair.0.index()].id,
                "b": after.elements[p.pair.1.index()].id,
                "cells": p.cells.len(),
                "example_cells": ids(&p.cells[..p.cells.len().min(10)]),
            })
        })
        .collect();
    let plan = w.plan.as_ref().map(|p| {
        let last = p.curve.last().copied();
        json!({
            "moves": p.moves.len(),
            "unmet": p.unmet.len(),
            "nodes_to_move_after": last.map(|c| c.nodes_to_move),
            "total_risk_after": last.map(|c| c.total_risk),
        })
    });
    // Domains whose capacity, load or free capacity differ (or exist on one side only).
    let mut domains: std::collections::BTreeMap<(&str, &str), [Option<[u64; 3]>; 2]> =
        Default::default();
    for (k, side) in [&w.before.domains, &w.after.domains]
        .into_iter()
        .enumerate()
    {
        for d in side {
            domains
                .entry((d.level.name(), d.domain.as_str()))
                .or_default()[k] = Some([d.capacity, d.load, d.free]);
        }
    }
    let view =
        |s: Option<[u64; 3]>| s.map(|[c, l, f]| json!({"capacity": c, "load": l, "free": f}));
    let changed: Vec<_> = domains
        .iter()
        .filter(|(_, [b, a])| b != a)
        .take(crate::limits::LIST_LIMIT)
        .map(|((level, domain), [b, a])| {
            json!({"level": level, "domain": domain, "before": view(*b), "after": view(*a)})
        })
        .collect();
    json!({
        "cells": placements.len(),
        "domains_changed": changed,
        "elapsed_ms": elapsed_ms,
        "before": side(before, &w.before),
        "after": side(after, &w.after),
        "newly_unsafe": w.newly_unsafe.len(),
        "newly_unsafe_cells": ids(&w.newly_unsafe),
        "pairs": pairs,
        "repair_plan": plan,
    })
}

/// The answer as text, for a terminal.
pub fn summary_text(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let num = |x: &serde_json::Value| x.as_f64().map_or("-".into(), |f| format!("{f:.3e}"));
    let _ = writeln!(
        s,
        "what-if over {} cells ({:.0} ms)",
        v["cells"],
        v["elapsed_ms"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(s, "{:<34} {:>14} {:>14}", "", "before", "after");
    let row = |s: &mut String, name: &str, b: String, a: String| {
        let _ = writeln!(s, "{name:<34} {b:>14} {a:>14}");
    };
    let (b, a) = (&v["before"], &v["after"]);
    if !b["scenario"].is_null() || !a["scenario"].is_null() {
        row(
            &mut s,
            "cells out under the scenario",
            b["scenario"]["out"].to_string(),
            a["scenario"]["out"].to_string(),
        );
        row(
            &mut s,
            "cells degraded under the scenario",
            b["scenario"]["degraded"].to_string(),
            a["scenario"]["degraded"].to_string(),
        );
    }
    if !b["report"].is_null() {
        row(
            &mut s,
            "single-failure unsafe cells",
            b["report"]["unsafe"].to_string(),
            a["report"]["unsafe"].to_string(),
        );
        row(
            &mut s,
            "down cells",
            b["report"]["down"].to_string(),
            a["report"]["down"].to_string(),
        );
        for k in ["mean", "p50", "p99", "max", "total"] {
            row(
                &mut s,
                &format!("risk {k} (outages/year)"),
                num(&b["report"]["risk"][k]),
                num(&a["report"]["risk"][k]),
            );
        }
        row(
            &mut s,
            "node capacity of active hosts",
            b["report"]["capacity"].to_string(),
            a["report"]["capacity"].to_string(),
        );
    }
    row(
        &mut s,
        "nodes on failed/draining/removed servers",
        b["nodes_to_move"].to_string(),
        a["nodes_to_move"].to_string(),
    );
    let _ = writeln!(s, "newly unsafe cells: {}", v["newly_unsafe"]);
    if let Some(changed) = v["domains_changed"].as_array().filter(|d| !d.is_empty()) {
        let _ = writeln!(
            s,
            "domains whose capacity or load changed (free before -> after):"
        );
        for d in changed.iter().take(20) {
            let free =
                |x: &serde_json::Value| x["free"].as_u64().map_or("-".into(), |f| f.to_string());
            let _ = writeln!(
                s,
                "  {:<10} {:<24} {} -> {}",
                d["level"].as_str().unwrap_or(""),
                d["domain"].as_str().unwrap_or(""),
                free(&d["before"]),
                free(&d["after"])
            );
        }
        if changed.len() > 20 {
            let _ = writeln!(
                s,
                "  ... {} in all (--json or --out-dir for every one)",
                changed.len()
            );
        }
    }
    if let Some(p) = v["repair_plan"].as_object() {
        let _ = writeln!(
            s,
            "repair plan after the change: {} moves, {} goals unmet (nodes left to move {})",
            p["moves"], p["unmet"], p["nodes_to_move_after"]
        );
    }
    if let Some(h) = v["headroom"].as_object() {
        let _ = writeln!(
            s,
            "headroom after the change: {} more cells of {} nodes fit ({})",
            h["cells"],
            h["size"],
            h["stopped_by"]
                .as_str()
                .map_or("the search's limit reached".to_owned(), |w| format!(
                    "then: {w}"
                ))
        );
    }
    if let Some(pairs) = v["pairs"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(
            s,
            "element pairs that put out cells neither does alone, after:"
        );
        for p in pairs {
            let _ = writeln!(
                s,
                "  {} + {}: {} cells",
                p["a"].as_str().unwrap_or(""),
                p["b"].as_str().unwrap_or(""),
                p["cells"]
            );
        }
    }
    s
}
