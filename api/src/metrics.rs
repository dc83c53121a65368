//! Prometheus metrics, hand-rolled: a few counters and histograms behind short locks, and
//! the text exposition format. Gauges are read from the ledger when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds in seconds; the 25 ms target sits on a bucket edge.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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
    requests: BTreeMap<(String, String, u16), u64>,
    /// (route, method) -> latency.
    latency: BTreeMap<(String, String), Histogram>,
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
}

/// Values read from the service state at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub cells: u64,
    pub nodes_placed: u64,
    pub node_capacity: u64,
    pub inventory_version: i64,
    pub solver_queue: u64,
    pub solver_workers: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<Http>,
    store: Mutex<Store>,
    solver: Mutex<Solver>,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut http = self.http.lock();
        *http
            .requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        http.latency
            .entry((route.to_owned(), method.to_owned()))
            .or_default()
            .observe(elapsed.as_secs_f64());
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
        out
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
}
