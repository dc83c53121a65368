//! The `cellplacer` command line: validate, evaluate, place and generate inventories,
//! and serve the placement API.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use api::view::{counts_text, CountsView, FleetReportView, ProblemView};
use clap::{Parser, Subcommand, ValueEnum};
use optimizer::place::{place_batch_with_progress, Occupancy, PlaceOptions, Solver};
use optimizer::rebalance::{self, Goals, Reason};
use optimizer::{fleet_report, ReportOptions};
use topology::ingest::{write_dir, write_table, Format};
use topology::model::ServerStatus;
use topology::raw::RawTable;
use topology::Placement;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate an inventory export; prints counts and warnings, exits 1 listing every error.
    Validate {
        /// Inventory export directory (NAME.csv or NAME.parquet per table).
        dir: PathBuf,
        /// Print the result as JSON ({valid, counts, errors, warnings}).
        #[arg(long)]
        json: bool,
    },
    /// Fleet report of a placement export on an inventory: safety, blast radius, risk in
    /// outages per year (minimal cut sets of one and two elements), load, quorum sharing.
    Evaluate {
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
    },
    /// Serve the placement API over HTTP, with a durable SQLite ledger.
    Serve {
        /// Inventory export directory. Default: the ledger's active inventory, else the
        /// bundled zone (the generated `small` preset, seed 0: 2,304 servers).
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// The ledger: a SQLite file (created if missing; uploaded inventories go next to
        /// it), `sqlite://PATH`, or `postgres://...`. A SQLite ledger is served by one
        /// process at a time.
        #[arg(long, default_value = "data/cellplacer.db")]
        db: String,
        /// Address and port to listen on (port 0: any free port, printed at start).
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
        /// Largest inventory upload (`POST /v1/inventory` with tables), in MiB.
        #[arg(long, default_value_t = api::http::DEFAULT_UPLOAD_MIB)]
        max_upload_mib: usize,
        /// Open connections at most; more are closed at once.
        #[arg(long, default_value_t = api::conn::ConnectionLimits::default().max)]
        max_connections: usize,
        /// A connection that sends no complete request headers for this long (idle, or
        /// half-sent) is closed, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        header_timeout_ms: u64,
        /// The directory whose exports and placement files requests may name by path
        /// (switch, validate, import); without it, requests upload tables instead.
        #[arg(long)]
        inventory_root: Option<PathBuf>,
        /// Bearer tokens (`ROLE NAME sha256:HEX` per line; `cellplacer token` makes them).
        /// Without it every request is allowed, and only a loopback address may be used.
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// Log lines on stderr as text or JSON; RUST_LOG filters them (default info).
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// heuristic, ilp (HiGHS) or microlp.
        #[arg(long, default_value = "heuristic")]
        solver: Solver,
        /// Candidate servers per cell.
        #[arg(long, default_value_t = PlaceOptions::default().pool_size)]
        pool: usize,
    },
    /// Make a bearer token for `serve --tokens`: prints the token (give it to the client)
    /// and, on a second line, its line for the token file (which keeps only its hash).
    Token {
        /// read (GET), runtime (also cells: place, replace, clients, moves, delete), or
        /// admin (everything: inventory, plans, what-if, import).
        #[arg(long)]
        role: String,
        /// A name for the holder, shown in logs and refusals.
        #[arg(long)]
        name: String,
    },
    /// Bulk load or export a service's ledger (run while no service uses it).
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
    },
    /// What a change of the inventory or a failure scenario does to the placed cells:
    /// before and after side by side (nothing is written but OUT).
    Whatif {
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
    },
    /// Plan ordered single-node moves that drain servers and repair cells, safe after
    /// every move; writes the plan and the placements after it.
    Rebalance {
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
    },
    /// Place a cell workload (`cells.csv`) in batch; writes a placement export.
    Place {
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
    },
    /// Write a generated availability zone and its cell workload (cells.csv), the same
    /// for the same preset and seed.
    Generate {
        /// Zone shape.
        #[arg(long, value_enum, default_value_t = Preset::Small)]
        preset: Preset,
        /// Seed of every random choice (statuses, dual ToRs, single feeds, clients).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Override the number of cells in the workload.
        #[arg(long)]
        cells: Option<usize>,
        /// Model partitions as risk groups: each room's uplinks (`partition-dcX-hY`, afr
        /// 0.02, 2 hours) and each datacenter's interconnect through two border routers
        /// (`partition-dcX`, afr 0.01, 4 hours). docs/format.md explains partitions.
        #[arg(long)]
        partitions: bool,
        /// Table file format.
        #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
        format: FormatArg,
        /// Directory to write the tables into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    /// 32 servers (16 hosts), 10 cells: 1 datacenter, 2 rooms.
    Tiny,
    /// 2,304 servers (576 hosts), 2,000 cells: 3 datacenters (the bundled zone).
    Small,
    /// 23,040 servers (5,760 hosts, 4 colours), 100,000 cells.
    Az,
    /// 53,760 servers (26,880 hosts, 4 colours), 1,000,000 cells.
    AzLarge,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// One readable line per event; colours only on a terminal.
    Text,
    /// One JSON object per line (timestamp, level, fields, message), for log shippers.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    /// NAME.csv with a header row.
    Csv,
    /// NAME.parquet with the same columns.
    Parquet,
}

