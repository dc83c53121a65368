//! `cellplacer whatif`: what a change of the inventory or a failure scenario does to the
//! placed cells, before and after side by side, with an optional headroom count.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use optimizer::place::PlaceOptions;
use optimizer::ReportOptions;

use super::output::{emit, emitln};

/// The arguments of `whatif`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Inventory export directory.
    dir: PathBuf,
    /// The cells as placed (cell_id, clients, nodes; .csv or .parquet).
    #[arg(long)]
    placements: PathBuf,
    /// An element failing in the scenario (repeat for more).
    #[arg(long)]
    fail: Vec<String>,
    /// A change file (TOML): remove, refeed, server, rates, add, fail.
    #[arg(long)]
    change: Option<PathBuf>,
    /// Element pairs to rank after the change.
    #[arg(long, default_value_t = 10)]
    pairs_top: usize,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// Write typed Parquet tables: cells (before and after), elements, pairs, domains.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also count how many more cells fit after the change (placed by the engine under
    /// the rules, batch by batch, until the first it cannot place).
    #[arg(long)]
    headroom: bool,
    /// The client mix of the headroom count: a cells table (default: the placed cells'
    /// client sets), cycled.
    #[arg(long)]
    mix: Option<PathBuf>,
    /// Nodes per cell of the headroom count.
    #[arg(long, default_value_t = 7)]
    size: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Applies the change and the scenario to the inventory, compares the cells before and
/// after, prints the summary and writes the tables asked for (nothing else is written).
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        placements,
        fail,
        change,
        pairs_top,
        json,
        out_dir,
        headroom,
        mix,
        size,
        threads,
    } = args;
    let raw = topology::ingest::read_dir(&dir).context("reading the inventory")?;
    let table = runtime::load::read_table(&placements).context("loading the placements")?;
    let mut change: runtime::dto::Change = match &change {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        None => runtime::dto::Change::default(),
    };
    change.fail.extend(fail);
    let sides = runtime::whatif::prepare(&raw, &table, &change).context("the change")?;
    // A scenario alone changes no risk: only the cells' standing under it.
    let scenario_only = change.is_scenario_only();
    let options = optimizer::whatif::Options {
        report: (!scenario_only).then_some(ReportOptions {
            threads,
            ..ReportOptions::default()
        }),
        fail_before: sides.fail_before.clone(),
        fail_after: sides.fail_after.clone(),
        pairs_top: if scenario_only { 0 } else { pairs_top },
        plan: (!scenario_only).then(PlaceOptions::default),
        domains: !scenario_only || out_dir.is_some(),
        stop: optimizer::Stop::default(),
    };
    let started = std::time::Instant::now();
    let w = sides.compare(&options);
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let mut summary = runtime::whatif::summary(
        &sides.before,
        sides.after(),
        &sides.placements_after,
        &w,
        elapsed,
    );
    if headroom {
        let mix = mix
            .as_ref()
            .map(|p| runtime::load::read_table(p).context("reading the mix"))
            .transpose()?;
        summary["headroom"] = runtime::whatif::headroom(
            &sides,
            mix.as_ref(),
            (size, optimizer::whatif::HEADROOM_LIMIT),
            &PlaceOptions::default(),
        )
        .context("the headroom's mix")?;
    }
    if let Some(out) = &out_dir {
        let mut tables = vec![
            (
                "cells",
                runtime::reports::whatif_cells(&sides.placements_after, &w),
            ),
            ("domains", runtime::reports::whatif_domains(&w)),
            (
                "pairs",
                runtime::reports::pairs(
                    sides.after(),
                    sides.after_model(),
                    &sides.placements_after,
                    &w.pairs,
                ),
            ),
        ];
        if !scenario_only {
            tables.push((
                "elements",
                runtime::reports::whatif_elements(&sides.before, sides.after(), &w),
            ));
        }
        runtime::reports::write(out, &tables).context("writing the what-if tables")?;
    }
    if json {
        emitln(serde_json::to_string_pretty(&summary)?)?;
    } else {
        emit(runtime::whatif::summary_text(&summary))?;
    }
    Ok(ExitCode::SUCCESS)
}
