//! Listing cells: pages, filters, refusals, stability under concurrent places.

use super::*;

/// Every page of `GET /v1/cells?{query}` by following `next_cursor`: the cell ids.
async fn walk(h: &Harness, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut uri = format!("/v1/cells?limit={limit}");
        if !query.is_empty() {
            uri.push('&');
            uri.push_str(query);
        }
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = h.call(Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {page}");
        let cells = page["cells"].as_array().unwrap();
        assert!(cells.len() <= limit);
        ids.extend(
            cells
                .iter()
                .map(|c| c["cell_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("no last page for {query}");
}

#[tokio::test]
async fn list_cells_pages_filters_and_refuses() {
    let h = Harness::new(8).await;
    let c = h.clients();
    // Before anything is placed: an empty page, no cursor.
    let (s, page) = h.call(Method::GET, "/v1/cells", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page, json!({"cells": [], "next_cursor": null}));

    for (i, id) in ["c20", "c05", "c15", "c10", "c25"].iter().enumerate() {
        let (s, body) = h.place(id, &[&c[i], &c[i + 7]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let all = vec!["c05", "c10", "c15", "c20", "c25"];
    // One page, by id, with the cells as GET /v1/cells/{id} shows them.
    let (s, page) = h.call(Method::GET, "/v1/cells", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page["next_cursor"].is_null());
    let cells = page["cells"].as_array().unwrap();
    let ids: Vec<&str> = cells
        .iter()
        .map(|c| c["cell_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, all);
    let (_, one) = h.call(Method::GET, "/v1/cells/c15", None).await;
    assert_eq!(cells[2], one);
    assert_eq!(walk(&h, "", 2).await, all);
    assert_eq!(walk(&h, "", 1).await, all);

    // Cells placed between pages: one before the cursor (never shown), one after it
    // (shown later); nothing comes twice.
    let (_, first) = h.call(Method::GET, "/v1/cells?limit=2", None).await;
    let ids: Vec<&str> = first["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cell_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c05", "c10"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    for (id, i) in [("c01", 11), ("c12", 13)] {
        let (s, body) = h.place(id, &[&c[i]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = h.call(Method::DELETE, "/v1/cells/c20", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    let mut rest = Vec::new();
    let mut next = Some(cursor);
    while let Some(cur) = next {
        let (s, page) = h
            .call(
                Method::GET,
                &format!("/v1/cells?limit=2&cursor={cur}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        rest.extend(
            page["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["cell_id"].as_str().unwrap().to_owned()),
        );
        next = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(rest, ["c12", "c15", "c25"]);
    let all = vec!["c01", "c05", "c10", "c12", "c15", "c25"];
    assert_eq!(walk(&h, "", 4).await, all);

    // server: exactly the cells with a node there, as the server view lists them.
    let (_, c15) = h.call(Method::GET, "/v1/cells/c15", None).await;
    for node in strings(&c15["nodes"]) {
        let (_, server) = h
            .call(Method::GET, &format!("/v1/servers/{node}"), None)
            .await;
        let want = strings(&server["cells"]);
        assert!(want.contains(&"c15".to_owned()));
        assert_eq!(walk(&h, &format!("server={node}"), 1).await, want);
        assert_eq!(walk(&h, &format!("server={node}"), 100).await, want);
    }
    // A client-only server holds no node: no cell, though cells have it as a client.
    assert!(walk(&h, &format!("server={}", c[0]), 10).await.is_empty());

    // unsafe: the two halves partition the cells, and agree with every cell's flag and
    // with the report.
    let (_, page) = h.call(Method::GET, "/v1/cells", None).await;
    let safe: HashMap<String, bool> = page["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cell_id"].as_str().unwrap().to_owned(),
                c["single_failure_safe"].as_bool().unwrap(),
            )
        })
        .collect();
    let unsafe_ids = walk(&h, "unsafe=true", 1).await;
    let safe_ids = walk(&h, "unsafe=false", 2).await;
    assert_eq!(unsafe_ids.len() + safe_ids.len(), all.len());
    assert!(unsafe_ids.iter().all(|id| !safe[id]));
    assert!(safe_ids.iter().all(|id| safe[id]));
    let (_, report) = h.call(Method::GET, "/v1/report?risk=false", None).await;
    assert_eq!(
        report["single_failure_unsafe_cells"].as_u64().unwrap() as usize,
        unsafe_ids.len()
    );
    // inventory_version, alone and with the other filters.
    assert_eq!(walk(&h, "inventory_version=1", 3).await, all);
    assert!(walk(&h, "inventory_version=2", 3).await.is_empty());
    assert_eq!(
        walk(&h, "inventory_version=1&unsafe=false", 3).await,
        safe_ids
    );

    // Refusals name the parameter.
    let hex_of = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for (query, want_field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-3", "limit"),
        ("limit=ten", "limit"),
        ("cursor=zz", "cursor"),
        ("cursor=abc", "cursor"),
        ("cursor=", "cursor"),
        (&format!("cursor={}", hex_of("a b")), "cursor"),
        ("unsafe=maybe", "unsafe"),
        ("inventory_version=v1", "inventory_version"),
        ("inventory_version=-1", "inventory_version"),
        ("inventory_version=0", "inventory_version"),
        ("colour=red", "colour"),
    ] {
        let (s, e) = h
            .call(Method::GET, &format!("/v1/cells?{query}"), None)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {e}");
        assert_eq!(
            (code(&e), field(&e)),
            ("invalid_field", want_field),
            "{query}: {e}"
        );
    }
    // The largest page is fine; an unknown server is a 404.
    let (s, _) = h.call(Method::GET, "/v1/cells?limit=1000", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = h.call(Method::GET, "/v1/cells?server=nope", None).await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "server_not_found"));
    // A cursor made for an id that is gone still pages from its position.
    let (s, page) = h
        .call(
            Method::GET,
            &format!("/v1/cells?cursor={}", hex_of("c20")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["cells"][0]["cell_id"], "c25");

    // The document declares the route and its parameters.
    let (_, doc) = h.call(Method::GET, "/openapi.json", None).await;
    let get = &doc["paths"]["/v1/cells"]["get"];
    let params: HashSet<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["in"], "query");
            p["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        params,
        ["server", "unsafe", "inventory_version", "limit", "cursor"]
            .into_iter()
            .collect()
    );
    for code in ["200", "404", "422"] {
        assert!(get["responses"][code].is_object(), "no {code}");
    }
    assert!(doc["components"]["schemas"]["CellPage"].is_object());
    assert!(doc["paths"]["/v1/cells"]["post"].is_object());
}

/// Pages read while other requests place cells: ids only ever increase (no cell twice),
/// and every cell placed before the walk began is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_cells_is_stable_under_concurrent_places() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let mut before = Vec::new();
    for i in (0..24).step_by(3) {
        let id = format!("k{i:02}");
        let (s, body) = h.place(&id, &[&c[i % c.len()]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        before.push(id);
    }
    let mut tasks = Vec::new();
    for i in (0..24).filter(|i| i % 3 != 0) {
        let app = h.app.clone();
        let client = c[(i * 5) % c.len()].clone();
        tasks.push(tokio::spawn(async move {
            call(
                &app,
                Method::POST,
                "/v1/cells",
                Some(json!({"cell_id": format!("k{i:02}"), "clients": [client]})),
            )
            .await
            .0
        }));
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/v1/cells?limit=3&cursor={c}"),
            None => "/v1/cells?limit=3".to_owned(),
        };
        let (s, page) = h.call(Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for cell in page["cells"].as_array().unwrap() {
            seen.push(cell["cell_id"].as_str().unwrap().to_owned());
        }
        tokio::task::yield_now().await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == StatusCode::CREATED || s.is_client_error(), "{s}");
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    for id in &before {
        assert!(seen.contains(id), "{id} missing from {seen:?}");
    }
}
