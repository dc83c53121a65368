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

/// A generated zone big enough for a dozen cells that keep the service's rules (1
/// datacenter, 96 servers, 48 hosts), its cells placed by `cellplacer place`.
fn placed_zone() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let params = fixtures::ZoneParams {
        rooms_per_dc: 2,
        rows_per_room: 2,
        racks_per_row: 3,
        servers_per_rack: 8,
        host_fraction: 0.5,
        cells: 12,
        ..fixtures::ZoneParams::tiny(4)
    };
    write_dir(dir.path(), &fixtures::generate(&params), Format::Csv).unwrap();
    let placed = dir.path().join("placed.csv");
    let zone = dir.path().to_str().unwrap();
    let cells = dir.path().join("cells.csv");
    let (code, text) = cellplacer(&[
        "place",
        zone,
        "--cells",
        cells.to_str().unwrap(),
        "--out",
        placed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    (dir, placed)
}

/// `simulate` on that zone with `--policy policy`: the summary and the tables.
fn run_policy(
    zone: &Path,
    placed: &Path,
    out: &Path,
    policy: &str,
) -> (Vec<u8>, serde_json::Value) {
    run_policy_with(zone, placed, out, &["--policy", policy])
}

/// `simulate` on that zone with `extra` arguments.
fn run_policy_with(
    zone: &Path,
    placed: &Path,
    out: &Path,
    extra: &[&str],
) -> (Vec<u8>, serde_json::Value) {
    let out_ = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .arg("simulate")
        .arg(zone)
        .arg("--placements")
        .arg(placed)
        .args(["--years", "10", "--stress", "20", "--seed", "5", "--json"])
        .args(extra)
        .args(["--grace-s", "3600", "--move-s", "600"])
        .arg("--out-dir")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        out_.status.success(),
        "{}",
        String::from_utf8_lossy(&out_.stderr)
    );
    let value = serde_json::from_slice(&out_.stdout).unwrap();
    (out_.stdout, value)
}

/// A table's rows as maps of column → text.
fn rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let t = topology::ingest::read_table(path).unwrap();
    t.rows
        .iter()
        .map(|r| {
            t.columns
                .iter()
                .zip(r)
                .map(|(c, v)| (c.clone(), v.clone().unwrap_or_default()))
                .collect()
        })
        .collect()
}

#[test]
fn the_autopilot_moves_after_the_grace_one_node_of_a_cell_at_a_time_and_repairs_sooner() {
    let (zone, placed) = placed_zone();
    let (still, moving) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, s) = run_policy(zone.path(), &placed, still.path(), "static");
    let (auto_json, a) = run_policy(zone.path(), &placed, moving.path(), "autopilot");
    assert_eq!(a["policy"], "autopilot");
    assert_eq!(a["unmanaged_cells"], 0, "{a}");
    // One trace for both.
    let key = |r: &BTreeMap<String, String>| {
        (r["at_h"].clone(), r["element"].clone(), r["fails"].clone())
    };
    let (e_static, e_auto) = (
        rows(&still.path().join("events.parquet")),
        rows(&moving.path().join("events.parquet")),
    );
    assert_eq!(
        e_static.iter().map(key).collect::<Vec<_>>(),
        e_auto.iter().map(key).collect::<Vec<_>>()
    );
    let moves = rows(&moving.path().join("moves.parquet"));
    let counted: u64 = a["moves"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(moves.len() as u64, counted);
    assert!(moves.len() >= 20, "{a}");
    let (move_h, grace_h) = (600.0 / 3600.0, 1.0);
    let at = |r: &BTreeMap<String, String>| r["at_h"].parse::<f64>().unwrap();
    // One node of a cell at a time: a cell's next move starts after its last ended.
    let mut last_end: BTreeMap<String, f64> = BTreeMap::new();
    for m in &moves {
        let start = at(m) - move_h;
        if let Some(&end) = last_end.get(&m["cell_id"]) {
            assert!(
                start >= end - 1e-9,
                "cell {} moved again at {start} h before {end} h",
                m["cell_id"]
            );
        }
        last_end.insert(m["cell_id"].clone(), at(m));
    }
    // A node leaves a failed server only after the grace: the server's own failure began
    // at least an hour before the move did.
    let mut checked = 0;
    for m in moves.iter().filter(|m| m["reason"] == "failed") {
        let start = at(m) - move_h;
        let own = e_auto
            .iter()
            .rfind(|e| e["element"] == m["remove"] && at(e) <= start + 1e-9);
        if let Some(e) = own.filter(|e| e["fails"] == "true") {
            assert!(
                start - at(e) >= grace_h - 1e-6,
                "{m:?} moved {} h after {e:?}",
                start - at(e)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} moves off failed servers checked");
    // What it is for: its cells are whole again sooner, and out no longer.
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    assert!(
        f(&a, "time_to_whole_p50_h") < f(&s, "time_to_whole_p50_h"),
        "static {s}\nautopilot {a}"
    );
    assert!(f(&a, "cell_hours_unavailable") <= f(&s, "cell_hours_unavailable"));
    // The service judges safety exactly, for the autopilot and for a static run asked to
    // (and for no other): the autopilot makes cells safe again sooner.
    assert!(s["time_to_safe_p50_h"].is_null(), "{s}");
    let judged = tempfile::tempdir().unwrap();
    let (_, j) = run_policy_with(
        zone.path(),
        &placed,
        judged.path(),
        &["--policy", "static", "--exact-safety"],
    );
    assert_eq!(j["policy"], "static");
    assert_eq!(j["moves"].as_object().unwrap().len(), 0);
    assert!(j["unsafe_recoveries"].as_u64().unwrap() >= 5, "{j}");
    assert!(
        f(&a, "time_to_safe_p50_h") < f(&j, "time_to_safe_p50_h"),
        "static {j}\nautopilot {a}"
    );
    assert_eq!(j["cell_hours_unavailable"], s["cell_hours_unavailable"]);
    // And it is the seed's: the same run again gives the same bytes and moves.
    let again = tempfile::tempdir().unwrap();
    let (auto_again, _) = run_policy(zone.path(), &placed, again.path(), "autopilot");
    assert_eq!(auto_json, auto_again);
    assert_eq!(
        fs::read(moving.path().join("moves.parquet")).unwrap(),
        fs::read(again.path().join("moves.parquet")).unwrap()
    );
}
