//! `whatif`: an edit judged as `evaluate` judges the edited files.

use super::*;

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
