//! The operator's console in a real browser: Debian's Chromium, headless, driven over
//! WebDriver by its chromedriver. The page's numbers are the API's, the map has every
//! rack, rack -> server -> cell leads to the cell as the API has it, "what if it fails"
//! answers as the what-if API and commits nothing, a rack failed through the API shows
//! on the map within one refresh, an action goes through the API,
//! a `read` token is offered no action, and screenshots of each are saved
//! (`target/tmp/console/*.png`).

use super::*;

/// `method path` with a bearer token on a new connection to `addr`: status and JSON body.
fn authed(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let json = out
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// A new token of `role`: (the token, its line for the tokens file).
fn token(role: &str, name: &str) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(["token", "--role", role, "--name", name])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().unwrap().to_owned();
    (token, lines.next().unwrap().to_owned())
}

/// chromedriver on a free port, and the WebDriver session it gives to a headless Chromium.
async fn browser() -> (std::process::Child, fantoccini::Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/install-build-deps installs it)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let capabilities = json!({"goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"],
    }});
    let client = fantoccini::ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(capabilities.as_object().unwrap().clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session in headless Chromium");
    (driver, client)
}

/// Where the screenshots go.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The whole number an element shows (digits only: the page groups thousands).
async fn number(client: &fantoccini::Client, id: &str) -> u64 {
    let text = client
        .find(fantoccini::Locator::Id(id))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("#{id} shows '{text}'"))
}

