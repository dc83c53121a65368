//! Bearer tokens: each role reaches what it may and no more; without tokens the service
//! keeps to loopback.

use super::*;
use server::auth::{new_token, Role, Tokens};

/// Everything logged on this thread while the guard lives (the test's runtime is this
/// thread's, so the middleware's events are caught).
fn capture_logs() -> (
    Arc<std::sync::Mutex<Vec<u8>>>,
    tracing::subscriber::DefaultGuard,
) {
    let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || Sink(sink.clone()))
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_role_reaches_what_it_may_and_no_more() {
    let (logs, _guard) = capture_logs();
    let h = Harness::new(8).await;
    let (read, read_line) = new_token(Role::Read, "dash").unwrap();
    let (runtime, runtime_line) = new_token(Role::Runtime, "rt").unwrap();
    let (admin, admin_line) = new_token(Role::Admin, "ops").unwrap();
    let tokens = Tokens::parse(&format!("{read_line}\n{runtime_line}\n{admin_line}\n")).unwrap();
    let app = app(AppState {
        service: h.service.clone(),
        limits: Limits::default(),
        tokens: Some(Arc::new(tokens)),
    });
    let c = h.clients();
    let call = |method: Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let req = req.body(body).unwrap();
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await.unwrap();
            let status = response.status();
            let challenge = response.headers().get(header::WWW_AUTHENTICATE).cloned();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, value, challenge)
        }
    };
    let place = json!({"cell_id": "a1", "clients": [c[0]]});
    let switch = json!({"path": h.zone_dir});

    // Open: the probes and the API description.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let (s, _, _) = call(Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
    }
    // No token, or an unknown one: 401 in the JSON shape, with the challenge.
    for token in [None, Some("not-a-token")] {
        let (s, e, challenge) = call(Method::GET, "/v1/cells", token, None).await;
        assert_eq!(
            (s, code(&e)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{e}"
        );
        assert_eq!(challenge.unwrap(), "Bearer");
    }
    let (s, e, _) = call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    // read: GETs only.
    let (s, _, _) = call(Method::GET, "/v1/cells", Some(&read), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e, _) = call(Method::POST, "/v1/cells", Some(&read), Some(place.clone())).await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"), "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'dash' has role read"));
    // runtime: cells, not the inventory.
    let (s, body, _) = call(
        Method::POST,
        "/v1/cells",
        Some(&runtime),
        Some(place.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, e, _) = call(
        Method::POST,
        "/v1/inventory",
        Some(&runtime),
        Some(switch.clone()),
    )
    .await;
    assert_eq!((s, code(&e)), (StatusCode::FORBIDDEN, "forbidden"), "{e}");
    let (s, e, _) = call(
        Method::POST,
        "/v1/plans",
        Some(&runtime),
        Some(json!({"balance": 1.5})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    // admin: everything.
    let (s, body, _) = call(
        Method::POST,
        "/v1/inventory?wait=true",
        Some(&admin),
        Some(switch),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body, _) = call(Method::DELETE, "/v1/cells/a1", Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    // Refused requests changed nothing: a1 was placed by runtime and deleted by admin only.
    let (_, cells, _) = call(Method::GET, "/v1/cells", Some(&read), None).await;
    assert_eq!(cells["cells"], json!([]));

    // Issue 27: every refusal is logged, saying who (a token's name) and what route; no
    // token ever appears in the log.
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = logs.lines().filter(|l| l.contains("refused: ")).collect();
    let has = |status: &str, route: &str, who: &str| {
        refused.iter().any(|l| {
            l.contains(status) && l.contains(&format!("route=\"{route}\"")) && l.contains(who)
        })
    };
    assert!(has("401", "/v1/cells", "who=\"no token\""), "{logs}");
    assert!(
        has("401", "/v1/cells", "who=\"an unknown token\""),
        "{logs}"
    );
    assert!(has("401", "/metrics", "who=\"no token\""), "{logs}");
    assert!(has("403", "/v1/cells", "who=\"dash\""), "{logs}");
    assert!(has("403", "/v1/inventory", "who=\"rt\""), "{logs}");
    assert!(has("403", "/v1/plans", "who=\"rt\""), "{logs}");
    assert_eq!(refused.len(), 6, "{logs}");
    for secret in [
        read.as_str(),
        runtime.as_str(),
        admin.as_str(),
        "not-a-token",
    ] {
        assert!(!logs.contains(secret), "a token in the log: {logs}");
    }
}

/// Without tokens, `serve` refuses a non-loopback address and says so; on loopback it
/// starts and warns. A bad token file is refused with the line named.
#[cfg(unix)]
#[test]
fn without_tokens_only_loopback() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let serve = |listen: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cellplacer"))
            .args(["serve", "--listen", listen, "--db"])
            .arg(dir.path().join("l.db"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = serve("0.0.0.0:0", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without --tokens"),
        "{stderr}"
    );
    let bad = dir.path().join("tokens");
    std::fs::write(&bad, "admin ops plaintext\n").unwrap();
    let out = serve("0.0.0.0:0", &["--tokens", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 1: the token must be given as sha256:"),
        "{stderr}"
    );
    // `cellplacer token` makes a line the service takes.
    let out = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(["token", "--role", "admin", "--name", "ops"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (token, line) = (lines.next().unwrap(), lines.next().unwrap());
    let tokens = Tokens::parse(line).unwrap();
    assert_eq!(tokens.check(token), Some(("ops", Role::Admin)));
}
