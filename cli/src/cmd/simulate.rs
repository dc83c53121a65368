//! `cellplacer simulate`: a placement's years on a virtual clock (`sim`): every element
//! failing and coming back on the seed's trace, the cells judged exactly at every event;
//! the outages and cell-hours beside the exact risk's expectation, as text or JSON, and
//! the timeline as Parquet tables for notebooks.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use optimizer::report::cell_risk_parts;
use runtime::reports::{boolean, float, int, text};
use serde::Serialize;
use sim::outcome::Cause;
use sim::{Outcome, Params, RepairTimes, TraceParams};
use topology::ingest::TypedTable;
use topology::Inventory;

use super::output::{emit, emitln, load_placed};

/// How repair times are drawn.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Repair {
    /// Exponential, of mean the element's repair_hours.
    Exponential,
    /// Exactly the element's repair_hours.
    Fixed,
}

/// What moves nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PolicyName {
    /// Nothing moves.
    Static,
    /// The service's autopilot, on the simulation's clock.
    Autopilot,
}

/// The arguments of `simulate`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Inventory export directory (NAME.csv or NAME.parquet per table).
    dir: PathBuf,
    /// Placement export (cell_id, clients, nodes; .csv or .parquet).
    #[arg(long)]
    placements: PathBuf,
    /// Simulated years.
    #[arg(long, default_value_t = 1.0)]
    years: f64,
    /// Seed of the failure trace (the trace depends only on the inventory, the seed and the
    /// stress: two placements are compared on one trace).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Every element fails at afr x stress per year.
    #[arg(long, default_value_t = 1.0)]
    stress: f64,
    /// Repair times: exponential of mean repair_hours, or exactly repair_hours.
    #[arg(long, value_enum, default_value = "exponential")]
    repair: Repair,
    /// What moves nodes: nothing (static), or the service's own autopilot on the virtual
    /// clock (every failure and repair reported to it as a health event; its ledger on a
    /// throwaway SQLite file).
    #[arg(long, value_enum, default_value = "static")]
    policy: PolicyName,
    /// The autopilot's grace before it moves nodes off a failed server (seconds; default
    /// the service's, 600).
    #[arg(long)]
    grace_s: Option<f64>,
    /// The autopilot's moves per second (default the service's, 10).
    #[arg(long)]
    rate: Option<f64>,
    /// How long a move takes (seconds): the new node serves and the old one leaves when
    /// it ends, and the cell takes no other move meanwhile.
    #[arg(long, default_value_t = 60.0)]
    move_s: f64,
    /// With the static policy, also judge every cell's single-failure safety exactly on
    /// the zone the failures leave, by the service itself (the autopilot's judge, not
    /// acting): peak cells unsafe and the time from a failure until its cells are safe
    /// again. The autopilot always judges. Costs a health report per event.
    #[arg(long)]
    exact_safety: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Write the timeline as Parquet tables for notebooks into this directory: events
    /// (every failure and repair, with the cells it touched and put out), outages, cells
    /// (each cell's outages, hours out and exact risk), recoveries (each failure's time
    /// until its cells were whole again) and moves.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Worker threads for the exact risks (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// The summary as `--json` prints it (the same inputs give the same bytes: no timings).
#[derive(Debug, Serialize)]
struct SummaryView {
    years: f64,
    seed: u64,
    stress: f64,
    repair: &'static str,
    policy: &'static str,
    move_s: f64,
    moves: std::collections::BTreeMap<String, u64>,
    unmanaged_cells: u64,
    cells: u64,
    elements: u64,
    transitions: u64,
    failures: u64,
    down_at_start: u64,
    impaired_at_start: u64,
    outage_events: u64,
    expected_outage_events: f64,
    standard_error: f64,
    cell_hours_unavailable: f64,
    unavailable_per_1000_cell_years: f64,
    peak_cells_out: u64,
    peak_cells_impaired: u64,
    recoveries: u64,
    unrecovered: u64,
    time_to_whole_p50_h: f64,
    time_to_whole_p99_h: f64,
    time_to_whole_max_h: f64,
    unsafe_at_start: Option<u64>,
    peak_cells_unsafe: Option<u64>,
    unsafe_recoveries: Option<u64>,
    unsafe_unrecovered: Option<u64>,
    time_to_safe_p50_h: Option<f64>,
    time_to_safe_p99_h: Option<f64>,
    time_to_safe_max_h: Option<f64>,
}

