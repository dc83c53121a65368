//! The exposition's names, labels and format.

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
        servers_draining: 2,
        utilisation_max: 0.75,
        ..Gauges::default()
    });
    assert!(text.contains("cellplacer_servers_draining 2"));
    assert!(text.contains("cellplacer_utilisation_max 0.75"));
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