#[derive(Debug, Subcommand)]
enum LedgerAction {
    /// Load placed cells into a ledger: every cell checked as the service would take it
    /// (known, active servers; capacity; one colour; no quorum shared; a new id), then
    /// written in transactions of 10,000 cells. A file with problems changes nothing
    /// (every problem listed, exit 1) unless --skip-invalid.
    Import {
        /// The inventory export the ledger serves (or will serve, for a new ledger).
        dir: PathBuf,
        /// Cells to load (cell_id, clients, nodes; .csv or .parquet).
        #[arg(long)]
        placements: PathBuf,
        /// The ledger (a SQLite file, created if missing, or a URL as for `serve`).
        #[arg(long, default_value = "data/cellplacer.db")]
        db: String,
        /// Import the valid cells, list the others with why.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Write the ledger's cells as a placement export (.csv or .parquet), for `evaluate`,
    /// `rebalance`, `whatif` and notebooks.
    Export {
        /// The ledger (a SQLite file or a URL as for `serve`).
        #[arg(long, default_value = "data/cellplacer.db")]
        db: String,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Element pairs in `evaluate --out-dir`'s pairs table.
const OUT_DIR_PAIRS: usize = 100;

/// Exit code of a `place` run that left some cells unplaced, or of a `rebalance` run that
/// left some goals unmet (1 is for invalid input).
const PARTLY_PLACED: u8 = 3;

/// Standard output closed by the reader (`cellplacer evaluate ... | head -1`): a normal end.
#[derive(Debug)]
struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// Writes `text` to standard output; a closed pipe ends the command quietly (exit 0).
fn emit(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match write!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        other => Ok(other?),
    }
}

/// [`emit`] with a newline.
fn emitln(text: impl std::fmt::Display) -> anyhow::Result<()> {
    emit(format_args!("{text}\n"))
}

fn print_problems(
    errors: &[topology::Problem],
    warnings: &[topology::Problem],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({
            "valid": errors.is_empty(),
            "errors": errors.iter().map(ProblemView::from).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(ProblemView::from).collect::<Vec<_>>(),
        });
        emitln(format_args!("{doc:#}"))
    } else {
        for line in problem_lines(errors, warnings) {
            emitln(line)?;
        }
        Ok(())
    }
}

/// Errors, then warnings, one line each, as every command prints them.
fn problem_lines<'p>(
    errors: &'p [topology::Problem],
    warnings: &'p [topology::Problem],
) -> impl Iterator<Item = String> + 'p {
    let errors = errors.iter().map(|e| format!("error: {e}"));
    errors.chain(warnings.iter().map(|w| format!("warning: {w}")))
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
                    emitln(format_args!("{doc:#}"))?;
                } else {
                    emitln(format_args!("valid: {}", counts_text(&counts)))?;
                    emitln(format_args!("{} warning(s)", loaded.warnings.len()))?;
                    print_problems(&[], &loaded.warnings, false)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(topology::Error::Invalid(report)) => {
                if !json {
                    emitln(format_args!(
                        "invalid: {} error(s), {} warning(s)",
                        report.errors.len(),
                        report.warnings.len()
                    ))?;
                }
                print_problems(&report.errors, &report.warnings, json)?;
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
            pairs_top,
            out_dir,
            threads,
        } => {
            let table = api::load::read_table(&placements).context("loading the placements")?;
            let (loaded, gone) =
                api::load::inventory_with_gone(&dir, &table).context("loading the inventory")?;
            if !gone.is_empty() {
                eprintln!(
                    "note: {} servers named by the placements are not in the inventory \
                     (first: '{}'): they count as failed servers",
                    gone.len(),
                    gone[0]
                );
            }
            let placements = api::load::placements_from(&table, &placements, &loaded.inventory)
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
            if let Some(dir) = &out_dir {
                let pairs = optimizer::report::pair_blast_radius(
                    &loaded.model,
                    &placements,
                    OUT_DIR_PAIRS,
                    threads,
                );
                let domains = optimizer::whatif::domain_loads(&loaded.inventory, &placements);
                let inv = &loaded.inventory;
                api::reports::write(
                    dir,
                    &[
                        ("cells", api::reports::cells(inv, &placements, &report)),
                        ("elements", api::reports::elements(inv, &report)),
                        (
                            "pairs",
                            api::reports::pairs(inv, &loaded.model, &placements, &pairs),
                        ),
                        ("domains", api::reports::domains(&domains)),
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
        Command::Serve {
            inventory,
            db,
            listen,
            workers,
            queue,
            body_limit,
            timeout_ms,
            max_upload_mib,
            max_connections,
            header_timeout_ms,
            inventory_root,
            tokens,
            log_format,
            solver,
            pool,
        } => {
            // RUST_LOG chooses what is logged (default: info); colours only on a terminal,
            // never into a file or a pipe.
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let logs = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .with_target(false);
            match log_format {
                LogFormat::Text => logs
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .init(),
                LogFormat::Json => logs.json().with_ansi(false).init(),
            }
            let options = api::serve::ServeOptions {
                inventory,
                db: api::store::LedgerUrl::parse(&db)?,
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
                    upload: max_upload_mib.saturating_mul(1024 * 1024),
                    timeout: Duration::from_millis(timeout_ms),
                    ..api::http::Limits::default()
                },
                inventory_root,
                tokens: tokens
                    .map(|path| api::auth::Tokens::load(&path).map(std::sync::Arc::new))
                    .transpose()?,
                connections: api::conn::ConnectionLimits {
                    max: max_connections,
                    header_read_timeout: Duration::from_millis(header_timeout_ms),
                    ..api::conn::ConnectionLimits::default()
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
                    let _ = emitln(format_args!("listening on http://{addr}"));
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
            unplaced,
            pool,
            seed,
            balance,
            window,
        } => {
            let loaded = api::load::inventory(&dir).context("loading the inventory")?;
            let inv = &loaded.inventory;
            let mut cells = api::load::cells(&cells, inv).context("loading the cells")?;
            let mut occupancy = Occupancy::new(inv);
            let kept = match existing {
                Some(path) => {
                    api::load::placements(&path, inv).context("loading the existing placements")?
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
            write_table(&out, &api::load::placement_table(inv, &all))
                .context("writing the placements")?;
            if skipped > 0 {
                emitln(format_args!(
                    "skipped {skipped} cells already placed in the existing placements"
                ))?;
            }
            emitln(format_args!(
                "placed {} of {} cells in {:.2?} ({} not single-failure safe, {} solved again \
                 after a clash in their window); wrote {}",
                outcome.placements.len(),
                cells.len(),
                outcome.elapsed,
                outcome.unsafe_cells,
                outcome.resolved,
                out.display()
            ))?;
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
        Command::Token { role, name } => {
            let role = api::auth::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: '{role}' is not read, runtime or admin"))?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                anyhow::bail!("--name: one word, no spaces");
            }
            let (token, line) = api::auth::new_token(role, &name)?;
            emitln(format_args!("{token}"))?;
            emitln(format_args!("{line}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger { action } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async {
                match action {
                    LedgerAction::Import {
                        dir,
                        placements,
                        db,
                        skip_invalid,
                    } => {
                        let table =
                            api::load::read_table(&placements).context("loading the placements")?;
                        let rows = table.len();
                        let url = api::store::LedgerUrl::parse(&db)?;
                        let store = api::store::open(&url)
                            .await
                            .with_context(|| format!("opening the ledger {}", url.label()))?;
                        let dir = std::fs::canonicalize(&dir)
                            .with_context(|| format!("{}", dir.display()))?;
                        let started = std::time::Instant::now();
                        let outcome = api::import::import(
                            &*store,
                            api::zone::Source::Dir(dir),
                            table,
                            skip_invalid,
                        )
                        .await;
                        store.close().await;
                        let outcome = outcome.context("importing")?;
                        for r in &outcome.refused {
                            emitln(format_args!(
                                "{} row {} cell '{}': {}",
                                placements.display(),
                                r.row,
                                r.cell_id,
                                r.why
                            ))?;
                        }
                        emitln(format_args!(
                            "imported {} of {rows} cells into {} in {:.2?} ({} transactions, \
                             inventory version {}); {} refused{}",
                            outcome.imported,
                            url.label(),
                            started.elapsed(),
                            outcome.transactions,
                            outcome.inventory_version,
                            outcome.refused.len(),
                            if outcome.imported == 0 && !outcome.refused.is_empty() {
                                ": nothing written (--skip-invalid imports the others)"
                            } else {
                                ""
                            }
                        ))?;
                        Ok(if outcome.refused.is_empty() || skip_invalid {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        })
                    }
                    LedgerAction::Export { db, out } => {
                        let url = api::store::LedgerUrl::parse(&db)?;
                        let store = api::store::open(&url)
                            .await
                            .with_context(|| format!("opening the ledger {}", url.label()))?;
                        let table = api::import::export(&*store).await;
                        store.close().await;
                        let table = table.context("reading the ledger")?;
                        write_table(&out, &table).context("writing the placements")?;
                        emitln(format_args!(
                            "wrote {} cells to {}",
                            table.len(),
                            out.display()
                        ))?;
                        Ok(ExitCode::SUCCESS)
                    }
                }
            })
        }
        Command::Whatif {
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
        } => {
            let raw = topology::ingest::read_dir(&dir).context("reading the inventory")?;
            let table = api::load::read_table(&placements).context("loading the placements")?;
            let mut change: api::dto::Change = match &change {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    toml::from_str(&text).with_context(|| format!("{}", path.display()))?
                }
                None => api::dto::Change::default(),
            };
            change.fail.extend(fail);
            let sides = api::whatif::prepare(&raw, &table, &change).context("the change")?;
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
            };
            let started = std::time::Instant::now();
            let w = optimizer::whatif::compare(
                (&sides.before, &sides.before_model, &sides.placements_before),
                (&sides.after, &sides.after_model, &sides.placements_after),
                &options,
            );
            let elapsed = started.elapsed().as_secs_f64() * 1e3;
            let mut summary = api::whatif::summary(
                &sides.before,
                &sides.after,
                &sides.placements_after,
                &w,
                elapsed,
            );
            if headroom {
                let mix = mix
                    .as_ref()
                    .map(|p| api::load::read_table(p).context("reading the mix"))
                    .transpose()?;
                summary["headroom"] =
                    api::whatif::headroom(&sides, mix.as_ref(), size, &PlaceOptions::default())
                        .context("the headroom's mix")?;
            }
            if let Some(out) = &out_dir {
                let mut tables = vec![
                    (
                        "cells",
                        api::reports::whatif_cells(&sides.placements_after, &w),
                    ),
                    ("domains", api::reports::whatif_domains(&w)),
                    (
                        "pairs",
                        api::reports::pairs(
                            &sides.after,
                            &sides.after_model,
                            &sides.placements_after,
                            &w.pairs,
                        ),
                    ),
                ];
                if !scenario_only {
                    tables.push((
                        "elements",
                        api::reports::whatif_elements(&sides.before, &sides.after, &w),
                    ));
                }
                api::reports::write(out, &tables).context("writing the what-if tables")?;
            }
            if json {
                emitln(serde_json::to_string_pretty(&summary)?)?;
            } else {
                emit(api::whatif::summary_text(&summary))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebalance {
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
        } => {
            let table = api::load::read_table(&placements).context("loading the placements")?;
            let (loaded, gone) =
                api::load::inventory_with_gone(&dir, &table).context("loading the inventory")?;
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
            let current = api::load::placements_from(&table, &placements, &inv)
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
            let plan = rebalance::plan_with_progress(
                &inv,
                &model,
                &current,
                &goals,
                &options,
                &mut |moves| {
                    if let Some(bar) = &spinner {
                        bar.set_position(moves as u64);
                    }
                },
            );
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
                write_table(out, &api::load::placement_table(&inv, &after))
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
        Command::Generate {
            preset,
            seed,
            cells,
            partitions,
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
            if partitions {
                params = params.with_partitions();
            }
            let format = match format {
                FormatArg::Csv => Format::Csv,
                FormatArg::Parquet => Format::Parquet,
            };
            write_dir(&out, &fixtures::generate(&params), format)?;
            emitln(format_args!(
                "wrote {} servers and {} cells to {}",
                params.total_servers(),
                params.cells,
                out.display()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A placement export: cell_id, clients and nodes (server ids joined by ';').
/// Prints an error for a person: the context chain once (a cause already quoted by the
/// message before it is not repeated), and an invalid input's problems one per line, as
/// `validate` prints them.
fn print_error(e: &anyhow::Error) {
    let mut message = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<topology::Error>() {
            Some(topology::Error::Invalid(report)) => format!(
                "invalid input: {} error(s), {} warning(s)",
                report.errors.len(),
                report.warnings.len()
            ),
            _ => cause.to_string(),
        };
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    eprintln!("error: {message}");
    if let Some(topology::Error::Invalid(report)) = e.downcast_ref::<topology::Error>() {
        for line in problem_lines(&report.errors, &report.warnings) {
            eprintln!("{line}");
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) if e.is::<ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}
