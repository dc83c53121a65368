//! End-to-end tests of ingest, validation and the fleet report through the api edge.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect;
use optimizer::risk::reference;
use optimizer::{fleet_report, ReportOptions};
use topology::ingest::{read_dir, write_dir, Format};

fn tiny() -> PathBuf {
    fixtures::tiny_dir()
}

/// A copy of the tiny inventory with `edit(table text) -> table text` applied per file.
fn broken_copy(edits: &[(&str, &dyn Fn(String) -> String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(tiny()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    for (file, edit) in edits {
        let path = dir.path().join(file);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let new = edit(text);
        if new.is_empty() {
            fs::remove_file(&path).unwrap();
        } else {
            fs::write(&path, new).unwrap();
        }
    }
    dir
}

fn errors_of(dir: &Path) -> String {
    match runtime::load::inventory(dir) {
        Ok(_) => "valid".to_string(),
        Err(topology::Error::Invalid(report)) => {
            report.errors.iter().map(|e| format!("{e}\n")).collect()
        }
        Err(e) => format!("other error: {e}"),
    }
}

fn cellplacer(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// The bundled zone (generated `small` preset, seed 0), written out by `generate` and read
/// back by `validate`: everything a test needs comes from the repository itself.
#[test]
fn generated_small_zone_validates_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    let (code, out) = cellplacer(&[
        "generate",
        "--preset",
        "small",
        "--seed",
        "0",
        "--out",
        zone.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cellplacer(&["validate", zone.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    expect![[r#"
        valid: datacenters 3, rooms 6, racks 144, servers 2304 (576 cell hosts, node capacity 230400), network devices 178, links 2910, risk groups 5, power devices 72, feeds 676, failure elements 5613
        0 warning(s)
    "#]]
    .assert_eq(&out);
}

#[test]
fn every_kind_of_error_is_reported_at_once() {
    let append = |line: &'static str| move |t: String| t + line;
    let dir = broken_copy(&[
        // duplicate id across tables (a server named like a rack), unknown rack, bad status,
        // negative and non-integer capacity, afr out of range, repair_hours zero and not a
        // number
        (
            "servers.csv",
            &append(
                "dc1-h1-row01-rk01,dc1-h1-row01-rk01,active,4,c1,,\n\
             x-s1,no-such-rack,active,4,c1,,\n\
             x-s2,dc1-h1-row01-rk01,sleeping,4,c1,,\n\
             x-s3,dc1-h1-row01-rk01,active,-1,c1,,\n\
             x-s4,dc1-h1-row01-rk01,active,2.5,c1,,\n\
             x-s5,dc1-h1-row01-rk01,active,4,c1,1.5,\n\
             x-s6,dc1-h1-row01-rk01,active,4,c1,,0\n\
             x-s7,dc1-h1-row01-rk01,active,4,c1,,soon\n",
            ),
        ),
        // link end that is a power device, one that does not exist, a negative repair time
        (
            "network_links.csv",
            &append("x-l1,dc1-utility,dc1-agg1,,,\nx-l2,nowhere,dc1-agg1,,,\nx-l3,dc1-agg1,dc1-agg2,,,-3\n"),
        ),
        // feed from a rack, feed into nothing known, and a cycle
        (
            "power_feeds.csv",
            &append("dc1-h1-row01-rk01,dc1-agg1\ndc1-utility,ghost\ndc1-h1-upsA,dc1-h1-swgr\n"),
        ),
    ]);
    expect![[r#"
        network_links.csv line 31 column a_end: 'dc1-utility' is a power_device, not a server or network device
        network_links.csv line 32 column a_end: unknown server or network device 'nowhere'
        network_links.csv line 33 column repair_hours: repair_hours -3 is not above 0
        power_feeds.csv line 6 column downstream: power feeds form a cycle through dc1-h1-swgr, dc1-h1-upsA
        power_feeds.csv line 35 column upstream: 'dc1-h1-row01-rk01' is a rack, not a power device
        power_feeds.csv line 36 column downstream: unknown power device, rack, server or network device 'ghost'
        servers.csv line 16 column server_id: duplicate id 'dc1-h1-row01-rk01' (first defined in racks row 1)
        servers.csv line 17 column rack_id: unknown rack 'no-such-rack'
        servers.csv line 18 column status: unknown status 'sleeping' (expected active, draining or failed)
        servers.csv line 19 column node_capacity: '-1' is not a non-negative integer capacity
        servers.csv line 20 column node_capacity: '2.5' is not a non-negative integer capacity
        servers.csv line 21 column afr: afr 1.5 is outside [0, 1)
        servers.csv line 22 column repair_hours: repair_hours 0 is not above 0
        servers.csv line 23 column repair_hours: 'soon' is not a number
    "#]]
    .assert_eq(&errors_of(dir.path()));

    // The binary exits 1 and names them too.
    let (code, out) = cellplacer(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("servers.csv line 17 column rack_id: unknown rack 'no-such-rack'"),
        "{out}"
    );
    // `evaluate` names them the same way, one per line, after one summary line.
    let (code, out) = cellplacer(&[
        "evaluate",
        dir.path().to_str().unwrap(),
        tiny().join("placements.csv").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "error: loading the inventory: invalid input: 14 error(s), 3 warning(s)\n\
             error: network_links.csv line 31 column a_end:"
        ),
        "{out}"
    );
    assert!(
        out.contains("\nerror: servers.csv line 17 column rack_id: unknown rack 'no-such-rack'\n"),
        "{out}"
    );
}

/// A missing column is the one error: the rows it makes unreadable (every link and feed
/// naming a device) are not reported one by one, and neither are the servers left
/// without links because of it; a rejected row is not reported again where it is named.
#[test]
fn root_causes_only() {
    let dir = broken_copy(&[("network_devices.csv", &|t: String| {
        t.replacen("device_id,kind,", "device_id,type,", 1)
    })]);
    let Err(topology::Error::Invalid(report)) = runtime::load::inventory(dir.path()) else {
        panic!("invalid");
    };
    let lines: Vec<String> = report
        .errors
        .iter()
        .chain(&report.warnings)
        .map(|p| p.to_string())
        .collect();
    expect![[r#"
        [
            "network_devices.csv column kind: required column is missing",
            "network_links.csv: 41 reference(s) not checked: network_devices could not be read",
            "power_feeds.csv: 13 reference(s) not checked: network_devices could not be read",
        ]
    "#]]
    .assert_debug_eq(&lines);
    let dir = broken_copy(&[("servers.csv", &|t: String| {
        t.replacen(
            "dc1-h1-row01-rk01-s01,dc1-h1-row01-rk01,active,",
            "dc1-h1-row01-rk01-s01,dc1-h1-row01-rk01,asleep,",
            1,
        )
    })]);
    expect![[r#"
        servers.csv line 2 column status: unknown status 'asleep' (expected active, draining or failed)
    "#]].assert_eq(&errors_of(dir.path()));
}

/// Messages say each thing once; a directory that does not exist says so.
#[test]
fn io_errors_are_said_once() {
    let (code, out) = cellplacer(&["validate", "/no/such/dir"]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "error: reading the inventory: /no/such/dir: no such directory\n"
    );
    let (code, out) = cellplacer(&[
        "evaluate",
        tiny().to_str().unwrap(),
        "/no/such/placements.csv",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "error: loading the placements: /no/such/placements.csv: no such file\n"
    );
}

/// `cellplacer validate ... | head -1`: a reader that stops early ends the command with
/// exit 0, no panic. The output (thousands of warnings) is far larger than a pipe holds.
#[test]
fn a_closed_stdout_is_a_normal_end() {
    use std::io::BufRead;
    let dir = broken_copy(&[("servers.csv", &|t: String| {
        let lonely: String = (0..4000)
            .map(|i| format!("lonely{i},dc1-h1-row01-rk01,active,0,,,\n"))
            .collect();
        t + &lonely
    })]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellplacer"))
        .args(["validate", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("valid:"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn missing_tables_and_warnings() {
    let dir = broken_copy(&[("power_devices.csv", &|_| String::new())]);
    let errors = errors_of(dir.path());
    assert!(
        errors.contains("power_devices: required table is missing"),
        "{errors}"
    );
    let dir = broken_copy(&[("network_devices.csv", &|t: String| {
        t.replacen("device_id,kind,", "device_id,type,", 1)
    })]);
    let errors = errors_of(dir.path());
    assert_eq!(
        errors,
        "network_devices.csv column kind: required column is missing\n"
    );

    // A server with no link and a rack with no feed are warnings, not errors.
    let dir = broken_copy(&[
        ("servers.csv", &|t: String| {
            t + "lonely,dc1-h1-row01-rk01,active,0,,,\n"
        }),
        ("racks.csv", &|t: String| {
            t + "dark,dc1,dc1-h1,dc1-h1-row01,,\n"
        }),
    ]);
    let loaded = runtime::load::inventory(dir.path()).expect("warnings only");
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    expect![[r#"
        [
            "racks.csv line 6 column rack_id: rack 'dark' has no power feed",
            "servers.csv line 16 column server_id: server 'lonely' has no network link",
        ]
    "#]]
    .assert_debug_eq(&warnings);
}

#[test]
fn parquet_and_csv_load_the_same_inventory() {
    let raw = read_dir(&tiny()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), &raw, Format::Parquet).unwrap();
    let from_parquet = read_dir(dir.path()).unwrap();
    assert_eq!(raw.tables, from_parquet.tables);
    let a = runtime::load::inventory(&tiny()).unwrap();
    let b = runtime::load::inventory(dir.path()).unwrap();
    assert_eq!(a.inventory.counts(), b.inventory.counts());
}

/// Equal to 1e-12 relative.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The rows of a per-cell export, by column name.
fn cell_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let table = topology::ingest::read_table(path).unwrap();
    assert_eq!(table.columns, runtime::view::CELL_COLUMNS);
    table
        .rows
        .iter()
        .map(|row| {
            table
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.clone(), v.clone().unwrap_or_default()))
                .collect()
        })
        .collect()
}

#[test]
fn report_figures_equal_brute_force_on_tiny() {
    let loaded = runtime::load::inventory(&tiny()).unwrap();
    let inv = &loaded.inventory;
    let placements_file = tiny().join("placements.csv");
    let placements = runtime::load::placements(&placements_file, inv).unwrap();
    let report = fleet_report(inv, &loaded.model, &placements, &ReportOptions::default());
    let cells: Vec<(Vec<u32>, Vec<u32>)> = placements
        .iter()
        .map(|p| (p.clients.clone(), p.nodes.clone()))
        .collect();
    assert_eq!(report.blast_radius, reference::blast_radius(inv, &cells));
    let want: Vec<_> = cells
        .iter()
        .map(|(c, n)| reference::risk(inv, c, n))
        .collect();
    for (i, w) in want.iter().enumerate() {
        let got = &report.per_cell[i];
        assert!(
            close(got.risk, w.risk),
            "cell {i}: {} vs {}",
            got.risk,
            w.risk
        );
        assert!(close(got.single_risk, w.single));
        assert!(close(got.pair_risk, w.pair));
        assert_eq!(got.breaking, w.breaking);
        assert_eq!(
            report.unsafe_cells.contains(&i),
            w.down || !w.breaking.is_empty()
        );
    }

    // The per-cell export (CSV and Parquet) and the JSON report say the same.
    let dir = tempfile::tempdir().unwrap();
    let mut json = serde_json::Value::Null;
    for name in ["cells.csv", "cells.parquet"] {
        let out_file = dir.path().join(name);
        let (code, out) = cellplacer(&[
            "evaluate",
            tiny().to_str().unwrap(),
            placements_file.to_str().unwrap(),
            "--json",
            "--cells-out",
            out_file.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}");
        json = serde_json::from_str(&out).unwrap();
        let rows = cell_rows(&out_file);
        assert_eq!(rows.len(), 3);
        for (row, (p, w)) in rows.iter().zip(placements.iter().zip(&want)) {
            assert_eq!(row["cell_id"], p.cell_id);
            // Written as the shortest exact decimal: parsed back bit for bit.
            let number = |c: &str| row[c].parse::<f64>().unwrap();
            let i = placements
                .iter()
                .position(|q| q.cell_id == p.cell_id)
                .unwrap();
            assert_eq!(number("risk"), report.per_cell[i].risk);
            assert_eq!(number("single_risk"), report.per_cell[i].single_risk);
            assert_eq!(number("pair_risk"), report.per_cell[i].pair_risk);
            assert!(close(number("risk"), w.risk));
            let breaking: Vec<&str> = w
                .breaking
                .iter()
                .map(|e| inv.elements[e.index()].id.as_str())
                .collect();
            assert_eq!(row["breaking_elements"], breaking.join(";"));
            let safe = !w.down && w.breaking.is_empty();
            assert_eq!(row["single_failure_safe"], safe.to_string());
            assert_eq!(row["down"], w.down.to_string());
        }
    }
    assert_eq!(json["cells"], 3);
    assert_eq!(
        json["single_failure_unsafe_cells"],
        report.unsafe_cells.len()
    );
    let risk = &json["risk"];
    let up: Vec<f64> = want.iter().filter(|w| !w.down).map(|w| w.risk).collect();
    assert_eq!(risk["cells"], up.len());
    assert!(close(
        risk["mean"].as_f64().unwrap(),
        up.iter().sum::<f64>() / up.len() as f64
    ));
    assert!(close(
        risk["max"].as_f64().unwrap(),
        up.iter().copied().fold(0.0, f64::max)
    ));
}

/// The figures behind the tiny fixture's README: which elements break each cell alone
/// and every cell's risk, in outages per year, as the export writes them.
#[test]
fn tiny_cells_export_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("cells.csv");
    let (code, out) = cellplacer(&[
        "evaluate",
        tiny().to_str().unwrap(),
        tiny().join("placements.csv").to_str().unwrap(),
        "--cells-out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    expect![[r#"
        cell_id,risk,single_risk,pair_risk,single_failure_safe,breaking_elements,down
        vol-0000001,1.5001349315068493e-2,1.5e-2,1.3493150684931508e-6,false,dc1-h1-swgr;tray-dc1-h2-row01-rk02,false
        vol-0000002,0e0,0e0,0e0,true,,false
        vol-0000003,9.657534246575341e-6,0e0,9.657534246575341e-6,true,,false
    "#]].assert_eq(&fs::read_to_string(&out_file).unwrap());
}

/// The risk of a cell does not depend on unrelated parts of the zone: a new datacenter
/// with its own racks, switches and power changes no cell's risk (the old definition
/// counted every breaking element again with every element of the zone).
#[test]
fn unrelated_elements_leave_the_risk_unchanged() {
    let far = broken_copy(&[
        ("racks.csv", &|t: String| {
            t + "far-rk,dc9,dc9-h1,dc9-h1-row01,,\n"
        }),
        ("servers.csv", &|t: String| {
            t + "far-s1,far-rk,active,4,c1,,\nfar-s2,far-rk,active,4,c1,,\n"
        }),
        ("network_devices.csv", &|t: String| {
            t + "far-tor,tor,dc9,,\n"
        }),
        ("network_links.csv", &|t: String| {
            t + "far-l1,far-s1,far-tor,,,\nfar-l2,far-s2,far-tor,,,\n"
        }),
        ("power_devices.csv", &|t: String| {
            t + "far-utility,utility,dc9,,\nfar-pdu,pdu,dc9,,\n"
        }),
        ("power_feeds.csv", &|t: String| {
            t + "far-utility,far-pdu\nfar-pdu,far-rk\nfar-pdu,far-tor\n"
        }),
    ]);
    let base = runtime::load::inventory(&tiny()).unwrap();
    let grown = runtime::load::inventory(far.path()).unwrap();
    assert_eq!(
        grown.inventory.elements.len(),
        base.inventory.elements.len() + 8
    );
    let report = |loaded: &runtime::load::Loaded| {
        let placements =
            runtime::load::placements(&tiny().join("placements.csv"), &loaded.inventory).unwrap();
        fleet_report(
            &loaded.inventory,
            &loaded.model,
            &placements,
            &ReportOptions::default(),
        )
    };
    let (a, b) = (report(&base), report(&grown));
    for (x, y) in a.per_cell.iter().zip(&b.per_cell) {
        assert!(close(x.risk, y.risk), "{} became {}", x.risk, y.risk);
    }
    assert!(a
        .per_cell
        .iter()
        .all(|c| c.risk > 0.0 || c.single_failure_safe()));
    assert!(a.per_cell.iter().filter(|c| c.risk > 0.0).count() >= 2);
}

#[test]
fn generated_zone_round_trips_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zone");
    let (code, text) = cellplacer(&[
        "generate",
        "--preset",
        "tiny",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    let loaded = runtime::load::inventory(&out).unwrap();
    assert!(loaded.warnings.is_empty());
    let cells = runtime::load::cells(&out.join("cells.csv"), &loaded.inventory).unwrap();
    assert_eq!(cells.len(), fixtures::ZoneParams::tiny(7).cells);
}

#[test]
fn place_then_evaluate_agree() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    let zone_arg = zone.to_str().unwrap();
    let (code, out) = cellplacer(&[
        "generate", "--preset", "small", "--seed", "4", "--cells", "40", "--out", zone_arg,
    ]);
    assert_eq!(code, 0, "{out}");
    let placements = dir.path().join("placements.csv");
    let cells = zone.join("cells.csv");
    let (code, out) = cellplacer(&[
        "place",
        zone_arg,
        "--cells",
        cells.to_str().unwrap(),
        "--out",
        placements.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("placed 40 of 40 cells"), "{out}");
    let unsafe_placed: usize = out
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("unsafe count in the summary");
    let (code, out) = cellplacer(&["evaluate", zone_arg, placements.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["cells"], 40);
    assert_eq!(report["single_failure_unsafe_cells"], unsafe_placed);
    assert_eq!(report["quorum_sharing_pairs"], 0);
    assert_eq!(
        report["load"]["over_capacity"],
        serde_json::json!([]),
        "{out}"
    );
    // The same cells again with --existing: all skipped, the output is the same fleet.
    let again = dir.path().join("again.csv");
    let (code, out) = cellplacer(&[
        "place",
        zone_arg,
        "--cells",
        cells.to_str().unwrap(),
        "--existing",
        placements.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("skipped 40 cells already placed"), "{out}");
    assert_eq!(
        fs::read_to_string(&again).unwrap(),
        fs::read_to_string(&placements).unwrap()
    );
    // New cells with the same clients on top of the first run: loads and the overlap rule
    // carry over, and the output holds both, ready for evaluate.
    let twins = dir.path().join("twins.csv");
    let text = fs::read_to_string(&cells).unwrap().replace("vol-", "twin-");
    fs::write(&twins, text).unwrap();
    let both = dir.path().join("both.csv");
    let (code, out) = cellplacer(&[
        "place",
        zone_arg,
        "--cells",
        twins.to_str().unwrap(),
        "--existing",
        placements.to_str().unwrap(),
        "--out",
        both.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("placed 40 of 40 cells"), "{out}");
    let (code, out) = cellplacer(&["evaluate", zone_arg, both.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["cells"], 80);
    assert_eq!(report["quorum_sharing_pairs"], 0, "a twin shares a quorum");
    assert_eq!(report["load"]["over_capacity"], serde_json::json!([]));
}

/// Some cells cannot be placed: exit 3, the placed ones written, the others listed with
/// why in the unplaced file; invalid input stays exit 1.
#[test]
fn partly_placed_exits_3_and_lists_why() {
    let dir = tempfile::tempdir().unwrap();
    let cells = dir.path().join("cells.csv");
    fs::write(
        &cells,
        "cell_id,clients,size\n\
         small,dc1-h1-row01-rk02-s04,3\n\
         huge,dc1-h1-row01-rk02-s04,15\n",
    )
    .unwrap();
    let out = dir.path().join("placed.csv");
    let (code, text) = cellplacer(&[
        "place",
        tiny().to_str().unwrap(),
        "--cells",
        cells.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("placed 1 of 2 cells"), "{text}");
    let placed = fs::read_to_string(&out).unwrap();
    assert!(
        placed.contains("\nsmall,") && !placed.contains("huge"),
        "{placed}"
    );
    let unplaced = fs::read_to_string(dir.path().join("placed.unplaced.csv")).unwrap();
    assert!(unplaced.starts_with("cell_id,reason\nhuge,"), "{unplaced}");
    assert!(unplaced.contains("eligible servers"), "{unplaced}");
    let (code, _) = cellplacer(&[
        "place",
        "/no/such/zone",
        "--cells",
        cells.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
}

/// Every `sh` block of docs/tutorial.md, run in order by bash in an empty directory with
/// the freshly built `cellplacer` first on PATH: the tutorial cannot rot.
#[test]
fn tutorial_runs() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tutorial.md"))
        .unwrap();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    // The fence a line is in: "sh" (run), "text" (shown output), or another.
    let mut fence: Option<&str> = None;
    let mut blocks = 0;
    let mut shown = Vec::new();
    for line in doc.lines() {
        match (fence, line.trim_end()) {
            (None, l) if l.starts_with("```") => {
                fence = Some(&l[3..]);
                blocks += usize::from(&l[3..] == "sh");
            }
            (Some(_), "```") => fence = None,
            (Some("sh"), l) => {
                script.push_str(l);
                script.push('\n');
            }
            // Timings differ from run to run.
            (Some("text"), l) if !l.contains("ms (") => shown.push(l.to_string()),
            _ => {}
        }
    }
    assert!(blocks >= 6, "the tutorial has {blocks} sh blocks");
    let bin = Path::new(env!("CARGO_BIN_EXE_cellplacer"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the tutorial failed:\n{text}");
    assert!(shown.len() >= 15, "{shown:?}");
    for expected in shown
        .iter()
        .map(String::as_str)
        .chain(["placed 200 of 200 cells", "\"cell_id\":\"vol-demo\""])
    {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// Nodes (the last column of a placement export) on servers of `rack`.
fn nodes_in(placements: &str, rack: &str) -> usize {
    fs::read_to_string(placements)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.rsplit(',')
                .next()
                .unwrap()
                .matches(&format!("{rack}-s"))
                .count()
        })
        .sum()
}

/// `rebalance --drain RACK` on a placed zone: one move per node on the rack and nothing
/// else, every move a drain, the placements after it keep every cell safe and off the
/// rack (as `evaluate` reads them); an id that names nothing is refused, naming it.
#[test]
fn rebalance_drains_a_rack_move_by_move() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let zone = path("zone");
    let (code, out) = cellplacer(&[
        "generate", "--preset", "small", "--seed", "3", "--cells", "400", "--out", &zone,
    ]);
    assert_eq!(code, 0, "{out}");
    let placed = path("placed.csv");
    let cells = path("zone/cells.csv");
    let (code, out) = cellplacer(&["place", &zone, "--cells", &cells, "--out", &placed]);
    assert_eq!(code, 0, "{out}");
    let rack = "dc1-h1-row01-rk01";
    let on_rack = fs::read_to_string(&placed)
        .unwrap()
        .matches(&format!("{rack}-s"))
        .count();
    let (plan, after) = (path("plan.csv"), path("after.csv"));
    let (code, out) = cellplacer(&[
        "rebalance",
        &zone,
        "--placements",
        &placed,
        "--drain",
        rack,
        "--plan-out",
        &plan,
        "--placements-out",
        &after,
    ]);
    assert_eq!(code, 0, "{out}");
    let plan_text = fs::read_to_string(&plan).unwrap();
    let rows: Vec<&str> = plan_text.lines().skip(1).collect();
    // Nodes on the rack: those in the node columns (clients may sit there too).
    let nodes_on_rack = nodes_in(&placed, rack);
    assert!(
        nodes_on_rack > 5 && nodes_on_rack <= on_rack,
        "{nodes_on_rack}"
    );
    assert_eq!(rows.len(), nodes_on_rack, "{plan_text}");
    assert!(rows.iter().all(|r| r.contains(",drain,")), "{plan_text}");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["nodes", "to", "move", &nodes_on_rack.to_string(), "0"]),
        "{out}"
    );
    assert_eq!(nodes_in(&after, rack), 0);
    let (code, out) = cellplacer(&["evaluate", &zone, &after]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("single-failure unsafe cells: 0"), "{out}");

    // The same plan as Parquet, by the file's extension.
    let parquet = path("plan.parquet");
    let (code, out) = cellplacer(&[
        "rebalance",
        &zone,
        "--placements",
        &placed,
        "--drain",
        rack,
        "--plan-out",
        &parquet,
    ]);
    assert_eq!(code, 0, "{out}");
    let table = topology::ingest::read_table(Path::new(&parquet)).unwrap();
    assert_eq!(table.len(), rows.len());
    assert_eq!(table.columns[..3], ["step", "cell_id", "remove"]);

    let (code, out) = cellplacer(&[
        "rebalance",
        &zone,
        "--placements",
        &placed,
        "--drain",
        "no-such-rack",
        "--plan-out",
        &plan,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("'no-such-rack' names no server"), "{out}");
}

/// A rack removed from the inventory files (its servers and links gone) while placements
/// still name its servers: `rebalance --repair` moves every node off the gone servers
/// (reason `failed`) and nothing else; `evaluate` reads the plan's result on the edited
/// inventory, the gone clients counted as failed servers; without `--repair` the nodes stay
/// and the run says how to move them.
#[test]
fn rebalance_repairs_nodes_on_servers_removed_from_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let zone = path("zone");
    let (code, out) = cellplacer(&[
        "generate", "--preset", "small", "--seed", "5", "--cells", "300", "--out", &zone,
    ]);
    assert_eq!(code, 0, "{out}");
    let placed = path("placed.csv");
    let cells = path("zone/cells.csv");
    let (code, out) = cellplacer(&["place", &zone, "--cells", &cells, "--out", &placed]);
    assert_eq!(code, 0, "{out}");
    let rack = "dc1-h1-row01-rk02";
    let nodes_on_rack = nodes_in(&placed, rack);
    assert!(nodes_on_rack > 5, "{nodes_on_rack}");
    // Remove the rack: its row in racks.csv, its servers, every link and feed naming it.
    let edited = path("edited");
    fs::create_dir(&edited).unwrap();
    for entry in fs::read_dir(&zone).unwrap() {
        let entry = entry.unwrap();
        let text = fs::read_to_string(entry.path()).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| !l.contains(rack)).collect();
        fs::write(
            Path::new(&edited).join(entry.file_name()),
            kept.join("\n") + "\n",
        )
        .unwrap();
    }
    let (plan, after) = (path("plan.csv"), path("after.csv"));
    let (code, out) = cellplacer(&[
        "rebalance",
        &edited,
        "--placements",
        &placed,
        "--repair",
        "--plan-out",
        &plan,
        "--placements-out",
        &after,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("are not in the inventory"), "{out}");
    let plan_text = fs::read_to_string(&plan).unwrap();
    let rows: Vec<&str> = plan_text.lines().skip(1).collect();
    assert_eq!(rows.len(), nodes_on_rack, "{plan_text}");
    assert!(
        rows.iter()
            .all(|r| r.contains(",failed,") && r.split(',').nth(2).unwrap().starts_with(rack)),
        "{plan_text}"
    );
    assert_eq!(nodes_in(&after, rack), 0);
    let (code, out) = cellplacer(&["evaluate", &edited, &after]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("single-failure unsafe cells: 0"), "{out}");

    let (code, out) = cellplacer(&[
        "rebalance",
        &edited,
        "--placements",
        &placed,
        "--plan-out",
        &plan,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("add --repair to move them"), "{out}");
    assert_eq!(fs::read_to_string(&plan).unwrap().lines().count(), 1);
}

/// `whatif` against the direct route: the same edits made to the files by hand, then
/// `evaluate`. A rack removed, a PDU re-fed and a server set draining: every cell's risk and
/// safety after the change equal `evaluate` on the edited files, cell by cell; the tables
/// are typed Parquet; a bad change names its edit and writes nothing.
#[test]
fn whatif_equals_evaluate_on_the_edited_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let zone = path("zone");
    let (code, out) = cellplacer(&[
        "generate", "--preset", "small", "--seed", "8", "--cells", "300", "--out", &zone,
    ]);
    assert_eq!(code, 0, "{out}");
    let placed = path("placed.csv");
    let cells = path("zone/cells.csv");
    let (code, out) = cellplacer(&["place", &zone, "--cells", &cells, "--out", &placed]);
    assert_eq!(code, 0, "{out}");
    let (rack, pdu, ups, server) = (
        "dc1-h1-row01-rk02",
        "dc1-h1-row02-pduA",
        "dc1-h1-upsB",
        "dc1-h1-row03-rk01-s01",
    );
    let change = path("change.toml");
    fs::write(
        &change,
        format!(
            "remove = [\"{rack}\"]\n[[refeed]]\ntarget = \"{pdu}\"\nupstream = [\"{ups}\"]\n\
             [[server]]\nid = \"{server}\"\nstatus = \"draining\"\n"
        ),
    )
    .unwrap();
    let out_dir = path("wi");
    let (code, out) = cellplacer(&[
        "whatif",
        &zone,
        "--placements",
        &placed,
        "--change",
        &change,
        "--out-dir",
        &out_dir,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("repair plan after the change"), "{out}");

    // The same edits by hand.
    let edited = path("edited");
    fs::create_dir(&edited).unwrap();
    for entry in fs::read_dir(&zone).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(entry.path()).unwrap();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.contains(rack))
            .filter(|l| !(name == "power_feeds.csv" && l.ends_with(&format!(",{pdu}"))))
            .map(|l| {
                if name == "servers.csv" && l.starts_with(&format!("{server},")) {
                    l.replace(",active,", ",draining,")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        if name == "power_feeds.csv" {
            lines.push(format!("{ups},{pdu}"));
        }
        fs::write(Path::new(&edited).join(&name), lines.join("\n") + "\n").unwrap();
    }
    let direct = path("direct.csv");
    let (code, out) = cellplacer(&["evaluate", &edited, &placed, "--cells-out", &direct]);
    assert_eq!(code, 0, "{out}");

    let whatif =
        topology::ingest::read_table(Path::new(&format!("{out_dir}/cells.parquet"))).unwrap();
    let evaluated = topology::ingest::read_table(Path::new(&direct)).unwrap();
    let rows = |t: &topology::raw::RawTable, cols: [&str; 3]| -> BTreeMap<String, (f64, String)> {
        let c: Vec<usize> = cols.iter().map(|n| t.column_index(n).unwrap()).collect();
        t.rows
            .iter()
            .map(|r| {
                (
                    r[c[0]].clone().unwrap(),
                    (
                        r[c[1]].as_deref().unwrap().parse().unwrap(),
                        r[c[2]].clone().unwrap(),
                    ),
                )
            })
            .collect()
    };
    let got = rows(&whatif, ["cell_id", "risk_after", "safe_after"]);
    let want = rows(&evaluated, ["cell_id", "risk", "single_failure_safe"]);
    assert_eq!(got.len(), 300);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let mut changed = 0;
    let before = rows(&whatif, ["cell_id", "risk_before", "safe_before"]);
    for (id, (risk, safe)) in &got {
        let (r, s) = &want[id];
        assert!(close(*risk, *r), "{id}: what-if {risk} vs evaluate {r}");
        assert_eq!(safe, s, "{id}");
        changed += usize::from(!close(before[id].0, *risk));
    }
    assert!(changed > 0, "the change moves some risks");
    for table in ["elements", "pairs", "domains"] {
        assert!(Path::new(&format!("{out_dir}/{table}.parquet")).exists());
    }

    // A bad change: every problem named by edit, nothing written.
    fs::write(
        &change,
        "remove = [\"nowhere\"]\n[[server]]\nid = \"ghost\"\nstatus = \"failed\"\n",
    )
    .unwrap();
    let (code, out) = cellplacer(&[
        "whatif",
        &zone,
        "--placements",
        &placed,
        "--change",
        &change,
        "--out-dir",
        &path("bad"),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("change row 1 column remove"), "{out}");
    assert!(out.contains("change row 2 column server"), "{out}");
    assert!(!Path::new(&path("bad")).exists());
}
