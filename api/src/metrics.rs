//! Prometheus metrics, hand-rolled: a few counters and histograms behind short locks, and
//! the text exposition format. Gauges are read from the ledger when scraped, process
//! metrics from `/proc/self` (Linux only). Every label takes a bounded set of values: the
//! route is the matched route pattern (or `unmatched`), the method one of the standard
//! methods (or `other`), the status an HTTP status code, the op a solver operation.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

use crate::store::{PlanState, StepStatus};

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

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative), plus +Inf at the end.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

#[derive(Debug, Default)]
struct Http {
    /// (route, method, status) -> requests.
    requests: BTreeMap<(String, &'static str, u16), u64>,
    /// (route, method) -> latency.
    latency: BTreeMap<(String, &'static str), Histogram>,
}

#[derive(Debug, Default)]
struct Store {
    commits: u64,
    failed_commits: u64,
    changes: u64,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Solver {
    /// op -> solve time.
    latency: BTreeMap<&'static str, Histogram>,
    /// Solves thrown away because a concurrent commit made them invalid.
    conflicts: u64,
    /// Plan steps by outcome: committed, replanned, skipped.
    plan_steps: [u64; 3],
}

/// Values read from the service state at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub cells: u64,
    /// Cells that are not single-failure safe.
    pub cells_unsafe: u64,
    /// Cells per risk bucket of [`RISK_BOUNDS`] (not cumulative; the last is above 1).
    pub cells_by_risk: [u64; RISK_BOUNDS.len() + 1],
    /// Active hosts whose load is above the placer's balance ceiling (0 when the balance
    /// rule is off).
    pub servers_over_balance_ceiling: u64,
    pub nodes_placed: u64,
    pub node_capacity: u64,
    pub inventory_version: i64,
    pub solver_queue: u64,
    pub solver_workers: u64,
    /// Plans by state, in [`PlanState::ALL`] order.
    pub plans_by_state: [u64; PlanState::ALL.len()],
    /// The latest re-evaluation of the cells on an inventory version, if any.
    pub reevaluation: Option<ReevaluationGauges>,
}

/// Progress of a re-evaluation (see `GET /v1/inventory`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReevaluationGauges {
    pub running: bool,
    /// Cells to judge, judged so far, and recorded.
    pub cells: u64,
    pub evaluated: u64,
    pub recorded: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<Http>,
    store: Mutex<Store>,
    solver: Mutex<Solver>,
    connections_open: std::sync::atomic::AtomicU64,
    connections_refused: std::sync::atomic::AtomicU64,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One HTTP request; `route` must be a route pattern (bounded), `method` any method
    /// (methods outside the standard ones count as `other`).
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut http = self.http.lock();
        *http
            .requests
            .entry((route.to_owned(), method, status))
            .or_default() += 1;
        http.latency
            .entry((route.to_owned(), method))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn connection_opened(&self) {
        self.connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A connection over the cap, closed at once.
    pub fn connection_refused(&self) {
        self.connections_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn observe_commit(&self, elapsed: Duration, changes: usize, ok: bool) {
        let mut s = self.store.lock();
        if ok {
            s.commits += 1;
            s.changes += changes as u64;
        } else {
            s.failed_commits += 1;
        }
        s.latency.observe(elapsed.as_secs_f64());
    }

    pub fn observe_solve(&self, op: &'static str, elapsed: Duration) {
        self.solver
            .lock()
            .latency
            .entry(op)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn solve_conflict(&self) {
        self.solver.lock().conflicts += 1;
    }

    /// A plan step settled (a pending one is not counted).
    pub fn plan_step(&self, status: StepStatus) {
        let i = match status {
            StepStatus::Pending => return,
            StepStatus::Committed => 0,
            StepStatus::Replanned => 1,
            StepStatus::Skipped => 2,
        };
        self.solver.lock().plan_steps[i] += 1;
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        {
            let http = self.http.lock();
            out.push_str("# HELP cellplacer_http_requests_total HTTP requests by route, method and status.\n");
            out.push_str("# TYPE cellplacer_http_requests_total counter\n");
            for ((route, method, status), n) in &http.requests {
                let _ = writeln!(
                    out,
                    "cellplacer_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
            out.push_str("# HELP cellplacer_http_request_duration_seconds HTTP request latency by route and method.\n");
            out.push_str("# TYPE cellplacer_http_request_duration_seconds histogram\n");
            for ((route, method), h) in &http.latency {
                h.render(
                    &mut out,
                    "cellplacer_http_request_duration_seconds",
                    &format!("route=\"{}\",method=\"{method}\"", escape(route)),
                );
            }
        }
        {
            let solver = self.solver.lock();
            out.push_str("# HELP cellplacer_solve_duration_seconds Placement engine time per solve, by operation.\n");
            out.push_str("# TYPE cellplacer_solve_duration_seconds histogram\n");
            for (op, h) in &solver.latency {
                h.render(
                    &mut out,
                    "cellplacer_solve_duration_seconds",
                    &format!("op=\"{op}\""),
                );
            }
            out.push_str("# HELP cellplacer_solve_conflicts_total Solves redone because a concurrent commit took their servers.\n");
            out.push_str("# TYPE cellplacer_solve_conflicts_total counter\n");
            let _ = writeln!(out, "cellplacer_solve_conflicts_total {}", solver.conflicts);
            out.push_str("# HELP cellplacer_plan_steps_total Plan steps executed, by outcome (committed as planned, re-planned to another server, skipped).\n");
            out.push_str("# TYPE cellplacer_plan_steps_total counter\n");
            for (outcome, n) in ["committed", "replanned", "skipped"]
                .iter()
                .zip(solver.plan_steps)
            {
                let _ = writeln!(
                    out,
                    "cellplacer_plan_steps_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        {
            let s = self.store.lock();
            out.push_str("# HELP cellplacer_store_commits_total Ledger transactions committed (group commits).\n");
            out.push_str("# TYPE cellplacer_store_commits_total counter\n");
            let _ = writeln!(out, "cellplacer_store_commits_total {}", s.commits);
            out.push_str(
                "# HELP cellplacer_store_failed_commits_total Ledger transactions that failed.\n",
            );
            out.push_str("# TYPE cellplacer_store_failed_commits_total counter\n");
            let _ = writeln!(
                out,
                "cellplacer_store_failed_commits_total {}",
                s.failed_commits
            );
            out.push_str(
                "# HELP cellplacer_store_changes_total Changes committed to the ledger.\n",
            );
            out.push_str("# TYPE cellplacer_store_changes_total counter\n");
            let _ = writeln!(out, "cellplacer_store_changes_total {}", s.changes);
            out.push_str("# HELP cellplacer_store_commit_duration_seconds Time per ledger transaction, fsync included.\n");
            out.push_str("# TYPE cellplacer_store_commit_duration_seconds histogram\n");
            s.latency
                .render(&mut out, "cellplacer_store_commit_duration_seconds", "");
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        };
        gauge(
            &mut out,
            "cellplacer_cells",
            "Cells in the ledger.",
            g.cells.to_string(),
        );
        gauge(
            &mut out,
            "cellplacer_cells_unsafe",
            "Cells that are not single-failure safe (one element can put them out).",
            g.cells_unsafe.to_string(),
        );
        out.push_str(
            "# HELP cellplacer_cells_by_risk Cells whose risk is at most le, in outages per \
             year (cumulative; a cell that is down counts as risk 1).\n",
        );
        out.push_str("# TYPE cellplacer_cells_by_risk gauge\n");
        let mut cumulative = 0;
        for (le, n) in RISK_LABELS.iter().zip(g.cells_by_risk) {
            cumulative += n;
            let _ = writeln!(out, "cellplacer_cells_by_risk{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += g.cells_by_risk[RISK_BOUNDS.len()];
        let _ = writeln!(out, "cellplacer_cells_by_risk{{le=\"+Inf\"}} {cumulative}");
        gauge(
            &mut out,
            "cellplacer_servers_over_balance_ceiling",
            "Active hosts whose load is above the placer's balance ceiling \
             (floor(max(balance*mean*capacity, mean*capacity+5)), mean = nodes placed over \
             the capacity of active hosts).",
            g.servers_over_balance_ceiling.to_string(),
        );
        gauge(
            &mut out,
            "cellplacer_nodes_placed",
            "Cell nodes placed on servers.",
            g.nodes_placed.to_string(),
        );
        gauge(
            &mut out,
            "cellplacer_node_capacity",
            "Node capacity of active cell hosts.",
            g.node_capacity.to_string(),
        );
        let utilisation = if g.node_capacity > 0 {
            g.nodes_placed as f64 / g.node_capacity as f64
        } else {
            0.0
        };
        gauge(
            &mut out,
            "cellplacer_utilisation",
            "Nodes placed over the node capacity of active hosts.",
            utilisation.to_string(),
        );
        gauge(
            &mut out,
            "cellplacer_inventory_version",
            "Active inventory version.",
            g.inventory_version.to_string(),
        );
        gauge(
            &mut out,
            "cellplacer_solver_queue",
            "Solves waiting for a worker.",
            g.solver_queue.to_string(),
        );
        gauge(
            &mut out,
            "cellplacer_solver_workers",
            "Solver worker threads.",
            g.solver_workers.to_string(),
        );
        out.push_str("# HELP cellplacer_plans Rebalancing plans by state.\n");
        out.push_str("# TYPE cellplacer_plans gauge\n");
        for (state, n) in PlanState::ALL.iter().zip(g.plans_by_state) {
            let _ = writeln!(out, "cellplacer_plans{{state=\"{}\"}} {n}", state.name());
        }
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        gauge(
            &mut out,
            "cellplacer_connections_open",
            "HTTP connections open.",
            self.connections_open.load(relaxed).to_string(),
        );
        out.push_str("# HELP cellplacer_connections_refused_total Connections closed at once: over the cap.\n");
        out.push_str("# TYPE cellplacer_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "cellplacer_connections_refused_total {}",
            self.connections_refused.load(relaxed)
        );
        let r = g.reevaluation.unwrap_or_default();
        gauge(
            &mut out,
            "cellplacer_reevaluation_running",
            "1 while the cells are re-evaluated on a new inventory version.",
            u8::from(r.running).to_string(),
        );
        out.push_str(
            "# HELP cellplacer_reevaluation_cells Cells of the latest re-evaluation: to judge, judged, recorded.\n",
        );
        out.push_str("# TYPE cellplacer_reevaluation_cells gauge\n");
        for (state, n) in [
            ("total", r.cells),
            ("evaluated", r.evaluated),
            ("recorded", r.recorded),
        ] {
            let _ = writeln!(
                out,
                "cellplacer_reevaluation_cells{{state=\"{state}\"}} {n}"
            );
        }
        out.push_str("# HELP cellplacer_build_info The running build (always 1).\n");
        out.push_str("# TYPE cellplacer_build_info gauge\n");
        let _ = writeln!(
            out,
            "cellplacer_build_info{{version=\"{}\"}} 1",
            escape(env!("CARGO_PKG_VERSION"))
        );
        #[cfg(target_os = "linux")]
        if let Some(p) = process::Process::read() {
            p.render(&mut out);
        }
        out
    }
}

/// Process metrics from `/proc/self`, as Prometheus's own clients name them.
#[cfg(target_os = "linux")]
mod process {
    use std::fmt::Write;

    /// `USER_HZ`: the unit of the times in `/proc/<pid>/stat`, 100 on every Linux ABI.
    const CLOCK_TICKS: f64 = 100.0;

    #[derive(Debug, Default, Clone, PartialEq)]
    pub struct Process {
        pub cpu_seconds: Option<f64>,
        pub start_time_seconds: Option<f64>,
        pub threads: Option<u64>,
        pub virtual_bytes: Option<u64>,
        pub resident_bytes: Option<u64>,
        pub open_fds: Option<u64>,
    }

    /// The fields of `/proc/self/stat` after the command name (the first is the state,
    /// field 3 of proc(5)).
    fn stat_fields(stat: &str) -> Option<Vec<&str>> {
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(rest.split_whitespace().collect())
    }

    /// A `Key:   123 kB` line of `/proc/self/status`, in bytes.
    fn status_kb(status: &str, key: &str) -> Option<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
        let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    }

    impl Process {
        /// Parses the contents of `/proc/self/stat`, `/proc/self/status` and `/proc/stat`.
        pub fn parse(stat: &str, status: &str, system: &str) -> Process {
            let mut p = Process::default();
            if let Some(f) = stat_fields(stat) {
                // proc(5) numbers fields from 1 and the state is field 3: index = n - 3.
                let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
                if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                    p.cpu_seconds = Some((utime + stime) as f64 / CLOCK_TICKS);
                }
                p.threads = field(20);
                let boot = system
                    .lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let (Some(boot), Some(start)) = (boot, field(22)) {
                    p.start_time_seconds = Some(boot as f64 + start as f64 / CLOCK_TICKS);
                }
                p.virtual_bytes = field(23);
            }
            // Resident size in kB from status: no page size to assume.
            p.resident_bytes = status_kb(status, "VmRSS");
            p.virtual_bytes = p.virtual_bytes.or_else(|| status_kb(status, "VmSize"));
            p
        }

        pub fn read() -> Option<Process> {
            let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let system = std::fs::read_to_string("/proc/stat").unwrap_or_default();
            let mut p = Process::parse(&stat, &status, &system);
            p.open_fds = std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64);
            Some(p)
        }

        pub fn render(&self, out: &mut String) {
            let mut metric = |name: &str, kind: &str, help: &str, v: Option<String>| {
                if let Some(v) = v {
                    let _ = writeln!(out, "# HELP {name} {help}");
                    let _ = writeln!(out, "# TYPE {name} {kind}");
                    let _ = writeln!(out, "{name} {v}");
                }
            };
            let s = |v: Option<u64>| v.map(|v| v.to_string());
            metric(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                self.cpu_seconds.map(|v| v.to_string()),
            );
            metric(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                s(self.open_fds),
            );
            metric(
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                s(self.virtual_bytes),
            );
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                s(self.resident_bytes),
            );
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds.map(|v| v.to_string()),
            );
            metric(
                "process_threads",
                "gauge",
                "Number of OS threads in the process.",
                s(self.threads),
            );
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn proc_files_are_parsed() {
            // A command name with spaces and a parenthesis, as proc(5) allows.
            let stat = "4242 (cell placer) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                        250 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615";
            let status = "Name:\tcellplacer\nVmSize:\t  102400 kB\nVmRSS:\t   10240 kB\n";
            let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
            let p = Process::parse(stat, status, system);
            assert_eq!(p.cpu_seconds, Some(3.0));
            assert_eq!(p.threads, Some(9));
            assert!((p.start_time_seconds.unwrap() - 1_700_000_123.45).abs() < 1e-6);
            assert_eq!(p.virtual_bytes, Some(104_857_600));
            assert_eq!(p.resident_bytes, Some(10_485_760));
            assert_eq!(Process::parse("garbage", "", ""), Process::default());
        }

        #[test]
        fn this_process_is_read() {
            let p = Process::read().expect("/proc/self on Linux");
            assert!(p.resident_bytes.unwrap() > 0);
            assert!(p.virtual_bytes.unwrap() >= p.resident_bytes.unwrap());
            assert!(p.threads.unwrap() >= 1);
            assert!(p.open_fds.unwrap() >= 3);
            assert!(p.start_time_seconds.unwrap() > 1.5e9);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_is_cumulative_and_labelled() {
        let m = Metrics::default();
        m.observe_request("/v1/cells", "POST", 201, Duration::from_millis(3));
        m.observe_request("/v1/cells", "POST", 201, Duration::from_millis(30));
        m.observe_request("/v1/cells", "POST", 409, Duration::from_micros(100));
        m.observe_solve("place", Duration::from_millis(1));
        m.observe_commit(Duration::from_millis(4), 7, true);
        let text = m.render(&Gauges {
            cells: 3,
            nodes_placed: 21,
            node_capacity: 42,
            ..Gauges::default()
        });
        assert!(text.contains(
            "cellplacer_http_requests_total{route=\"/v1/cells\",method=\"POST\",status=\"201\"} 2"
        ));
        assert!(text.contains(
            "cellplacer_http_request_duration_seconds_bucket{route=\"/v1/cells\",method=\"POST\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "cellplacer_http_request_duration_seconds_bucket{route=\"/v1/cells\",method=\"POST\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("cellplacer_store_changes_total 7"));
        assert!(text.contains("cellplacer_store_commit_duration_seconds_count 1"));
        assert!(text.contains("cellplacer_utilisation 0.5"));
        assert!(text.contains("cellplacer_solve_duration_seconds_count{op=\"place\"} 1"));
    }

    #[test]
    fn methods_are_bounded_and_risk_is_cumulative() {
        let m = Metrics::default();
        for method in ["GET", "BREW", "PROPFIND", "get", "PATCH"] {
            m.observe_request("unmatched", method, 404, Duration::from_millis(1));
        }
        let mut by_risk = [0; RISK_BOUNDS.len() + 1];
        by_risk[0] = 1; // 1e-8
        by_risk[3] = 2; // 1e-4, 5e-5
        by_risk[7] = 1; // down: 1
        by_risk[8] = 1; // NaN
        let text = m.render(&Gauges {
            cells: 5,
            cells_unsafe: 2,
            cells_by_risk: by_risk,
            servers_over_balance_ceiling: 4,
            reevaluation: Some(ReevaluationGauges {
                running: true,
                cells: 10,
                evaluated: 6,
                recorded: 4,
            }),
            ..Gauges::default()
        });
        let methods: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("cellplacer_http_requests_total"))
            .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(methods, ["GET", "PATCH", "other"].into_iter().collect());
        assert!(text.contains(
            "cellplacer_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 3"
        ));
        for (le, n) in [
            ("1e-07", 1),
            ("1e-06", 1),
            ("0.0001", 3),
            ("0.1", 3),
            ("1", 4),
            ("+Inf", 5),
        ] {
            let line = format!("cellplacer_cells_by_risk{{le=\"{le}\"}} {n}\n");
            assert!(text.contains(&line), "no {line} in\n{text}");
        }
        assert!(text.contains("cellplacer_cells_unsafe 2\n"));
        assert!(text.contains("cellplacer_servers_over_balance_ceiling 4\n"));
        assert!(text.contains("cellplacer_reevaluation_running 1\n"));
        assert!(text.contains("cellplacer_reevaluation_cells{state=\"total\"} 10\n"));
        assert!(text.contains("cellplacer_reevaluation_cells{state=\"evaluated\"} 6\n"));
        assert!(text.contains("cellplacer_reevaluation_cells{state=\"recorded\"} 4\n"));
        assert!(text.contains(&format!(
            "cellplacer_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        for (label, bound) in RISK_LABELS.iter().zip(RISK_BOUNDS) {
            assert_eq!(label.parse::<f64>().unwrap(), bound);
        }
    }

    /// Every sample's metric has a HELP and a TYPE line before it, once.
    #[test]
    fn every_metric_has_help_and_type() {
        let m = Metrics::default();
        m.observe_request("/v1/cells", "POST", 201, Duration::from_millis(3));
        m.observe_solve("place", Duration::from_millis(1));
        m.observe_commit(Duration::from_millis(4), 7, true);
        let text = m.render(&Gauges::default());
        let mut help = std::collections::BTreeSet::new();
        let mut typed = std::collections::BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(help.insert(name.to_owned()), "two HELP lines for {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(help.contains(name), "TYPE before HELP for {name}");
                assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        let base = name.strip_suffix(s)?;
                        (typed.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                    })
                    .unwrap_or(name);
                assert!(typed.contains_key(family), "no TYPE for {line}");
            }
        }
        assert!(typed.contains_key("cellplacer_cells_by_risk"));
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
            "process_threads",
        ] {
            assert!(typed.contains_key(name), "no {name}");
        }
    }
}
