//! The HTTP service: every endpoint and error through the router (`oneshot`), concurrent
//! placements and deletes against capacity and the overlap rule, a failing store, and the
//! real binary over TCP killed with -9 and restarted on the same ledger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api::service::{Config, Service};
use api::store::{BoxFuture, Change, Snapshot, SqliteStore, Store};
use api::zone::Source;
use api::{app, AppState, Limits};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use topology::ingest::{write_dir, Format};
use topology::raw::RawInventory;
use tower::ServiceExt;

/// 1 DC x 2 rooms x 2 rows x 4 racks x 6 servers = 96 servers, 48 hosts (one colour),
/// nobody failed or draining: every host usable.
fn zone_params(capacity: u32) -> fixtures::ZoneParams {
    fixtures::ZoneParams {
        seed: 7,
        datacenters: 1,
        rooms_per_dc: 2,
        rows_per_room: 2,
        racks_per_row: 4,
        servers_per_rack: 6,
        host_fraction: 0.5,
        node_capacity: capacity,
        colors: 1,
        failed_fraction: 0.0,
        draining_fraction: 0.0,
        cells: 10,
        ..fixtures::ZoneParams::default()
    }
}

fn column(raw: &RawInventory, table: &str, name: &str) -> Vec<Option<String>> {
    let t = raw.table(table).unwrap();
    let c = t.column_index(name).unwrap();
    t.rows.iter().map(|r| r[c].clone()).collect()
}

/// Server ids: (hosts, client-only servers).
fn servers(raw: &RawInventory) -> (Vec<String>, Vec<String>) {
    let ids = column(raw, "servers", "server_id");
    let caps = column(raw, "servers", "node_capacity");
    let mut hosts = Vec::new();
    let mut clients = Vec::new();
    for (id, cap) in ids.into_iter().zip(caps) {
        let id = id.unwrap();
        if cap.as_deref() == Some("0") {
            clients.push(id);
        } else {
            hosts.push(id);
        }
    }
    (hosts, clients)
}

/// Sets one column of one server row.
fn set_server(raw: &mut RawInventory, server: &str, name: &str, value: Option<&str>) {
    let t = raw.tables.get_mut("servers").unwrap();
    let id = t.column_index("server_id").unwrap();
    let c = t.column_index(name).unwrap();
    let row = t
        .rows
        .iter_mut()
        .find(|r| r[id].as_deref() == Some(server))
        .unwrap();
    row[c] = value.map(str::to_owned);
}

fn write_zone(dir: &Path, raw: &RawInventory) -> PathBuf {
    let mut raw = raw.clone();
    raw.tables.remove("cells");
    write_dir(dir, &raw, Format::Csv).unwrap();
    dir.to_path_buf()
}

/// A store that fails commits on demand, to drive the service's recovery path.
#[derive(Debug)]
struct FlakyStore {
    inner: SqliteStore,
    fail: AtomicBool,
}

impl Store for FlakyStore {
    fn load(&self) -> BoxFuture<'_, Result<Snapshot, api::Error>> {
        self.inner.load()
    }
    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), api::Error>> {
        if self.fail.load(Ordering::SeqCst) {
            Box::pin(async {
                Err(api::Error::StoreUnavailable {
                    message: "disk on fire".into(),
                })
            })
        } else {
            self.inner.apply(changes)
        }
    }
    fn server_loads(&self) -> BoxFuture<'_, Result<Vec<(String, u32)>, api::Error>> {
        self.inner.server_loads()
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), api::Error>> {
        self.inner.ping()
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }
}

struct Harness {
    app: Router,
    service: Arc<Service>,
    raw: RawInventory,
    zone_dir: PathBuf,
    db: PathBuf,
    dir: tempfile::TempDir,
    flaky: Option<Arc<FlakyStore>>,
}

impl Harness {
    async fn new(capacity: u32) -> Harness {
        Harness::with(capacity, Limits::default(), false).await
    }

