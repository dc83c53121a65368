//! Placing, reading, replacing and deleting cells; request errors name their field.

use super::*;

#[tokio::test]
async fn place_get_replay_conflict_delete() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let (status, body) = h.place("vol-1", &[&c[0], &c[1]]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cell = &body["cell"];
    let nodes = strings(&cell["nodes"]);
    assert_eq!(nodes.len(), 7);
    assert_eq!(cell["size"], 7);
    assert_eq!(cell["version"], 1);
    assert_eq!(cell["inventory_version"], 1);
    assert!(body["explanation"]["risk"].is_number());
    assert!(body["solve"]["solver"].is_string());

    // GET shows the ledger's record.
    let (status, got) = h.call(Method::GET, "/v1/cells/vol-1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(strings(&got["nodes"]), nodes);
    assert_eq!(got["clients"], json!([c[0], c[1]]));

    // The same request again: the same placement, 200, nothing recomputed.
    let (status, again) = h.place("vol-1", &[&c[1], &c[0]]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(strings(&again["cell"]["nodes"]), nodes);
    assert!(again["explanation"].is_null());

    // The same id with other clients or another size: 409.
    let (status, err) = h.place("vol-1", &[&c[2]]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!((code(&err), field(&err)), ("cell_exists", "clients"));
    let (status, err) = h
        .call(
            Method::POST,
            "/v1/cells",
            Some(json!({"cell_id": "vol-1", "clients": [c[0], c[1]], "size": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!((code(&err), field(&err)), ("cell_exists", "size"));

    // The server view counts it.
    let (status, server) = h
        .call(Method::GET, &format!("/v1/servers/{}", nodes[0]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server["load"], 1);
    assert_eq!(server["capacity"], 8);
    assert_eq!(server["free"], 7);
    assert_eq!(server["cells"], json!(["vol-1"]));
    assert_eq!(server["status"], "active");

    // Delete frees the capacity.
    let (status, _) = h.call(Method::DELETE, "/v1/cells/vol-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = h.call(Method::GET, "/v1/cells/vol-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&err), "cell_not_found");
    let (status, err) = h.call(Method::DELETE, "/v1/cells/vol-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&err), "cell_not_found");
    let (_, server) = h
        .call(Method::GET, &format!("/v1/servers/{}", nodes[0]), None)
        .await;
    assert_eq!(server["load"], 0);
    assert_eq!(server["cells"], json!([]));
}

#[tokio::test]
async fn request_errors_name_the_field() {
    let limits = Limits {
        body: 2048,
        ..Limits::default()
    };
    let h = Harness::with(8, limits, false).await;
    let c = h.clients();
    let post = |body: &str, content_type: Option<&str>| {
        let mut r = Request::builder().method(Method::POST).uri("/v1/cells");
        if let Some(ct) = content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body.to_owned())).unwrap()
    };
    let json_ct = Some("application/json");

    let (s, e) = raw_call(&h.app, post("{\"cell_id\": \"a\", ", json_ct)).await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "malformed_json"));
    let (s, e) = raw_call(
        &h.app,
        post("{\"cell_id\":\"a\",\"clients\":[]} x", json_ct),
    )
    .await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "malformed_json"));
    let (s, e) = raw_call(&h.app, post("{}", None)).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (s, e) = raw_call(&h.app, post("{}", Some("text/plain"))).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{e}");

    let big = format!(
        "{{\"cell_id\":\"a\",\"clients\":[\"{}\"]}}",
        "x".repeat(4096)
    );
    let (s, e) = raw_call(&h.app, post(&big, json_ct)).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"clients": [c[0]]}), "invalid_field", "cell_id"),
        (json!({"cell_id": "a"}), "invalid_field", "clients"),
        (
            json!({"cell_id": "a", "clients": [c[0]], "colour": "x"}),
            "invalid_field",
            "colour",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0], 3]}),
            "invalid_field",
            "clients[1]",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0]], "size": -1}),
            "invalid_field",
            "size",
        ),
        (
            json!({"cell_id": "a b", "clients": [c[0]]}),
            "invalid_field",
            "cell_id",
        ),
        (
            json!({"cell_id": "", "clients": [c[0]]}),
            "invalid_field",
            "cell_id",
        ),
        (
            json!({"cell_id": "a", "clients": []}),
            "invalid_field",
            "clients",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0], "nope"]}),
            "unknown_server",
            "clients[1]",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0], c[1], c[0]]}),
            "duplicate_client",
            "clients[2]",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0]], "size": 0}),
            "invalid_size",
            "size",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0]], "size": 1000}),
            "invalid_size",
            "size",
        ),
        (
            json!({"cell_id": "a", "clients": [c[0]], "size": 16}),
            "invalid_size",
            "size",
        ),
    ];
    for (body, want_code, want_field) in cases {
        let (s, e) = h.call(Method::POST, "/v1/cells", Some(body.clone())).await;
        // A client the inventory lacks is a missing resource; the rest break a rule.
        let want = if want_code == "unknown_server" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(s, want, "{body} -> {e}");
        assert_eq!(
            (code(&e), field(&e)),
            (want_code, want_field),
            "{body} -> {e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want_field),
            "{e}"
        );
    }
    // Nothing was placed by any of them.
    let (_, metrics) = h.call(Method::GET, "/metrics", None).await;
    assert!(metrics.as_str().unwrap().contains("cellplacer_cells 0"));

    let (s, e) = h.call(Method::GET, "/v2/cells", None).await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "route_not_found"));
    let (s, e) = h.call(Method::PATCH, "/v1/cells", None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (s, e) = h.call(Method::GET, "/v1/servers/nope", None).await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "server_not_found"));
    let (s, e) = h.call(Method::GET, "/v1/report?top=x", None).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
}

