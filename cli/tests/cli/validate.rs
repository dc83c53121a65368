//! Validation: every kind of problem reported at once, with the table, row and column;
//! root causes only; I/O errors said once; CSV and Parquet read alike.

use super::*;

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