impl SummaryView {
    fn new(s: &sim::Summary, unmanaged_cells: u64) -> SummaryView {
        SummaryView {
            years: s.years,
            seed: s.seed,
            stress: s.stress,
            repair: s.repair,
            policy: s.policy,
            move_s: s.move_h * 3600.0,
            moves: s.moves.clone(),
            unmanaged_cells,
            cells: s.cells,
            elements: s.elements,
            transitions: s.transitions,
            failures: s.failures,
            down_at_start: s.down_at_start,
            impaired_at_start: s.impaired_at_start,
            outage_events: s.outage_events,
            expected_outage_events: s.expected_outage_events,
            standard_error: s.standard_error,
            cell_hours_unavailable: s.cell_hours_unavailable,
            unavailable_per_1000_cell_years: s.unavailable_per_1000_cell_years,
            peak_cells_out: s.peak_cells_out,
            peak_cells_impaired: s.peak_cells_impaired,
            recoveries: s.recoveries,
            unrecovered: s.unrecovered,
            time_to_whole_p50_h: s.time_to_whole_p50_h,
            time_to_whole_p99_h: s.time_to_whole_p99_h,
            time_to_whole_max_h: s.time_to_whole_max_h,
            unsafe_at_start: s.unsafe_at_start,
            peak_cells_unsafe: s.peak_cells_unsafe,
            unsafe_recoveries: s.unsafe_recoveries,
            unsafe_unrecovered: s.unsafe_unrecovered,
            time_to_safe_p50_h: s.time_to_safe_p50_h,
            time_to_safe_p99_h: s.time_to_safe_p99_h,
            time_to_safe_max_h: s.time_to_safe_max_h,
        }
    }