#[tokio::test]
async fn no_capacity_and_no_safe_placement_are_explained() {
    // One node per host, 48 hosts: a handful of 7-node cells, then nothing fits.
    let h = Harness::new(1).await;
    let c = h.clients();
    let mut placed = 0;
    let mut refused = None;
    for i in 0..20 {
        let (s, body) = h.place(&format!("c{i}"), &[&c[i % c.len()]]).await;
        if s == StatusCode::CREATED {
            placed += 1;
        } else {
            refused = Some((s, body));
            break;
        }
    }
    assert!(placed >= 1);
    let (s, e) = refused.expect("48 single-node hosts cannot take 20 cells of 7");
    assert!(
        matches!(
            (s, code(&e)),
            (StatusCode::CONFLICT, "no_capacity")
                | (StatusCode::UNPROCESSABLE_ENTITY, "no_safe_placement")
        ),
        "{s} {e}"
    );
    assert!(e["error"]["details"].is_object(), "{e}");
    let (_, metrics) = h.call(Method::GET, "/metrics", None).await;
    assert!(metrics
        .as_str()
        .unwrap()
        .contains(&format!("cellplacer_cells {placed}")));
}

#[tokio::test]
async fn replace_keeps_the_other_nodes() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let (_, body) = h.place("r1", &[&c[0]]).await;
    let nodes = strings(&body["cell"]["nodes"]);
    let (s, body) = h
        .call(
            Method::POST,
            "/v1/cells/r1/replace",
            Some(json!({"server": nodes[2]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let after = strings(&body["cell"]["nodes"]);
    assert_eq!(after.len(), 7);
    assert!(!after.contains(&nodes[2]));
    let kept: Vec<_> = nodes.iter().filter(|n| **n != nodes[2]).collect();
    assert!(
        kept.iter().all(|n| after.contains(n)),
        "{nodes:?} -> {after:?}"
    );
    assert_eq!(body["cell"]["version"], 2);
    assert!(body["explanation"].is_object());
    let (_, got) = h.call(Method::GET, "/v1/cells/r1", None).await;
    assert_eq!(strings(&got["nodes"]), after);

    let (s, e) = h
        .call(
            Method::POST,
            "/v1/cells/r1/replace",
            Some(json!({"server": nodes[2]})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!((code(&e), field(&e)), ("not_a_node", "server"));
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/cells/r1/replace",
            Some(json!({"server": "ghost"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!((code(&e), field(&e)), ("unknown_server", "server"));
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/cells/nope/replace",
            Some(json!({"server": nodes[0]})),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "cell_not_found"));
    let (s, e) = h
        .call(Method::POST, "/v1/cells/r1/replace", Some(json!({})))
        .await;
    assert_eq!(
        (s, code(&e), field(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "server")
    );
}
