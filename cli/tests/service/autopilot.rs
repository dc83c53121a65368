//! Health events and the autopilot through the API: a failed rack emptied with every
//! step replayed against the rules; the autopilot off (events judge, nothing moves); a
//! server back within the grace (no move); bad reports named and refused whole; the
//! overlay durable across a restart.

use super::*;

/// Capacity per host: room for the moves.
const CAPACITY: u32 = 8;

async fn settings(h: &Harness, body: Value) -> Value {
    let (s, v) = h.call(Method::PUT, "/v1/autopilot", Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn report(h: &Harness, id: &str, state: &str) -> Value {
    let (s, v) = h
        .call(
            Method::PUT,
            &format!("/v1/elements/{id}/state"),
            Some(json!({"state": state, "reason": "test"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Waits until the autopilot has nothing left to do (queue empty, nothing in flight) as
/// of a pass that started after this call.
async fn settle(h: &Harness) -> Value {
    let (_, v) = h.call(Method::GET, "/v1/autopilot", None).await;
    let from = v["passes"].as_u64().unwrap();
    for _ in 0..600 {
        let (s, v) = h.call(Method::GET, "/v1/autopilot", None).await;
        assert_eq!(s, StatusCode::OK);
        if v["passes"].as_u64().unwrap() < from + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let queued: u64 = v["queue"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "waiting")
            .map(|(_, n)| n.as_u64().unwrap())
            .sum();
        if queued == 0 && v["in_flight"] == 0 && v["acting"] == true {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the autopilot did not settle");
}

/// Places `n` cells of three clients each (a client cut off from the other two does not
/// need the cell, so cells can be single-failure safe).
async fn place_all(h: &Harness, n: usize) {
    let clients = h.clients();
    let k = clients.len();
    for i in 0..n {
        let three = [
            clients[i % k].as_str(),
            clients[(i + k / 3) % k].as_str(),
            clients[(i + 2 * k / 3) % k].as_str(),
        ];
        let (s, body) = h.place(&format!("a{i:03}"), &three).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rack_is_emptied_move_by_move_within_the_rules() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 40).await;
    let before = nodes_by_cell(&h.app).await;
    let racks = racks(&h.raw);
    let (rack, on_rack) = fullest_rack(&racks, &before);
    settings(
        &h,
        json!({"enabled": true, "grace_s": 0, "rate": 1000, "max_in_flight": 8}),
    )
    .await;
    let reported = report(&h, &rack, "failed").await;
    assert_eq!(reported["changed"], true, "{reported}");
    assert!(reported["servers_down"].as_u64().unwrap() > 0, "{reported}");
    let view = settle(&h).await;
    let after = nodes_by_cell(&h.app).await;
    // Every node left the rack, one move per node, each a `failed` move.
    assert!(
        after.values().flatten().all(|n| racks[n] != rack),
        "{after:?}"
    );
    assert_eq!(view["moves"]["failed"], on_rack as u64, "{view}");
    let actions: Vec<&Value> = view["last_actions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .collect();
    assert_eq!(actions.len(), on_rack, "{view}");
    for a in &actions {
        assert_eq!(a["cause"]["element"], rack.as_str(), "{a}");
        assert_eq!(a["reason"], "failed");
    }
    // Replayed in order from the start, no step breaks a rule: the cell has the node and
    // not the new one, no server over capacity, no two cells sharing a quorum.
    let mut cells = before.clone();
    let mut load: HashMap<String, usize> = HashMap::new();
    for n in cells.values().flatten() {
        *load.entry(n.clone()).or_default() += 1;
    }
    for a in &actions {
        let cell = a["cell_id"].as_str().unwrap();
        let (remove, add) = (a["remove"].as_str().unwrap(), a["add"].as_str().unwrap());
        let nodes = cells.get_mut(cell).unwrap();
        assert!(nodes.iter().any(|x| x == remove), "{a}");
        assert!(!nodes.iter().any(|x| x == add), "{a}");
        assert_ne!(racks[add], rack, "{a}");
        for x in nodes.iter_mut().filter(|x| *x == remove) {
            *x = add.to_owned();
        }
        *load.get_mut(remove).unwrap() -= 1;
        let l = load.entry(add.to_owned()).or_default();
        *l += 1;
        assert!(*l <= CAPACITY as usize, "{a}");
        let mine: HashSet<&String> = cells[cell].iter().collect();
        for (other, theirs) in cells.iter().filter(|(o, _)| *o != cell) {
            let shared = theirs.iter().filter(|x| mine.contains(x)).count();
            assert!(shared < 4, "{cell} shares {shared} with {other} after {a}");
        }
    }
    assert_eq!(cells, after);
    // Every cell safe again, or named with why.
    let (_, unsafe_page) = h.call(Method::GET, "/v1/cells?unsafe=true", None).await;
    let cannot: HashSet<String> = view["cannot_fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cell_id"].as_str().unwrap().to_owned())
        .collect();
    for c in unsafe_page["cells"].as_array().unwrap() {
        assert!(cannot.contains(c["cell_id"].as_str().unwrap()), "{c}");
    }
    // The metrics count the moves and the repair time.
    let (_, m) = raw_call(
        &h.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    let text = m.as_str().unwrap_or_default();
    assert!(
        text.contains(&format!(
            "cellplacer_autopilot_moves_total{{reason=\"failed\"}} {on_rack}"
        )),
        "{text}"
    );
    assert!(text.contains("cellplacer_autopilot_event_to_safe_seconds_count"));
    assert!(text.contains("cellplacer_cells_out 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_autopilot_off_events_judge_cells_and_nothing_moves() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 30).await;
    let before = nodes_by_cell(&h.app).await;
    let racks = racks(&h.raw);
    let first = &before["a000"];
    let rack = racks[&first[0]].clone();
    let reported = report(&h, &rack, "failed").await;
    // The cells with a node there were judged again: recorded on a new version.
    assert!(
        reported["cells_changed"].as_u64().unwrap() > 0,
        "{reported}"
    );
    let (_, listed) = h.call(Method::GET, "/v1/elements?state=failed", None).await;
    assert_eq!(listed["elements"][0]["element"], rack.as_str(), "{listed}");
    assert_eq!(listed["elements"][0]["kind"], "rack");
    assert_eq!(listed["elements"][0]["reason"], "test");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(nodes_by_cell(&h.app).await, before);
    let (_, view) = h.call(Method::GET, "/v1/autopilot", None).await;
    assert_eq!(view["settings"]["enabled"], false, "{view}");
    assert!(view["moves"].as_object().unwrap().is_empty(), "{view}");
    // Back to active: the judged state goes back too.
    let back = report(&h, &rack, "active").await;
    assert_eq!(back["servers_down"], 0, "{back}");
    let (_, listed) = h.call(Method::GET, "/v1/elements", None).await;
    assert!(
        listed["elements"].as_array().unwrap().is_empty(),
        "{listed}"
    );

    // On, with the default grace: a server failed and back within it moves nothing.
    settings(&h, json!({"enabled": true, "grace_s": 600, "rate": 1000})).await;
    let server = first[1].clone();
    report(&h, &server, "failed").await;
    let mut waited = false;
    for _ in 0..100 {
        let (_, v) = h.call(Method::GET, "/v1/autopilot", None).await;
        if v["acting"] == true && v["queue"]["waiting"].as_u64().unwrap_or(0) > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waited, "the failed server's nodes wait for the grace");
    tokio::time::sleep(Duration::from_millis(500)).await;
    report(&h, &server, "active").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(nodes_by_cell(&h.app).await, before);
    let (_, view) = h.call(Method::GET, "/v1/autopilot", None).await;
    assert!(view["moves"].as_object().unwrap().is_empty(), "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_named_and_change_nothing_and_the_overlay_is_durable() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 10).await;
    let racks = racks(&h.raw);
    let server = h.hosts()[0].clone();
    let rack = racks[&server].clone();
    let (s, v) = h
        .call(
            Method::PUT,
            "/v1/elements/nope/state",
            Some(json!({"state": "failed"})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "unknown_element"),
        "{v}"
    );
    assert_eq!(field(&v), "id");
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/elements/states",
            Some(json!({"states": [
                {"element": server, "state": "failed"},
                {"element": rack, "state": "draining"},
            ]})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "invalid_state"),
        "{v}"
    );
    assert_eq!(field(&v), "states[1].state");
    let (s, v) = h
        .call(Method::PUT, "/v1/autopilot", Some(json!({"rate": 0})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(field(&v), "rate");
    let (_, listed) = h.call(Method::GET, "/v1/elements", None).await;
    assert!(
        listed["elements"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    // Many at once, then a restart: the overlay, its effect and the settings stay.
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/elements/states",
            Some(json!({"states": [
                {"element": server, "state": "draining", "reason": "firmware"},
                {"element": rack, "state": "failed"},
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let down = v["servers_down"].as_u64().unwrap();
    assert!(down > 0);
    settings(&h, json!({"grace_s": 42})).await;
    h.service.shutdown().await;
    let app = h.reopen().await;
    let (_, listed) = call(&app, Method::GET, "/v1/elements", None).await;
    let ids: Vec<&str> = listed["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["element"].as_str().unwrap())
        .collect();
    let mut want = vec![server.as_str(), rack.as_str()];
    want.sort();
    assert_eq!(ids, want, "{listed}");
    let (_, view) = call(&app, Method::GET, "/v1/autopilot", None).await;
    assert_eq!(view["settings"]["grace_s"], 42.0, "{view}");
    let (_, text) = raw_call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("cellplacer_servers_down {down}")),
        "{text}"
    );
}

/// A row's A-side PDU failing leaves every rack (and ToR) of the row on its B-side PDU
/// alone. Cells whose three clients sit in the next row and 4 of whose 7 nodes sit in
/// this one are then single-failure unsafe (that PDU takes 4 nodes), and the fewest moves
/// that make them safe take one node out of the row. The autopilot makes exactly that one
/// move per cell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdu_failure_is_repaired_with_the_fewest_moves() {
    let params = fixtures::ZoneParams {
        single_fed_fraction: 0.0,
        ..zone_params(CAPACITY)
    };
    let h = Harness::on(&params, Limits::default(), false).await;
    let racks = racks(&h.raw);
    let room_of = |server: &str| {
        let rack = &racks[server];
        rack[..rack.rfind("-rk").unwrap()].to_owned()
    };
    // Free hosts by rack, per row.
    let mut free: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for host in h.hosts() {
        free.entry(room_of(&host))
            .or_default()
            .entry(racks[&host].clone())
            .or_default()
            .push(host);
    }
    let mut take = |room: &str, n: usize| -> Vec<String> {
        let by_rack = free.get_mut(room).unwrap();
        let mut fullest: Vec<(usize, String)> = by_rack
            .iter()
            .map(|(r, hs)| (hs.len(), r.clone()))
            .collect();
        fullest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        fullest
            .into_iter()
            .take(n)
            .map(|(_, r)| by_rack.get_mut(&r).unwrap().pop().unwrap())
            .collect()
    };
    // Clients in the second row, on distinct racks.
    let mut row2_clients: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in h.clients() {
        if room_of(&c) == "dc1-h2-row02" {
            row2_clients.entry(racks[&c].clone()).or_default().push(c);
        }
    }
    let row2_clients: Vec<Vec<String>> = row2_clients.into_values().collect();
    let mut csv = String::from("cell_id,clients,nodes\n");
    let cells = 3;
    for i in 0..cells {
        let mut nodes = take("dc1-h2-row01", 4);
        nodes.extend(take("dc1-h2-row02", 3));
        let clients: Vec<&str> = (0..3)
            .map(|j| {
                let rack = &row2_clients[j % row2_clients.len()];
                rack[i % rack.len()].as_str()
            })
            .collect();
        csv.push_str(&format!("u{i},{},{}\n", clients.join(";"), nodes.join(";")));
    }
    let file = h.dir.path().join("crafted.csv");
    std::fs::write(&file, csv).unwrap();
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/ledger/import",
            Some(json!({"path": file})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let before = nodes_by_cell(&h.app).await;
    let (_, page) = h.call(Method::GET, "/v1/cells?unsafe=true", None).await;
    assert!(page["cells"].as_array().unwrap().is_empty(), "{page}");
    let in_room = |nodes: &[String]| {
        nodes
            .iter()
            .filter(|n| room_of(n) == "dc1-h2-row01")
            .count()
    };
    // The autopilot is off while the event is judged.
    let (s, reported) = h
        .call(
            Method::POST,
            "/v1/elements/states",
            Some(json!({"states": [
                {"element": "dc1-h2-row01-pduA", "state": "failed", "reason": "breaker"},
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{reported}");
    assert_eq!(reported["servers_down"], 0, "dual-fed: nothing loses power");
    assert_eq!(reported["cells_unsafe"], cells as u64, "{reported}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(nodes_by_cell(&h.app).await, before, "the autopilot is off");
    settings(&h, json!({"enabled": true, "grace_s": 0, "rate": 1000})).await;
    let view = settle(&h).await;
    assert!(view["cannot_fix"].as_array().unwrap().is_empty(), "{view}");
    let after = nodes_by_cell(&h.app).await;
    for (cell, was) in &before {
        let now = &after[cell];
        let moved = was.iter().filter(|n| !now.contains(n)).count();
        assert_eq!(moved, 1, "{cell}: {was:?} -> {now:?}");
        assert_eq!(in_room(now), 3, "{cell}: {now:?}");
    }
    assert_eq!(view["moves"]["unsafe"], cells as u64, "{view}");
    let (_, page) = h.call(Method::GET, "/v1/cells?unsafe=true", None).await;
    assert!(page["cells"].as_array().unwrap().is_empty(), "{page}");
    let actions = view["last_actions"].as_array().unwrap();
    assert!(actions
        .iter()
        .all(|a| a["cause"]["element"].as_str().unwrap().ends_with("-pduA")));
}

/// Polls `addr` until `done` holds of its `GET path` (at most `secs` seconds).
#[cfg(unix)]
pub(super) fn wait_for(addr: &str, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, v) = http(addr, "GET", path, None).unwrap();
        if s == 200 && done(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out on {path}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reports `state` for element `id` on the real binary; returns the wall clock (Unix
/// milliseconds) just before.
#[cfg(unix)]
pub(super) fn report_at(addr: &str, id: &str, state: &str) -> i64 {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (s, v) = http(
        addr,
        "PUT",
        &format!("/v1/elements/{id}/state"),
        Some(&json!({ "state": state })),
    )
    .unwrap();
    assert_eq!(s, 200, "{v}");
    at
}

/// The cells' nodes on the real binary.
#[cfg(unix)]
pub(super) fn nodes_at(addr: &str) -> BTreeMap<String, Vec<String>> {
    let (s, page) = http(addr, "GET", "/v1/cells?limit=1000", None).unwrap();
    assert_eq!(s, 200, "{page}");
    by_cell(page["cells"].as_array().unwrap(), "nodes")
}

/// kill -9 mid-repair: the restarted service's autopilot goes on from what the ledger
/// says; every node on the failed rack moved exactly once, none lost, none twice.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_repair_the_autopilot_resumes_and_moves_each_node_once() {
    let h = Harness::new(CAPACITY).await;
    h.service.shutdown().await;
    let db = h.dir.path().join("killed.db");
    let args = |rate: &str| -> Vec<std::ffi::OsString> {
        vec![
            "--inventory".into(),
            h.zone_dir.clone().into(),
            "--db".into(),
            db.clone().into(),
            "--autopilot".into(),
            "on".into(),
            "--autopilot-grace-s".into(),
            "0".into(),
            "--autopilot-rate".into(),
            rate.into(),
        ]
    };
    let start = |rate: &str| {
        let a = args(rate);
        let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        let (child, url) = spawn_serve(&refs);
        (child, url.strip_prefix("http://").unwrap().to_owned())
    };
    let (mut child, addr) = start("4");
    let clients = h.clients();
    for i in 0..40 {
        let body = json!({"cell_id": format!("k{i:03}"), "clients": [clients[i % clients.len()]]});
        let (s, v) = http(&addr, "POST", "/v1/cells", Some(&body)).unwrap();
        assert_eq!(s, 201, "{v}");
    }
    // Whatever the autopilot does before the event is not this test's business.
    wait_for(&addr, "/v1/autopilot", 60, |v| {
        v["acting"] == true
            && v["passes"].as_u64().unwrap_or(0) >= 2
            && v["in_flight"] == 0
            && v["queue"].as_object().unwrap().values().all(|n| n == 0)
    });
    let before = nodes_at(&addr);
    let racks = racks(&h.raw);
    let (rack, on_rack) = fullest_rack(&racks, &before);
    let event_ms = report_at(&addr, &rack, "failed");
    wait_for(&addr, "/v1/autopilot", 30, |v| {
        v["moves"]["failed"].as_u64().unwrap_or(0) >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, addr) = start("1000");
    let after = wait_for(&addr, "/v1/cells?limit=1000", 60, |page| {
        page["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| strings(&c["nodes"]).iter().all(|n| racks[n] != rack))
    });
    let (_, elements) = http(&addr, "GET", "/v1/elements?state=failed", None).unwrap();
    assert_eq!(elements["elements"][0]["element"], rack.as_str());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(after["cells"].as_array().unwrap().len(), before.len());

    // The ledger's moves since the event: each node on the rack left it exactly once.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT cell_id, out_server, into_server FROM moves
         WHERE status = 'committed' AND created_at >= ?1 ORDER BY cell_id, n",
    )
    .bind(event_ms)
    .fetch_all(&pool)
    .await
    .unwrap();
    let off_rack: Vec<&(String, String, String)> = rows
        .iter()
        .filter(|(_, out, _)| racks[out] == rack)
        .collect();
    assert_eq!(off_rack.len(), on_rack, "{rows:?}");
    let mut seen = HashSet::new();
    for (cell, out, into) in &off_rack {
        assert!(seen.insert((cell, out)), "{cell} moved off {out} twice");
        assert!(before[cell].contains(out), "{cell} had no node on {out}");
        assert_ne!(racks[into], rack);
    }
    pool.close().await;
}

/// The optional goals, off by default: on, the autopilot sweeps the cells for moves that
/// lower their risk (and follows moved clients), within `max_moves_per_hour`: none at 0,
/// and every move it makes for them lowers its cell's risk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_optional_goals_stay_within_their_hourly_budget() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 20).await;
    let before = nodes_by_cell(&h.app).await;
    let (_, view) = h.call(Method::GET, "/v1/autopilot", None).await;
    assert_eq!(view["settings"]["improve"], false, "{view}");
    settings(
        &h,
        json!({"enabled": true, "grace_s": 0, "improve": true, "max_moves_per_hour": 0}),
    )
    .await;
    // A sweep over every cell (64 per pass): nothing moves at a budget of 0.
    let (_, v) = h.call(Method::GET, "/v1/autopilot", None).await;
    let from = v["passes"].as_u64().unwrap();
    for _ in 0..400 {
        let (_, v) = h.call(Method::GET, "/v1/autopilot", None).await;
        if v["passes"].as_u64().unwrap() >= from + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(nodes_by_cell(&h.app).await, before);
    let budget = 2;
    settings(&h, json!({"max_moves_per_hour": budget})).await;
    let (_, v) = h.call(Method::GET, "/v1/autopilot", None).await;
    let from = v["passes"].as_u64().unwrap();
    let mut view = v;
    for _ in 0..400 {
        let (_, v) = h.call(Method::GET, "/v1/autopilot", None).await;
        view = v;
        if view["passes"].as_u64().unwrap() >= from + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let made = view["moves"]["improve"].as_u64().unwrap_or(0);
    assert!(made <= budget, "{view}");
    for a in view["last_actions"].as_array().unwrap() {
        assert_eq!(a["reason"], "improve", "{a}");
        assert!(
            a["risk_after"].as_f64().unwrap() < a["risk_before"].as_f64().unwrap(),
            "{a}"
        );
    }
    let after = nodes_by_cell(&h.app).await;
    let moved: usize = before
        .iter()
        .map(|(c, was)| was.iter().filter(|n| !after[c].contains(n)).count())
        .sum();
    assert_eq!(moved as u64, made, "{view}");
}

/// An inventory switch keeps the reported states of the ids the new export still names,
/// and says which it dropped; the new version is judged with the kept ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_keeps_the_overlay_for_the_ids_it_still_names() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 10).await;
    let link = column(&h.raw, "network_links", "link_id")[0]
        .clone()
        .unwrap();
    let rack = column(&h.raw, "racks", "rack_id")[0].clone().unwrap();
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/elements/states",
            Some(json!({"states": [
                {"element": link, "state": "failed"},
                {"element": rack, "state": "failed", "reason": "fire"},
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let down = v["servers_down"].clone();
    let mut next = h.raw.clone();
    let links = next.tables.get_mut("network_links").unwrap();
    links
        .rows
        .retain(|r| r[0].as_deref() != Some(link.as_str()));
    let dir = write_zone(&h.dir.path().join("without-link"), &next);
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/inventory?wait=true",
            Some(json!({"path": dir})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["overlay_dropped"], json!([link]), "{v}");
    let (_, listed) = h.call(Method::GET, "/v1/elements", None).await;
    assert_eq!(listed["inventory_version"], 2);
    let ids: Vec<&str> = listed["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["element"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![rack.as_str()], "{listed}");
    assert_eq!(listed["elements"][0]["reason"], "fire");
    let (_, m) = raw_call(
        &h.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    let text = m.as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("cellplacer_servers_down {down}")),
        "{text}"
    );
}

/// A cell as the service lists it: id, clients, nodes, risk and safety.
type Listed = (String, Vec<String>, Vec<String>, f64, bool);

async fn listed_cells(h: &Harness) -> Vec<Listed> {
    all_cells(&h.app)
        .await
        .iter()
        .map(|c| {
            (
                c["cell_id"].as_str().unwrap().to_owned(),
                strings(&c["clients"]),
                strings(&c["nodes"]),
                c["risk"].as_f64().unwrap(),
                c["single_failure_safe"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Health events judge the cells they may change, and those exactly: after each event of
/// a sequence (a server, its uplink, its switch, its rack, its power, a room's partition;
/// then back in another order) every cell's recorded risk and safety are what a model
/// built afresh on the zone gives, and a server's own event judges only the cells on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_judge_exactly_the_cells_they_may_change() {
    use optimizer::risk::RiskEvaluator;
    use topology::overlay::{Health, Named, Reported};
    use topology::{FailureModel, Inventory};

    let h = Harness::on(
        &zone_params(CAPACITY).with_partitions(),
        Limits::default(),
        false,
    )
    .await;
    place_all(&h, 40).await;
    let export = Inventory::from_raw(&h.raw).unwrap().0;
    let cells = listed_cells(&h).await;
    let server = cells[0].2[0].clone();
    let s = export.server_index(&server).unwrap();
    let uplink = export
        .links
        .iter()
        .find(|l| [l.a, l.b].contains(&topology::model::NetNode::Server(s)))
        .unwrap();
    let topology::model::NetNode::Device(tor) = (if uplink.a == topology::model::NetNode::Server(s)
    {
        uplink.b
    } else {
        uplink.a
    }) else {
        panic!("a server's uplink goes to its switch");
    };
    let tor = export.network_devices[tor as usize].id.clone();
    let rack = racks(&h.raw)[&server].clone();
    let feeds = column(&h.raw, "power_feeds", "upstream")
        .into_iter()
        .zip(column(&h.raw, "power_feeds", "downstream"));
    let power = feeds
        .filter(|(_, down)| {
            down.as_deref() == Some(rack.as_str()) || down.as_deref() == Some(server.as_str())
        })
        .map(|(up, _)| up.unwrap())
        .next()
        .expect("the rack is fed");
    let partition = export
        .risk_groups
        .first()
        .expect("the zone has partitions")
        .id
        .clone();
    let on_server = cells
        .iter()
        .filter(|c| c.1.contains(&server) || c.2.contains(&server))
        .count();
    let events = [
        (server.as_str(), "failed"),
        (uplink.id.as_str(), "failed"),
        (tor.as_str(), "failed"),
        (rack.as_str(), "failed"),
        (power.as_str(), "failed"),
        (partition.as_str(), "failed"),
        (server.as_str(), "active"),
        (tor.as_str(), "active"),
        (partition.as_str(), "active"),
        (uplink.id.as_str(), "active"),
        (power.as_str(), "active"),
        (rack.as_str(), "active"),
    ];
    let mut failed: Vec<&str> = Vec::new();
    for (i, &(id, state)) in events.iter().enumerate() {
        let reply = report(&h, id, state).await;
        if i == 0 {
            assert_eq!(reply["cells_judged"], on_server as u64, "{reply}");
            assert!(on_server > 0 && on_server < cells.len());
        }
        match state {
            "failed" => failed.push(id),
            _ => failed.retain(|&f| f != id),
        }
        let reported: Vec<Reported> = failed
            .iter()
            .map(|id| Reported {
                named: Named::resolve(&export, id).unwrap(),
                health: Health::Failed,
                since: 0,
            })
            .collect();
        let inv = Inventory::from_raw(&topology::overlay::apply(&h.raw, &export, &reported).raw)
            .unwrap()
            .0;
        let model = FailureModel::new(&inv);
        let mut evaluator = RiskEvaluator::new(&model);
        let index = |ids: &[String]| -> Vec<u32> {
            ids.iter().map(|id| inv.server_index(id).unwrap()).collect()
        };
        for (cell, clients, nodes, risk, safe) in listed_cells(&h).await {
            let want = evaluator.evaluate(&index(&clients), &index(&nodes));
            assert!(
                (risk - want.risk).abs() <= 1e-12 * risk.abs().max(want.risk.abs()),
                "{cell} after {id} {state}: risk {risk}, afresh {}",
                want.risk
            );
            assert_eq!(
                safe,
                want.single_failure_safe(),
                "{cell} after {id} {state}"
            );
        }
    }
}
