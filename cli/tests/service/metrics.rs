//! The report, health, metrics and the OpenAPI document.

use super::*;

#[tokio::test]
async fn report_health_metrics_openapi() {
    let h = Harness::new(8).await;
    let c = h.clients();
    for i in 0..3 {
        let (s, _) = h.place(&format!("p{i}"), &[&c[i], &c[i + 5]]).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, report) = h.call(Method::GET, "/v1/report", None).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["cells"], 3);
    assert_eq!(report["load"]["nodes_placed"], 21);
    assert_eq!(report["quorum_sharing_pairs"], 0);
    assert!(report["risk"]["max"].is_number());
    let (_, quick) = h
        .call(Method::GET, "/v1/report?risk=false&top=3", None)
        .await;
    assert!(quick["risk"].is_null());

    let (s, body) = h.call(Method::GET, "/healthz", None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, _) = h.call(Method::GET, "/readyz", None).await;
    assert_eq!(s, StatusCode::OK);

    let (s, text) = h.call(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap();
    for needle in [
        "cellplacer_http_requests_total{route=\"/v1/cells\",method=\"POST\",status=\"201\"} 3",
        "cellplacer_http_request_duration_seconds_bucket{route=\"/v1/report\",method=\"GET\",le=\"+Inf\"} 2",
        "cellplacer_solve_duration_seconds_count{op=\"place\"} 3",
        "cellplacer_cells 3",
        "cellplacer_nodes_placed 21",
        "cellplacer_node_capacity 384",
        "cellplacer_store_commits_total",
        "cellplacer_utilisation 0.0546875",
        "cellplacer_cells_by_risk{le=\"+Inf\"} 3\n",
        "cellplacer_servers_over_balance_ceiling 0\n",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // The new gauges agree with the report and with the cells themselves.
    let unsafe_cells = report["single_failure_unsafe_cells"].as_u64().unwrap();
    assert_eq!(sample(text, "cellplacer_cells_unsafe"), unsafe_cells as f64);
    let (_, list) = h.call(Method::GET, "/v1/cells", None).await;
    let risks: Vec<f64> = list["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["risk"].as_f64().unwrap())
        .collect();
    assert_eq!(risks.len(), 3);
    for (le, bound) in [
        ("1e-07", 1e-7),
        ("1e-06", 1e-6),
        ("1e-05", 1e-5),
        ("0.0001", 1e-4),
        ("0.001", 1e-3),
        ("0.01", 1e-2),
        ("0.1", 0.1),
        ("1", 1.0),
    ] {
        let want = risks.iter().filter(|&&r| r <= bound).count() as f64;
        let name = format!("cellplacer_cells_by_risk{{le=\"{le}\"}}");
        assert_eq!(sample(text, &name), want, "{name}");
    }
    assert_eq!(
        sample(
            text,
            &format!(
                "cellplacer_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    #[cfg(target_os = "linux")]
    {
        assert!(sample(text, "process_resident_memory_bytes") > 0.0);
        assert!(sample(text, "process_virtual_memory_bytes") > 0.0);
        assert!(sample(text, "process_cpu_seconds_total") > 0.0);
        assert!(sample(text, "process_open_fds") >= 3.0);
        assert!(sample(text, "process_threads") >= 1.0);
        assert!(sample(text, "process_start_time_seconds") > 1.5e9);
    }
    // Every sample's metric family has HELP and TYPE lines.
    let declared: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let helped: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(declared, helped);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|base| declared.contains(base))
            .unwrap_or(name);
        assert!(declared.contains(family), "no TYPE for {line}");
    }
    // A request with an unknown method is counted under `other`, never by its name.
    let req = Request::builder()
        .method(Method::from_bytes(b"BREW").unwrap())
        .uri("/v1/cells")
        .body(Body::empty())
        .unwrap();
    let (s, _) = raw_call(&h.app, req).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (_, text) = h.call(Method::GET, "/metrics", None).await;
    let text = text.as_str().unwrap();
    assert!(!text.contains("BREW"), "{text}");
    assert!(text.contains(
        "cellplacer_http_requests_total{route=\"/v1/cells\",method=\"other\",status=\"405\"} 1"
    ));

    let (s, doc) = h.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/cells",
        "/v1/cells/{id}",
        "/v1/cells/{id}/replace",
        "/v1/cells/{id}/clients",
        "/v1/cells/{id}/moves/{n}/commit",
        "/v1/servers/{id}",
        "/v1/report",
        "/v1/inventory",
        "/v1/inventory/validate",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "no {path} in the document");
    }
    for schema in [
        "PlaceRequest",
        "CellResponse",
        "ErrorBody",
        "FleetReportView",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "no schema {schema}"
        );
    }
}

/// The value of the sample `name` (with its labels) in a Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap()
}
