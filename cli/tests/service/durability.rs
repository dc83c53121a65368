//! Durability and concurrency: restarts, failed commits, timeouts, concurrent writes and the real binary killed with -9.

use super::*;

#[tokio::test]
async fn a_restart_restores_the_ledger_exactly() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let mut cells = Vec::new();
    for (i, client) in c.iter().take(5).enumerate() {
        let (s, body) = h.place(&format!("d{i}"), &[client]).await;
        assert_eq!(s, StatusCode::CREATED);
        cells.push(body["cell"].clone());
    }
    h.call(Method::DELETE, "/v1/cells/d3", None).await;
    let (_, replaced) = h
        .call(
            Method::POST,
            "/v1/cells/d4/replace",
            Some(json!({"server": cells[4]["nodes"][0]})),
        )
        .await;
    cells[4] = replaced["cell"].clone();
    let (_, before) = h.call(Method::GET, "/v1/report?risk=false", None).await;
    h.service.shutdown().await;

    // A new service on the same ledger file and inventory.
    let app2 = h.reopen().await;
    for (i, cell) in cells.iter().enumerate() {
        let (s, got) = call(&app2, Method::GET, &format!("/v1/cells/d{i}"), None).await;
        if i == 3 {
            assert_eq!(s, StatusCode::NOT_FOUND);
        } else {
            assert_eq!(&got, cell);
        }
    }
    let (_, after) = call(&app2, Method::GET, "/v1/report?risk=false", None).await;
    assert_eq!(after["load"], before["load"]);
    let (_, inv) = call(&app2, Method::GET, "/v1/inventory", None).await;
    assert_eq!(inv["version"], 1, "same inventory, same version");
}

