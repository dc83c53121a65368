//! `cellplacer ledger import` and `export`: a generated fleet loaded in bulk is exactly what
//! the service then serves; a file with problems names each and changes nothing.

use std::fs;

use super::*;

fn cellplacer(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Rows of a placement export, by cell id, with server lists as sets of ids.
fn rows(path: &Path) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let t = topology::ingest::read_table(path).unwrap();
    let col = |n: &str| t.column_index(n).unwrap();
    let (id, clients, nodes) = (col("cell_id"), col("clients"), col("nodes"));
    let list = |v: &Option<String>| -> Vec<String> {
        let mut l: Vec<String> = v
            .as_deref()
            .unwrap_or("")
            .split(';')
            .map(str::to_owned)
            .collect();
        l.sort();
        l
    };
    t.rows
        .iter()
        .map(|r| (r[id].clone().unwrap(), (list(&r[clients]), list(&r[nodes]))))
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_is_what_the_service_serves() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let zone = path("zone");
    let (code, out) = cellplacer(&[
        "generate", "--preset", "small", "--seed", "4", "--cells", "600", "--out", &zone,
    ]);
    assert_eq!(code, 0, "{out}");
    let placed = path("placed.csv");
    let (code, out) = cellplacer(&[
        "place",
        &zone,
        "--cells",
        &path("zone/cells.csv"),
        "--out",
        &placed,
    ]);
    assert_eq!(code, 0, "{out}");
    let db = path("data/ledger.db");

    // A bad file: a copy of a cell under a new id (it shares all its servers), an unknown
    // server, an id twice. Nothing is written; each problem is named by row.
    let text = fs::read_to_string(&placed).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines[1];
    let copy = first.replacen(first.split(',').next().unwrap(), "copy-of-first", 1);
    let unknown = format!(
        "ghost-cell,{},nowhere-s01",
        first.split(',').nth(1).unwrap()
    );
    let bad = path("bad.csv");
    fs::write(
        &bad,
        format!("{}\n{copy}\n{unknown}\n{first}\n", text.trim_end()),
    )
    .unwrap();
    let (code, out) = cellplacer(&["ledger", "import", &zone, "--placements", &bad, "--db", &db]);
    assert_eq!(code, 1, "{out}");
    let n = lines.len() - 1;
    assert!(
        out.contains(&format!("row {} cell 'copy-of-first': shares", n + 1)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "row {} cell 'ghost-cell': nodes: unknown server 'nowhere-s01'",
            n + 2
        )),
        "{out}"
    );
    assert!(out.contains("the id comes twice in the file"), "{out}");
    assert!(out.contains("nothing written"), "{out}");
    let (code, out) = cellplacer(&["ledger", "export", "--db", &db, "--out", &path("empty.csv")]);
    assert_eq!(code, 0, "{out}");
    assert!(rows(Path::new(&path("empty.csv"))).is_empty());

    // The good file: every cell imported, exported back the same.
    let (code, out) = cellplacer(&[
        "ledger",
        "import",
        &zone,
        "--placements",
        &placed,
        "--db",
        &db,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("imported {n} of {n} cells")), "{out}");
    let exported = path("exported.parquet");
    let (code, out) = cellplacer(&["ledger", "export", "--db", &db, "--out", &exported]);
    assert_eq!(code, 0, "{out}");
    let want = rows(Path::new(&placed));
    assert_eq!(rows(Path::new(&exported)), want);
    // Importing the same cells again: every id is in the ledger already.
    let (code, out) = cellplacer(&[
        "ledger",
        "import",
        &zone,
        "--placements",
        &placed,
        "--db",
        &db,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("a cell with this id is in the ledger"),
        "{out}"
    );

    // The service on that ledger serves exactly those cells, with their exact risks.
    let (mut child, url) = start_binary(Path::new(&zone), Path::new(&db));
    let client = cellplacer::client::Client::new(&url);
    let mut served: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .get(&format!("/v1/cells?limit=1000{cursor}"))
            .await
            .unwrap();
        assert_eq!(page.status, 200, "{}", page.text);
        for c in page.json["cells"].as_array().unwrap() {
            let mut clients = strings(&c["clients"]);
            let mut nodes = strings(&c["nodes"]);
            clients.sort();
            nodes.sort();
            served.insert(c["cell_id"].as_str().unwrap().to_owned(), (clients, nodes));
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(served, want);
    let report = client.get("/v1/report").await.unwrap();
    let (code, direct) = cellplacer(&["evaluate", &zone, &placed, "--json"]);
    assert_eq!(code, 0);
    let direct: Value = serde_json::from_str(&direct).unwrap();
    for key in ["cells", "single_failure_unsafe_cells", "risk", "load"] {
        assert_eq!(report.json[key], direct[key], "{key}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // --skip-invalid on a fresh ledger: the valid cells in, the others listed.
    let db2 = path("data/second.db");
    let (code, out) = cellplacer(&[
        "ledger",
        "import",
        &zone,
        "--placements",
        &bad,
        "--db",
        &db2,
        "--skip-invalid",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("imported {n} of {} cells", n + 3)),
        "{out}"
    );
    assert!(out.contains("3 refused"), "{out}");
}

/// `POST /v1/ledger/import` on a live service: a fleet placed on one service, exported,
/// loads into another as the same cells; a second load of it is refused whole (every cell
/// named) and changes nothing; `skip_invalid` imports nothing new and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_endpoint_loads_a_fleet_all_or_nothing() {
    let a = Harness::new(8).await;
    let c = a.clients();
    for i in 0..20 {
        let (s, body) = a.place(&format!("m{i:02}"), &[&c[i % c.len()]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (_, page) = a.call(Method::GET, "/v1/cells?limit=1000", None).await;
    let mut csv = String::from("cell_id,clients,nodes\n");
    for cell in page["cells"].as_array().unwrap() {
        csv.push_str(&format!(
            "{},{},{}\n",
            cell["cell_id"].as_str().unwrap(),
            strings(&cell["clients"]).join(";"),
            strings(&cell["nodes"]).join(";")
        ));
    }
    // Under b's inventory root: the only files its requests may name.
    let b = Harness::new(8).await;
    let file = b.dir.path().join("fleet.csv");
    fs::write(&file, csv).unwrap();

    let body = json!({"path": file});
    let (s, v) = b
        .call(Method::POST, "/v1/ledger/import", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 20);
    let (_, got) = b.call(Method::GET, "/v1/cells?limit=1000", None).await;
    // Ids, nodes and safety exactly; risks to twelve decimals (the placement sums the
    // same terms in another order).
    let view = |p: &Value| -> Vec<(Value, Value, Value, i64)> {
        p["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cell_id"].clone(),
                    c["nodes"].clone(),
                    c["single_failure_safe"].clone(),
                    (c["risk"].as_f64().unwrap() * 1e12).round() as i64,
                )
            })
            .collect()
    };
    assert_eq!(view(&got), view(&page), "the same cells and risks");

    let (s, e) = b.call(Method::POST, "/v1/ledger/import", Some(body)).await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_import"),
        "{e}"
    );
    let refused = e["error"]["details"]["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 20);
    assert!(refused
        .iter()
        .all(|r| r["why"] == "a cell with this id is in the ledger"));
    let (s, v) = b
        .call(
            Method::POST,
            "/v1/ledger/import",
            Some(json!({"path": file, "skip_invalid": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["imported"].as_u64(), v["refused_count"].as_u64()),
        (Some(0), Some(20))
    );
    let (_, again) = b.call(Method::GET, "/v1/cells?limit=1000", None).await;
    assert_eq!(view(&again), view(&page));
    let (s, e) = b
        .call(
            Method::POST,
            "/v1/ledger/import",
            Some(json!({"path": "/no/such/file.csv"})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::NOT_FOUND, "path_not_found"),
        "{e}"
    );
    // A file under the root that is not a placement export.
    fs::write(b.dir.path().join("junk.csv"), "a,b\n1,2\n").unwrap();
    let (s, e) = b
        .call(
            Method::POST,
            "/v1/ledger/import",
            Some(json!({"path": "junk.csv"})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_import"),
        "{e}"
    );
    assert!(e["error"]["details"]["refused"][0]["why"]
        .as_str()
        .unwrap()
        .contains("cell_id: required column is missing"));
}

/// Issue 27, findings 1 and 2: a row of 16 nodes panicked the import mid-way and left the
/// service's memory and its store apart; ids `POST /v1/cells` refuses were imported. Now
/// every such row is refused with its row and column named, before anything changes: the
/// whole file is refused, or with `skip_invalid` only the good row goes in, and a service
/// opened afresh on the same ledger serves exactly what this one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_rows_and_bad_ids_are_refused_by_row_and_memory_matches_the_store() {
    let a = Harness::new(8).await;
    let c = a.clients();
    let (s, body) = a.place("src", &[&c[0]]).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let src = strings(&body["cell"]["nodes"]);
    let seven = src.join(";");
    // Sixteen other hosts: the row that panicked the occupancy kept every other rule.
    let sixteen: Vec<String> = a
        .hosts()
        .into_iter()
        .filter(|h| !src.contains(h))
        .take(16)
        .collect();
    let b = Harness::new(8).await;
    let long = "x".repeat(300);
    let csv = format!(
        "cell_id,clients,nodes\n\
         good,{c0},{seven}\n\
         wide,{c0},{wide}\n\
         imp bad id,{c0},{seven}\n\
         {long},{c0},{seven}\n\
         \"csv,comma\",{c0},{seven}\n\
         \"csv\"\"quote\",{c0},{seven}\n",
        c0 = c[0],
        wide = sixteen.join(";")
    );
    let file = b.dir.path().join("hostile.csv");
    fs::write(&file, csv).unwrap();
    let why = |e: &Value| -> Vec<(u64, String)> {
        e["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["row"].as_u64().unwrap(),
                    r["why"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let expect_refused = |got: Vec<(u64, String)>| {
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            [2, 3, 4, 5, 6],
            "{got:?}"
        );
        assert!(
            got[0].1.contains("nodes: 16 nodes: a cell has 1 to 15"),
            "{got:?}"
        );
        for (_, why) in &got[1..] {
            assert!(
                why.starts_with("cell_id: ") && why.contains("is not a cell id"),
                "{why}"
            );
        }
    };

    let (s, e) = b
        .call(
            Method::POST,
            "/v1/ledger/import",
            Some(json!({"path": file})),
        )
        .await;
    assert_eq!(
        (s, code(&e)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_import"),
        "{e}"
    );
    expect_refused(why(&e["error"]["details"]));
    assert!(all_cells(&b.app).await.is_empty(), "nothing imported");

    let (s, v) = b
        .call(
            Method::POST,
            "/v1/ledger/import",
            Some(json!({"path": file, "skip_invalid": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 1, "{v}");
    expect_refused(why(&v));
    let served = nodes_by_cell(&b.app).await;
    assert_eq!(served.keys().collect::<Vec<_>>(), ["good"]);
    // Loads: every server of the good cell holds it, and none of the refused wide row's
    // holds anything (the panic had left them a node each in memory).
    for (servers, cells) in [(&served["good"], json!(["good"])), (&sixteen, json!([]))] {
        for server in servers {
            let (_, srv) = b
                .call(Method::GET, &format!("/v1/servers/{server}"), None)
                .await;
            assert_eq!(srv["cells"], cells, "{srv}");
        }
    }
    b.service.shutdown().await;
    let reopened = b.reopen().await;
    assert_eq!(
        nodes_by_cell(&reopened).await,
        served,
        "memory and store agree"
    );
}
