//! Load generator for `cellplacer serve`: drives the real service over loopback HTTP and
//! prints throughput and latency percentiles for place, get, replace and delete (the
//! durable write path without a solve), then the engine's and the ledger's own timings.
//!
//! Without `--url` it starts the `cellplacer` binary next to itself on a fresh ledger in a
//! temporary directory (the durable store, as in production), and stops it with SIGTERM at
//! the end. Client sets come from the inventory's cell workload: the bundled zone's
//! generated one, or `cells.csv` of `--inventory DIR`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cellplacer::client::Client;
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Drive cellplacer serve over loopback; print throughput and latency")]
struct Args {
    /// A running service. Default: start `cellplacer serve` on a temporary ledger.
    #[arg(long)]
    url: Option<String>,
    /// Inventory export whose `cells` table gives the client sets (and that a started
    /// service serves). Default: the bundled zone.
    #[arg(long)]
    inventory: Option<PathBuf>,
    /// Cells to place.
    #[arg(long, default_value_t = 5000)]
    cells: usize,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// GETs of placed cells.
    #[arg(long, default_value_t = 5000)]
    gets: usize,
    /// Node replacements (each on a different cell).
    #[arg(long, default_value_t = 1000)]
    replaces: usize,
    /// Leave the placed cells in the ledger (no delete phase), e.g. to check the ledger
    /// after several load generators ran against replicas.
    #[arg(long)]
    keep: bool,
    /// Solver threads of a started service (0 = all cores).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Candidate pool per request of a started service (default: the engine's).
    #[arg(long)]
    pool: Option<usize>,
    /// Solver of a started service: heuristic, ilp or microlp.
    #[arg(long)]
    solver: Option<String>,
    /// Bulk-load this many cells into the started service's ledger first (the first N
    /// cells of the inventory's workload, placed by `cellplacer place`, then `cellplacer
    /// ledger import`), so that the timings are at that scale. Needs --inventory.
    #[arg(long, default_value_t = 0)]
    prefill: usize,
    /// Bulk-load this placement export instead of placing --prefill cells.
    #[arg(long)]
    prefill_from: Option<PathBuf>,
    /// After the replacements: plan a drain of these ids (servers, racks, rows, rooms,
    /// devices) and execute it, with a pause, a resume and a cancel on the way.
    #[arg(long)]
    plan_drain: Vec<String>,
    /// Most moves of that plan.
    #[arg(long)]
    plan_max_moves: Option<u64>,
    /// Moves per second of the execution.
    #[arg(long, default_value_t = 1000.0)]
    plan_rate: f64,
    /// Steps committed but not yet durable at once.
    #[arg(long, default_value_t = 64)]
    plan_concurrency: u32,
}

/// Client sets, one per cell of the workload.
fn workload(args: &Args) -> anyhow::Result<Vec<Vec<String>>> {
    let table = match &args.inventory {
        Some(dir) => {
            let path = topology::ingest::table_path(dir, "cells")?
                .with_context(|| format!("{} has no cells table", dir.display()))?;
            topology::ingest::read_table(&path)?
        }
        None => {
            let mut params = fixtures::ZoneParams::small(0);
            params.cells = args.cells.max(1);
            fixtures::generate(&params)
                .table("cells")
                .cloned()
                .context("the generator wrote no cells")?
        }
    };
    let col = table
        .column_index("clients")
        .context("cells table without clients")?;
    let sets: Vec<Vec<String>> = table
        .rows
        .iter()
        .filter_map(|r| r[col].as_ref())
        .map(|c| c.split(';').map(str::to_owned).collect())
        .collect();
    if sets.is_empty() {
        bail!("no client sets in the workload");
    }
    Ok(sets)
}

