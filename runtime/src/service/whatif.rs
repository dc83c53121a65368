//! What-if over the ledger: a change of the active inventory and/or a failure scenario,
//! on the ledger's current cells, before and after side by side. Commits nothing.

use optimizer::ReportOptions;
use serde_json::Value;

use crate::dto::WhatIfRequest;
use crate::Error;

use super::inventory::inventory_error;
use super::{Heavy, Service};

/// Nodes per cell of a headroom count.
const HEADROOM_SIZE: usize = 7;
/// Most cells a headroom count places unless the request says otherwise: an answer in
/// seconds on an empty AZ.
const DEFAULT_HEADROOM_LIMIT: usize = 10_000;
/// Most element pairs a what-if ranks.
const MAX_PAIRS: usize = crate::limits::LIST_LIMIT;

impl Service {
    /// Judges the ledger's cells before and after the request's change and failure
    /// scenario (and, if asked, the headroom after it), as the JSON of
    /// [`crate::whatif::summary`] with `valid: true`. A change that does not apply (an id
    /// the inventory lacks, an edit that breaks the contract) is an answer too, like a
    /// validation's: `valid: false` with every problem named. Commits nothing.
    pub async fn whatif(&self, req: WhatIfRequest) -> Result<Value, Error> {
        match self.whatif_summary(req).await {
            Ok(mut summary) => {
                summary["valid"] = Value::Bool(true);
                Ok(summary)
            }
            Err(Error::InvalidInventory { details, .. }) => Ok(serde_json::json!({
                "valid": false,
                "errors": details["errors"],
                "warnings": details["warnings"],
            })),
            Err(e) => Err(e),
        }
    }

    async fn whatif_summary(&self, req: WhatIfRequest) -> Result<Value, Error> {
        let pairs_top = req.pairs_top.unwrap_or(10);
        let most = crate::limits::MAX_HEADROOM;
        if let Some(n) = req.headroom_limit.filter(|&n| n == 0 || n > most) {
            return Err(Error::InvalidField {
                field: "headroom_limit".into(),
                message: format!("{n}: from 1 to {most}"),
            });
        }
        if pairs_top > MAX_PAIRS {
            return Err(Error::InvalidField {
                field: "pairs_top".into(),
                message: format!("{pairs_top}: at most {MAX_PAIRS}"),
            });
        }
        // Every cell evaluated twice: one at a time, like reports.
        let run = self.heavy.start(Heavy::WhatIf).await?;
        let fleet = run.within(self.fleet()).await?;
        let (zone, placements) = (fleet.zone, fleet.placements);
        let placer = self.core.placer.clone();
        run.compute(move |stop| {
            let placer = optimizer::place::PlaceOptions { stop, ..placer };
            if req.change.is_scenario_only() && !req.headroom {
                // A scenario alone: on the zone as loaded, nothing rebuilt.
                let inv: &topology::Inventory = &zone.inventory;
                let failed = crate::whatif::resolve_fail(&req.change.fail, inv)
                    .map_err(|e| inventory_error(Error::Inventory(e)))?;
                let options = optimizer::whatif::Options {
                    stop: placer.stop.clone(),
                    fail_before: Some(failed.clone()),
                    fail_after: Some(failed),
                    ..optimizer::whatif::Options::default()
                };
                let started = std::time::Instant::now();
                let side = (inv, &zone.model, placements.as_slice());
                let w = optimizer::whatif::compare(side, side, &options);
                let elapsed = started.elapsed().as_secs_f64() * 1e3;
                return Ok(crate::whatif::summary(inv, inv, &placements, &w, elapsed));
            }
            // The side before is the zone as loaded; the export is read once, for the
            // change's edits, and only the side after is validated and modelled.
            let raw = zone.source.raw()?;
            let all: Vec<&topology::Placement> = placements.iter().collect();
            let table = crate::load::placement_table(&zone.inventory, &all);
            let sides =
                crate::whatif::prepare_on(&zone.inventory, &zone.model, &raw, &table, &req.change)
                    .map_err(|e| inventory_error(Error::Inventory(e)))?;
            let scenario_only = req.change.is_scenario_only();
            let options = optimizer::whatif::Options {
                report: (!scenario_only).then_some(ReportOptions::default()),
                fail_before: sides.fail_before.clone(),
                fail_after: sides.fail_after.clone(),
                pairs_top: if scenario_only { 0 } else { pairs_top },
                plan: (!scenario_only).then(|| placer.clone()),
                domains: !scenario_only,
                stop: placer.stop.clone(),
            };
            let started = std::time::Instant::now();
            let w = sides.compare(&options);
            let mut summary = crate::whatif::summary(
                &sides.before,
                sides.after(),
                &sides.placements_after,
                &w,
                started.elapsed().as_secs_f64() * 1e3,
            );
            if req.headroom {
                let limit = (
                    HEADROOM_SIZE,
                    req.headroom_limit.unwrap_or(DEFAULT_HEADROOM_LIMIT),
                );
                summary["headroom"] = crate::whatif::headroom(&sides, None, limit, &placer)
                    .map_err(|e| inventory_error(Error::Inventory(e)))?;
            }
            Ok(summary)
        })
        .await
    }
}
