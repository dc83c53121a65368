//! `generate` and `place`: zones round-trip through files, placements agree with
//! `evaluate`, and a workload that does not fit exits 3 naming why.

use super::*;

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
