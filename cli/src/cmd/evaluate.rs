//! `cellplacer evaluate`: the fleet report of a placement export on an inventory, as text
//! or JSON, with optional per-cell and notebook tables.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use optimizer::{fleet_report, ReportOptions};
use runtime::view::FleetReportView;
use topology::ingest::write_table;

use super::output::{emit, emitln, load_placed};

/// Element pairs in `evaluate --out-dir`'s pairs table.
const OUT_DIR_PAIRS: usize = 100;

/// The arguments of `evaluate`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Inventory export directory (NAME.csv or NAME.parquet per table).
    dir: PathBuf,
    /// Placement export (cell_id, clients, nodes; .csv or .parquet), e.g. the output
    /// of `cellplacer place`.
    placements: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write one row per cell (cell_id, risk, single_risk, pair_risk,
    /// single_failure_safe, breaking_elements, down) to this file, CSV or Parquet by
    /// its extension.
    #[arg(long)]
    cells_out: Option<PathBuf>,
    /// Skip the exact per-cell risk (pairs); blast radius and safety are still exact.
    #[arg(long)]
    no_risk: bool,
    /// How many elements and cells to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Also list the K element pairs that put out the most cells while neither
    /// element does alone (text output; one more pass over the cells).
    #[arg(long, default_value_t = 0)]
    pairs_top: usize,
    /// Write typed Parquet tables for notebooks into this directory: cells, elements
    /// (every one, with its blast radius), pairs (the top 100) and domains (load and
    /// free capacity per datacenter, room, row and power device).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Loads the inventory and the placements, prints the fleet report and writes the tables
/// asked for.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        placements,
        json,
        cells_out,
        no_risk,
        top,
        pairs_top,
        out_dir,
        threads,
    } = args;
    let (loaded, _, placements) = load_placed(&dir, &placements)?;
    let options = ReportOptions {
        risk: !no_risk,
        top,
        threads,
        stop: optimizer::Stop::default(),
    };
    let report = fleet_report(&loaded.inventory, &loaded.model, &placements, &options);
    if let Some(path) = &cells_out {
        let table = runtime::view::cells_table(&loaded.inventory, &placements, &report);
        write_table(path, &table).context("writing the per-cell table")?;
    }
    if let Some(dir) = &out_dir {
        let pairs = optimizer::report::pair_blast_radius(
            &loaded.model,
            &placements,
            OUT_DIR_PAIRS,
            threads,
            &optimizer::Stop::default(),
        );
        let domains = optimizer::whatif::domain_loads(&loaded.inventory, &placements);
        let inv = &loaded.inventory;
        runtime::reports::write(
            dir,
            &[
                ("cells", runtime::reports::cells(inv, &placements, &report)),
                ("elements", runtime::reports::elements(inv, &report)),
                (
                    "pairs",
                    runtime::reports::pairs(inv, &loaded.model, &placements, &pairs),
                ),
                ("domains", runtime::reports::domains(&domains)),
            ],
        )
        .context("writing the report tables")?;
    }
    let view = FleetReportView::new(&loaded.inventory, &placements, &report);
    if json {
        emitln(serde_json::to_string_pretty(&view)?)?;
    } else {
        emit(view.text())?;
    }
    if pairs_top > 0 && !json {
        let started = std::time::Instant::now();
        let pairs = optimizer::report::pair_blast_radius(
            &loaded.model,
            &placements,
            pairs_top,
            threads,
            &optimizer::Stop::default(),
        );
        emitln(format_args!(
            "element pairs that put out cells neither element does alone (top {pairs_top}, {:.2?}):",
            started.elapsed()
        ))?;
        let inv = &loaded.inventory;
        for p in &pairs {
            let (a, b) = (
                &inv.elements[p.pair.0.index()],
                &inv.elements[p.pair.1.index()],
            );
            let first: Vec<&str> = p
                .cells
                .iter()
                .take(5)
                .map(|&c| placements[c].cell_id.as_str())
                .collect();
            emitln(format_args!(
                "  {} ({}) + {} ({}): {} cells, e.g. {}",
                a.id,
                a.label,
                b.id,
                b.label,
                p.cells.len(),
                first.join(", ")
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
