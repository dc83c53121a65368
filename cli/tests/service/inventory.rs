//! Inventory versions: validation, the switch and the re-evaluation.

use super::*;

#[tokio::test]
async fn inventory_validate_switch_and_reevaluate() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let (_, body) = h.place("i1", &[&c[0]]).await;
    let nodes = strings(&body["cell"]["nodes"]);
    let (_, inv) = h.call(Method::GET, "/v1/inventory", None).await;
    assert_eq!(inv["version"], 1);
    assert_eq!(inv["counts"]["servers"], 96);

    // A broken export: every problem comes back, nothing changes.
    let mut broken = h.raw.clone();
    set_server(&mut broken, &h.hosts()[0], "status", Some("sleeping"));
    set_server(&mut broken, &h.hosts()[1], "node_capacity", Some("-3"));
    let broken_dir = write_zone(&h.dir.path().join("broken"), &broken);
    let body = json!({"path": broken_dir});
    let (s, v) = h
        .call(Method::POST, "/v1/inventory/validate", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().unwrap();
    for column in ["status", "node_capacity"] {
        assert!(
            errors
                .iter()
                .any(|e| e["table"] == "servers" && e["column"] == column),
            "{v}"
        );
    }
    let (s, e) = h.call(Method::POST, "/v1/inventory", Some(body)).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_inventory")
    );
    assert_eq!(e["error"]["details"]["errors"], v["errors"]);
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/inventory",
            Some(json!({"path": h.dir.path().join("nowhere")})),
        )
        .await;
    assert_eq!(
        (s, code(&e), e["error"]["field"].as_str()),
        (StatusCode::NOT_FOUND, "path_not_found", Some("path"))
    );
    let (s, e) = h.call(Method::POST, "/v1/inventory", Some(json!({}))).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    let (_, inv) = h.call(Method::GET, "/v1/inventory", None).await;
    assert_eq!(inv["version"], 1);

    // An export without one of the cell's servers conflicts with the ledger.
    let mut missing = h.raw.clone();
    {
        let t = missing.tables.get_mut("servers").unwrap();
        let id = t.column_index("server_id").unwrap();
        t.rows
            .retain(|r| r[id].as_deref() != Some(nodes[0].as_str()));
        let links = missing.tables.get_mut("network_links").unwrap();
        let (a, b) = (
            links.column_index("a_end").unwrap(),
            links.column_index("b_end").unwrap(),
        );
        links.rows.retain(|r| {
            r[a].as_deref() != Some(nodes[0].as_str()) && r[b].as_deref() != Some(nodes[0].as_str())
        });
        let feeds = missing.tables.get_mut("power_feeds").unwrap();
        let d = feeds.column_index("downstream").unwrap();
        feeds
            .rows
            .retain(|r| r[d].as_deref() != Some(nodes[0].as_str()));
    }
    let missing_dir = write_zone(&h.dir.path().join("missing"), &missing);
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/inventory/validate",
            Some(json!({"path": missing_dir})),
        )
        .await;
    assert_eq!((s, &v["valid"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/inventory",
            Some(json!({"path": missing_dir})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "inventory_conflict"),
        "{e}"
    );
    assert_eq!(
        e["error"]["details"]["missing"][0]["server"],
        json!(nodes[0])
    );

    // One node's server drains, another fails: the switch lists the cell under both.
    let mut next = h.raw.clone();
    set_server(&mut next, &nodes[0], "status", Some("draining"));
    set_server(&mut next, &nodes[1], "status", Some("failed"));
    let next_dir = write_zone(&h.dir.path().join("next"), &next);
    let (s, body) = h
        .call(
            Method::POST,
            "/v1/inventory?wait=true",
            Some(json!({"path": next_dir})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["inventory"]["version"], 2);
    assert_eq!(body["previous_version"], 1);
    let re = &body["reevaluation"];
    assert_eq!(re["cells"], 1);
    assert_eq!(re["on_draining"], json!(["i1"]));
    assert_eq!(re["on_failed"], json!(["i1"]));
    assert_eq!(re["on_failed_count"], 1);
    let (_, cell) = h.call(Method::GET, "/v1/cells/i1", None).await;
    assert_eq!(cell["inventory_version"], 2);
    assert_eq!(strings(&cell["nodes"]), nodes);
    let (_, srv) = h
        .call(Method::GET, &format!("/v1/servers/{}", nodes[0]), None)
        .await;
    assert_eq!(srv["status"], "draining");
    assert_eq!(srv["cells"], json!(["i1"]));

    // Upload the original tables as CSV text: version 3, back to all active.
    let mut tables = BTreeMap::new();
    for entry in std::fs::read_dir(&h.zone_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        tables.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    let (s, body) = h
        .call(
            Method::POST,
            "/v1/inventory?wait=true",
            Some(json!({"tables": tables})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["inventory"]["version"], 3);
    assert!(body["inventory"]["source"]
        .as_str()
        .unwrap()
        .starts_with("upload:"));
    assert_eq!(body["reevaluation"]["on_failed_count"], 0);
    tables.insert("bogus".into(), String::new());
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/inventory",
            Some(json!({"tables": tables})),
        )
        .await;
    assert_eq!(
        (s, code(&e), field(&e)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "tables.bogus"
        )
    );

    // Placement goes on against the new version.
    let (s, body) = h.place("i2", &[&c[1]]).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(body["cell"]["inventory_version"], 3);
}

/// A switch replies at once and re-evaluates in the background: placements go on, the
/// progress shows in `GET /v1/inventory` and the metrics, and the end state is exact.
#[tokio::test]
async fn a_switch_reevaluates_in_the_background() {
    let h = Harness::new(20).await;
    let c = h.clients();
    for i in 0..30 {
        let (s, body) = h.place(&format!("b{i:02}"), &[&c[i % c.len()]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (_, first) = h.call(Method::GET, "/v1/cells/b00", None).await;
    let failed = strings(&first["nodes"])[0].clone();
    let (_, srv) = h
        .call(Method::GET, &format!("/v1/servers/{failed}"), None)
        .await;
    let mut on_failed = strings(&srv["cells"]);
    on_failed.sort();
    assert!(!on_failed.is_empty());

    let mut next = h.raw.clone();
    set_server(&mut next, &failed, "status", Some("failed"));
    let next_dir = write_zone(&h.dir.path().join("bg"), &next);
    let (s, body) = h
        .call(
            Method::POST,
            "/v1/inventory",
            Some(json!({"path": next_dir})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let re = &body["reevaluation"];
    assert!(
        ["running", "done"].contains(&re["state"].as_str().unwrap()),
        "{re}"
    );
    assert_eq!(re["inventory_version"], 2);
    assert_eq!(re["cells"], 30);
    // Placements go on meanwhile, on the new version.
    let (s, late) = h.place("late", &[&c[0]]).await;
    assert_eq!(s, StatusCode::CREATED, "{late}");
    assert_eq!(late["cell"]["inventory_version"], 2);

    let mut done = Value::Null;
    for _ in 0..500 {
        let (_, inv) = h.call(Method::GET, "/v1/inventory", None).await;
        if inv["reevaluation"]["state"] == "done" {
            done = inv["reevaluation"].clone();
            break;
        }
        assert_eq!(inv["reevaluation"]["state"], "running", "{inv}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(done["evaluated"], 30, "{done}");
    assert_eq!(done["recorded"], 30, "{done}");
    assert!(done["finished_at"].is_string(), "{done}");
    let mut got = strings(&done["on_failed"]);
    got.sort();
    assert_eq!(got, on_failed);
    assert_eq!(done["on_failed_count"], on_failed.len());
    // Every cell is judged on version 2 now.
    let (_, old) = h
        .call(Method::GET, "/v1/cells?inventory_version=1", None)
        .await;
    assert_eq!(old["cells"], json!([]), "{old}");
    let (_, b00) = h.call(Method::GET, "/v1/cells/b00", None).await;
    assert_eq!(b00["version"], first["version"].as_i64().unwrap() + 1);
    let (_, metrics) = h.call(Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    for line in [
        "cellplacer_reevaluation_running 0\n",
        "cellplacer_reevaluation_cells{state=\"total\"} 30\n",
        "cellplacer_reevaluation_cells{state=\"recorded\"} 30\n",
    ] {
        assert!(metrics.contains(line), "no {line} in {metrics}");
    }

    // Waiting: the reply has the end state.
    let (s, body) = h
        .call(
            Method::POST,
            "/v1/inventory?wait=true",
            Some(json!({"path": h.zone_dir})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["reevaluation"]["state"], "done");
    assert_eq!(body["reevaluation"]["cells"], 31);
    assert_eq!(body["reevaluation"]["on_failed_count"], 0);
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/inventory?wait=maybe",
            Some(json!({"path": h.zone_dir})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        "{e}"
    );
}
