//! The service's Prometheus metrics, through the Prometheus project's client
//! (`prometheus-client`): counters and histograms updated as requests, solves and commits
//! happen; gauges read from the service's state at scrape time ([`Gauges`]); the Prometheus
//! text encoding (0.0.4, the format dashboards have always scraped here) from the library. Every label takes a bounded set of values: the route is
//! the matched route pattern (or `unmatched`), the method one of the standard methods (or
//! `other`), the status an HTTP status code, the op a solver operation.

use std::time::Duration;

use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use store::{PlanState, StepStatus};

#[cfg(target_os = "linux")]
mod process;
#[cfg(test)]
mod tests;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds in seconds; the 25 ms target sits on a bucket edge.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of `cellplacer_cells_by_risk`, in outages per year (a cell's exact risk;
/// 1 for a cell that is down).
pub const RISK_BOUNDS: [f64; 8] = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// The `le` labels of [`RISK_BOUNDS`], as Prometheus's own clients print them.
const RISK_LABELS: [&str; 8] = [
    "1e-07", "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1",
];

/// The methods the `method` label names; any other is `other`.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// The labels of one request count, in the order dashboards have always seen them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// The labels of one request latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

/// One label, of a bounded set of values.
type Label = [(&'static str, &'static str); 1];

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Values read from the service state at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Cells in the ledger.
    pub cells: u64,
    /// Cells that are not single-failure safe.
    pub cells_unsafe: u64,
    /// Cells out: down with nothing more failed.
    pub cells_out: u64,
    /// Servers the health overlay has down.
    pub servers_down: u64,
    /// Servers draining (in the export or reported).
    pub servers_draining: u64,
    /// The highest utilisation of an active host with node capacity: its nodes over its
    /// capacity (0 when there is none).
    pub utilisation_max: f64,
    /// Cells per risk bucket of [`RISK_BOUNDS`] (not cumulative; the last is above 1).
    pub cells_by_risk: [u64; RISK_BOUNDS.len() + 1],
    /// Active hosts whose load is above the placer's balance ceiling (0 when the balance
    /// rule is off).
    pub servers_over_balance_ceiling: u64,
    /// Cell nodes placed on servers.
    pub nodes_placed: u64,
    /// Node capacity of the active cell hosts.
    pub node_capacity: u64,
    /// The active inventory version.
    pub inventory_version: i64,
    /// Solves waiting for a worker.
    pub solver_queue: u64,
    /// Solver worker threads.
    pub solver_workers: u64,
    /// Plans by state, in [`PlanState::ALL`] order.
    pub plans_by_state: [u64; PlanState::ALL.len()],
    /// The latest re-evaluation of the cells on an inventory version, if any.
    pub reevaluation: Option<ReevaluationGauges>,
}

/// Progress of a re-evaluation (see `GET /v1/inventory`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReevaluationGauges {
    /// Whether it is still running.
    pub running: bool,
    /// Cells to judge.
    pub cells: u64,
    /// Cells judged so far.
    pub evaluated: u64,
    /// Cells whose new risk is recorded.
    pub recorded: u64,
}

/// The service's counters and histograms, registered once; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_latency: Family<RouteLabels, Histogram>,
    solve_latency: Family<Label, Histogram>,
    solve_conflicts: Counter,
    stale_retries: Counter,
    forwarded: Family<Label, Counter>,
    plan_steps: Family<Label, Counter>,
    commits: Counter,
    failed_commits: Counter,
    changes: Counter,
    commit_latency: Histogram,
    connections_open: Gauge,
    connections_refused: Counter,
    autopilot_moves: Family<Label, Counter>,
    autopilot_queue: Family<Label, Gauge>,
    autopilot_event_to_safe: Histogram,
    heavy_running: Family<Label, Gauge>,
    heavy_timeouts: Family<Label, Counter>,
}

/// The autopilot's reasons, in order of urgency (the `reason` label).
pub const AUTOPILOT_REASONS: [&str; 6] = ["out", "failed", "unsafe", "drain", "improve", "waiting"];