/// Fills the ledger `dir/ledger.db` in bulk before the service starts (see `--prefill`).
fn prefill(args: &Args, exe: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<()> {
    let inventory = args
        .inventory
        .as_ref()
        .context("--prefill needs --inventory (the bulk load names the export)")?;
    let inventory = std::fs::canonicalize(inventory)?;
    std::fs::create_dir_all(dir)?;
    let run = |cmd: &mut Command, what: &str| -> anyhow::Result<()> {
        let started = Instant::now();
        let out = cmd.output().with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        println!("prefill  {what} in {:.1?}", started.elapsed());
        Ok(())
    };
    let placements = match &args.prefill_from {
        Some(p) => p.clone(),
        None => {
            let cells = topology::ingest::table_path(&inventory, "cells")?
                .context("the inventory has no cells table to prefill from")?;
            let mut table = topology::ingest::read_table(&cells)?;
            table.rows.truncate(args.prefill);
            let first = dir.join("prefill-cells.csv");
            topology::ingest::write_table(&first, &table)?;
            let placed = dir.join("prefill.csv");
            run(
                Command::new(exe)
                    .arg("place")
                    .arg(&inventory)
                    .arg("--cells")
                    .arg(&first)
                    .arg("--out")
                    .arg(&placed),
                &format!("placing {} cells", table.len()),
            )?;
            placed
        }
    };
    run(
        Command::new(exe)
            .args(["ledger", "import"])
            .arg(&inventory)
            .arg("--placements")
            .arg(&placements)
            .arg("--db")
            .arg(dir.join("ledger.db")),
        &format!("importing {}", placements.display()),
    )
}

/// A `cellplacer serve` started for the run.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn start(args: &Args) -> anyhow::Result<(Server, String)> {
        let exe = std::env::current_exe()?
            .parent()
            .context("no directory of the loadgen binary")?
            .join("cellplacer");
        if !exe.exists() {
            bail!(
                "{} not found: build it (cargo build --release -p api) or pass --url",
                exe.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("cellplacer-loadgen-{}", std::process::id()));
        if args.prefill > 0 || args.prefill_from.is_some() {
            prefill(args, &exe, &dir)?;
        }
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.join("ledger.db"))
            .args(["--workers", &args.workers.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(inv) = &args.inventory {
            cmd.arg("--inventory").arg(std::fs::canonicalize(inv)?);
        }
        if let Some(pool) = args.pool {
            cmd.args(["--pool", &pool.to_string()]);
        }
        if let Some(solver) = &args.solver {
            cmd.args(["--solver", solver]);
        }
        let mut child = cmd.spawn().context("starting cellplacer serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from the service: {line:?}"))?
            .to_owned();
        Ok((Server { child, dir }, url))
    }

    fn stop(mut self) -> anyhow::Result<()> {
        // SIGTERM: the service drains and closes the ledger cleanly.
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Phase {
    latencies: Vec<Duration>,
    statuses: std::collections::BTreeMap<u16, usize>,
    elapsed: Duration,
}

impl Phase {
    fn print(&self, name: &str, ok: u16) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |q: f64| {
            if l.is_empty() {
                0.0
            } else {
                let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
                l[rank - 1].as_secs_f64() * 1e3
            }
        };
        let n = l.len();
        let good = self.statuses.get(&ok).copied().unwrap_or(0);
        println!(
            "{name:<8} {n:>6} requests in {:>6.2} s: {:>7.0} req/s ({good} x {ok}); latency ms p50 {:.2}  p99 {:.2}  max {:.2}",
            self.elapsed.as_secs_f64(),
            n as f64 / self.elapsed.as_secs_f64().max(1e-9),
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
        let others: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| **s != ok)
            .map(|(s, k)| format!("{k} x {s}"))
            .collect();
        if !others.is_empty() {
            println!("         other statuses: {}", others.join(", "));
        }
    }
}

/// Runs `count` requests with `concurrency` in flight; `make(i)` issues request `i`.
async fn drive<F, Fut>(count: usize, concurrency: usize, make: F) -> Phase
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, Duration)> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let make = make.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    out.push(make(i).await);
                }
                out
            })
        })
        .collect();
    let mut phase = Phase::default();
    for t in tasks {
        for (status, latency) in t.await.unwrap_or_default() {
            *phase.statuses.entry(status).or_default() += 1;
            phase.latencies.push(latency);
        }
    }
    phase.elapsed = started.elapsed();
    phase
}

