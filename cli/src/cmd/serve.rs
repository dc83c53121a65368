//! `cellplacer serve`: the placement API over HTTP, with its logs on stderr, until a
//! shutdown signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use optimizer::place::{PlaceOptions, Solver};
use runtime::service::{Heavy, HeavyLimit, HeavyLimits};

use super::output::emitln;

/// The arguments of `serve`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
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
    /// A request body that sends nothing for this long is cut off (408 `body_timeout`),
    /// in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    body_idle_ms: u64,
    /// A request body that takes longer than this as a whole is cut off (408
    /// `body_timeout`), in milliseconds.
    #[arg(long, default_value_t = 120_000)]
    body_timeout_ms: u64,
    /// Largest inventory upload (`POST /v1/inventory` with tables), in MiB.
    #[arg(long, default_value_t = server::http::DEFAULT_UPLOAD_MIB)]
    max_upload_mib: usize,
    /// Open connections at most; more are closed at once.
    #[arg(long, default_value_t = server::conn::ConnectionLimits::default().max)]
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
    /// The autopilot (moves nodes off failed and draining servers and makes unsafe cells
    /// safe on its own): on or off. Default: as the ledger last had it, else on.
    #[arg(long, value_enum)]
    autopilot: Option<OnOff>,
    /// Seconds a server stays failed before the autopilot moves its nodes. Default: as
    /// the ledger last had it, else 600.
    #[arg(long)]
    autopilot_grace_s: Option<f64>,
    /// The autopilot's moves per second, at most. Default: as the ledger last had it,
    /// else 10.
    #[arg(long)]
    autopilot_rate: Option<f64>,
    /// A heavy request kind's limits, as KIND=SECONDS[:AT_ONCE] (repeat per kind): report,
    /// whatif, plan, validate or blast, its time limit (503 `timeout` past it, and its
    /// work stopped) and how many compute at once. Defaults: report=120:1, whatif=120:1,
    /// plan=300:1, validate=300:1, blast=60:2. The admin routes' own limit of 600 s still
    /// applies.
    #[arg(long = "heavy", value_name = "KIND=SECONDS[:AT_ONCE]", value_parser = parse_heavy)]
    heavy: Vec<(Heavy, HeavyLimit)>,
    /// This replica's address as the other replicas of a shared (PostgreSQL) ledger reach
    /// it: the writer lease's holder commits every replica's writes, the others forward
    /// theirs to it. Default: http:// and the address listened on (none for a wildcard).
    #[arg(long, value_name = "URL")]
    advertise: Option<String>,
}

/// One `--heavy` value.
fn parse_heavy(text: &str) -> Result<(Heavy, HeavyLimit), String> {
    let (kind, limit) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}': expected KIND=SECONDS[:AT_ONCE]"))?;
    let kind = Heavy::ALL
        .into_iter()
        .find(|k| k.name() == kind)
        .ok_or_else(|| format!("'{kind}': not a kind (report, whatif, plan, validate, blast)"))?;
    let (secs, at_once) = limit.split_once(':').unwrap_or((limit, "1"));
    let secs: f64 = secs
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .ok_or_else(|| format!("'{secs}': seconds, above 0 and at most 86400"))?;
    let concurrent: usize = at_once
        .parse()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| format!("'{at_once}': how many at once, 1 to 64"))?;
    Ok((
        kind,
        HeavyLimit {
            concurrent,
            time: Duration::from_secs_f64(secs),
        },
    ))
}

/// A switch.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// How `serve` writes its log lines.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event; colours only on a terminal.
    Text,
    /// One JSON object per line (timestamp, level, fields, message), for log shippers.
    Json,
}

/// Sets up the logs, then serves on a multi-threaded async runtime until a shutdown
/// signal; prints the address listened on first.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        inventory,
        db,
        listen,
        workers,
        queue,
        body_limit,
        timeout_ms,
        body_idle_ms,
        body_timeout_ms,
        max_upload_mib,
        max_connections,
        header_timeout_ms,
        inventory_root,
        tokens,
        log_format,
        solver,
        pool,
        autopilot,
        autopilot_grace_s,
        autopilot_rate,
        heavy,
        advertise,
    } = args;
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
    let options = server::serve::ServeOptions {
        inventory,
        db: store::LedgerUrl::parse(&db)?,
        listen,
        workers,
        queue,
        placer: PlaceOptions {
            solver,
            pool_size: pool,
            ..PlaceOptions::default()
        },
        limits: server::http::Limits {
            body: body_limit,
            upload: max_upload_mib.saturating_mul(1024 * 1024),
            timeout: Duration::from_millis(timeout_ms),
            body_timeouts: server::http::BodyTimeouts {
                idle: Duration::from_millis(body_idle_ms),
                total: Duration::from_millis(body_timeout_ms),
            },
            ..server::http::Limits::default()
        },
        inventory_root,
        autopilot: runtime::dto::AutopilotUpdate {
            enabled: autopilot.map(|a| matches!(a, OnOff::On)),
            grace_s: autopilot_grace_s,
            rate: autopilot_rate,
            ..runtime::dto::AutopilotUpdate::default()
        },
        advertise,
        heavy: heavy
            .into_iter()
            .fold(HeavyLimits::default(), |all, (kind, limit)| {
                all.with(kind, limit)
            }),
        tokens: tokens
            .map(|path| server::auth::Tokens::load(&path).map(std::sync::Arc::new))
            .transpose()?,
        connections: server::conn::ConnectionLimits {
            max: max_connections,
            header_read_timeout: Duration::from_millis(header_timeout_ms),
            ..server::conn::ConnectionLimits::default()
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(server::serve::run(
        options,
        |addr| {
            // Tests and scripts read the port from here (useful with port 0).
            let _ = emitln(format_args!("listening on http://{addr}"));
        },
        server::serve::shutdown_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
