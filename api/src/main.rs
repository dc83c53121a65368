//! The `cellplacer` command line: validate, evaluate, place and generate inventories,
//! and serve the placement API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use api::view::{counts_text, CountsView, FleetReportView, ProblemView};
use clap::{Parser, Subcommand, ValueEnum};
use optimizer::place::{place_batch, Occupancy, PlaceOptions, Solver};
use optimizer::{fleet_report, ReportOptions};
use topology::ingest::{write_dir, write_table, Format};
use topology::raw::RawTable;

#[derive(Parser, Debug)]
#[command(
    name = "cellplacer",
    version,
    about = "Topology-aware placement of 7-node consensus cells"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate an inventory export; prints counts and warnings, exits 1 listing every error.
    Validate {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fleet report of a placement export on an inventory: safety, blast radius, risk in
    /// outages per year (minimal cut sets of one and two elements), load, quorum sharing.
    Evaluate {
        dir: PathBuf,
        placements: PathBuf,
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
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Serve the placement API over HTTP, with a durable SQLite ledger.
    Serve {
        /// Inventory export directory. Default: the ledger's active inventory, else the
        /// bundled zone (the generated `small` preset, seed 0: 2,304 servers).
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// SQLite ledger (created if missing); uploaded inventories go next to it.
        #[arg(long, default_value = "data/cellplacer.db")]
        db: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Solver threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Solves that may wait for a thread before requests are refused with 503.
        #[arg(long, default_value_t = 1024)]
        queue: usize,
        /// Largest JSON body of the cell routes, in bytes.
        #[arg(long, default_value_t = 64 * 1024)]
        body_limit: usize,
        /// Time limit of the cell and server routes, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// heuristic, ilp (HiGHS) or microlp.
        #[arg(long, default_value = "heuristic")]
        solver: Solver,
        /// Candidate servers per cell.
        #[arg(long, default_value_t = PlaceOptions::default().pool_size)]
        pool: usize,
    },
    /// Place a cell workload (`cells.csv`) in batch; writes a placement export.
    Place {
        dir: PathBuf,
        #[arg(long)]
        cells: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// heuristic, ilp (HiGHS) or microlp.
        #[arg(long, default_value = "heuristic")]
        solver: Solver,
        /// Existing placements to respect (their load and the overlap rule).
        #[arg(long)]
        existing: Option<PathBuf>,
        /// Candidate servers per cell.
        #[arg(long, default_value_t = PlaceOptions::default().pool_size)]
        pool: usize,
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
    },
    /// Write a generated availability zone (deterministic for a seed).
    Generate {
        #[arg(long, value_enum, default_value_t = Preset::Small)]
        preset: Preset,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Override the number of cells in the workload.
        #[arg(long)]
        cells: Option<usize>,
        #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
        format: FormatArg,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    Tiny,
    Small,
    Az,
    AzLarge,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Csv,
    Parquet,
}

fn print_problems(errors: &[topology::Problem], warnings: &[topology::Problem], json: bool) {
    if json {
        let doc = serde_json::json!({
            "valid": errors.is_empty(),
            "errors": errors.iter().map(ProblemView::from).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(ProblemView::from).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    } else {
        for e in errors {
            println!("error: {e}");
        }
        for w in warnings {
            println!("warning: {w}");
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { dir, json } => match api::load::inventory(&dir) {
            Ok(loaded) => {
                let counts = loaded.inventory.counts();
                if json {
                    let doc = serde_json::json!({
                        "valid": true,
                        "counts": CountsView::from(counts),
                        "warnings": loaded.warnings.iter().map(ProblemView::from).collect::<Vec<_>>(),
                    });
                    println!("{doc:#}");
                } else {
                    println!("valid: {}", counts_text(&counts));
                    println!("{} warning(s)", loaded.warnings.len());
                    print_problems(&[], &loaded.warnings, false);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(topology::Error::Invalid(report)) => {
                if !json {
                    println!(
                        "invalid: {} error(s), {} warning(s)",
                        report.errors.len(),
                        report.warnings.len()
                    );
                }
                print_problems(&report.errors, &report.warnings, json);
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e).context("reading the inventory"),
        },
        Command::Evaluate {
            dir,
            placements,
            json,
            cells_out,
            no_risk,
            top,
            threads,
        } => {
            let loaded = api::load::inventory(&dir).context("loading the inventory")?;
            let placements = api::load::placements(&placements, &loaded.inventory)
                .context("loading the placements")?;
            let options = ReportOptions {
                risk: !no_risk,
                top,
                threads,
            };
            let report = fleet_report(&loaded.inventory, &loaded.model, &placements, &options);
            if let Some(path) = &cells_out {
                let table = api::view::cells_table(&loaded.inventory, &placements, &report);
                write_table(path, &table).context("writing the per-cell table")?;
            }
            let view = FleetReportView::new(&loaded.inventory, &placements, &report);
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", view.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            inventory,
            db,
            listen,
            workers,
            queue,
            body_limit,
            timeout_ms,
            solver,
            pool,
        } => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_target(false)
                .init();
            let options = api::serve::ServeOptions {
                inventory,
                db,
                listen,
                workers,
                queue,
                placer: PlaceOptions {
                    solver,
                    pool_size: pool,
                    ..PlaceOptions::default()
                },
                limits: api::http::Limits {
                    body: body_limit,
                    timeout: Duration::from_millis(timeout_ms),
                    ..api::http::Limits::default()
                },
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(api::serve::run(
                options,
                |addr| {
                    // Tests and scripts read the port from here (useful with port 0).
                    println!("listening on http://{addr}");
                },
                api::serve::shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Place {
            dir,
            cells,
            out,
            solver,
            existing,
            pool,
            seed,
            balance,
            window,
        } => {
            let loaded = api::load::inventory(&dir).context("loading the inventory")?;
            let inv = &loaded.inventory;
            let cells = api::load::cells(&cells, inv).context("loading the cells")?;
            let mut occupancy = Occupancy::new(inv);
            if let Some(path) = existing {
                for p in
                    api::load::placements(&path, inv).context("loading the existing placements")?
                {
                    occupancy.insert(&p.nodes);
                }
            }
            let options = PlaceOptions {
                solver,
                pool_size: pool,
                seed,
                balance: (balance > 0.0).then_some(balance),
                batch_window: window.max(1),
                ..PlaceOptions::default()
            };
            let outcome = place_batch(inv, &loaded.model, &cells, &mut occupancy, &options);
            let mut table = RawTable::new(&["cell_id", "clients", "nodes"]);
            let ids = |servers: &[u32]| {
                servers
                    .iter()
                    .map(|&s| inv.servers[s as usize].id.as_str())
                    .collect::<Vec<_>>()
                    .join(";")
            };
            for p in &outcome.placements {
                table.push(&[p.cell_id.clone(), ids(&p.clients), ids(&p.nodes)]);
            }
            write_table(&out, &table).context("writing the placements")?;
            println!(
                "placed {} of {} cells in {:.2?} ({} not single-failure safe); wrote {}",
                outcome.placements.len(),
                cells.len(),
                outcome.elapsed,
                outcome.unsafe_cells,
                out.display()
            );
            for (cell, e) in &outcome.failed {
                println!("not placed: cell '{cell}': {e}");
            }
            Ok(if outcome.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Generate {
            preset,
            seed,
            cells,
            format,
            out,
        } => {
            let mut params = match preset {
                Preset::Tiny => fixtures::ZoneParams::tiny(seed),
                Preset::Small => fixtures::ZoneParams::small(seed),
                Preset::Az => fixtures::ZoneParams::az(seed),
                Preset::AzLarge => fixtures::ZoneParams::az_large(seed),
            };
            if let Some(n) = cells {
                params.cells = n;
            }
            let format = match format {
                FormatArg::Csv => Format::Csv,
                FormatArg::Parquet => Format::Parquet,
            };
            write_dir(&out, &fixtures::generate(&params), format)?;
            println!(
                "wrote {} servers and {} cells to {}",
                params.total_servers(),
                params.cells,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