async fn timed(
    client: &Client,
    method: axum::http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, Duration, serde_json::Value) {
    let started = Instant::now();
    match client.send(method, path, body).await {
        Ok(r) => (r.status, started.elapsed(), r.json),
        Err(_) => (0, started.elapsed(), serde_json::Value::Null),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let sets = Arc::new(workload(&args)?);
    let (server, url) = match &args.url {
        Some(u) => (None, u.clone()),
        None => {
            let (s, u) = Server::start(&args)?;
            (Some(s), u)
        }
    };
    let client = Client::new(&url);
    let ready = client.get("/readyz").await?;
    if ready.status != 200 {
        bail!("service not ready: {}", ready.text);
    }
    println!(
        "loadgen: {url}, {} cells, concurrency {}, durable ledger{}",
        args.cells,
        args.concurrency,
        if server.is_some() {
            " (started for this run)"
        } else {
            ""
        }
    );
    // Unique ids per run, so that a rerun against the same ledger does not replay.
    // The pid too: two load generators started at once (one per replica) stay apart.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        * 10_000_000
        + u128::from(std::process::id());
    let nodes: Arc<Vec<parking_lot::Mutex<Option<String>>>> = Arc::new(
        (0..args.cells)
            .map(|_| parking_lot::Mutex::new(None))
            .collect(),
    );

    // Warm up connections and the solver threads.
    for i in 0..args.concurrency.min(args.cells) {
        let _ = client.get(&format!("/v1/cells/warmup-{i}")).await;
    }

    let place = {
        let client = client.clone();
        let sets = sets.clone();
        let nodes = nodes.clone();
        drive(args.cells, args.concurrency, move |i| {
            let client = client.clone();
            let clients = sets[i % sets.len()].clone();
            let nodes = nodes.clone();
            async move {
                let body = json!({"cell_id": format!("lg-{run_id}-{i}"), "clients": clients});
                let (status, latency, reply) =
                    timed(&client, axum::http::Method::POST, "/v1/cells", Some(&body)).await;
                if status == 201 {
                    *nodes[i].lock() = reply["cell"]["nodes"][0].as_str().map(str::to_owned);
                }
                (status, latency)
            }
        })
        .await
    };
    place.print("place", 201);
    let placed: Arc<Vec<(usize, String)>> = Arc::new(
        nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.lock().clone().map(|n| (i, n)))
            .collect(),
    );
    if placed.is_empty() {
        bail!("nothing was placed");
    }

    let get = {
        let client = client.clone();
        let placed = placed.clone();
        drive(args.gets, args.concurrency, move |i| {
            let client = client.clone();
            // A fixed stride spreads the reads over the cells without a random generator.
            let (cell, _) = placed[(i * 7919) % placed.len()].clone();
            async move {
                let path = format!("/v1/cells/lg-{run_id}-{cell}");
                let (status, latency, _) =
                    timed(&client, axum::http::Method::GET, &path, None).await;
                (status, latency)
            }
        })
        .await
    };
    get.print("get", 200);

    let replaces = args.replaces.min(placed.len());
    let replace = {
        let client = client.clone();
        let placed = placed.clone();
        drive(replaces, args.concurrency, move |i| {
            let client = client.clone();
            let (cell, node) = placed[i].clone();
            async move {
                let path = format!("/v1/cells/lg-{run_id}-{cell}/replace");
                let body = json!({ "server": node });
                let (status, latency, _) =
                    timed(&client, axum::http::Method::POST, &path, Some(&body)).await;
                (status, latency)
            }
        })
        .await
    };
    replace.print("replace", 200);

    if !args.plan_drain.is_empty() {
        plan_phase(&client, &args).await?;
    }

    // Deletes: the durable write path (lock, journal, group commit) without a solve.
    let deletes = if args.keep { 0 } else { placed.len() };
    let delete = {
        let client = client.clone();
        let placed = placed.clone();
        drive(deletes, args.concurrency, move |i| {
            let client = client.clone();
            let (cell, _) = placed[i].clone();
            async move {
                let path = format!("/v1/cells/lg-{run_id}-{cell}");
                let (status, latency, _) =
                    timed(&client, axum::http::Method::DELETE, &path, None).await;
                (status, latency)
            }
        })
        .await
    };
    delete.print("delete", 204);

    // Where the time went, from the service's own counters.
    let metrics = client.get("/metrics").await?.text;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    for op in ["place", "replace"] {
        let sum = value(&format!(
            "cellplacer_solve_duration_seconds_sum{{op=\"{op}\"}}"
        ));
        let count = value(&format!(
            "cellplacer_solve_duration_seconds_count{{op=\"{op}\"}}"
        ));
        if count > 0.0 {
            println!(
                "engine   {op:<8} mean solve {:.2} ms over {count} solves",
                sum / count * 1e3
            );
        }
    }
    let commits = value("cellplacer_store_commits_total");
    if commits > 0.0 {
        println!(
            "ledger   {commits} transactions, {:.1} changes each, mean commit (fsync included) {:.2} ms; {} solves redone after a conflict",
            value("cellplacer_store_changes_total") / commits,
            value("cellplacer_store_commit_duration_seconds_sum")
                / value("cellplacer_store_commit_duration_seconds_count").max(1.0)
                * 1e3,
            value("cellplacer_solve_conflicts_total"),
        );
    }

    if let Some(server) = server {
        server.stop()?;
    }
    Ok(())
}

/// Steps settled (committed, re-planned or skipped) so far, and the plan's state.
async fn settled(client: &Client, id: &str) -> anyhow::Result<(u64, String)> {
    let p = client.get(&format!("/v1/plans/{id}?limit=0")).await?;
    if p.status != 200 {
        bail!("GET plan: {}", p.text);
    }
    let progress = &p.json["progress"];
    let pending = progress["pending"].as_u64().context("pending")?;
    let steps = progress["steps"].as_u64().context("steps")?;
    Ok((
        steps - pending,
        p.json["state"].as_str().unwrap_or("").to_owned(),
    ))
}

