//! The HTTP service: every endpoint and error through the router (`oneshot`), concurrent
//! placements and deletes against capacity and the overlap rule, a failing store, and the
//! real binary over TCP killed with -9 and restarted on the same ledger. One test binary;
//! a module per job, the shared harness here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use runtime::service::{Config, HeavyLimits, Service};
use runtime::zone::Source;
use serde_json::{json, Value};
use server::{app, AppState, Limits};
use store::{BoxFuture, CellSink, Change, Snapshot, SqliteStore, Store};
use topology::ingest::{write_dir, Format};
use topology::raw::RawInventory;
use tower::ServiceExt;

mod auth;
mod autopilot;
mod cells;
mod console;
mod durability;
mod hardening;
mod heavy;
mod import;
mod inventory;
mod listing;
mod metrics;
mod moves;
mod plans;
mod postgres;
mod risk;
mod whatif;

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
    fn load(&self) -> BoxFuture<'_, Result<Snapshot, store::Error>> {
        self.inner.load()
    }
    fn load_cells<'a>(&'a self, sink: CellSink<'a>) -> BoxFuture<'a, Result<usize, store::Error>> {
        self.inner.load_cells(sink)
    }
    fn apply<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<(), store::Error>> {
        if self.fail.load(Ordering::SeqCst) {
            Box::pin(async {
                Err(store::Error::StoreUnavailable {
                    message: "disk on fire".into(),
                })
            })
        } else {
            self.inner.apply(changes)
        }
    }
    fn moves<'a>(
        &'a self,
        cell_id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<store::MoveRecord>, store::Error>> {
        self.inner.moves(cell_id, limit)
    }
    fn server_loads(&self) -> BoxFuture<'_, Result<Vec<(String, u32)>, store::Error>> {
        self.inner.server_loads()
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), store::Error>> {
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
        Harness::on(&zone_params(capacity), limits, flaky).await
    }

    /// A harness on the zone `params` generate.
    async fn on(params: &fixtures::ZoneParams, limits: Limits, flaky: bool) -> Harness {
        Harness::open(params, limits, flaky, HeavyLimits::default()).await
    }

    /// [`Harness::on`] with the heavy requests' limits `heavy`.
    async fn open(
        params: &fixtures::ZoneParams,
        limits: Limits,
        flaky: bool,
        heavy: HeavyLimits,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let raw = fixtures::generate(params);
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
        let config = Config {
            heavy,
            ..config(&db)
        };
        let service = Service::open(store, Some(Source::Dir(zone_dir.clone())), config)
            .await
            .unwrap();
        let app = app(AppState {
            service: service.clone(),
            limits,
            tokens: None,
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
            .call(
                Method::POST,
                "/v1/inventory?wait=true",
                Some(json!({"path": dir})),
            )
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
            tokens: None,
        })
    }

    fn hosts(&self) -> Vec<String> {
        servers(&self.raw).0
    }

    fn clients(&self) -> Vec<String> {
        servers(&self.raw).1
    }
}

/// Starts the real `cellplacer serve` on `zone` and the ledger `db`, on a free loopback
/// port; the child and the URL it listens on.
#[cfg(unix)]
fn start_binary(zone: &Path, db: &Path) -> (std::process::Child, String) {
    let (zone, db) = (zone.as_os_str(), db.as_os_str());
    spawn_serve(&["--inventory".as_ref(), zone, "--db".as_ref(), db])
}

/// Starts the real `cellplacer serve --listen 127.0.0.1:0` with `args`; the child and the
/// URL it listens on (`http://ADDR`).
#[cfg(unix)]
fn spawn_serve(args: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // The autopilot is off unless the test asks for it: the others move cells themselves
    // (and a plan needs the executor lease the autopilot would hold).
    let pilot: &[&str] = if args.iter().any(|a| *a == "--autopilot") {
        &[]
    } else {
        &["--autopilot", "off"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(pilot)
        .args(args)
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
}

/// The rack of each server.
fn racks(raw: &RawInventory) -> HashMap<String, String> {
    column(raw, "servers", "server_id")
        .into_iter()
        .zip(column(raw, "servers", "rack_id"))
        .map(|(s, r)| (s.unwrap(), r.unwrap()))
        .collect()
}

/// The rack holding the most nodes, and how many.
fn fullest_rack(
    racks: &HashMap<String, String>,
    cells: &BTreeMap<String, Vec<String>>,
) -> (String, usize) {
    let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
    for n in cells.values().flatten() {
        *per_rack.entry(racks[n].as_str()).or_default() += 1;
    }
    per_rack
        .iter()
        .max_by_key(|(r, n)| (**n, std::cmp::Reverse(**r)))
        .map(|(r, n)| (r.to_string(), *n))
        .unwrap()
}

/// Cell id -> nodes, from the listing.
async fn nodes_by_cell(app: &Router) -> BTreeMap<String, Vec<String>> {
    by_cell(&all_cells(app).await, "nodes")
}

/// Every cell in one page of `GET /v1/cells` (the tests place fewer than 1,000).
async fn all_cells(app: &Router) -> Vec<Value> {
    let (s, page) = call(app, Method::GET, "/v1/cells?limit=1000", None).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page["next_cursor"].is_null());
    page["cells"].as_array().unwrap().clone()
}

/// `field` (a list of ids) of each cell, by cell id.
fn by_cell(cells: &[Value], field: &str) -> BTreeMap<String, Vec<String>> {
    cells
        .iter()
        .map(|c| {
            (
                c["cell_id"].as_str().unwrap().to_owned(),
                strings(&c[field]),
            )
        })
        .collect()
}

/// One blocking HTTP/1.1 request; the status and the JSON body (Null when none).
#[cfg(unix)]
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let json = out
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Some((status, json))
}

/// The whole answer (head and body) to `GET path` on a new connection to `addr`.
#[cfg(unix)]
fn body_of(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn config(db: &Path) -> Config {
    Config {
        data_dir: db.parent().unwrap().to_path_buf(),
        workers: 2,
        queue: 4096,
        placer: runtime::engine::PlaceOptions::default(),
        // The test's temporary directory: its zones and placement files.
        inventory_root: db.parent().and_then(Path::parent).map(Path::to_path_buf),
        // Off unless a test is about it: the other tests move cells themselves.
        autopilot: runtime::dto::AutopilotUpdate {
            enabled: Some(false),
            ..Default::default()
        },
        heavy: Default::default(),
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

/// Sends the head of a JSON `POST path` of `length` bytes on a new connection to `addr`,
/// asking `Expect: 100-continue`, and reads the service's first answer: the stream (to
/// send the body on) and that answer's head.
#[cfg(unix)]
fn post_expecting_continue(addr: &str, path: &str, length: u64) -> (std::net::TcpStream, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let head = read_head(&mut stream);
    (stream, head)
}

/// Reads one response head (through the blank line) from `stream`.
#[cfg(unix)]
fn read_head(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "the head ended early ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
