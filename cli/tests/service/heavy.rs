//! Heavy requests (what-if, report, plan, validation): bounded by kind in time, answered
//! `timeout` past it with their work stopped, and never in the way of reads and
//! placements.

use super::*;
use runtime::service::{Heavy, HeavyLimit};

/// `cellplacer_heavy_{name}{kind="KIND"}` from `/metrics`.
async fn heavy_metric(h: &Harness, name: &str, kind: &str) -> u64 {
    let (s, v) = h.call(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.as_str().unwrap().to_owned();
    let key = format!("cellplacer_heavy_{name}{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
        .parse()
        .unwrap()
}

/// Polls until the what-if work has ended (its permit given back).
async fn until_whatif_ended(h: &Harness) {
    for _ in 0..600 {
        if heavy_metric(h, "running", "whatif").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the what-if's work never ended");
}

/// A zone of 2,304 servers with 300 cells: counting its headroom places thousands of
/// cells, seconds of work (the finding: 12.7 s on a 500-cell zone, in release).
async fn busy_zone(heavy: HeavyLimits) -> Harness {
    let params = fixtures::ZoneParams {
        cells: 300,
        ..fixtures::ZoneParams::small(3)
    };
    let h = Harness::open(&params, Limits::default(), false, heavy).await;
    let c = h.clients();
    for i in 0..30 {
        let (s, body) = h.place(&format!("busy-{i}"), &[&c[i % c.len()]]).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    h
}

const HEADROOM: &str = r#"{"change": {}, "headroom": true}"#;

/// Finding 4: a what-if with headroom ran with no time limit. Past its kind's limit it is
/// answered 503 `timeout`, its work stops and gives its permit back, and the next what-if
/// gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_request_past_its_limit_is_answered_timeout_and_stopped() {
    let limit = HeavyLimit {
        concurrent: 1,
        time: Duration::from_millis(300),
    };
    let h = busy_zone(HeavyLimits::default().with(Heavy::WhatIf, limit)).await;
    let body: Value = serde_json::from_str(HEADROOM).unwrap();
    let (s, v) = h.call(Method::POST, "/v1/whatif", Some(body)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(code(&v), "timeout", "{v}");
    assert_eq!(heavy_metric(&h, "timeouts_total", "whatif").await, 1);
    until_whatif_ended(&h).await;
    // The permit is back: a small what-if (a scenario alone) is answered.
    let c = h.hosts();
    let (s, v) = h
        .call(
            Method::POST,
            "/v1/whatif",
            Some(json!({"change": {"fail": [c[0]]}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(heavy_metric(&h, "timeouts_total", "whatif").await, 1);
}

/// Finding 4: `GET /v1/report` waited 14.6 s behind a what-if. Now reads, reports and
/// placements are answered while a what-if computes; a client that goes away stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_reports_and_placements_do_not_wait_behind_a_heavy_request() {
    let h = busy_zone(HeavyLimits::default()).await;
    let app = h.app.clone();
    let whatif = tokio::spawn(async move {
        let body: Value = serde_json::from_str(HEADROOM).unwrap();
        call(&app, Method::POST, "/v1/whatif", Some(body)).await
    });
    for _ in 0..600 {
        if heavy_metric(&h, "running", "whatif").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(heavy_metric(&h, "running", "whatif").await, 1);

    let (s, v) = h.call(Method::GET, "/v1/report", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["cells"], 30, "{v}");
    let (s, v) = h.call(Method::GET, "/v1/cells?limit=5", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = h.clients();
    let (s, v) = h.place("during-whatif", &[&c[0]]).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = h.call(Method::GET, "/v1/cells/during-whatif", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // All of them answered while the what-if still computes (it places thousands of cells).
    assert!(
        !whatif.is_finished(),
        "the what-if ended before the reads were answered: {:?}",
        whatif.await
    );
    assert_eq!(heavy_metric(&h, "running", "whatif").await, 1);

    // The client goes away: its work stops and gives the permit back.
    whatif.abort();
    until_whatif_ended(&h).await;
    assert_eq!(heavy_metric(&h, "timeouts_total", "whatif").await, 0);
}