#[tokio::test]
async fn a_failed_commit_is_refused_and_the_state_reloaded() {
    let h = Harness::with(8, Limits::default(), true).await;
    let flaky = h.flaky.clone().unwrap();
    let c = h.clients();
    let (s, _) = h.place("ok", &[&c[0]]).await;
    assert_eq!(s, StatusCode::CREATED);

    flaky.fail.store(true, Ordering::SeqCst);
    let (s, e) = h.place("lost", &[&c[1]]).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        "{e}"
    );
    let (s, e) = h.call(Method::DELETE, "/v1/cells/ok", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    flaky.fail.store(false, Ordering::SeqCst);

    // The service reloads the ledger: the refused changes are not there.
    let mut ready = false;
    for _ in 0..100 {
        if h.call(Method::GET, "/readyz", None).await.0 == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready);
    let (s, _) = h.call(Method::GET, "/v1/cells/lost", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.call(Method::GET, "/v1/cells/ok", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h.place("lost", &[&c[1]]).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, m) = h.call(Method::GET, "/metrics", None).await;
    assert!(m.as_str().unwrap().contains("cellplacer_cells 2"));
}

#[tokio::test]
async fn a_timed_out_placement_still_lands_and_replays() {
    let limits = Limits {
        timeout: Duration::ZERO,
        ..Limits::default()
    };
    let h = Harness::with(8, limits, false).await;
    let c = h.clients();
    let (s, e) = h.place("t1", &[&c[0]]).await;
    assert_eq!((s, code(&e)), (StatusCode::SERVICE_UNAVAILABLE, "timeout"));
    // Same service, no time limit: the request again gets the placement or makes it.
    let app2 = app(AppState {
        service: h.service.clone(),
        limits: Limits::default(),
        tokens: None,
    });
    let (s, body) = call(
        &app2,
        Method::POST,
        "/v1/cells",
        Some(json!({"cell_id": "t1", "clients": [c[0]]})),
    )
    .await;
    assert!(
        s == StatusCode::OK || s == StatusCode::CREATED,
        "{s} {body}"
    );
}

/// Hundreds of concurrent placements and deletes on a zone where capacity binds; then the
/// ledger on disk must respect capacity and the overlap rule, and hold exactly the cells
/// that were acknowledged and not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_places_and_deletes_keep_capacity_and_overlap() {
    let h = Harness::new(3).await;
    let clients = h.clients();
    let n = 300;
    let mut tasks = Vec::new();
    for i in 0..n {
        let app = h.app.clone();
        let a = clients[i % clients.len()].clone();
        let b = clients[(i * 7 + 3) % clients.len()].clone();
        let list = if a == b { vec![a] } else { vec![a, b] };
        tasks.push(tokio::spawn(async move {
            let id = format!("cc{i}");
            let (s, body) = call(
                &app,
                Method::POST,
                "/v1/cells",
                Some(json!({"cell_id": id, "clients": list})),
            )
            .await;
            let mut deleted = false;
            // Every third placed cell is deleted again, concurrently with the rest.
            if s == StatusCode::CREATED && i % 3 == 0 {
                let (d, _) = call(&app, Method::DELETE, &format!("/v1/cells/{id}"), None).await;
                assert_eq!(d, StatusCode::NO_CONTENT);
                deleted = true;
            }
            (id, s, body, deleted)
        }));
    }
    let mut acknowledged: HashMap<String, Vec<String>> = HashMap::new();
    let mut refused = 0;
    let mut placed = 0;
    for t in tasks {
        let (id, s, body, deleted) = t.await.unwrap();
        match s {
            StatusCode::CREATED => {
                placed += 1;
                if !deleted {
                    acknowledged.insert(id, strings(&body["cell"]["nodes"]));
                }
            }
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
                assert!(
                    matches!(code(&body), "no_capacity" | "no_safe_placement"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("{id}: {other} {body}"),
        }
    }
    assert!(placed >= 10, "too few placed: {placed}");
    assert!(refused > 0, "capacity never bound: the test proves nothing");
    h.service.shutdown().await;

    // The ledger as a fresh process would read it.
    let store = SqliteStore::open(&h.db).await.unwrap();
    let stored: HashMap<String, Vec<String>> = store::all_cells(&store)
        .await
        .unwrap()
        .into_iter()
        .map(|(c, _)| (c.cell_id, c.nodes))
        .collect();
    assert_eq!(stored, acknowledged);
    let mut load: HashMap<&str, u32> = HashMap::new();
    for nodes in stored.values() {
        assert_eq!(nodes.iter().collect::<HashSet<_>>().len(), nodes.len());
        for s in nodes {
            *load.entry(s).or_default() += 1;
        }
    }
    assert!(load.values().all(|&l| l <= 3), "a server is over capacity");
    let cells: Vec<(&String, HashSet<&String>)> = stored
        .iter()
        .map(|(id, nodes)| (id, nodes.iter().collect()))
        .collect();
    for (i, (a, na)) in cells.iter().enumerate() {
        for (b, nb) in &cells[i + 1..] {
            let shared = na.intersection(nb).count();
            let quorum = na.len().min(nb.len()) / 2 + 1;
            assert!(shared < quorum, "{a} and {b} share {shared} servers");
        }
    }
    // And the service rebuilds the same occupancy from it (open cross-checks the loads).
    Service::open(
        Arc::new(store),
        Some(Source::Dir(h.zone_dir.clone())),
        config(&h.db),
    )
    .await
    .unwrap();
}

/// The real binary over TCP: place, kill -9, restart on the same ledger, read the cell back;
/// then SIGTERM with requests in flight: they finish and the process exits cleanly.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_survives_kill_9_and_drains_on_sigterm() {
    use std::io::{Read, Write};
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let raw = fixtures::generate(&zone_params(8));
    let zone = write_zone(&dir.path().join("zone"), &raw);
    let db = dir.path().join("data").join("c.db");
    let start = || start_binary(&zone, &db);
    let (_, client_ids) = servers(&raw);

    let (mut child, url) = start();
    let client = cellplacer::client::Client::new(&url);
    let placed = client
        .post(
            "/v1/cells",
            &json!({"cell_id": "tcp-1", "clients": [client_ids[0]]}),
        )
        .await
        .unwrap();
    assert_eq!(placed.status, 201, "{}", placed.text);
    child.kill().unwrap(); // SIGKILL: no chance to flush anything
    child.wait().unwrap();

    let (child, url) = start();
    let client = cellplacer::client::Client::new(&url);
    let got = client.get("/v1/cells/tcp-1").await.unwrap();
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json["nodes"], placed.json["cell"]["nodes"]);

    // SIGTERM while placements are in flight: each gets its answer, the exit is clean.
    // "In flight" is made sure of, not hoped for: each request's handler has asked for its
    // body (`100 Continue`) before the signal, and the bodies go out only once the service
    // has stopped listening.
    let addr = url.trim_start_matches("http://").to_owned();
    let mut inflight = Vec::new();
    for i in 0..8 {
        let body =
            json!({"cell_id": format!("tcp-t{i}"), "clients": [client_ids[i + 1]]}).to_string();
        let (stream, continued) = post_expecting_continue(&addr, "/v1/cells", body.len() as u64);
        assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");
        inflight.push((stream, body));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stopped_listening = false;
    for _ in 0..600 {
        if std::net::TcpStream::connect(&addr).is_err() {
            stopped_listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stopped_listening,
        "SIGTERM, yet still accepting connections"
    );
    let mut acknowledged = Vec::new();
    for (i, (mut stream, body)) in inflight.into_iter().enumerate() {
        stream.write_all(body.as_bytes()).unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        assert!(
            reply.starts_with("HTTP/1.1 201"),
            "request {i}, in flight at SIGTERM, got {reply:?}"
        );
        acknowledged.push(format!("tcp-t{i}"));
    }
    assert_eq!(acknowledged.len(), 8);
    let mut child = child;
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    let (mut child, url) = start();
    let client = cellplacer::client::Client::new(&url);
    for id in &acknowledged {
        let got = client.get(&format!("/v1/cells/{id}")).await.unwrap();
        assert_eq!(got.status, 200, "{id} was acknowledged but is gone");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
