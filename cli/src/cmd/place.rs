//! `cellplacer place`: places a cell workload in batch and writes a placement export, and
//! the cells it could not place with why (exit 3).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use optimizer::place::batch::place_batch_with_progress;
use optimizer::place::{Occupancy, PlaceOptions, Solver};
use topology::ingest::write_table;
use topology::raw::RawTable;
use topology::Placement;

use super::output::emitln;
use super::PARTLY_PLACED;

/// The arguments of `place`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Inventory export directory (NAME.csv or NAME.parquet per table).
    dir: PathBuf,
    /// Cell workload: cell_id, clients (server ids joined by ';'), optional size.
    /// `cellplacer generate` writes one as cells.csv next to the inventory.
    #[arg(long)]
    cells: PathBuf,
    /// Where to write the placements (cell_id, clients, nodes): .csv or .parquet.
    #[arg(long)]
    out: PathBuf,
    /// heuristic, ilp (HiGHS) or microlp.
    #[arg(long, default_value = "heuristic")]
    solver: Solver,
    /// Existing placements: kept as they are (their load and the overlap rule bind
    /// the new cells), written to the output first; workload cells whose id they
    /// already place are skipped.
    #[arg(long)]
    existing: Option<PathBuf>,
    /// Where to list the cells not placed, with why (cell_id, reason); default: next
    /// to --out, named like it with `.unplaced.csv`.
    #[arg(long)]
    unplaced: Option<PathBuf>,
    /// Candidate servers per cell.
    #[arg(long, default_value_t = PlaceOptions::default().pool_size)]
    pool: usize,
    /// Seed of the search's random restarts and tie-breaks: the same inputs and seed
    /// give the same placements.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Balance ceiling: no server above this many times the mean utilisation (plus
    /// five nodes); 0 turns the rule off.
    #[arg(long, default_value_t = PlaceOptions::default().balance.unwrap_or(0.0))]
    balance: f64,
    /// Cells solved at once (in parallel) before they commit in order; part of the
    /// result, like the seed.
    #[arg(long, default_value_t = PlaceOptions::default().batch_window)]
    window: usize,
}

/// Places the workload's new cells around the existing ones and writes them all; exits
/// [`PARTLY_PLACED`] when some cells could not be placed.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        cells,
        out,
        solver,
        existing,
        unplaced,
        pool,
        seed,
        balance,
        window,
    } = args;
    let loaded = runtime::load::inventory(&dir).context("loading the inventory")?;
    let inv = &loaded.inventory;
    let mut cells = runtime::load::cells(&cells, inv).context("loading the cells")?;
    let mut occupancy = Occupancy::new(inv);
    let kept = match existing {
        Some(path) => {
            runtime::load::placements(&path, inv).context("loading the existing placements")?
        }
        None => Vec::new(),
    };
    for p in &kept {
        occupancy.insert(&p.nodes);
    }
    let placed_before: std::collections::HashSet<&str> =
        kept.iter().map(|p| p.cell_id.as_str()).collect();
    let asked = cells.len();
    cells.retain(|c| !placed_before.contains(c.cell_id.as_str()));
    let skipped = asked - cells.len();
    let options = PlaceOptions {
        solver,
        pool_size: pool,
        seed,
        balance: (balance > 0.0).then_some(balance),
        batch_window: window.max(1),
        ..PlaceOptions::default()
    };
    // A progress bar on stderr only when a person watches it; the summary always.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new(cells.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "placing {bar:40} {pos}/{len} cells, {per_sec}, eta {eta}",
            )
            .expect("a valid template"),
        );
        bar
    });
    let outcome = place_batch_with_progress(
        inv,
        &loaded.model,
        &cells,
        &mut occupancy,
        &options,
        &mut |done| {
            if let Some(bar) = &bar {
                bar.set_position(done as u64);
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let all: Vec<&Placement> = kept.iter().chain(&outcome.placements).collect();
    write_table(&out, &runtime::load::placement_table(inv, &all))
        .context("writing the placements")?;
    if skipped > 0 {
        emitln(format_args!(
            "skipped {skipped} cells already placed in the existing placements"
        ))?;
    }
    emitln(format_args!(
        "placed {} of {} cells in {:.2?} ({} not single-failure safe, {} made safe by a \
         re-placement on the final state, {} solved again after a clash in their window); \
         wrote {}",
        outcome.placements.len(),
        cells.len(),
        outcome.elapsed,
        outcome.unsafe_cells,
        outcome.repaired,
        outcome.resolved,
        out.display()
    ))?;
    if !outcome.unsafe_ids.is_empty() {
        emitln(format_args!(
            "not single-failure safe (no choice on the final state makes them safe): {}",
            some_ids(&outcome.unsafe_ids)
        ))?;
    }
    if outcome.failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let unplaced = unplaced.unwrap_or_else(|| out.with_extension("unplaced.csv"));
    let mut list = RawTable::new(&["cell_id", "reason"]);
    for (cell, e) in &outcome.failed {
        list.push(&[cell.clone(), e.to_string()]);
    }
    write_table(&unplaced, &list).context("writing the unplaced cells")?;
    for (cell, e) in &outcome.failed {
        emitln(format_args!("not placed: cell '{cell}': {e}"))?;
    }
    emitln(format_args!(
        "{} cells not placed, listed with why in {}",
        outcome.failed.len(),
        unplaced.display()
    ))?;
    Ok(ExitCode::from(PARTLY_PLACED))
}

/// Unsafe cells named on the summary at most; the rest are counted.
const SHOWN_IDS: usize = 5;

/// The first [`SHOWN_IDS`] of `ids` joined by commas, and how many more.
fn some_ids(ids: &[String]) -> String {
    let shown = ids[..ids.len().min(SHOWN_IDS)].join(", ");
    match ids.len().saturating_sub(SHOWN_IDS) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
