//! The `cellplacer` command line: validate, evaluate, place and generate inventories,
//! and serve the placement API.
//!
//! This file parses the command line and hands it to the subcommand's module in [`cmd`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::output::{print_error, ClosedPipe};
use cmd::{evaluate, generate, ledger, place, rebalance, serve, simulate, token, validate, whatif};

mod cmd;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mi_option_e`, v3; the sys crate names no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is given back to the system at once. mimalloc otherwise waits a second,
/// and purges only when it is next called: a service that reads a 100 MiB upload (1.4 GB
/// at its peak) and then goes idle kept all of it. Placement throughput is unchanged
/// within noise (loadgen, 3,000 cells: 1,850-1,990 place/s either way).
#[allow(unsafe_code)]
fn give_freed_memory_back_at_once() {
    // SAFETY: `mi_option_set` stores one integer option; it is called first thing in
    // `main`, and the option may be set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// The command line: one subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "cellplacer",
    version,
    about = "Topology-aware placement of 7-node consensus cells",
    long_about = "Topology-aware placement of 7-node consensus cells (quorum 4): close to \
their clients, apart from shared failure domains.\n\n\
An inventory export is a directory of tables (racks, servers, network_devices, \
network_links, risk_groups, power_devices, power_feeds), each NAME.csv or NAME.parquet; \
docs/format.md describes every column. A cell's risk is in outages per year.\n\n\
Start with: cellplacer generate --preset tiny --out zone (writes an inventory and a \
cells.csv workload into zone/), then validate, place and evaluate it.",
    after_help = "Exit codes: 0 success; 1 invalid input or any error (every problem is \
listed); 2 a malformed command line; 3 `place` left some cells unplaced (the placed ones \
are written, the others listed with why), or `rebalance` left some goals unmet (the plan \
is written, what it could not do listed with why)."
)]
struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands: each variant's doc comment is its help (`cellplacer help NAME`), its
/// module in [`cmd`] holds its arguments and runs it.
#[derive(Subcommand, Debug)]
enum Command {
    /// Validate an inventory export; prints counts and warnings, exits 1 listing every error.
    Validate(validate::Args),
    /// Fleet report of a placement export on an inventory: safety, blast radius, risk in
    /// outages per year (minimal cut sets of one and two elements), load, quorum sharing.
    Evaluate(evaluate::Args),
    /// Serve the placement API over HTTP, with a durable SQLite ledger.
    Serve(serve::Args),
    /// Make a bearer token for `serve --tokens`: prints the token (give it to the client)
    /// and, on a second line, its line for the token file (which keeps only its hash).
    Token(token::Args),
    /// Bulk load or export a service's ledger (run while no service uses it).
    Ledger(ledger::Args),
    /// What a change of the inventory or a failure scenario does to the placed cells:
    /// before and after side by side (nothing is written but OUT).
    Whatif(whatif::Args),
    /// Plan ordered single-node moves that drain servers and repair cells, safe after
    /// every move; writes the plan and the placements after it.
    Rebalance(rebalance::Args),
    /// Place a cell workload (`cells.csv`) in batch; writes a placement export.
    Place(place::Args),
    /// A placement's years on a virtual clock: every element failing (Poisson, afr x
    /// stress) and coming back on the seed's trace, the cells judged exactly at every
    /// event; outages and cell-hours unavailable beside the exact risk's expectation.
    Simulate(simulate::Args),
    /// Write a generated availability zone and its cell workload (cells.csv), the same
    /// for the same preset and seed.
    Generate(generate::Args),
}

/// Runs the subcommand; its exit code, or the error to print.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Token(args) => token::run(args),
        Command::Ledger(args) => ledger::run(args),
        Command::Whatif(args) => whatif::run(args),
        Command::Rebalance(args) => rebalance::run(args),
        Command::Place(args) => place::run(args),
        Command::Generate(args) => generate::run(args),
    }
}

/// Parses the command line and runs it: a closed standard output is a normal end, any
/// other error is printed (exit 1).
fn main() -> ExitCode {
    give_freed_memory_back_at_once();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) if e.is::<ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}
