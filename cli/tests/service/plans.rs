//! Rebalancing plans through the API: a dry run that moves nothing, replayed step by step
//! against the rules; execution to the end; pause, resume, cancel; steps a concurrent change
//! invalidated; restart (an executing plan comes back paused); an inventory switch; the real
//! binary killed with -9 mid-plan.

use super::*;

/// Capacity per host in these tests: tight enough that moves compete for room.
const CAPACITY: u32 = 8;

/// Ids of the single-failure-safe cells.
async fn safe_cells(app: &Router) -> HashSet<String> {
    let (s, page) = call(app, Method::GET, "/v1/cells?unsafe=false&limit=1000", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cell_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Places `n` cells, each with one client; the rack holding the most nodes.
async fn fill(h: &Harness, n: usize) -> String {
    let clients = h.clients();
    for i in 0..n {
        let (s, body) = h
            .place(&format!("p{i:03}"), &[&clients[i % clients.len()]])
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    fullest_rack(&racks(&h.raw), &nodes_by_cell(&h.app).await).0
}

/// Every step of a plan, following `next_offset`.
async fn all_steps(app: &Router, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (s, plan) = call(
            app,
            Method::GET,
            &format!("/v1/plans/{id}?offset={offset}&limit=7"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{plan}");
        out.extend(plan["steps"].as_array().unwrap().iter().cloned());
        match plan["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => return out,
        }
    }
}

/// Replays `steps` on `cells` and checks the rules after every step: the cell has the
/// node to move and not the new one, no server above `capacity`, no two cells sharing a
/// quorum (4 of 7), one move in flight per cell (a step waits for the cell's previous
/// one), and a step waits for the last step that freed its server.
fn replay(cells: &mut BTreeMap<String, Vec<String>>, steps: &[Value], capacity: usize) {
    let mut load: HashMap<String, usize> = HashMap::new();
    for nodes in cells.values() {
        for n in nodes {
            *load.entry(n.clone()).or_default() += 1;
        }
    }
    let mut last_of_cell: HashMap<String, i64> = HashMap::new();
    let mut last_off: HashMap<String, i64> = HashMap::new();
    for st in steps {
        let (n, cell) = (
            st["step"].as_i64().unwrap(),
            st["cell_id"].as_str().unwrap(),
        );
        let (remove, add) = (st["remove"].as_str().unwrap(), st["add"].as_str().unwrap());
        let after: Vec<i64> = st["after_steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        for must in [last_of_cell.get(cell), last_off.get(add)]
            .into_iter()
            .flatten()
        {
            assert!(
                after.contains(must),
                "step {n} does not wait for {must}: {st}"
            );
        }
        let nodes = cells.get_mut(cell).unwrap();
        assert!(nodes.iter().any(|x| x == remove), "step {n}: {st}");
        assert!(!nodes.iter().any(|x| x == add), "step {n}: {st}");
        for x in nodes.iter_mut().filter(|x| *x == remove) {
            *x = add.to_owned();
        }
        *load.get_mut(remove).unwrap() -= 1;
        let l = load.entry(add.to_owned()).or_default();
        *l += 1;
        assert!(*l <= capacity, "step {n} puts {add} over capacity");
        let mine: HashSet<&String> = cells[cell].iter().collect();
        for (other, nodes) in cells.iter().filter(|(o, _)| *o != cell) {
            let shared = nodes.iter().filter(|x| mine.contains(x)).count();
            assert!(
                shared < 4,
                "step {n}: {cell} and {other} share {shared} nodes"
            );
        }
        last_of_cell.insert(cell.to_owned(), n);
        last_off.insert(remove.to_owned(), n);
    }
}

/// Waits until the plan is in one of `states`; returns it.
async fn wait_for(app: &Router, id: &str, states: &[&str]) -> Value {
    for _ in 0..600 {
        let (s, plan) = call(app, Method::GET, &format!("/v1/plans/{id}?limit=0"), None).await;
        assert_eq!(s, StatusCode::OK, "{plan}");
        if states.contains(&plan["state"].as_str().unwrap()) {
            return plan;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("plan {id} never reached {states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_plan_is_a_dry_run_then_executes_every_step() {
    let h = Harness::new(CAPACITY).await;
    let rack = fill(&h, 30).await;
    let before = nodes_by_cell(&h.app).await;
    let on_rack = |cells: &BTreeMap<String, Vec<String>>| {
        let rack_of = racks(&h.raw);
        cells
            .values()
            .flatten()
            .filter(|n| rack_of[*n] == rack)
            .count()
    };
    let moving = on_rack(&before);
    assert!(moving >= 5, "{moving}");

    let (s, plan) = h
        .call(Method::POST, "/v1/plans", Some(json!({"drain": [rack]})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    let id = plan["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(plan["state"], "planned");
    assert_eq!(
        plan["progress"]["steps"], moving,
        "one move per node on the rack"
    );
    assert_eq!(plan["progress"]["pending"], moving);
    assert_eq!(plan["summary"]["moves_by_reason"]["drain"], moving);
    let curve = plan["summary"]["curve"].as_array().unwrap();
    assert_eq!(curve[0]["nodes_to_move"], moving);
    assert_eq!(curve.last().unwrap()["nodes_to_move"], 0);
    // A dry run: nothing moved.
    assert_eq!(nodes_by_cell(&h.app).await, before);

    let steps = all_steps(&h.app, &id).await;
    assert_eq!(steps.len(), moving);
    assert!(steps.iter().all(|s| s["reason"] == "drain"));
    let safe = safe_cells(&h.app).await;
    assert!(!safe.is_empty());
    for st in &steps {
        if safe.contains(st["cell_id"].as_str().unwrap()) {
            assert_eq!(st["safe_after"], true, "a safe cell made unsafe: {st}");
        }
    }
    let mut replayed = before.clone();
    replay(&mut replayed, &steps, CAPACITY as usize);

    let (s, started) = h
        .call(
            Method::POST,
            &format!("/v1/plans/{id}/execute"),
            Some(json!({"rate": 2000, "concurrency": 4})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    assert_eq!(started["rate"], 2000.0);
    let done = wait_for(&h.app, &id, &["completed"]).await;
    assert_eq!(done["progress"]["committed"], moving, "{done}");
    let after = nodes_by_cell(&h.app).await;
    assert_eq!(after, replayed, "the ledger is the replayed plan");
    assert_eq!(on_rack(&after), 0);
    assert!(safe.is_subset(&safe_cells(&h.app).await));
    // The moves show on the cells.
    let moved = steps[0]["cell_id"].as_str().unwrap();
    let last = steps.iter().rfind(|s| s["cell_id"] == moved).unwrap();
    let (_, cell) = h
        .call(Method::GET, &format!("/v1/cells/{moved}"), None)
        .await;
    assert_eq!(cell["last_move"]["status"], "committed");
    assert_eq!(cell["last_move"]["out"], last["remove"]);
    assert_eq!(
        cell["single_failure_safe"],
        cell["last_move"]["single_failure_safe_after"]
    );

    let (_, metrics) = h.call(Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            "cellplacer_plan_steps_total{{outcome=\"committed\"}} {moving}\n"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("cellplacer_plans{state=\"completed\"} 1\n"));

    // Nothing is left to do: a second plan is empty and completes at once.
    let (s, again) = h
        .call(
            Method::POST,
            "/v1/plans",
            Some(json!({"drain": [rack], "execute": {"rate": 100}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["progress"]["steps"], 0);
    let id2 = again["plan_id"].as_str().unwrap();
    wait_for(&h.app, id2, &["completed"]).await;
    let (_, list) = h.call(Method::GET, "/v1/plans", None).await;
    let ids: Vec<&str> = list["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plan_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id2, id.as_str()], "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_checked_and_plans_follow_their_states() {
    let h = Harness::new(CAPACITY).await;
    let rack = fill(&h, 30).await;
    for (body, want, status) in [
        (json!({}), "drain", StatusCode::UNPROCESSABLE_ENTITY),
        // An id the inventory lacks: a missing resource.
        (
            json!({"drain": ["no-such-rack"]}),
            "drain[0]",
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"balance": 0.5}),
            "balance",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"repair": true, "execute": {"rate": -1}}),
            "rate",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, e) = h.call(Method::POST, "/v1/plans", Some(body)).await;
        assert_eq!(s, status, "{e}");
        assert_eq!(field(&e), want, "{e}");
    }
    let (s, e) = h.call(Method::GET, "/v1/plans/plan-999999", None).await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "plan_not_found"));
    let (s, e) = h
        .call(Method::GET, "/v1/plans/plan-000001?limit=x", None)
        .await;
    assert_eq!(
        (s, field(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        "{e}"
    );

    // A slow plan executes; a second plan cannot execute meanwhile.
    let (_, a) = h
        .call(Method::POST, "/v1/plans", Some(json!({"drain": [rack]})))
        .await;
    let a = a["plan_id"].as_str().unwrap().to_owned();
    let (_, b) = h
        .call(Method::POST, "/v1/plans", Some(json!({"drain": [rack]})))
        .await;
    let b = b["plan_id"].as_str().unwrap().to_owned();
    let (s, _) = h
        .call(
            Method::POST,
            &format!("/v1/plans/{a}/execute"),
            Some(json!({"rate": 5})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/v1/plans/{b}/execute"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "plan_conflict"),
        "{e}"
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("one plan executes at a time"));

    // Pause: progress stops; resume: it goes on; cancel: it ends.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (s, paused) = h
        .call(Method::POST, &format!("/v1/plans/{a}/pause"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{paused}");
    assert_eq!(paused["state"], "paused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, p1) = h.call(Method::GET, &format!("/v1/plans/{a}"), None).await;
    let done1 = p1["progress"]["committed"].as_u64().unwrap();
    assert!(done1 >= 1, "{p1}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, p2) = h.call(Method::GET, &format!("/v1/plans/{a}"), None).await;
    assert_eq!(p2["progress"]["committed"], done1, "no step while paused");
    let (s, _) = h
        .call(Method::POST, &format!("/v1/plans/{a}/pause"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "a repeated pause is the same answer");
    let (s, resumed) = h
        .call(Method::POST, &format!("/v1/plans/{a}/resume"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["rate"], 5.0, "the rate it had");
    let mut progressed = false;
    for _ in 0..100 {
        let (_, p) = h
            .call(Method::GET, &format!("/v1/plans/{a}?limit=0"), None)
            .await;
        if p["progress"]["committed"].as_u64().unwrap() > done1 {
            progressed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(progressed);
    let (s, cancelled) = h
        .call(Method::POST, &format!("/v1/plans/{a}/cancel"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, c1) = h.call(Method::GET, &format!("/v1/plans/{a}"), None).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, c2) = h.call(Method::GET, &format!("/v1/plans/{a}"), None).await;
    assert_eq!(c1["progress"], c2["progress"], "no step after cancel");
    assert!(c2["progress"]["pending"].as_u64().unwrap() > 0, "{c2}");
    let (s, e) = h
        .call(Method::POST, &format!("/v1/plans/{a}/resume"), None)
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "plan_conflict"));

    // Plan b now runs: steps whose node a already moved are skipped with why.
    let (s, _) = h
        .call(
            Method::POST,
            &format!("/v1/plans/{b}/execute"),
            Some(json!({"rate": 10000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let done = wait_for(&h.app, &b, &["completed"]).await;
    let committed_by_a = c2["progress"]["committed"].as_u64().unwrap();
    assert_eq!(done["progress"]["skipped"], committed_by_a, "{done}");
    let steps = all_steps(&h.app, &b).await;
    let skipped: Vec<&Value> = steps.iter().filter(|s| s["status"] == "skipped").collect();
    assert!(skipped.iter().all(|s| s["note"]
        .as_str()
        .unwrap()
        .contains("no longer has a node on")));
    let rack_of = racks(&h.raw);
    assert!(nodes_by_cell(&h.app)
        .await
        .values()
        .flatten()
        .all(|n| rack_of[n] != rack));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_are_skipped_and_an_inventory_switch_invalidates() {
    let h = Harness::new(CAPACITY).await;
    let rack = fill(&h, 30).await;
    let (_, plan) = h
        .call(Method::POST, "/v1/plans", Some(json!({"drain": [rack]})))
        .await;
    let id = plan["plan_id"].as_str().unwrap().to_owned();
    let steps = all_steps(&h.app, &id).await;
    let safe_before = safe_cells(&h.app).await;
    // One cell deleted, another's node on the rack replaced by hand, after planning.
    let gone = steps[0]["cell_id"].as_str().unwrap().to_owned();
    let (s, _) = h
        .call(Method::DELETE, &format!("/v1/cells/{gone}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let other = steps
        .iter()
        .find(|s| s["cell_id"] != gone.as_str())
        .unwrap()
        .clone();
    let (s, replaced) = h
        .call(
            Method::POST,
            &format!("/v1/cells/{}/replace", other["cell_id"].as_str().unwrap()),
            Some(json!({"server": other["remove"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{replaced}");
    let (s, _) = h
        .call(
            Method::POST,
            &format!("/v1/plans/{id}/execute"),
            Some(json!({"rate": 10000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    wait_for(&h.app, &id, &["completed"]).await;
    let after = all_steps(&h.app, &id).await;
    let note = |cell: &str| {
        after
            .iter()
            .find(|s| s["cell_id"] == cell)
            .map(|s| (s["status"].clone(), s["note"].clone()))
            .unwrap()
    };
    assert_eq!(
        note(&gone),
        (json!("skipped"), json!("the cell was deleted"))
    );
    let (status, why) = note(other["cell_id"].as_str().unwrap());
    assert_eq!(status, "skipped");
    assert!(
        why.as_str().unwrap().contains("no longer has a node on"),
        "{why}"
    );
    // Every other step committed (as planned or re-planned) and none broke a rule: the
    // safe cells stay safe, no server is over capacity, no two cells share a quorum.
    let mut still_safe = safe_before;
    still_safe.remove(&gone);
    assert!(still_safe.is_subset(&safe_cells(&h.app).await));
    let (_, report) = h.call(Method::GET, "/v1/report?risk=false", None).await;
    assert_eq!(report["load"]["over_capacity"], json!([]), "{report}");
    assert_eq!(report["quorum_sharing_pairs"], 0, "{report}");

    // A plan made on one inventory is invalidated by a switch.
    let (_, fresh) = h
        .call(Method::POST, "/v1/plans", Some(json!({"improve": true})))
        .await;
    let fresh = fresh["plan_id"].as_str().unwrap().to_owned();
    h.switch_with_failed(&[], "same-again").await;
    let (_, p) = h
        .call(Method::GET, &format!("/v1/plans/{fresh}"), None)
        .await;
    assert_eq!(p["state"], "invalidated", "{p}");
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/v1/plans/{fresh}/execute"),
            Some(json!({})),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "plan_conflict"));
    let (_, p) = h.call(Method::GET, &format!("/v1/plans/{id}"), None).await;
    assert_eq!(p["state"], "completed", "a finished plan stays as it ended");
}

/// A restart mid-plan: the plan comes back paused with every committed step, the cells as
/// the committed steps left them; resumed, it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_brings_an_executing_plan_back_paused() {
    let h = Harness::new(CAPACITY).await;
    let rack = fill(&h, 30).await;
    let before = nodes_by_cell(&h.app).await;
    let (_, plan) = h
        .call(
            Method::POST,
            "/v1/plans",
            Some(json!({"drain": [rack], "execute": {"rate": 8}})),
        )
        .await;
    let id = plan["plan_id"].as_str().unwrap().to_owned();
    assert_eq!(plan["state"], "executing");
    tokio::time::sleep(Duration::from_millis(400)).await;
    h.service.shutdown().await;

    let app2 = h.reopen().await;
    let (_, p) = call(&app2, Method::GET, &format!("/v1/plans/{id}"), None).await;
    assert_eq!(p["state"], "paused", "{p}");
    assert!(p["note"].as_str().unwrap().contains("stopped"));
    let committed = p["progress"]["committed"].as_u64().unwrap();
    assert!(committed >= 1, "{p}");
    assert!(p["progress"]["pending"].as_u64().unwrap() >= 1, "{p}");
    let steps = all_steps(&app2, &id).await;
    let done: Vec<Value> = steps
        .iter()
        .filter(|s| s["status"] == "committed")
        .cloned()
        .collect();
    assert_eq!(done.len() as u64, committed);
    let mut expected = before.clone();
    replay(&mut expected, &done, CAPACITY as usize);
    assert_eq!(nodes_by_cell(&app2).await, expected);

    let (s, _) = call(&app2, Method::POST, &format!("/v1/plans/{id}/resume"), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &app2,
        Method::POST,
        &format!("/v1/plans/{id}/execute"),
        Some(json!({"rate": 10000})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "executing already");
    // Faster: pause and execute again with a higher rate.
    call(&app2, Method::POST, &format!("/v1/plans/{id}/pause"), None).await;
    let (s, e) = call(
        &app2,
        Method::POST,
        &format!("/v1/plans/{id}/execute"),
        Some(json!({"rate": 10000})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let p = wait_for(&app2, &id, &["completed"]).await;
    assert_eq!(p["progress"]["pending"], 0);
    let mut all = before;
    replay(&mut all, &all_steps(&app2, &id).await, CAPACITY as usize);
    assert_eq!(nodes_by_cell(&app2).await, all);
}

/// The real binary, killed with -9 while a plan executes: on restart the plan is paused,
/// every step it says committed is on the cells (and nothing else moved), and resumed, it
/// completes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_plan_loses_no_committed_step() {
    let dir = tempfile::tempdir().unwrap();
    let raw = fixtures::generate(&zone_params(CAPACITY));
    let zone = write_zone(&dir.path().join("zone"), &raw);
    let db = dir.path().join("data").join("c.db");
    let start = || {
        let (child, url) = start_binary(&zone, &db);
        (child, cellplacer::client::Client::new(&url))
    };
    let nodes = |client: cellplacer::client::Client| async move {
        let page = client.get("/v1/cells?limit=1000").await.unwrap();
        page.json["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cell_id"].as_str().unwrap().to_owned(),
                    strings(&c["nodes"]),
                )
            })
            .collect::<BTreeMap<String, Vec<String>>>()
    };
    let (_, clients) = servers(&raw);
    let (mut child, client) = start();
    for i in 0..30 {
        let r = client
            .post(
                "/v1/cells",
                &json!({"cell_id": format!("k{i:02}"), "clients": [clients[i % clients.len()]]}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let before = nodes(client.clone()).await;
    let racks_of = racks(&raw);
    let mut per_row: BTreeMap<String, usize> = BTreeMap::new();
    for n in before.values().flatten() {
        // Rack ids are ROW-rkNN: drain the row that holds the most nodes.
        let rack = &racks_of[n];
        *per_row
            .entry(rack[..rack.len() - 5].to_owned())
            .or_default() += 1;
    }
    let row = per_row.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    let plan = client
        .post(
            "/v1/plans",
            &json!({"drain": [row], "execute": {"rate": 40, "concurrency": 2}}),
        )
        .await
        .unwrap();
    assert_eq!(plan.status, 201, "{}", plan.text);
    let id = plan.json["plan_id"].as_str().unwrap().to_owned();
    let total = plan.json["progress"]["steps"].as_u64().unwrap();
    assert!(total >= 10, "{total} steps");
    tokio::time::sleep(Duration::from_millis(150)).await;
    child.kill().unwrap(); // SIGKILL mid-plan
    child.wait().unwrap();

    let (mut child, client) = start();
    let got = client
        .get(&format!("/v1/plans/{id}?limit=1000"))
        .await
        .unwrap();
    assert_eq!(got.json["state"], "paused", "{}", got.text);
    let steps = got.json["steps"].as_array().unwrap().clone();
    let done: Vec<Value> = steps
        .iter()
        .filter(|s| s["status"] != "pending")
        .cloned()
        .collect();
    assert!(
        !done.is_empty() && (done.len() as u64) < total,
        "{}",
        done.len()
    );
    assert!(done.iter().all(|s| s["status"] == "committed"));
    // Settled steps are a prefix: steps commit in order.
    assert!(steps[..done.len()].iter().all(|s| s["status"] != "pending"));
    let mut expected = before.clone();
    replay(&mut expected, &done, CAPACITY as usize);
    assert_eq!(
        nodes(client.clone()).await,
        expected,
        "the cells are the committed steps"
    );

    let r = client
        .post(&format!("/v1/plans/{id}/execute"), &json!({"rate": 10000}))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let mut state = String::new();
    for _ in 0..500 {
        let p = client
            .get(&format!("/v1/plans/{id}?limit=0"))
            .await
            .unwrap();
        state = p.json["state"].as_str().unwrap().to_owned();
        if state != "executing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "completed");
    let all = client
        .get(&format!("/v1/plans/{id}?limit=1000"))
        .await
        .unwrap();
    let mut expected = before;
    replay(
        &mut expected,
        all.json["steps"].as_array().unwrap(),
        CAPACITY as usize,
    );
    assert_eq!(nodes(client).await, expected);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Pause and resume back to back, many times: no resume is lost while the executor winds
/// down from the pause before it (the plan completes), and no step runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_pause_and_resume_lose_nothing() {
    let h = Harness::new(CAPACITY).await;
    let rack = fill(&h, 30).await;
    let before = nodes_by_cell(&h.app).await;
    let (_, plan) = h
        .call(
            Method::POST,
            "/v1/plans",
            Some(json!({"drain": [rack], "execute": {"rate": 60, "concurrency": 1}})),
        )
        .await;
    let id = plan["plan_id"].as_str().unwrap().to_owned();
    let mut cycles = 0;
    for _ in 0..40 {
        let (s, p) = h
            .call(Method::POST, &format!("/v1/plans/{id}/pause"), None)
            .await;
        if s == StatusCode::CONFLICT {
            // Finished between two cycles.
            assert!(
                p["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("completed"),
                "{p}"
            );
            break;
        }
        assert_eq!(s, StatusCode::OK, "{p}");
        let (s, p) = h
            .call(Method::POST, &format!("/v1/plans/{id}/resume"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{p}");
        cycles += 1;
    }
    assert!(cycles >= 5, "{cycles} cycles");
    let done = wait_for(&h.app, &id, &["completed"]).await;
    assert_eq!(done["progress"]["pending"], 0, "{done}");
    let mut expected = before;
    replay(
        &mut expected,
        &all_steps(&h.app, &id).await,
        CAPACITY as usize,
    );
    assert_eq!(nodes_by_cell(&h.app).await, expected);
}