    fn text(&self) -> String {
        let safety = match (
            self.unsafe_at_start,
            self.peak_cells_unsafe,
            self.time_to_safe_p50_h,
            self.time_to_safe_p99_h,
            self.time_to_safe_max_h,
        ) {
            (Some(start), Some(peak), Some(p50), Some(p99), Some(max)) => format!(
                "cells not single-failure safe (judged exactly by the service): {start} at the start, \
                 peak {peak}; time to safe after a failure: p50 {p50:.2} h, p99 {p99:.2} h, \
                 max {max:.2} h ({} failures left cells unsafe, {} not safe by the end)\n",
                self.unsafe_recoveries.unwrap_or(0),
                self.unsafe_unrecovered.unwrap_or(0)
            ),
            _ => String::new(),
        };
        let z = if self.standard_error > 0.0 {
            format!(
                "{:+.2}",
                (self.outage_events as f64 - self.expected_outage_events) / self.standard_error
            )
        } else {
            "n/a".to_string()
        };
        format!(
            "simulated {years} years of {cells} cells on {elements} elements (seed {seed}, stress {stress}, \
             {repair} repairs, policy {policy}): {transitions} transitions, {failures} failures\n\
             outage events: {events} (exact risk expects {expected:.1}, standard error {se:.1}, z {z})\n\
             cell-hours unavailable: {hours:.1} ({per:.4} per 1,000 cell-years)\n\
             down at the start: {down}; not whole at the start: {impaired}\n\
             peak cells out: {peak_out}; peak cells not whole: {peak_impaired}\n\
             time to whole after a failure: p50 {p50:.2} h, p99 {p99:.2} h, max {max:.2} h \
             ({recoveries} failures impaired cells, {unrecovered} not whole by the end)\n\
             {safety}moves: {moves} (a move takes {move_s} s){unmanaged}\n",
            moves = if self.moves.is_empty() {
                "none".to_string()
            } else {
                self.moves
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            move_s = self.move_s,
            unmanaged = if self.unmanaged_cells > 0 {
                format!(
                    "; {} cells the service refused stay where they are",
                    self.unmanaged_cells
                )
            } else {
                String::new()
            },
            years = self.years,
            cells = self.cells,
            elements = self.elements,
            seed = self.seed,
            stress = self.stress,
            repair = self.repair,
            policy = self.policy,
            transitions = self.transitions,
            failures = self.failures,
            events = self.outage_events,
            expected = self.expected_outage_events,
            se = self.standard_error,
            hours = self.cell_hours_unavailable,
            per = self.unavailable_per_1000_cell_years,
            down = self.down_at_start,
            impaired = self.impaired_at_start,
            peak_out = self.peak_cells_out,
            peak_impaired = self.peak_cells_impaired,
            p50 = self.time_to_whole_p50_h,
            p99 = self.time_to_whole_p99_h,
            max = self.time_to_whole_max_h,
            recoveries = self.recoveries,
            unrecovered = self.unrecovered,
        )
    }
}

/// Loads the inventory and the placements, simulates, prints the summary and writes the
/// tables asked for.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (loaded, table, placements) = load_placed(&args.dir, &args.placements)?;
    anyhow::ensure!(
        args.years.is_finite() && args.years > 0.0,
        "--years must be a positive number, not {}",
        args.years
    );
    anyhow::ensure!(
        args.stress.is_finite() && args.stress >= 0.0,
        "--stress must be a number >= 0, not {}",
        args.stress
    );
    let started = Instant::now();
    let risks = cell_risk_parts(&loaded.model, &placements, args.threads);
    let risk_time = started.elapsed();
    anyhow::ensure!(
        args.move_s.is_finite() && args.move_s >= 0.0,
        "--move-s must be a number of seconds >= 0, not {}",
        args.move_s
    );
    let params = Params {
        years: args.years,
        move_h: args.move_s / 3600.0,
        trace: TraceParams {
            seed: args.seed,
            stress: args.stress,
            repair: match args.repair {
                Repair::Exponential => RepairTimes::Exponential,
                Repair::Fixed => RepairTimes::Fixed,
            },
        },
    };
    let started = Instant::now();
    let (outcome, unmanaged) = match args.policy {
        PolicyName::Static if !args.exact_safety => (
            sim::simulate(&loaded.inventory, &placements, &risks, &params),
            0,
        ),
        policy => {
            // The service's ledger, thrown away with the run.
            let scratch = tempfile::Builder::new()
                .prefix("cellplacer-simulate-")
                .tempdir()
                .context("creating the scratch ledger's directory")?;
            let settings = runtime::dto::AutopilotUpdate {
                grace_s: args.grace_s,
                rate: args.rate,
                ..Default::default()
            };
            let mut pilot = runtime::simulate::Autopilot::start(
                &args.dir,
                &loaded.inventory,
                table,
                &placements,
                &scratch.path().join("ledger.db"),
                settings,
                args.move_s,
            )
            .context("starting the service for the autopilot")?;
            if policy == PolicyName::Static {
                pilot = pilot.judge_only();
            }
            for (cell, why) in pilot.refused.iter().take(3) {
                eprintln!("note: the service refused cell {cell} ({why}); it stays where it is");
            }
            let unmanaged = pilot.refused.len() as u64;
            let outcome =
                sim::simulate_with(&loaded.inventory, &placements, &risks, &params, &mut pilot);
            pilot.stop();
            (outcome?, unmanaged)
        }
    };
    let elapsed = started.elapsed();
    // Timings go to stderr: standard output is the same for the same inputs.
    eprintln!(
        "exact risks of {} cells in {:.2?}; {} transitions simulated in {:.2?} ({:.0} per second)",
        placements.len(),
        risk_time,
        outcome.summary.transitions,
        elapsed,
        outcome.summary.transitions as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(dir) = &args.out_dir {
        let inv = &loaded.inventory;
        runtime::reports::write(
            dir,
            &[
                ("events", events_table(inv, &outcome)),
                ("outages", outages_table(inv, &placements, &outcome)),
                ("cells", cells_table(&placements, &risks, &outcome, &params)),
                ("recoveries", recoveries_table(inv, &outcome.recoveries)),
                ("moves", moves_table(inv, &placements, &outcome)),
                (
                    "safety",
                    recoveries_table(inv, outcome.safety.as_ref().map_or(&[], |s| &s.recoveries)),
                ),
            ],
        )
        .context("writing the simulation tables")?;
    }
    let view = SummaryView::new(&outcome.summary, unmanaged);
    if args.json {
        emitln(serde_json::to_string_pretty(&view)?)?;
    } else {
        emit(view.text())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn element_columns(
    table: TypedTable,
    inv: &Inventory,
    elements: impl Iterator<Item = topology::ElementId> + Clone,
) -> TypedTable {
    table
        .column(
            "element",
            text(elements.clone().map(|e| inv.elements[e.index()].id.clone())),
        )
        .column(
            "kind",
            text(elements.map(|e| inv.elements[e.index()].label.clone())),
        )
}

fn events_table(inv: &Inventory, outcome: &Outcome) -> TypedTable {
    let ev = &outcome.events;
    let table = TypedTable::default().column("at_h", float(ev.iter().map(|e| e.at_h)));
    element_columns(table, inv, ev.iter().map(|e| e.element))
        .column("fails", boolean(ev.iter().map(|e| e.fails)))
        .column(
            "cells_touched",
            int(ev.iter().map(|e| u64::from(e.cells_touched))),
        )
        .column(
            "outages_started",
            int(ev.iter().map(|e| u64::from(e.outages_started))),
        )
        .column("cells_out", int(ev.iter().map(|e| u64::from(e.cells_out))))
        .column(
            "cells_impaired",
            int(ev.iter().map(|e| u64::from(e.cells_impaired))),
        )
}

fn outages_table(
    inv: &Inventory,
    placements: &[topology::Placement],
    outcome: &Outcome,
) -> TypedTable {
    let o = &outcome.outages;
    TypedTable::default()
        .column(
            "cell_id",
            text(
                o.iter()
                    .map(|r| placements[r.cell as usize].cell_id.clone()),
            ),
        )
        .column("start_h", float(o.iter().map(|r| r.start_h)))
        .column("end_h", float(o.iter().map(|r| r.end_h)))
        .column("hours", float(o.iter().map(|r| r.end_h - r.start_h)))
        .column(
            "cause",
            text(o.iter().map(|r| match r.cause {
                Cause::Start => "start".to_string(),
                Cause::Move => "move".to_string(),
                Cause::Transition(e, _) => inv.elements[e.index()].id.clone(),
            })),
        )
        .column(
            "cause_fails",
            topology::ingest::Values::Bool(
                o.iter()
                    .map(|r| match r.cause {
                        Cause::Transition(_, fails) => Some(fails),
                        _ => None,
                    })
                    .collect(),
            ),
        )
        .column("ongoing", boolean(o.iter().map(|r| r.ongoing)))
}

fn cells_table(
    placements: &[topology::Placement],
    risks: &[optimizer::report::RiskParts],
    outcome: &Outcome,
    params: &Params,
) -> TypedTable {
    let k = params.trace.stress;
    TypedTable::default()
        .column(
            "cell_id",
            text(placements.iter().map(|p| p.cell_id.clone())),
        )
        .column(
            "outage_events",
            int(outcome.cells.iter().map(|c| u64::from(c.outage_events))),
        )
        .column(
            "hours_out",
            float(outcome.cells.iter().map(|c| c.hours_out)),
        )
        .column("down", boolean(risks.iter().map(|r| r.down)))
        .column(
            "risk",
            float(
                risks
                    .iter()
                    .map(|r| if r.down { 1.0 } else { r.single + r.pair }),
            ),
        )
        .column("single_risk", float(risks.iter().map(|r| r.single)))
        .column("pair_risk", float(risks.iter().map(|r| r.pair)))
        .column(
            "expected_events",
            float(
                risks
                    .iter()
                    .map(|r| params.years * (k * r.single + k * k * r.pair)),
            ),
        )
}

/// Each transition that impaired cells (or left them unsafe), and how long until they
/// were all whole (or safe) again.
fn recoveries_table(inv: &Inventory, r: &[sim::outcome::Recovery]) -> TypedTable {
    let table = TypedTable::default().column("at_h", float(r.iter().map(|x| x.at_h)));
    element_columns(table, inv, r.iter().map(|x| x.element))
        .column("fails", boolean(r.iter().map(|x| x.fails)))
        .column("cells", int(r.iter().map(|x| u64::from(x.cells))))
        .column(
            "took_h",
            float(r.iter().map(|x| x.took_h.unwrap_or(f64::NAN))),
        )
}

fn moves_table(
    inv: &Inventory,
    placements: &[topology::Placement],
    outcome: &Outcome,
) -> TypedTable {
    let m = &outcome.moves;
    let server = |s: u32| inv.servers[s as usize].id.clone();
    TypedTable::default()
        .column("at_h", float(m.iter().map(|x| x.at_h)))
        .column(
            "cell_id",
            text(
                m.iter()
                    .map(|x| placements[x.cell as usize].cell_id.clone()),
            ),
        )
        .column("remove", text(m.iter().map(|x| server(x.out))))
        .column("add", text(m.iter().map(|x| server(x.into))))
        .column("reason", text(m.iter().map(|x| x.reason.clone())))
}