    async fn with(capacity: u32, limits: Limits, flaky: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let raw = fixtures::generate(&zone_params(capacity));
        let zone_dir = write_zone(&dir.path().join("zone"), &raw);
        let db = dir.path().join("data").join("ledger.db");
        let sqlite = SqliteStore::open(&db).await.unwrap();
        let (store, flaky): (Arc<dyn Store>, _) = if flaky {
            let f = Arc::new(FlakyStore {
                inner: sqlite,
                fail: AtomicBool::new(false),
            });
            (f.clone(), Some(f))
        } else {
            (Arc::new(sqlite), None)
        };
        let service = Service::open(store, Some(Source::Dir(zone_dir.clone())), config(&db))
            .await
            .unwrap();
        let app = app(AppState {
            service: service.clone(),
            limits,
        });
        Harness {
            app,
            service,
            raw,
            zone_dir,
            db,
            dir,
            flaky,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call(&self.app, method, path, body).await
    }

    async fn place(&self, id: &str, clients: &[&str]) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/cells",
            Some(json!({"cell_id": id, "clients": clients})),
        )
        .await
    }

    /// Switches to a new inventory version in which `servers` have failed; returns the
    /// switch's answer.
    async fn switch_with_failed(&self, servers: &[String], name: &str) -> Value {
        let mut next = self.raw.clone();
        for n in servers {
            set_server(&mut next, n, "status", Some("failed"));
        }
        let dir = write_zone(&self.dir.path().join(name), &next);
        let (s, body) = self
            .call(Method::POST, "/v1/inventory", Some(json!({"path": dir})))
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body
    }

    /// A new service on the same ledger file and inventory (after `shutdown`).
    async fn reopen(&self) -> Router {
        let store = SqliteStore::open(&self.db).await.unwrap();
        let service = Service::open(
            Arc::new(store),
            Some(Source::Dir(self.zone_dir.clone())),
            config(&self.db),
        )
        .await
        .unwrap();
        app(AppState {
            service,
            limits: Limits::default(),
        })
    }

    fn hosts(&self) -> Vec<String> {
        servers(&self.raw).0
    }

    fn clients(&self) -> Vec<String> {
        servers(&self.raw).1
    }
}

