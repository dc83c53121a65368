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

/// Waits until the autopilot has nothing left to do (queue empty, nothing in flight).
async fn settle(h: &Harness) -> Value {
    for _ in 0..600 {
        let (s, v) = h.call(Method::GET, "/v1/autopilot", None).await;
        assert_eq!(s, StatusCode::OK);
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

/// Cell id -> nodes.
async fn nodes(h: &Harness) -> BTreeMap<String, Vec<String>> {
    let (s, page) = h.call(Method::GET, "/v1/cells?limit=1000", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cell_id"].as_str().unwrap().to_owned(),
                strings(&c["nodes"]),
            )
        })
        .collect()
}

async fn place_all(h: &Harness, n: usize) {
    let clients = h.clients();
    for i in 0..n {
        let (s, body) = h
            .place(&format!("a{i:03}"), &[&clients[i % clients.len()]])
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
}

/// The rack of each server.
fn rack_of(raw: &RawInventory) -> HashMap<String, String> {
    column(raw, "servers", "server_id")
        .into_iter()
        .zip(column(raw, "servers", "rack_id"))
        .map(|(s, r)| (s.unwrap(), r.unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rack_is_emptied_move_by_move_within_the_rules() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 40).await;
    let before = nodes(&h).await;
    let racks = rack_of(&h.raw);
    let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
    for n in before.values().flatten() {
        *per_rack.entry(racks[n].as_str()).or_default() += 1;
    }
    let (rack, on_rack) = per_rack
        .iter()
        .max_by_key(|(r, n)| (**n, std::cmp::Reverse(**r)))
        .map(|(r, n)| (r.to_string(), *n))
        .unwrap();
    settings(
        &h,
        json!({"enabled": true, "grace_s": 0, "rate": 1000, "max_in_flight": 8}),
    )
    .await;
    let reported = report(&h, &rack, "failed").await;
    assert_eq!(reported["changed"], true, "{reported}");
    assert!(reported["servers_down"].as_u64().unwrap() > 0, "{reported}");
    let view = settle(&h).await;
    let after = nodes(&h).await;
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
    let before = nodes(&h).await;
    let racks = rack_of(&h.raw);
    let first = &before["a000"];
    let rack = racks[&first[0]].clone();
    let reported = report(&h, &rack, "failed").await;
    // The cells with a node there were judged again: recorded on a new version.
    assert!(
        reported["cells_changed"].as_u64().unwrap() > 0,
        "{reported}"
    );
    let (_, cell) = h.call(Method::GET, "/v1/cells/a000", None).await;
    assert!(cell["version"].as_i64().unwrap() > 1, "{cell}");
    let (_, listed) = h.call(Method::GET, "/v1/elements?state=failed", None).await;
    assert_eq!(listed["elements"][0]["element"], rack.as_str(), "{listed}");
    assert_eq!(listed["elements"][0]["kind"], "rack");
    assert_eq!(listed["elements"][0]["reason"], "test");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(nodes(&h).await, before);
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
    assert_eq!(nodes(&h).await, before);
    let (_, view) = h.call(Method::GET, "/v1/autopilot", None).await;
    assert!(view["moves"].as_object().unwrap().is_empty(), "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_are_named_and_change_nothing_and_the_overlay_is_durable() {
    let h = Harness::new(CAPACITY).await;
    place_all(&h, 10).await;
    let racks = rack_of(&h.raw);
    let server = h.hosts()[0].clone();
    let rack = racks[&server].clone();
    let (s, v) = h
        .call(
            Method::PUT,
            "/v1/elements/nope/state",
            Some(json!({"state": "failed"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
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
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
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
