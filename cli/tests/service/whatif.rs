//! What-if over the ledger: a failure scenario, a removal with its repair plan, a bad
//! change named by edit, and the impact a validated inventory reports. Nothing commits.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatif_scenarios_and_changes_commit_nothing() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let mut nodes = Vec::new();
    for i in 0..12 {
        let (s, body) = h.place(&format!("w{i}"), &[&c[i % c.len()]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        nodes.push(strings(&body["cell"]["nodes"]));
    }
    let (_, before) = h.call(Method::GET, "/v1/cells?limit=1000", None).await;

    // Four of w0's seven nodes fail: w0 is out; a cell sharing none of them is not.
    let failing: Vec<&String> = nodes[0].iter().take(4).collect();
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/whatif",
            Some(json!({"change": {"fail": failing}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let out = strings(&v["after"]["scenario"]["out_cells"]);
    assert!(out.contains(&"w0".to_string()), "{v}");
    for (i, n) in nodes.iter().enumerate() {
        let lost = n.iter().filter(|x| failing.contains(x)).count();
        let id = format!("w{i}");
        assert_eq!(out.contains(&id), lost >= 4, "{id}: {v}");
    }
    assert!(
        v["after"]["report"].is_null(),
        "a scenario alone evaluates no risk"
    );

    // Remove the rack of w1's first node: its nodes must move, the repair plan moves them.
    let rack_of = |server: &str| {
        let ids = column(&h.raw, "servers", "server_id");
        let racks = column(&h.raw, "servers", "rack_id");
        ids.iter()
            .zip(&racks)
            .find(|(s, _)| s.as_deref() == Some(server))
            .unwrap()
            .1
            .clone()
            .unwrap()
    };
    let rack = rack_of(&nodes[1][0]);
    let on_rack = nodes
        .iter()
        .flatten()
        .filter(|n| rack_of(n) == rack)
        .count();
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/whatif",
            Some(json!({"change": {"remove": [rack]}, "pairs_top": 3, "headroom": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["after"]["nodes_to_move"], on_rack, "{v}");
    assert_eq!(v["before"]["nodes_to_move"], 0);
    assert_eq!(v["repair_plan"]["moves"], on_rack, "{v}");
    assert_eq!(v["repair_plan"]["nodes_to_move_after"], 0);
    let changed = v["domains_changed"].as_array().unwrap();
    assert!(
        changed.iter().any(|d| d["level"] == "row"
            && d["after"]["capacity"].as_u64() < d["before"]["capacity"].as_u64()),
        "the rack's row lost capacity: {v}"
    );
    assert!(v["after"]["report"]["risk"]["total"].as_f64().is_some());
    // 48 hosts of capacity 8 minus one rack: the count stays within what capacity allows.
    let free = v["after"]["report"]["capacity"].as_u64().unwrap()
        - v["after"]["report"]["nodes_placed"].as_u64().unwrap();
    let more = v["headroom"]["cells"].as_u64().unwrap();
    assert!(more > 0 && more * 7 <= free, "{v}");
    assert!(v["headroom"]["stopped_by"].is_string(), "{v}");

    // A change that does not apply is answered, like a validation: `valid: false`,
    // every edit's problem named.
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/whatif",
            Some(json!({"change": {"remove": ["nowhere"], "fail": ["ghost"]}})),
        )
        .await;
    assert_eq!((s, &e["valid"]), (StatusCode::OK, &json!(false)), "{e}");
    let errors = e["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|p| p["table"] == "change" && p["column"] == "remove"),
        "{e}"
    );
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/whatif",
            Some(json!({"change": {}, "pairs_top": 5000})),
        )
        .await;
    assert_eq!(
        (s, field(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "pairs_top")
    );

    // Validating an inventory that fails a host says what it does to the cells.
    let mut next = h.raw.clone();
    set_server(&mut next, &nodes[2][0], "status", Some("failed"));
    let dir = write_zone(&h.dir.path().join("next"), &next);
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/inventory/validate",
            Some(json!({"path": dir})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    let on_server = nodes
        .iter()
        .flatten()
        .filter(|n| **n == nodes[2][0])
        .count();
    assert_eq!(v["impact"]["after"]["nodes_to_move"], on_server, "{v}");

    // Nothing was committed.
    let (_, after) = h.call(Method::GET, "/v1/cells?limit=1000", None).await;
    assert_eq!(before, after);
    let (_, inv) = h.call(Method::GET, "/v1/inventory", None).await;
    assert_eq!(inv["version"], 1);
}