fn config(db: &Path) -> Config {
    Config {
        data_dir: db.parent().unwrap().to_path_buf(),
        workers: 2,
        queue: 4096,
        placer: api::engine::PlaceOptions::default(),
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    raw_call(app, req.body(body).unwrap()).await
}

async fn raw_call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

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
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {e}");
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
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((code(&e), field(&e)), ("not_a_node", "server"));
    let (s, e) = h
        .call(
            Method::POST,
            "/v1/cells/r1/replace",
            Some(json!({"server": "ghost"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
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

    // A proposal superseded by a replacement can no longer be committed.
    let (_, body) = h
        .call(
            Method::PUT,
            "/v1/cells/m1/clients",
            Some(json!({"clients": [c[0]]})),
        )
        .await;
    if let Some(n) = body["move"]["n"].as_i64() {
        let (s, _) = h
            .call(
                Method::POST,
                "/v1/cells/m1/replace",
                Some(json!({"server": after[0]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, e) = h
            .call(
                Method::POST,
                &format!("/v1/cells/m1/moves/{n}/commit"),
                None,
            )
            .await;
        assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "move_stale"));
        let (s, e) = h
            .call(Method::POST, "/v1/cells/m1/moves/1/commit", None)
            .await;
        assert_eq!((s, code(&e)), (StatusCode::CONFLICT, "move_stale"));
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
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_server",
            "clients[1]"
        )
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

#[tokio::test]
async fn report_health_metrics_openapi() {
    let h = Harness::new(8).await;
    let c = h.clients();
    for i in 0..3 {
        let (s, _) = h.place(&format!("p{i}"), &[&c[i], &c[i + 5]]).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, report) = h.call(Method::GET, "/v1/report", None).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["cells"], 3);
    assert_eq!(report["load"]["nodes_placed"], 21);
    assert_eq!(report["quorum_sharing_pairs"], 0);
    assert!(report["risk"]["max"].is_number());
    let (_, quick) = h
        .call(Method::GET, "/v1/report?risk=false&top=3", None)
        .await;
    assert!(quick["risk"].is_null());

    let (s, body) = h.call(Method::GET, "/healthz", None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, _) = h.call(Method::GET, "/readyz", None).await;
    assert_eq!(s, StatusCode::OK);

    let (s, text) = h.call(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap();
    for needle in [
        "cellplacer_http_requests_total{route=\"/v1/cells\",method=\"POST\",status=\"201\"} 3",
        "cellplacer_http_request_duration_seconds_bucket{route=\"/v1/report\",method=\"GET\",le=\"+Inf\"} 2",
        "cellplacer_solve_duration_seconds_count{op=\"place\"} 3",
        "cellplacer_cells 3",
        "cellplacer_nodes_placed 21",
        "cellplacer_node_capacity 384",
        "cellplacer_store_commits_total",
        "cellplacer_utilisation 0.0546875",
        "cellplacer_cells_by_risk{le=\"+Inf\"} 3\n",
        "cellplacer_servers_over_balance_ceiling 0\n",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // The new gauges agree with the report and with the cells themselves.
    let unsafe_cells = report["single_failure_unsafe_cells"].as_u64().unwrap();
    assert_eq!(sample(text, "cellplacer_cells_unsafe"), unsafe_cells as f64);
    let (_, list) = h.call(Method::GET, "/v1/cells", None).await;
    let risks: Vec<f64> = list["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["risk"].as_f64().unwrap())
        .collect();
    assert_eq!(risks.len(), 3);
    for (le, bound) in [
        ("1e-07", 1e-7),
        ("1e-06", 1e-6),
        ("1e-05", 1e-5),
        ("0.0001", 1e-4),
        ("0.001", 1e-3),
        ("0.01", 1e-2),
        ("0.1", 0.1),
        ("1", 1.0),
    ] {
        let want = risks.iter().filter(|&&r| r <= bound).count() as f64;
        let name = format!("cellplacer_cells_by_risk{{le=\"{le}\"}}");
        assert_eq!(sample(text, &name), want, "{name}");
    }
    assert_eq!(
        sample(
            text,
            &format!(
                "cellplacer_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    #[cfg(target_os = "linux")]
    {
        assert!(sample(text, "process_resident_memory_bytes") > 0.0);
        assert!(sample(text, "process_virtual_memory_bytes") > 0.0);
        assert!(sample(text, "process_cpu_seconds_total") > 0.0);
        assert!(sample(text, "process_open_fds") >= 3.0);
        assert!(sample(text, "process_threads") >= 1.0);
        assert!(sample(text, "process_start_time_seconds") > 1.5e9);
    }
    // Every sample's metric family has HELP and TYPE lines.
    let declared: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let helped: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(declared, helped);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|base| declared.contains(base))
            .unwrap_or(name);
        assert!(declared.contains(family), "no TYPE for {line}");
    }
    // A request with an unknown method is counted under `other`, never by its name.
    let req = Request::builder()
        .method(Method::from_bytes(b"BREW").unwrap())
        .uri("/v1/cells")
        .body(Body::empty())
        .unwrap();
    let (s, _) = raw_call(&h.app, req).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (_, text) = h.call(Method::GET, "/metrics", None).await;
    let text = text.as_str().unwrap();
    assert!(!text.contains("BREW"), "{text}");
    assert!(text.contains(
        "cellplacer_http_requests_total{route=\"/v1/cells\",method=\"other\",status=\"405\"} 1"
    ));

    let (s, doc) = h.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/cells",
        "/v1/cells/{id}",
        "/v1/cells/{id}/replace",
        "/v1/cells/{id}/clients",
        "/v1/cells/{id}/moves/{n}/commit",
        "/v1/servers/{id}",
        "/v1/report",
        "/v1/inventory",
        "/v1/inventory/validate",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "no {path} in the document");
    }
    for schema in [
        "PlaceRequest",
        "CellResponse",
        "ErrorBody",
        "FleetReportView",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "no schema {schema}"
        );
    }
}

/// The value of the sample `name` (with its labels) in a Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap()
}

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
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_inventory")
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
            "/v1/inventory",
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
            "/v1/inventory",
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
    let snapshot = store.load().await.unwrap();
    let stored: HashMap<String, Vec<String>> = snapshot
        .cells
        .iter()
        .map(|c| (c.cell_id.clone(), c.nodes.clone()))
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
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let raw = fixtures::generate(&zone_params(8));
    let zone = write_zone(&dir.path().join("zone"), &raw);
    let db = dir.path().join("data").join("c.db");
    let start = || -> (Child, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
            .args(["serve", "--listen", "127.0.0.1:0", "--inventory"])
            .arg(&zone)
            .arg("--db")
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        (child, url)
    };
    let (_, client_ids) = servers(&raw);

    let (mut child, url) = start();
    let client = api::client::Client::new(&url);
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
    let client = api::client::Client::new(&url);
    let got = client.get("/v1/cells/tcp-1").await.unwrap();
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json["nodes"], placed.json["cell"]["nodes"]);

    // SIGTERM while placements are in flight: each gets its answer, the exit is clean.
    let mut inflight = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        let id = client_ids[i + 1].clone();
        inflight.push(tokio::spawn(async move {
            client
                .post(
                    "/v1/cells",
                    &json!({"cell_id": format!("tcp-t{i}"), "clients": [id]}),
                )
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut acknowledged = Vec::new();
    for (i, t) in inflight.into_iter().enumerate() {
        // A request that had not reached the server before it stopped listening fails to
        // connect; one that had gets its full answer.
        if let Ok(reply) = t.await.unwrap() {
            assert_eq!(reply.status, 201, "{}", reply.text);
            acknowledged.push(format!("tcp-t{i}"));
        }
    }
    let mut child = child;
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");

    let (mut child, url) = start();
    let client = api::client::Client::new(&url);
    for id in &acknowledged {
        let got = client.get(&format!("/v1/cells/{id}")).await.unwrap();
        assert_eq!(got.status, 200, "{id} was acknowledged but is gone");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

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
