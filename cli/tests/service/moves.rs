//! Clients that move: proposals, commits, conflicts and the path to the end.

use super::*;

#[tokio::test]
async fn client_moves_are_proposed_then_committed() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let (_, body) = h.place("m1", &[&c[0], &c[1]]).await;
    let nodes = strings(&body["cell"]["nodes"]);
    assert_eq!(body["cell"]["single_failure_safe"], true, "{body}");

    // Three of the seven servers fail (a new inventory): four nodes left, any single
    // failure of one of them is an outage. The switch lists the cell.
    let body = h.switch_with_failed(&nodes[..3], "three-failed").await;
    assert_eq!(body["reevaluation"]["on_failed"], json!(["m1"]));
    assert_eq!(body["reevaluation"]["became_unsafe"], json!(["m1"]));
    let (_, cell) = h.call(Method::GET, "/v1/cells/m1", None).await;
    assert_eq!(cell["single_failure_safe"], false);

    // The runtime reports the clients (moved, or as they are): one node move is proposed,
    // out of a failed server; nothing changes on the proposal alone.
    let near = vec![c[1].clone(), c[2].clone()];
    let (s, body) = h
        .call(
            Method::PUT,
            "/v1/cells/m1/clients",
            Some(json!({"clients": near})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["cell"]["clients"], json!(near));
    assert_eq!(strings(&body["cell"]["nodes"]), nodes);
    assert_eq!(body["current"]["single_failure_safe"], false);
    let mv = body["move"].clone();
    assert_eq!(mv["n"], 1, "{body}");
    assert_eq!(mv["status"], "proposed");
    assert!(
        nodes[..3].contains(&mv["out"].as_str().unwrap().to_owned()),
        "{mv}"
    );
    assert!(body["after"]["risk"].as_f64().unwrap() < body["current"]["risk"].as_f64().unwrap());
    assert_eq!(body["cell"]["pending_move"]["n"], 1);
    let out = mv["out"].as_str().unwrap().to_owned();
    let into = mv["into"].as_str().unwrap().to_owned();

    // The same PUT again: the waiting proposal stands.
    let (_, same) = h
        .call(
            Method::PUT,
            "/v1/cells/m1/clients",
            Some(json!({"clients": near})),
        )
        .await;
    assert_eq!(same["move"]["n"], 1);

    let (s, e) = h
        .call(Method::POST, "/v1/cells/m1/moves/2/commit", None)
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "move_not_found"));
    let (s, e) = h
        .call(Method::POST, "/v1/cells/m1/moves/x/commit", None)
        .await;
    assert_eq!(
        (s, code(&e), field(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "n")
    );

    let (s, body) = h
        .call(Method::POST, "/v1/cells/m1/moves/1/commit", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let after = strings(&body["cell"]["nodes"]);
    assert!(after.contains(&into) && !after.contains(&out));
    assert!(body["cell"]["pending_move"].is_null());
    // A repeated commit answers the same.
    let (s, again) = h
        .call(Method::POST, "/v1/cells/m1/moves/1/commit", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(strings(&again["cell"]["nodes"]), after);
    let (_, srv) = h
        .call(Method::GET, &format!("/v1/servers/{into}"), None)
        .await;
    assert_eq!(srv["cells"], json!(["m1"]));
    let (_, srv) = h
        .call(Method::GET, &format!("/v1/servers/{out}"), None)
        .await;
    assert_eq!(srv["cells"], json!([]));

    // A proposal superseded by a replacement can no longer be committed. Two nodes are
    // still on failed servers, so the clients' report proposes the next move.
    let (s, body) = h
        .call(
            Method::PUT,
            "/v1/cells/m1/clients",
            Some(json!({"clients": [c[0]]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["move"]["n"], 2, "{body}");
    assert_eq!(body["move"]["status"], "proposed", "{body}");
    let (s, _) = h
        .call(
            Method::POST,
            "/v1/cells/m1/replace",
            Some(json!({"server": after[0]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = h
        .call(Method::POST, "/v1/cells/m1/moves/2/commit", None)
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "move_stale"));
    let (s, e) = h
        .call(Method::POST, "/v1/cells/m1/moves/1/commit", None)
        .await;
    assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "move_stale"));
    let (_, cell) = h.call(Method::GET, "/v1/cells/m1", None).await;
    assert!(cell["pending_move"].is_null(), "{cell}");
    // Its moves, newest first: the second superseded by the replacement, the first
    // committed; a limit keeps the newest.
    let (s, history) = h.call(Method::GET, "/v1/cells/m1/moves", None).await;
    assert_eq!(s, StatusCode::OK, "{history}");
    let moves = history["moves"].as_array().unwrap();
    let seen: Vec<(i64, &str)> = moves
        .iter()
        .map(|m| (m["n"].as_i64().unwrap(), m["status"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(2, "superseded"), (1, "committed")], "{history}");
    assert_eq!(
        (moves[1]["out"].as_str(), moves[1]["into"].as_str()),
        (Some(out.as_str()), Some(into.as_str()))
    );
    let (_, newest) = h
        .call(Method::GET, "/v1/cells/m1/moves?limit=1", None)
        .await;
    assert_eq!(newest["moves"].as_array().unwrap().len(), 1);
    assert_eq!(newest["moves"][0]["n"], 2);
    for (path, status, code_) in [
        (
            "/v1/cells/nope/moves",
            StatusCode::NOT_FOUND,
            "cell_not_found",
        ),
        (
            "/v1/cells/m1/moves?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/v1/cells/m1/moves?limit=1001",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ] {
        let (s, e) = h.call(Method::GET, path, None).await;
        assert_eq!((s, code(&e)), (status, code_), "{path}: {e}");
    }
    let (s, e) = h
        .call(
            Method::PUT,
            "/v1/cells/nope/clients",
            Some(json!({"clients": [c[0]]})),
        )
        .await;
    assert_eq!((s, code(&e)), (StatusCode::NOT_FOUND, "cell_not_found"));
    let (s, e) = h
        .call(
            Method::PUT,
            "/v1/cells/m1/clients",
            Some(json!({"clients": [c[0], "zz"]})),
        )
        .await;
    assert_eq!(
        (s, code(&e), field(&e)),
        (StatusCode::NOT_FOUND, "unknown_server", "clients[1]")
    );
}

/// A proposal whose target filled up before the commit: the commit is refused with the
/// rule it would break, and nothing changes. (A new inventory version supersedes every
/// proposal instead: that is `move_stale`.)
#[tokio::test]
async fn a_move_onto_a_server_that_filled_up_conflicts() {
    // One node per host: single-node cells can fill every host.
    let h = Harness::new(1).await;
    let c = h.clients();
    let (_, body) = h.place("m2", &[&c[0], &c[1]]).await;
    let nodes = strings(&body["cell"]["nodes"]);
    h.switch_with_failed(&nodes[..3], "failed").await;
    let (s, body) = h
        .call(
            Method::PUT,
            "/v1/cells/m2/clients",
            Some(json!({"clients": [c[0], c[1]]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let n = body["move"]["n"]
        .as_i64()
        .expect("a move out of a failed server");
    let into = body["move"]["into"].as_str().unwrap().to_owned();

    // Single-node cells take every free host, the proposal's target among them.
    let mut filled = 0;
    for i in 0..h.hosts().len() {
        let (s, _) = h
            .call(
                Method::POST,
                "/v1/cells",
                Some(json!({"cell_id": format!("f{i}"), "clients": [c[2]], "size": 1})),
            )
            .await;
        if s != StatusCode::CREATED && s != StatusCode::OK {
            break;
        }
        filled += 1;
    }
    let (_, srv) = h
        .call(Method::GET, &format!("/v1/servers/{into}"), None)
        .await;
    assert_eq!(srv["load"], 1, "{filled} cells filled the hosts: {srv}");

    let (s, e) = h
        .call(
            Method::POST,
            &format!("/v1/cells/m2/moves/{n}/commit"),
            None,
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::CONFLICT, "move_conflict"),
        "{e}"
    );
    let violations = &e["error"]["details"]["violations"];
    assert_eq!(violations[0]["rule"], "over_capacity", "{e}");
    assert_eq!(violations[0]["server"], json!(into));
    let (_, cell) = h.call(Method::GET, "/v1/cells/m2", None).await;
    assert_eq!(strings(&cell["nodes"]), nodes, "nothing changed");
    assert_eq!(cell["pending_move"]["n"], n, "the proposal still waits");
}

/// Clients that move to the other room: `PUT .../clients` plans the whole path to the
/// best placement for them and proposes its first move with the count of moves left and
/// the cell at the end; committing and asking again walks the path. Every committed step
/// is no worse than the one before, and the cell ends as the first answer said.
#[tokio::test]
async fn moved_clients_are_followed_to_the_end_of_the_path() {
    let h = Harness::new(8).await;
    let c = h.clients();
    let room = |prefix: &str| -> Vec<String> {
        c.iter()
            .filter(|s| s.starts_with(prefix))
            .step_by(4)
            .take(3)
            .cloned()
            .collect()
    };
    let (h1, h2) = (room("dc1-h1-"), room("dc1-h2-"));
    assert_eq!((h1.len(), h2.len()), (3, 3));
    let h1_ids: Vec<&str> = h1.iter().map(String::as_str).collect();
    let (s, placed) = h.place("mover", &h1_ids).await;
    assert_eq!(s, StatusCode::CREATED, "{placed}");
    let put = || {
        h.call(
            Method::PUT,
            "/v1/cells/mover/clients",
            Some(json!({"clients": h2})),
        )
    };
    let (s, first) = put().await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let planned = first["steps_remaining"].as_u64().unwrap();
    assert!(planned >= 1, "{first}");
    assert_eq!(first["monotone"], true);
    let target = first["target"].clone();
    let mut reply = first;
    let mut committed = 0;
    while let Some(n) = reply["move"]["n"].as_i64() {
        assert_eq!(
            reply["steps_remaining"].as_u64().unwrap() + committed,
            planned,
            "{reply}"
        );
        let before = reply["move"]["risk_before"].as_f64().unwrap();
        let after = reply["move"]["risk_after"].as_f64().unwrap();
        let safe_before = reply["current"]["single_failure_safe"].as_bool().unwrap();
        let safe_after = reply["move"]["single_failure_safe_after"]
            .as_bool()
            .unwrap();
        assert!(safe_after || !safe_before, "{reply}");
        assert!(
            safe_after && !safe_before || after <= before * (1.0 + 1e-9),
            "{reply}"
        );
        let (s, body) = h
            .call(
                Method::POST,
                &format!("/v1/cells/mover/moves/{n}/commit"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        committed += 1;
        assert!(committed <= planned, "more moves than planned");
        let (s, next) = put().await;
        assert_eq!(s, StatusCode::OK, "{next}");
        reply = next;
    }
    assert_eq!(committed, planned);
    assert_eq!(reply["steps_remaining"], 0);
    let (_, cell) = h.call(Method::GET, "/v1/cells/mover", None).await;
    assert_eq!(cell["single_failure_safe"], target["single_failure_safe"]);
    let (got, want) = (
        cell["risk"].as_f64().unwrap(),
        target["risk"].as_f64().unwrap(),
    );
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1e-300),
        "{got} vs {want}"
    );
}
