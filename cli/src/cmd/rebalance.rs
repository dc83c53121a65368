//! `cellplacer rebalance`: plans ordered single-node moves that drain servers, repair,
//! improve and balance cells, safe after every move; writes the plan (exit 3 when some
//! goals are left unmet).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use optimizer::place::PlaceOptions;
use optimizer::rebalance::{self, Goals, Reason};
use topology::ingest::write_table;
use topology::model::ServerStatus;
use topology::raw::RawTable;
use topology::Placement;

use super::output::emitln;
use super::PARTLY_PLACED;

/// The arguments of `rebalance`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Inventory export directory (NAME.csv or NAME.parquet per table).
    dir: PathBuf,
    /// The current placements (cell_id, clients, nodes): .csv or .parquet.
    #[arg(long)]
    placements: PathBuf,
    /// Empty these servers: a server, rack, row, room or datacenter, a network device
    /// (its servers) or a power device (every server it feeds). Repeatable; with any
    /// `--drain`, servers already `draining` in the inventory are emptied too.
    #[arg(long)]
    drain: Vec<String>,
    /// Move every node off failed servers, then make every cell that is not
    /// single-failure safe safe where the rules allow.
    #[arg(long)]
    repair: bool,
    /// Lower the total risk by moves that never make a cell worse and gain at least
    /// 5 % of its risk (so a second run has little left to do); best gain per move
    /// first.
    #[arg(long)]
    improve: bool,
    /// Bring the most nodes on one server down to at most F times the mean (over the
    /// servers holding any), by moves that never raise a cell's risk nor break its
    /// safety.
    #[arg(long)]
    balance: Option<f64>,
    /// Most moves; mandatory ones (failed, then drain) first.
    #[arg(long)]
    max_moves: Option<usize>,
    /// Where to write the plan (step, cell_id, remove, add, reason, risk_before,
    /// risk_after, safe_after, after_steps): .csv or .parquet.
    #[arg(long)]
    plan_out: PathBuf,
    /// Where to write the placements after the plan (for `evaluate`).
    #[arg(long)]
    placements_out: Option<PathBuf>,
    /// Seed of the search's random restarts and tie-breaks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Marks the drained servers, plans the moves, writes the plan (and the placements after
/// it) and prints a before/after summary; exits [`PARTLY_PLACED`] listing what it could
/// not do.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        dir,
        placements,
        drain,
        repair,
        improve,
        balance,
        max_moves,
        plan_out,
        placements_out,
        seed,
    } = args;
    let table = runtime::load::read_table(&placements).context("loading the placements")?;
    let (loaded, gone) =
        runtime::load::inventory_with_gone(&dir, &table).context("loading the inventory")?;
    if !gone.is_empty() {
        emitln(format_args!(
            "{} servers named by the placements are not in the inventory (first: \
             '{}'): their nodes count as on failed servers{}",
            gone.len(),
            gone[0],
            if repair {
                ""
            } else {
                " (add --repair to move them)"
            }
        ))?;
    }
    let mut inv = loaded.inventory;
    let mut drained = 0usize;
    for id in &drain {
        let servers = inv.servers_named(id).with_context(|| {
            format!(
                "--drain '{id}' names no server, rack, row, room, datacenter, \
                 network device or power device of the inventory"
            )
        })?;
        for s in servers {
            let server = &mut inv.servers[s as usize];
            if server.status == ServerStatus::Active {
                server.status = ServerStatus::Draining;
                drained += 1;
            }
        }
    }
    // Draining servers stay up: the failure model is the loaded one.
    let model = loaded.model;
    let current = runtime::load::placements_from(&table, &placements, &inv)
        .context("loading the placements")?;
    let goals = Goals {
        drain: !drain.is_empty(),
        repair,
        improve,
        balance,
        max_moves,
    };
    let options = PlaceOptions {
        seed,
        ..PlaceOptions::default()
    };
    let start = std::time::Instant::now();
    // A spinner on stderr only when a person watches it; the summary always.
    let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "planning {spinner} {pos} moves, {per_sec}, {elapsed}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let plan =
        rebalance::plan_with_progress(&inv, &model, &current, &goals, &options, &mut |moves| {
            if let Some(bar) = &spinner {
                bar.set_position(moves as u64);
            }
        });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let elapsed = start.elapsed();
    let mut table = RawTable::new(&[
        "step",
        "cell_id",
        "remove",
        "add",
        "reason",
        "risk_before",
        "risk_after",
        "safe_after",
        "after_steps",
    ]);
    for (i, m) in plan.moves.iter().enumerate() {
        let after: Vec<String> = m.after.iter().map(|a| (a + 1).to_string()).collect();
        table.push(&[
            (i + 1).to_string(),
            current[m.cell].cell_id.clone(),
            inv.servers[m.remove as usize].id.clone(),
            inv.servers[m.add as usize].id.clone(),
            m.reason.name().to_string(),
            format!("{:e}", m.risk_before),
            format!("{:e}", m.risk_after),
            m.safe_after.to_string(),
            after.join(";"),
        ]);
    }
    write_table(&plan_out, &table).context("writing the plan")?;
    if let Some(out) = &placements_out {
        let after: Vec<&Placement> = plan.after.iter().collect();
        write_table(out, &runtime::load::placement_table(&inv, &after))
            .context("writing the placements after the plan")?;
    }
    let count = |r: Reason| plan.moves.iter().filter(|m| m.reason == r).count();
    let (first, last) = (
        plan.curve[0],
        *plan.curve.last().expect("the curve starts before any move"),
    );
    emitln(format_args!(
        "planned {} moves in {elapsed:.2?}: {} off failed servers, {} drain, {} to \
         make cells safe, {} to balance, {} to lower risk ({drained} servers marked \
         draining); wrote {}",
        plan.moves.len(),
        count(Reason::Failed),
        count(Reason::Drain),
        count(Reason::Unsafe),
        count(Reason::Balance),
        count(Reason::Improve),
        plan_out.display()
    ))?;
    emitln(format_args!("{:<16} {:>12} {:>12}", "", "before", "after"))?;
    for (name, a, b) in [
        (
            "total risk",
            format!("{:.3e}", first.total_risk),
            format!("{:.3e}", last.total_risk),
        ),
        (
            "unsafe cells",
            first.unsafe_cells.to_string(),
            last.unsafe_cells.to_string(),
        ),
        (
            "nodes to move",
            first.nodes_to_move.to_string(),
            last.nodes_to_move.to_string(),
        ),
        (
            "load max/mean",
            format!("{:.3}", first.load_max_over_mean),
            format!("{:.3}", last.load_max_over_mean),
        ),
    ] {
        emitln(format_args!("{name:<16} {a:>12} {b:>12}"))?;
    }
    if plan.unmet.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for u in &plan.unmet {
        let node = u.server.map_or(String::new(), |s| {
            format!(" node on '{}'", inv.servers[s as usize].id)
        });
        let cell = u
            .cell
            .map_or(String::new(), |c| format!(" cell '{}'", current[c].cell_id));
        emitln(format_args!(
            "not done ({}):{cell}{node}: {}",
            u.reason.name(),
            u.why
        ))?;
    }
    Ok(ExitCode::from(PARTLY_PLACED))
}