/// Signs in with `token` on a fresh page and waits for the first refresh.
async fn sign_in(client: &fantoccini::Client, url: &str, token: &str) {
    use fantoccini::Locator;
    client.goto(&format!("{url}/ui/")).await.unwrap();
    let field = client
        .wait()
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    // The form shows once the service has refused the page's first request.
    for _ in 0..200 {
        if field.is_displayed().await.unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    field.send_keys(token).await.unwrap();
    client
        .find(Locator::Css("#login-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("body[data-loaded='true']"))
        .await
        .unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_api_says_in_a_real_browser() {
    use fantoccini::Locator;
    let dir = tempfile::tempdir().unwrap();
    let (admin, admin_line) = token("admin", "console-admin");
    let (reader, reader_line) = token("read", "console-reader");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{admin_line}\n{reader_line}\n")).unwrap();
    let db = dir.path().join("ledger.db");
    let (mut child, url) = spawn_serve(&[
        "--db".as_ref(),
        db.as_os_str(),
        "--tokens".as_ref(),
        tokens.as_os_str(),
        "--autopilot".as_ref(),
        "on".as_ref(),
    ]);
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    // Cells for the bundled zone's clients (its workload's first client sets).
    let raw = fixtures::generate(&fixtures::ZoneParams::small(0));
    let sets = column(&raw, "cells", "clients");
    for (i, set) in sets.iter().take(25).enumerate() {
        let clients: Vec<&str> = set.as_deref().unwrap().split(';').collect();
        let body = json!({"cell_id": format!("ui-{i:02}"), "clients": clients});
        let (s, v) = authed(&addr, "POST", "/v1/cells", &admin, Some(&body));
        assert_eq!(s, 201, "{v}");
    }

    let (mut driver, client) = browser().await;
    // Without a token the page asks for one.
    client.goto(&format!("{url}/ui/")).await.unwrap();
    // (The form is in the page from the start, hidden until the service refuses the
    // page's request without a token: wait for it to show.)
    let login = client
        .wait()
        .for_element(Locator::Id("login"))
        .await
        .unwrap();
    let mut asked = false;
    for _ in 0..200 {
        if login.is_displayed().await.unwrap() {
            asked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(asked, "the page did not ask for a token");
    client
        .screenshot()
        .await
        .map(|png| std::fs::write(shots().join("login.png"), png).unwrap())
        .unwrap();

    // The fleet's numbers are the report's.
    sign_in(&client, &url, &admin).await;
    let login = client.find(Locator::Id("login")).await.unwrap();
    assert!(!login.is_displayed().await.unwrap(), "the token form stays");
    let (_, report) = authed(&addr, "GET", "/v1/report", &admin, None);
    assert_eq!(
        number(&client, "fleet-cells").await,
        report["cells"].as_u64().unwrap()
    );
    assert_eq!(
        number(&client, "fleet-unsafe").await,
        report["single_failure_unsafe_cells"].as_u64().unwrap()
    );
    assert_eq!(
        number(&client, "fleet-out").await,
        report["down_cells"].as_u64().unwrap()
    );
    std::fs::write(
        shots().join("fleet.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // A cell, as the API has it.
    let (_, cell) = authed(&addr, "GET", "/v1/cells/ui-07", &admin, None);
    let input = client.find(Locator::Id("cell-id")).await.unwrap();
    input.send_keys("ui-07").await.unwrap();
    client
        .find(Locator::Css("#cell-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let nodes = client
        .wait()
        .for_element(Locator::Css("dd[data-field='nodes']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(nodes, strings(&cell["nodes"]).join(", "));
    // Its nodes' racks are marked on the map.
    let mut node_racks: Vec<String> = strings(&cell["nodes"])
        .iter()
        .map(|n| {
            let (_, s) = authed(&addr, "GET", &format!("/v1/servers/{n}"), &admin, None);
            s["rack"].as_str().unwrap().to_owned()
        })
        .collect();
    node_racks.sort();
    node_racks.dedup();
    let mut marked = Vec::new();
    for _ in 0..100 {
        marked.clear();
        for tile in client
            .find_all(Locator::Css("#map button.rack.cell-node"))
            .await
            .unwrap()
        {
            marked.push(tile.attr("data-rack").await.unwrap().unwrap());
        }
        marked.sort();
        if marked == node_racks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(marked, node_racks, "the cell's racks on the map");
    std::fs::write(shots().join("cell.png"), client.screenshot().await.unwrap()).unwrap();

    // The map has every rack; rack -> server -> cell leads to the cell as the API has it.
    let (_, map) = authed(&addr, "GET", "/v1/racks", &admin, None);
    let racks = map["racks"].as_array().unwrap();
    let tiles = client
        .find_all(Locator::Css("#map button.rack"))
        .await
        .unwrap();
    assert_eq!(tiles.len(), racks.len());
    let (_, target) = authed(&addr, "GET", "/v1/cells/ui-03", &admin, None);
    let node = strings(&target["nodes"])[0].clone();
    let (_, server) = authed(&addr, "GET", &format!("/v1/servers/{node}"), &admin, None);
    let rack = server["rack"].as_str().unwrap().to_owned();
    let tile = format!("#map button.rack[data-rack='{rack}']");
    client
        .find(Locator::Css(&tile))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css(&format!(
            "tr[data-server='{node}'] button.server"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("button[data-cell='ui-03']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let want = strings(&target["nodes"]).join(", ");
    let mut shown = String::new();
    for _ in 0..100 {
        shown = client
            .find(Locator::Css("dd[data-field='nodes']"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if shown == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown, want, "rack {rack} -> server {node} -> ui-03");
    std::fs::write(shots().join("rack.png"), client.screenshot().await.unwrap()).unwrap();

    // "What if it fails": the what-if API's numbers, and nothing committed.
    client
        .find(Locator::Id("whatif-rack"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let summary = client
        .wait()
        .for_element(Locator::Id("whatif-summary"))
        .await
        .unwrap();
    let (_, whatif) = authed(
        &addr,
        "POST",
        "/v1/whatif",
        &admin,
        Some(&json!({"change": {"fail": [rack]}})),
    );
    let scenario = &whatif["after"]["scenario"];
    for (attr, key) in [("data-out", "out"), ("data-degraded", "degraded")] {
        let shown = summary.attr(attr).await.unwrap().unwrap();
        assert_eq!(shown, scenario[key].to_string(), "{attr}: {whatif}");
    }
    assert!(scenario["degraded"].as_u64().unwrap() >= 1, "{whatif}");
    let (_, elements) = authed(&addr, "GET", "/v1/elements", &admin, None);
    assert_eq!(
        elements["elements"],
        json!([]),
        "a what-if committed a state"
    );
    std::fs::write(
        shots().join("whatif.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // The rack fails (through the API): within one refresh its tile says so.
    let (s, v) = authed(
        &addr,
        "PUT",
        &format!("/v1/elements/{rack}/state"),
        &admin,
        Some(&json!({"state": "failed", "reason": "console test"})),
    );
    assert_eq!(s, 200, "{v}");
    let servers = racks.iter().find(|r| r["rack"] == rack.as_str()).unwrap()["servers"]
        .as_u64()
        .unwrap();
    let mut failed = 0;
    for _ in 0..300 {
        // A refresh redraws the map: a tile found just before it is gone (stale) after
        // it, so a failed read is read again.
        failed = match client.find(Locator::Css(&tile)).await {
            Ok(found) => found.attr("data-failed").await.ok().flatten(),
            Err(_) => None,
        }
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
        if failed == servers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed, servers, "the failed rack's tile after a refresh");
    let measure = client.find(Locator::Id("measure")).await.unwrap();
    measure.select_by_value("failed").await.unwrap();
    std::fs::write(
        shots().join("map-failed-rack.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // An admin's action goes through the API: the autopilot off.
    let off = client.find(Locator::Id("autopilot-off")).await.unwrap();
    assert!(off.is_displayed().await.unwrap());
    off.click().await.unwrap();
    let mut disabled = false;
    for _ in 0..100 {
        let (_, pilot) = authed(&addr, "GET", "/v1/autopilot", &admin, None);
        if pilot["settings"]["enabled"] == false {
            disabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disabled, "the page's button did not turn the autopilot off");

    // A read token is offered no action it could not take.
    client
        .find(Locator::Id("logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sign_in(&client, &url, &reader).await;
    assert_eq!(number(&client, "fleet-cells").await, 25);
    for id in ["autopilot-on", "autopilot-off"] {
        let button = client.find(Locator::Id(id)).await.unwrap();
        assert!(
            !button.is_displayed().await.unwrap(),
            "#{id} shown to a read token"
        );
    }
    std::fs::write(shots().join("read.png"), client.screenshot().await.unwrap()).unwrap();

    client.close().await.unwrap();
    driver.kill().unwrap();
    driver.wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}