/// Polls until `settled` reaches `target` (or the plan stops).
async fn run_until(client: &Client, id: &str, target: u64) -> anyhow::Result<u64> {
    loop {
        let (n, state) = settled(client, id).await?;
        if n >= target || state != "executing" {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// After a pause or cancel reply: polls for 1.5 s; the steps settled after the reply and
/// the time from the request to the last of them (at the poll's 5 ms resolution).
async fn wind_down(
    client: &Client,
    id: &str,
    asked: Instant,
    at_reply: u64,
) -> anyhow::Result<(u64, Duration)> {
    let (mut last, mut last_at) = (at_reply, asked.elapsed());
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let (n, _) = settled(client, id).await?;
        if n != last {
            (last, last_at) = (n, asked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((last - at_reply, last_at))
}

/// The pace of the steps settled in a window, from their own commit times (ms): steps over
/// the time from the first to the last.
async fn pace(client: &Client, id: &str, from: u64, to: u64) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    let mut offset = from;
    while offset < to {
        let limit = (to - offset).min(10_000);
        let page = client
            .get(&format!("/v1/plans/{id}?offset={offset}&limit={limit}"))
            .await?;
        let steps = page.json["steps"].as_array().context("steps")?;
        if steps.is_empty() {
            break;
        }
        offset += steps.len() as u64;
        times.extend(steps.iter().filter_map(|s| s["settled_at"].as_i64()));
    }
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return Ok(0.0);
    };
    Ok((times.len() - 1) as f64 / ((last - first) as f64 / 1e3).max(1e-3))
}

/// Plans a drain and executes it at a set rate: the planning time, the pace held, how fast
/// pause, resume and cancel take effect.
async fn plan_phase(client: &Client, args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let created = client
        .post(
            "/v1/plans",
            &json!({"drain": args.plan_drain, "max_moves": args.plan_max_moves}),
        )
        .await?;
    if created.status != 201 {
        bail!("POST /v1/plans: {}", created.text);
    }
    let id = created.json["plan_id"]
        .as_str()
        .context("plan_id")?
        .to_owned();
    let steps = created.json["progress"]["steps"]
        .as_u64()
        .context("steps")?;
    println!(
        "plan     {steps} moves planned in {:.2?} (drain {:?})",
        started.elapsed(),
        args.plan_drain
    );
    if steps < 10 {
        bail!("too few moves to time an execution");
    }
    let execute = json!({"rate": args.plan_rate, "concurrency": args.plan_concurrency});
    let t0 = Instant::now();
    let reply = client
        .post(&format!("/v1/plans/{id}/execute"), &execute)
        .await?;
    if reply.status != 200 {
        bail!("execute: {}", reply.text);
    }
    let first = run_until(client, &id, steps * 2 / 5).await?;
    let asked = Instant::now();
    let window = asked - t0;
    let reply = client
        .post(&format!("/v1/plans/{id}/pause"), &json!({}))
        .await?;
    let answered = asked.elapsed();
    let (at_pause, _) = settled(client, &id).await?;
    let (extra, stopped) = wind_down(client, &id, asked, at_pause).await?;
    println!(
        "execute  {first} steps in {window:.2?} ({:.0}/s wall from the execute request); pause answered {} in {answered:.1?}, {extra} steps after the reply, the last {stopped:.1?} after the request",
        first as f64 / window.as_secs_f64(),
        reply.status,
    );
    let (paused_at, _) = settled(client, &id).await?;
    let asked = Instant::now();
    client
        .post(&format!("/v1/plans/{id}/resume"), &json!({}))
        .await?;
    let resumed = run_until(client, &id, paused_at + 1).await?;
    println!(
        "resume   first step {:.1?} after the request ({resumed} settled)",
        asked.elapsed()
    );
    let t1 = Instant::now();
    let second = run_until(client, &id, steps * 4 / 5).await?;
    let asked = Instant::now();
    let window2 = asked - t1;
    let reply = client
        .post(&format!("/v1/plans/{id}/cancel"), &json!({}))
        .await?;
    let answered = asked.elapsed();
    let (at_cancel, state) = settled(client, &id).await?;
    let (extra, stopped) = wind_down(client, &id, asked, at_cancel).await?;
    println!(
        "execute  {} more steps in {window2:.2?}; cancel answered {} in {answered:.1?} (state {state}), {extra} steps after the reply, the last {stopped:.1?} after the request",
        second - resumed,
        reply.status,
    );
    let pace1 = pace(client, &id, 0, first).await?;
    let pace2 = pace(client, &id, resumed, second).await?;
    println!(
        "pace     from the steps' commit times: {pace1:.0}/s before the pause, {pace2:.0}/s after the resume (target {}/s: {:+.1} %, {:+.1} %)",
        args.plan_rate,
        (pace1 / args.plan_rate - 1.0) * 100.0,
        (pace2 / args.plan_rate - 1.0) * 100.0
    );
    let done = client.get(&format!("/v1/plans/{id}?limit=0")).await?;
    println!("progress {}", done.json["progress"]);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Two client threads: enough to keep the service busy without starving it of the cores
    // it shares with us on a small machine.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}