/// Upper bounds in seconds of the time from a health event to the cell safe again.
const REPAIR_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0,
];

impl Default for Metrics {
    fn default() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency),
            solve_latency: Family::new_with_constructor(latency),
            solve_conflicts: Counter::default(),
            stale_retries: Counter::default(),
            forwarded: Family::default(),
            plan_steps: Family::default(),
            commits: Counter::default(),
            failed_commits: Counter::default(),
            changes: Counter::default(),
            commit_latency: latency(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            autopilot_moves: Family::default(),
            autopilot_queue: Family::default(),
            autopilot_event_to_safe: Histogram::new(REPAIR_BUCKETS),
            heavy_running: Family::default(),
            heavy_timeouts: Family::default(),
        };
        // Counters are registered without `_total`: the encoding adds it.
        let r = &mut m.registry;
        r.register(
            "cellplacer_http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "cellplacer_http_request_duration_seconds",
            "HTTP request latency by route and method",
            m.http_latency.clone(),
        );
        r.register(
            "cellplacer_solve_duration_seconds",
            "Placement engine time per solve, by operation",
            m.solve_latency.clone(),
        );
        r.register(
            "cellplacer_solve_conflicts",
            "Solves redone because a concurrent commit took their servers",
            m.solve_conflicts.clone(),
        );
        r.register(
            "cellplacer_forwarded",
            "Writes this replica forwarded to the writer lease's holder (outcome: forwarded, \
             or served here because the writer could not be reached)",
            m.forwarded.clone(),
        );
        r.register(
            "cellplacer_stale_retries",
            "Requests computed again on the reloaded ledger because another replica \
             committed first",
            m.stale_retries.clone(),
        );
        r.register(
            "cellplacer_plan_steps",
            "Plan steps executed, by outcome (committed as planned, re-planned to another \
             server, skipped)",
            m.plan_steps.clone(),
        );
        r.register(
            "cellplacer_store_commits",
            "Ledger transactions committed (group commits)",
            m.commits.clone(),
        );
        r.register(
            "cellplacer_store_failed_commits",
            "Ledger transactions that failed",
            m.failed_commits.clone(),
        );
        r.register(
            "cellplacer_store_changes",
            "Changes committed to the ledger",
            m.changes.clone(),
        );
        r.register(
            "cellplacer_store_commit_duration_seconds",
            "Time per ledger transaction, fsync included",
            m.commit_latency.clone(),
        );
        r.register(
            "cellplacer_connections_open",
            "HTTP connections open",
            m.connections_open.clone(),
        );
        r.register(
            "cellplacer_connections_refused",
            "Connections closed at once: over the cap",
            m.connections_refused.clone(),
        );
        r.register(
            "cellplacer_autopilot_moves",
            "Moves the autopilot made, by reason (out, failed, unsafe, drain, improve)",
            m.autopilot_moves.clone(),
        );
        r.register(
            "cellplacer_autopilot_queue",
            "Work the autopilot has waiting, by reason (waiting: nodes on servers failed \
             less than the grace ago)",
            m.autopilot_queue.clone(),
        );
        r.register(
            "cellplacer_autopilot_event_to_safe_seconds",
            "Time from the health event that made a cell need the autopilot to the cell \
             single-failure safe and off failed servers again",
            m.autopilot_event_to_safe.clone(),
        );
        r.register(
            "cellplacer_heavy_running",
            "Heavy requests computing now, by kind (report, whatif, plan, validate); one \
             answered timeout counts until its work has stopped",
            m.heavy_running.clone(),
        );
        r.register(
            "cellplacer_heavy_timeouts",
            "Heavy requests answered timeout, by kind",
            m.heavy_timeouts.clone(),
        );
        for reason in AUTOPILOT_REASONS {
            let _ = m.autopilot_queue.get_or_create(&[("reason", reason)]);
            if reason != "waiting" {
                let _ = m.autopilot_moves.get_or_create(&[("reason", reason)]);
            }
        }
        for outcome in ["committed", "replanned", "skipped"] {
            // Present from the start, at 0.
            let _ = m.plan_steps.get_or_create(&[("outcome", outcome)]);
        }
        m
    }
}

