//! One risk everywhere: service, CLI and ledgers written by older releases.

use super::*;

/// One risk everywhere: a cell's risk from the service (placement answer and
/// `GET /v1/cells/{id}`), its row in `cellplacer evaluate --cells-out` on the same
/// inventory and placements, the CLI's `--json` report and the service's `/v1/report`.
#[tokio::test]
async fn service_and_cli_agree_on_every_risk() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let mut placed = Vec::new();
    for i in 0..6 {
        let id = format!("agree{i}");
        let clients: Vec<&str> = [&c[i], &c[i + 7], &c[i + 20]]
            .into_iter()
            .map(String::as_str)
            .collect();
        let (s, body) = h.place(&id, &clients).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let (s, cell) = h.call(Method::GET, &format!("/v1/cells/{id}"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(cell["risk"], body["explanation"]["risk"]);
        placed.push(cell);
    }
    let placements = h.dir.path().join("placements.csv");
    let mut text = String::from("cell_id,clients,nodes\n");
    for cell in &placed {
        text += &format!(
            "{},{},{}\n",
            cell["cell_id"].as_str().unwrap(),
            strings(&cell["clients"]).join(";"),
            strings(&cell["nodes"]).join(";")
        );
    }
    std::fs::write(&placements, text).unwrap();
    let cells_out = h.dir.path().join("cells.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args([
            "evaluate",
            h.zone_dir.to_str().unwrap(),
            placements.to_str().unwrap(),
            "--json",
            "--cells-out",
            cells_out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = topology::ingest::read_table(&cells_out).unwrap();
    let col = |name: &str| rows.column_index(name).unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
    for (row, cell) in rows.rows.iter().zip(&placed) {
        assert_eq!(row[col("cell_id")].as_deref(), cell["cell_id"].as_str());
        let risk: f64 = row[col("risk")].as_deref().unwrap().parse().unwrap();
        let service = cell["risk"].as_f64().unwrap();
        assert!(close(risk, service), "cli {risk} vs service {service}");
        let safe = row[col("single_failure_safe")].as_deref() == Some("true");
        assert_eq!(safe, cell["single_failure_safe"].as_bool().unwrap());
    }
    let (s, report) = h.call(Method::GET, "/v1/report", None).await;
    assert_eq!(s, StatusCode::OK);
    for key in ["cells", "mean", "p50", "p99", "max", "total"] {
        let (a, b) = (&report["risk"][key], &cli["risk"][key]);
        assert!(
            close(a.as_f64().unwrap(), b.as_f64().unwrap()),
            "{key}: {a} vs {b}"
        );
    }
    assert_eq!(report["down_cells"], cli["down_cells"]);
    assert_eq!(
        report["single_failure_unsafe_cells"],
        cli["single_failure_unsafe_cells"]
    );
    // The OpenAPI document says what a risk is.
    let (_, doc) = h.call(Method::GET, "/openapi.json", None).await;
    let risk = &doc["components"]["schemas"]["CellView"]["properties"]["risk"];
    assert!(
        risk["description"]
            .as_str()
            .is_some_and(|d| d.contains("Outages per year")),
        "{risk}"
    );
}

/// A ledger written by an older release (risks under another definition, marked stale by
/// the migration with inventory version 0) is judged again when the service starts: the
/// cells get the contract's risk back, in the background, and say which version it is on.
#[tokio::test]
async fn stale_risks_are_judged_again_on_start() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let mut risks = Vec::new();
    for i in 0..3 {
        let (s, body) = h
            .place(&format!("old{i}"), &[&c[i], &c[i + 9], &c[i + 17]])
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        risks.push(body["cell"]["risk"].as_f64().unwrap());
    }
    h.service.shutdown().await;
    // What migration 0002 leaves of an old ledger: a risk of another definition, version 0.
    let url = format!("sqlite://{}", h.db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE cells SET risk = 2.24, inventory_version = 0")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let app2 = h.reopen().await;
    for (i, want) in risks.iter().enumerate() {
        let path = format!("/v1/cells/old{i}");
        let mut judged = Value::Null;
        for _ in 0..200 {
            let (s, got) = call(&app2, Method::GET, &path, None).await;
            assert_eq!(s, StatusCode::OK);
            if got["inventory_version"] == 1 {
                judged = got;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            judged["inventory_version"], 1,
            "old{i} was not judged again"
        );
        let got = judged["risk"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1e-300),
            "old{i}: {got} vs {want}"
        );
    }
}

/// The same risk and blast radius on the console's read routes: a cell's explanation is
/// its risk as placed, an element's blast radius over its pages is the what-if's for
/// its failure, and `/v1/blast` lists it; bad ids, limits and cursors are refused by name.
#[tokio::test]
async fn explanation_element_and_blast_say_what_the_placement_and_the_whatif_say() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let mut cells = Vec::new();
    for i in 0..12 {
        let id = format!("why{i:02}");
        let clients: Vec<&str> = [&c[i], &c[i + 9]].into_iter().map(String::as_str).collect();
        let (s, body) = h.place(&id, &clients).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let (s, why) = h
            .call(Method::GET, &format!("/v1/cells/{id}/explanation"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{why}");
        assert_eq!(why["cell"]["cell_id"], id.as_str());
        for key in [
            "risk",
            "single_risk",
            "pair_risk",
            "single_failure_safe",
            "breaking",
            "domains",
        ] {
            assert_eq!(
                why["explanation"][key], body["explanation"][key],
                "{id} {key}"
            );
        }
        assert_eq!(why["explanation"]["binding"], json!([]));
        cells.push(body["cell"].clone());
    }
    // Fail the racks of three of why00's nodes (none of its clients'): it loses its
    // margin, so the fourth rack's failure puts it out.
    let racks = racks(&h.raw);
    let client_racks: Vec<String> = strings(&cells[0]["clients"])
        .iter()
        .map(|n| racks[n].clone())
        .collect();
    let mut node_racks: Vec<String> = strings(&cells[0]["nodes"])
        .iter()
        .map(|n| racks[n].clone())
        .filter(|r| !client_racks.contains(r))
        .collect();
    node_racks.dedup();
    assert!(node_racks.len() >= 4, "{node_racks:?}");
    for rack in &node_racks[..3] {
        let (s, v) = h
            .call(
                Method::PUT,
                &format!("/v1/elements/{rack}/state"),
                Some(json!({"state": "failed"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let fourth = &node_racks[3];
    let (s, whatif) = h
        .call(
            Method::POST,
            "/v1/whatif",
            Some(json!({"change": {"fail": [fourth]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{whatif}");
    let scenario = &whatif["after"]["scenario"];
    let mut out = Vec::new();
    let mut path = format!("/v1/elements/{fourth}?limit=1");
    loop {
        let (s, page) = h.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["blast_radius"], scenario["out"], "{page}");
        assert_eq!(page["degraded"], scenario["degraded"], "{page}");
        assert_eq!(page["reported"]["kind"], "rack");
        out.extend(strings(&page["out_cells"]));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/elements/{fourth}?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(out, strings(&scenario["out_cells"]));
    assert!(out.contains(&"why00".to_owned()), "{out:?}");
    let (s, blast) = h.call(Method::GET, "/v1/blast", None).await;
    assert_eq!(s, StatusCode::OK, "{blast}");
    let listed = blast["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["element"] == fourth.as_str())
        .unwrap_or_else(|| panic!("{fourth} not in {blast}"));
    assert_eq!(listed["blast_radius"], scenario["out"]);
    let tile = blast["racks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rack"] == fourth.as_str())
        .unwrap();
    assert_eq!(tile["own"], scenario["out"]);

    for (path, status, code_, field_) in [
        (
            "/v1/cells/nope/explanation",
            StatusCode::NOT_FOUND,
            "cell_not_found",
            None,
        ),
        (
            "/v1/elements/nope",
            StatusCode::NOT_FOUND,
            "unknown_element",
            Some("id"),
        ),
        (
            &*format!("/v1/elements/{fourth}?limit=0"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("limit"),
        ),
        (
            &*format!("/v1/elements/{fourth}?cursor=zz"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("cursor"),
        ),
        (
            &*format!("/v1/elements/{fourth}?state=x"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            None,
        ),
    ] {
        let (s, v) = h.call(Method::GET, path, None).await;
        assert_eq!((s, code(&v)), (status, code_), "{path}: {v}");
        if let Some(f) = field_ {
            assert_eq!(field(&v), f, "{path}: {v}");
        }
    }
}
