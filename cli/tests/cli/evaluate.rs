//! The fleet report and `evaluate`: figures equal to brute force on the tiny inventory,
//! the cells export as a snapshot, and risk unmoved by unrelated elements.

use super::*;

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