impl Metrics {
    /// One HTTP request; `route` must be a route pattern (bounded), `method` any method
    /// (methods outside the standard ones count as `other`).
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A connection accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection over the cap, closed at once.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// One ledger transaction (see [`store::CommitObserver`]).
    pub fn observe_commit(&self, elapsed: Duration, changes: usize, ok: bool) {
        if ok {
            self.commits.inc();
            self.changes.inc_by(changes as u64);
        } else {
            self.failed_commits.inc();
        }
        self.commit_latency.observe(elapsed.as_secs_f64());
    }

    /// The engine's time for one solve of `op` (place, replace, move).
    pub fn observe_solve(&self, op: &'static str, elapsed: Duration) {
        self.solve_latency
            .get_or_create(&[("op", op)])
            .observe(elapsed.as_secs_f64());
    }

    /// A solve thrown away because a concurrent commit made it invalid.
    pub fn solve_conflict(&self) {
        self.solve_conflicts.inc();
    }

    /// A plan step settled (a pending one is not counted).
    pub fn plan_step(&self, status: StepStatus) {
        let outcome = match status {
            StepStatus::Pending => return,
            StepStatus::Committed => "committed",
            StepStatus::Replanned => "replanned",
            StepStatus::Skipped => "skipped",
        };
        self.plan_steps.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// A move of the autopilot, for `reason` (one of [`AUTOPILOT_REASONS`]).
    pub fn autopilot_move(&self, reason: &'static str) {
        self.autopilot_moves
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// The autopilot's queue, by reason (one of [`AUTOPILOT_REASONS`]).
    pub fn autopilot_queue(&self, reason: &'static str, n: u64) {
        self.autopilot_queue
            .get_or_create(&[("reason", reason)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The heavy request kind `kind`, present from the start at 0.
    pub fn heavy_kind(&self, kind: &'static str) {
        let _ = self.heavy_running.get_or_create(&[("kind", kind)]);
        let _ = self.heavy_timeouts.get_or_create(&[("kind", kind)]);
    }

    /// A heavy request of `kind` started computing (`delta` 1) or stopped (-1).
    pub fn heavy_running(&self, kind: &'static str, delta: i64) {
        self.heavy_running
            .get_or_create(&[("kind", kind)])
            .inc_by(delta);
    }

    /// A write sent on to the writer (`forwarded`), or served here because the writer
    /// could not be reached (`unreachable`).
    pub fn forwarded(&self, outcome: &'static str) {
        self.forwarded.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// A request computed again because another replica committed first.
    pub fn stale_retry(&self) {
        self.stale_retries.inc();
    }

    /// A heavy request of `kind` answered timeout.
    pub fn heavy_timeout(&self, kind: &'static str) {
        self.heavy_timeouts.get_or_create(&[("kind", kind)]).inc();
    }

    /// A cell safe again, `elapsed` after the event that made it need a move.
    pub fn autopilot_repaired(&self, elapsed: Duration) {
        self.autopilot_event_to_safe.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition (0.0.4): the counters, then the gauges `g` read at
    /// scrape time, then the process's own.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        let _ = encode(&mut out, &scrape_registry(g));
        out
    }
}

impl store::CommitObserver for Metrics {
    fn observe_commit(&self, elapsed: Duration, changes: usize, ok: bool) {
        Metrics::observe_commit(self, elapsed, changes, ok);
    }
}

/// The gauges of one scrape, as metrics of their own registry.
fn scrape_registry(g: &Gauges) -> Registry {
    let mut r = Registry::default();
    let mut gauge = |name: &str, help: &str, v: i64| {
        r.register(name, help, ConstGauge::new(v));
    };
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    gauge("cellplacer_cells", "Cells in the ledger", int(g.cells));
    gauge(
        "cellplacer_cells_unsafe",
        "Cells that are not single-failure safe (one element can put them out)",
        int(g.cells_unsafe),
    );
    gauge(
        "cellplacer_cells_out",
        "Cells out now: some client that needs the cell reaches less than a quorum of its \
         nodes with nothing more failed (alert on any)",
        int(g.cells_out),
    );
    gauge(
        "cellplacer_servers_down",
        "Servers the reported health has down (failed, in a failed rack, row, room or \
         datacenter, or unpowered)",
        int(g.servers_down),
    );
    gauge(
        "cellplacer_servers_draining",
        "Servers draining: up, taking no new nodes, their nodes moved away by plans and \
         the autopilot",
        int(g.servers_draining),
    );
    gauge(
        "cellplacer_servers_over_balance_ceiling",
        "Active hosts whose load is above the placer's balance ceiling \
         (floor(max(balance*mean*capacity, mean*capacity+5)), mean = nodes placed over \
         the capacity of active hosts)",
        int(g.servers_over_balance_ceiling),
    );
    gauge(
        "cellplacer_nodes_placed",
        "Cell nodes placed on servers",
        int(g.nodes_placed),
    );
    gauge(
        "cellplacer_node_capacity",
        "Node capacity of active cell hosts",
        int(g.node_capacity),
    );
    gauge(
        "cellplacer_inventory_version",
        "Active inventory version",
        g.inventory_version,
    );
    gauge(
        "cellplacer_solver_queue",
        "Solves waiting for a worker",
        int(g.solver_queue),
    );
    gauge(
        "cellplacer_solver_workers",
        "Solver worker threads",
        int(g.solver_workers),
    );
    let r_ = g.reevaluation.unwrap_or_default();
    gauge(
        "cellplacer_reevaluation_running",
        "1 while the cells are re-evaluated on a new inventory version",
        i64::from(r_.running),
    );
    let utilisation = if g.node_capacity > 0 {
        g.nodes_placed as f64 / g.node_capacity as f64
    } else {
        0.0
    };
    r.register(
        "cellplacer_utilisation",
        "Nodes placed over the node capacity of active hosts",
        ConstGauge::new(utilisation),
    );
    r.register(
        "cellplacer_utilisation_max",
        "The highest utilisation of an active host: its nodes over its node capacity",
        ConstGauge::new(g.utilisation_max),
    );
    let by_risk = Family::<Label, Gauge>::default();
    let mut cumulative = 0;
    for (le, n) in RISK_LABELS.iter().zip(g.cells_by_risk) {
        cumulative += n;
        by_risk.get_or_create(&[("le", le)]).set(int(cumulative));
    }
    cumulative += g.cells_by_risk[RISK_BOUNDS.len()];
    by_risk
        .get_or_create(&[("le", "+Inf")])
        .set(int(cumulative));
    r.register(
        "cellplacer_cells_by_risk",
        "Cells whose risk is at most le, in outages per year (cumulative; a cell that is \
         down counts as risk 1)",
        by_risk,
    );
    let plans = Family::<Label, Gauge>::default();
    for (state, n) in PlanState::ALL.iter().zip(g.plans_by_state) {
        plans.get_or_create(&[("state", state.name())]).set(int(n));
    }
    r.register("cellplacer_plans", "Rebalancing plans by state", plans);
    let reevaluation = Family::<Label, Gauge>::default();
    for (state, n) in [
        ("total", r_.cells),
        ("evaluated", r_.evaluated),
        ("recorded", r_.recorded),
    ] {
        reevaluation.get_or_create(&[("state", state)]).set(int(n));
    }
    r.register(
        "cellplacer_reevaluation_cells",
        "Cells of the latest re-evaluation: to judge, judged, recorded",
        reevaluation,
    );
    let build = Family::<Label, Gauge>::default();
    build
        .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
        .set(1);
    r.register(
        "cellplacer_build_info",
        "The running build (always 1)",
        build,
    );
    #[cfg(target_os = "linux")]
    if let Some(p) = process::Process::read() {
        p.register(&mut r);
    }
    r
}
