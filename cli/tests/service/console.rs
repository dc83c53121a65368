//! The operator's console in a real browser: Debian's Chromium, headless, driven over
//! WebDriver by its chromedriver. The page's numbers are the API's, the map has every
//! rack, rack -> server -> cell leads to the cell as the API has it, "what if it fails"
//! answers as the what-if API and commits nothing, a rack failed through the API shows
//! on the map within one refresh, an action goes through the API,
//! a `read` token is offered no action, and screenshots of each are saved
//! (`target/tmp/console/*.png`).

use super::*;
use fantoccini::{Client, Locator};

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

/// The rack of `server`, as the API has it.
fn rack_of(addr: &str, token: &str, server: &str) -> String {
    let (_, view) = authed(addr, "GET", &format!("/v1/servers/{server}"), token, None);
    view["rack"].as_str().unwrap().to_owned()
}

/// The racks of a cell's nodes, as the API has them, sorted.
fn node_racks(addr: &str, token: &str, cell: &Value) -> Vec<String> {
    let mut racks: Vec<String> = strings(&cell["nodes"])
        .iter()
        .map(|n| rack_of(addr, token, n))
        .collect();
    racks.sort();
    racks.dedup();
    racks
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
async fn browser() -> (std::process::Child, Client) {
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

/// How long the test waits for the page to show something.
const PATIENCE: Duration = Duration::from_secs(20);

/// Reads with `read` until what it reads passes `done`, for up to [`PATIENCE`]; panics
/// with `what` and the last value read. Every read finds its element again: a refresh
/// or a new answer redraws part of the page, and an element found before that is stale
/// after it, so a value is only ever read from the page as it is now.
async fn until<T: std::fmt::Debug>(
    what: &str,
    mut read: impl AsyncFnMut() -> Option<T>,
    done: impl Fn(&T) -> bool,
) -> T {
    let started = std::time::Instant::now();
    let mut last = None;
    while started.elapsed() < PATIENCE {
        if let Some(value) = read().await {
            if done(&value) {
                return value;
            }
            last = Some(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not seen within {PATIENCE:?}; last read {last:?}")
}

/// The text of the first element `css` matches, if there is one now.
async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// The attribute `name` of the first element `css` matches, if there is one now.
async fn attr_of(client: &Client, css: &str, name: &str) -> Option<String> {
    client
        .find(Locator::Css(css))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()?
}

/// The attribute `name` of every element `css` matches now, sorted.
async fn attrs_of(client: &Client, css: &str, name: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    for found in client.find_all(Locator::Css(css)).await.ok()? {
        values.push(found.attr(name).await.ok()??);
    }
    values.sort();
    Some(values)
}

/// Whether the first element `css` matches is displayed now.
async fn shown(client: &Client, css: &str) -> Option<bool> {
    client
        .find(Locator::Css(css))
        .await
        .ok()?
        .is_displayed()
        .await
        .ok()
}

/// Clicks the first element `css` matches once it is there and takes the click.
async fn click(client: &Client, css: &str) {
    until(
        &format!("a click on {css}"),
        async || match client.find(Locator::Css(css)).await {
            Ok(found) => Some(found.click().await.is_ok()),
            Err(_) => None,
        },
        |&clicked| clicked,
    )
    .await;
}

/// The text of `css` once it passes `done`.
async fn text_when(client: &Client, css: &str, done: impl Fn(&String) -> bool) -> String {
    until(css, async || text_of(client, css).await, done).await
}

/// Saves a screenshot of the page as `name`.png.
async fn screenshot(client: &Client, name: &str) {
    screenshot_of(client, name, None).await;
}

/// Saves a screenshot as `name`.png with the element `id` scrolled to the top, if given.
async fn screenshot_of(client: &Client, name: &str, id: Option<&str>) {
    if let Some(id) = id {
        client
            .execute(
                "document.getElementById(arguments[0]).scrollIntoView()",
                vec![json!(id)],
            )
            .await
            .unwrap();
    }
    let png = client.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// The whole number `css` shows (digits only: the page groups thousands).
async fn number(client: &Client, css: &str) -> u64 {
    let text = text_when(client, css, |t| t.chars().any(|c| c.is_ascii_digit())).await;
    text.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{css} shows '{text}'"))
}

/// Signs in with `token` on a fresh page and waits for the first refresh.
async fn sign_in(client: &Client, url: &str, token: &str) {
    client.goto(&format!("{url}/ui/")).await.unwrap();
    // The form shows once the service has refused the page's first request.
    until(
        "the token form",
        async || shown(client, "#token").await,
        |&s| s,
    )
    .await;
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    click(client, "#login-form button").await;
    until(
        "the first refresh",
        async || attr_of(client, "body", "data-loaded").await,
        |loaded| loaded == "true",
    )
    .await;
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
    // Without a token the page asks for one. (The form is in the page from the start,
    // hidden until the service refuses the page's request without a token.)
    client.goto(&format!("{url}/ui/")).await.unwrap();
    until(
        "the token form",
        async || shown(&client, "#login").await,
        |&s| s,
    )
    .await;
    screenshot(&client, "login").await;

    // The fleet's numbers are the report's.
    sign_in(&client, &url, &admin).await;
    assert_eq!(
        shown(&client, "#login").await,
        Some(false),
        "the token form stays"
    );
    let (_, report) = authed(&addr, "GET", "/v1/report", &admin, None);
    for (css, key) in [
        ("#fleet-cells", "cells"),
        ("#fleet-unsafe", "single_failure_unsafe_cells"),
        ("#fleet-out", "down_cells"),
    ] {
        assert_eq!(
            number(&client, css).await,
            report[key].as_u64().unwrap(),
            "{css}"
        );
    }
    screenshot(&client, "fleet").await;

    // A cell that moved (its clients moved to another cell's, its first proposed move
    // committed), as the API has it, and its nodes' racks marked on the map. The
    // autopilot, which would follow the clients with the path's next moves, waits.
    let pilot = |enabled: bool| {
        let (s, v) = authed(
            &addr,
            "PUT",
            "/v1/autopilot",
            &admin,
            Some(&json!({"enabled": enabled})),
        );
        assert_eq!(s, 200, "{v}");
    };
    pilot(false);
    let shown_cell = (0..25)
        .find_map(|i| {
            let id = format!("ui-{i:02}");
            let (_, other) = authed(
                &addr,
                "GET",
                &format!("/v1/cells/ui-{:02}", (i + 12) % 25),
                &admin,
                None,
            );
            let body = json!({"clients": other["clients"]});
            let (s, v) = authed(
                &addr,
                "PUT",
                &format!("/v1/cells/{id}/clients"),
                &admin,
                Some(&body),
            );
            assert_eq!(s, 200, "{v}");
            let n = v["move"]["n"].as_i64()?;
            let (s, v) = authed(
                &addr,
                "POST",
                &format!("/v1/cells/{id}/moves/{n}/commit"),
                &admin,
                None,
            );
            assert_eq!(s, 200, "{v}");
            Some(id)
        })
        .expect("some cell whose clients moved got a move");
    let (_, cell) = authed(
        &addr,
        "GET",
        &format!("/v1/cells/{shown_cell}"),
        &admin,
        None,
    );
    client
        .find(Locator::Id("cell-id"))
        .await
        .unwrap()
        .send_keys(&shown_cell)
        .await
        .unwrap();
    click(&client, "#cell-form button").await;
    let want = strings(&cell["nodes"]).join(", ");
    text_when(&client, "dd[data-field='nodes']", |t| *t == want).await;
    let cell_racks = node_racks(&addr, &admin, &cell);
    until(
        "the cell's racks on the map",
        async || attrs_of(&client, "#map button.rack.cell-node", "data-rack").await,
        |marked| *marked == cell_racks,
    )
    .await;
    // Why it sits there: the explanation's risk and domains, as the API has them.
    let (_, why) = authed(
        &addr,
        "GET",
        &format!("/v1/cells/{shown_cell}/explanation"),
        &admin,
        None,
    );
    let risk = why["explanation"]["risk"].as_f64().unwrap();
    until(
        "the cell's explanation",
        async || {
            attr_of(&client, "#cell-explanation", "data-risk")
                .await?
                .parse::<f64>()
                .ok()
        },
        |&shown| shown == risk,
    )
    .await;
    let mut levels: Vec<&str> = why["explanation"]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["level"].as_str().unwrap())
        .collect();
    levels.dedup();
    let domains = levels.len();
    until(
        "the cell's domains",
        async || {
            Some(
                client
                    .find_all(Locator::Css(".explanation tr[data-level]"))
                    .await
                    .ok()?
                    .len(),
            )
        },
        |&rows| rows == domains,
    )
    .await;
    // Its moves, newest first, as the API has them.
    let (_, history) = authed(
        &addr,
        "GET",
        &format!("/v1/cells/{shown_cell}/moves"),
        &admin,
        None,
    );
    let moves: Vec<String> = history["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m["n"], m["status"].as_str().unwrap()))
        .collect();
    assert!(moves.iter().any(|m| m.ends_with("committed")), "{history}");
    until(
        "the cell's moves",
        async || {
            let mut rows = Vec::new();
            for tr in client
                .find_all(Locator::Css("#cell-moves tr[data-move]"))
                .await
                .ok()?
            {
                let n = tr.attr("data-move").await.ok()??;
                rows.push(format!("{n} {}", tr.attr("data-status").await.ok()??));
            }
            Some(rows)
        },
        |rows| *rows == moves,
    )
    .await;
    screenshot_of(&client, "cell", Some("map-section")).await;
    pilot(true);

    // The map has every rack; rack -> server -> cell leads to the cell as the API has it.
    let (_, map) = authed(&addr, "GET", "/v1/racks", &admin, None);
    let racks = map["racks"].as_array().unwrap();
    let all = until(
        "every rack on the map",
        async || attrs_of(&client, "#map button.rack", "data-rack").await,
        |tiles| tiles.len() == racks.len(),
    )
    .await;
    let mut want_racks: Vec<String> = racks
        .iter()
        .map(|r| r["rack"].as_str().unwrap().to_owned())
        .collect();
    want_racks.sort();
    assert_eq!(all, want_racks);
    let (_, target) = authed(&addr, "GET", "/v1/cells/ui-03", &admin, None);
    let node = strings(&target["nodes"])[0].clone();
    let rack = rack_of(&addr, &admin, &node);
    let tile = format!("#map button.rack[data-rack='{rack}']");
    click(&client, &tile).await;
    // What the rack hangs on, as element links, as the API has them.
    let (_, rack_view) = authed(&addr, "GET", &format!("/v1/racks/{rack}"), &admin, None);
    let mut devices: Vec<String> = ["network", "power"]
        .iter()
        .flat_map(|k| rack_view[k].as_array().unwrap().iter())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    devices.sort();
    assert!(!devices.is_empty(), "{rack_view}");
    until(
        "the rack's network and power devices",
        async || attrs_of(&client, "#rack-view .rack-elements button", "data-element").await,
        |shown| *shown == devices,
    )
    .await;
    click(&client, &format!("tr[data-server='{node}'] button.server")).await;
    click(&client, "button[data-cell='ui-03']").await;
    let want = strings(&target["nodes"]).join(", ");
    text_when(&client, "dd[data-field='nodes']", |t| *t == want).await;
    screenshot(&client, "rack").await;

    // "What if it fails": the what-if API's numbers, and nothing committed.
    click(&client, "#whatif-rack").await;
    let (_, whatif) = authed(
        &addr,
        "POST",
        "/v1/whatif",
        &admin,
        Some(&json!({"change": {"fail": [rack]}})),
    );
    let scenario = &whatif["after"]["scenario"];
    for (attr, key) in [("data-out", "out"), ("data-degraded", "degraded")] {
        let want = scenario[key].to_string();
        until(
            &format!("#whatif-summary {attr}"),
            async || attr_of(&client, "#whatif-summary", attr).await,
            |shown| *shown == want,
        )
        .await;
    }
    assert!(scenario["degraded"].as_u64().unwrap() >= 1, "{whatif}");
    let (_, elements) = authed(&addr, "GET", "/v1/elements", &admin, None);
    assert_eq!(
        elements["elements"],
        json!([]),
        "a what-if committed a state"
    );
    screenshot(&client, "whatif").await;

    // The rack fails (through the API): within one refresh its tile says so.
    let (s, v) = authed(
        &addr,
        "PUT",
        &format!("/v1/elements/{rack}/state"),
        &admin,
        Some(&json!({"state": "failed", "reason": "console test"})),
    );
    assert_eq!(s, 200, "{v}");
    let servers = racks.iter().find(|r| r["rack"] == rack.as_str()).unwrap()["servers"].to_string();
    until(
        "the failed rack's tile after a refresh",
        async || attr_of(&client, &tile, "data-failed").await,
        |failed| *failed == servers,
    )
    .await;
    client
        .find(Locator::Id("measure"))
        .await
        .unwrap()
        .select_by_value("failed")
        .await
        .unwrap();
    screenshot(&client, "map-failed-rack").await;

    // An admin's action goes through the API: the autopilot off.
    assert_eq!(shown(&client, "#autopilot-off").await, Some(true));
    click(&client, "#autopilot-off").await;
    until(
        "the autopilot off after the page's button",
        async || Some(authed(&addr, "GET", "/v1/autopilot", &admin, None).1),
        |pilot| pilot["settings"]["enabled"] == false,
    )
    .await;

    // An element: a cell's failure domains failed but one, through the API, and that
    // one's view puts the cell out, hatches the racks of its nodes and lists it, as the
    // element API says; the map coloured by blast radius shows it too.
    let (victim, spare) = (0..25)
        .find_map(|i| {
            let id = format!("ui-{i:02}");
            let (_, cell) = authed(&addr, "GET", &format!("/v1/cells/{id}"), &admin, None);
            let clients: Vec<String> = strings(&cell["clients"])
                .iter()
                .map(|c| rack_of(&addr, &admin, c))
                .collect();
            if clients.contains(&rack) {
                return None;
            }
            let spare: Vec<String> = node_racks(&addr, &admin, &cell)
                .into_iter()
                .filter(|r| *r != rack && !clients.contains(r))
                .collect();
            (spare.len() >= 4).then_some((id, spare))
        })
        .expect("a cell with four node racks apart from its clients' and the failed one");
    for failed in &spare[..3] {
        let (s, v) = authed(
            &addr,
            "PUT",
            &format!("/v1/elements/{failed}/state"),
            &admin,
            Some(&json!({"state": "failed", "reason": "console test"})),
        );
        assert_eq!(s, 200, "{v}");
    }
    let last = spare[3].clone();
    let (_, element) = authed(&addr, "GET", &format!("/v1/elements/{last}"), &admin, None);
    assert!(
        strings(&element["out_cells"]).contains(&victim),
        "{element}"
    );
    let input = client.find(Locator::Id("element-id")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&last).await.unwrap();
    click(&client, "#element-form button").await;
    let blast = element["blast_radius"].to_string();
    until(
        "the element's blast radius",
        async || attr_of(&client, "#element-summary", "data-blast").await,
        |shown| *shown == blast,
    )
    .await;
    click(
        &client,
        &format!("#element-cells button[data-element-cell='{victim}']"),
    )
    .await;
    let mut hit: Vec<String> = element["racks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rack"].as_str().unwrap().to_owned())
        .collect();
    hit.sort();
    until(
        "the racks of the cells it would put out, hatched",
        async || attrs_of(&client, "#map button.rack.hit", "data-rack").await,
        |marked| *marked == hit,
    )
    .await;
    text_when(&client, "dd[data-field='cell']", |t| *t == victim).await;
    // Its "what if it fails" asks the what-if API, which says the same.
    click(&client, "#whatif-element").await;
    until(
        "the element's what-if",
        async || attr_of(&client, "#element-whatif .whatif-summary", "data-out").await,
        |shown| *shown == blast,
    )
    .await;
    screenshot_of(&client, "element", Some("cell")).await;
    client
        .find(Locator::Id("measure"))
        .await
        .unwrap()
        .select_by_value("blast_own")
        .await
        .unwrap();
    let (_, all) = authed(&addr, "GET", "/v1/blast", &admin, None);
    let own = all["racks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rack"] == last.as_str())
        .unwrap()["own"]
        .to_string();
    assert_eq!(own, blast);
    until(
        "the rack's blast radius on the map",
        async || {
            attr_of(
                &client,
                &format!("#map button.rack[data-rack='{last}']"),
                "data-blast",
            )
            .await
        },
        |shown| *shown == own,
    )
    .await;
    screenshot_of(&client, "map-blast", Some("map-section")).await;

    // A read token is offered no action it could not take, and looks all the same.
    click(&client, "#logout").await;
    sign_in(&client, &url, &reader).await;
    assert_eq!(number(&client, "#fleet-cells").await, 25);
    let input = client.find(Locator::Id("element-id")).await.unwrap();
    input.send_keys(&last).await.unwrap();
    click(&client, "#element-form button").await;
    until(
        "the element's blast radius for a read token",
        async || attr_of(&client, "#element-summary", "data-blast").await,
        |shown| *shown == blast,
    )
    .await;
    for id in ["#autopilot-on", "#autopilot-off", "#whatif-element"] {
        assert_eq!(
            shown(&client, id).await,
            Some(false),
            "{id} shown to a read token"
        );
    }
    screenshot(&client, "read").await;

    client.close().await.unwrap();
    driver.kill().unwrap();
    driver.wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}
