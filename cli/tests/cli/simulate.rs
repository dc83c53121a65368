//! `simulate`: the same inputs and seed give byte-identical output (the summary and every
//! table), the tables add up to the summary, and bad arguments are named.

use super::*;

/// Runs `simulate` on the tiny inventory and its placements with `extra` arguments.
fn simulate(extra: &[&str]) -> (i32, String) {
    let dir = tiny();
    let placements = dir.join("placements.csv");
    let mut args = vec![
        "simulate",
        dir.to_str().unwrap(),
        "--placements",
        placements.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cellplacer(&args)
}

fn json_stdout(extra: &[&str]) -> (Vec<u8>, serde_json::Value) {
    let dir = tiny();
    let out = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(["simulate", dir.to_str().unwrap(), "--placements"])
        .arg(dir.join("placements.csv"))
        .args(["--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = serde_json::from_slice(&out.stdout).unwrap();
    (out.stdout, value)
}

#[test]
fn the_same_seed_gives_byte_identical_output_and_tables() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = |out: &Path, seed: &str| {
        json_stdout(&[
            "--years",
            "200",
            "--stress",
            "20",
            "--seed",
            seed,
            "--out-dir",
            out.to_str().unwrap(),
        ])
    };
    let (a, summary) = run(a_dir.path(), "7");
    let (b, _) = run(b_dir.path(), "7");
    assert_eq!(a, b, "the summary differs between two runs");
    for table in ["events", "outages", "cells", "recoveries"] {
        let file = format!("{table}.parquet");
        let (x, y) = (
            fs::read(a_dir.path().join(&file)).unwrap(),
            fs::read(b_dir.path().join(&file)).unwrap(),
        );
        assert_eq!(x, y, "{file} differs between two runs");
    }
    let c_dir = tempfile::tempdir().unwrap();
    let (c, _) = run(c_dir.path(), "8");
    assert_ne!(a, c, "another seed, another trace");
    assert!(summary["outage_events"].as_u64().unwrap() > 20, "{summary}");
}

#[test]
fn the_tables_add_up_to_the_summary() {
    let out = tempfile::tempdir().unwrap();
    let (_, s) = json_stdout(&[
        "--years",
        "100",
        "--stress",
        "30",
        "--out-dir",
        out.path().to_str().unwrap(),
    ]);
    let read = |name: &str| topology::ingest::read_table(&out.path().join(name)).unwrap();
    let column = |t: &topology::raw::RawTable, name: &str| -> Vec<String> {
        let i = t.columns.iter().position(|c| c == name).unwrap();
        t.rows
            .iter()
            .map(|r| r[i].clone().unwrap_or_default())
            .collect()
    };
    let sum = |v: Vec<String>| v.iter().map(|x| x.parse::<f64>().unwrap()).sum::<f64>();
    let events = read("events.parquet");
    assert_eq!(events.rows.len() as u64, s["transitions"].as_u64().unwrap());
    assert_eq!(
        sum(column(&events, "outages_started")),
        s["outage_events"].as_f64().unwrap()
    );
    let outages = read("outages.parquet");
    let hours = sum(column(&outages, "hours"));
    let want = s["cell_hours_unavailable"].as_f64().unwrap();
    assert!(
        (hours - want).abs() <= 1e-6 * want.max(1.0),
        "{hours} vs {want}"
    );
    let cells = read("cells.parquet");
    let expected = sum(column(&cells, "expected_events"));
    let want = s["expected_outage_events"].as_f64().unwrap();
    assert!(
        (expected - want).abs() <= 1e-9 * want.max(1.0),
        "{expected} vs {want}"
    );
    assert!(close(
        sum(column(&cells, "hours_out")),
        s["cell_hours_unavailable"].as_f64().unwrap()
    ));
    let recoveries = read("recoveries.parquet");
    assert_eq!(
        recoveries.rows.len() as u64,
        s["recoveries"].as_u64().unwrap()
    );
}

#[test]
fn bad_arguments_are_named() {
    let (code, text) = simulate(&["--years", "0"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--years must be a positive number"), "{text}");
    let (code, text) = simulate(&["--stress=-1"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--stress must be a number >= 0"), "{text}");
    let (code, text) = cellplacer(&[
        "simulate",
        tiny().to_str().unwrap(),
        "--placements",
        "/nonexistent/placements.csv",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("/nonexistent/placements.csv"), "{text}");
}
