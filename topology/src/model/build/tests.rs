//! Tests of validating ingest: the defaults by element kind, given values kept, and bad
//! repair hours named.

use super::*;
use crate::failure::{pair_weight, FailureModel};

/// One rack, one server on one ToR, a small power chain, a risk group: every element
/// kind, with `afr` and `repair_hours` given as `given(kind)` says.
fn zone(given: &dyn Fn(&str) -> [&'static str; 2]) -> RawInventory {
    let mut raw = RawInventory::default();
    let mut t = RawTable::for_table("racks");
    let [a, h] = given("rack");
    t.push(&["r1", "dc1", "h1", "w1", a, h]);
    raw.insert("racks", t);
    let mut t = RawTable::for_table("servers");
    let [a, h] = given("server");
    t.push(&["s1", "r1", "active", "4", "", a, h]);
    raw.insert("servers", t);
    let mut t = RawTable::for_table("network_devices");
    for (id, kind) in [
        ("tor1", "tor"),
        ("agg1", "aggregation"),
        ("spine1", "spine"),
        ("border1", "border"),
        ("fw1", "firewall"),
    ] {
        let [a, h] = given(kind);
        t.push(&[id, kind, "dc1", a, h]);
    }
    raw.insert("network_devices", t);
    let mut t = RawTable::for_table("network_links");
    let [a, h] = given("link");
    t.push(&["l1", "s1", "tor1", "g1", a, h]);
    t.push(&["l2", "tor1", "agg1", "g2", "", ""]);
    raw.insert("network_links", t);
    let mut t = RawTable::for_table("risk_groups");
    let [a, h] = given("risk_group");
    t.push(&["g1", a, h]);
    raw.insert("risk_groups", t);
    let mut t = RawTable::for_table("power_devices");
    for kind in [
        "utility",
        "generator",
        "switchgear",
        "ups",
        "pdu",
        "battery",
    ] {
        let [a, h] = given(kind);
        t.push(&[kind, kind, "dc1", a, h]);
    }
    raw.insert("power_devices", t);
    let mut t = RawTable::for_table("power_feeds");
    t.push(&["pdu", "r1"]);
    raw.insert("power_feeds", t);
    raw
}

/// The contract's "Defaults by kind" table, row by row; `g2` is named by a link only.
#[test]
fn defaults_by_kind() {
    let (inv, _) = Inventory::from_raw(&zone(&|_| ["", ""])).unwrap();
    let want = [
        ("r1", 0.005, 24.0),
        ("s1", 0.03, 48.0),
        ("tor1", 0.02, 4.0),
        ("agg1", 0.01, 4.0),
        ("spine1", 0.005, 4.0),
        ("border1", 0.005, 4.0),
        ("fw1", 0.01, 4.0),
        ("l1", 0.005, 12.0),
        ("g1", 0.02, 24.0),
        ("g2", 0.02, 24.0),
        ("utility", 0.3, 4.0),
        ("generator", 0.05, 24.0),
        ("switchgear", 0.005, 72.0),
        ("ups", 0.01, 8.0),
        ("pdu", 0.005, 8.0),
        ("battery", 0.01, 8.0),
    ];
    for (id, afr, hours) in want {
        let e = &inv.elements[inv.element(id).unwrap().index()];
        assert_eq!((e.afr, e.repair_hours), (afr, hours), "{id}");
    }
}

#[test]
fn given_values_are_kept_and_weigh_pairs() {
    let (inv, _) = Inventory::from_raw(&zone(&|_| ["0.25", "6.5"])).unwrap();
    assert!(inv
        .elements
        .iter()
        .filter(|e| e.id != "g2" && e.id != "l2")
        .all(|e| (e.afr, e.repair_hours) == (0.25, 6.5)));
    let model = FailureModel::new(&inv);
    let (s, r) = (inv.element("s1").unwrap(), inv.element("r1").unwrap());
    assert_eq!(model.repair_hours(s), 6.5);
    // afr(e)·afr(f)·(repair_hours(e) + repair_hours(f)) / 8760.
    assert_eq!(model.pair_weight(s, r), 0.25 * 0.25 * 13.0 / 8760.0);
    assert_eq!(
        pair_weight(0.01, 4.0, 0.02, 24.0),
        0.01 * 0.02 * 28.0 / 8760.0
    );
}

/// Bad `repair_hours` (zero, negative, not a number, infinite) are named errors on
/// every table that has the column, all collected at once.
#[test]
fn bad_repair_hours_are_named() {
    let bad = |kind: &str| -> [&'static str; 2] {
        match kind {
            "rack" => ["", "0"],
            "server" => ["", "-2"],
            "tor" => ["", "soon"],
            "link" => ["", "inf"],
            "risk_group" => ["", "-0.5"],
            "pdu" => ["", "NaN"],
            _ => ["", ""],
        }
    };
    let Err(Error::Invalid(report)) = Inventory::from_raw(&zone(&bad)) else {
        panic!("bad repair_hours must not load");
    };
    let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [
            "network_devices row 1 column repair_hours: 'soon' is not a number",
            "network_links row 1 column repair_hours: repair_hours inf is not a finite number",
            "power_devices row 5 column repair_hours: repair_hours NaN is not a finite number",
            "racks row 1 column repair_hours: repair_hours 0 is not above 0",
            "risk_groups row 1 column repair_hours: repair_hours -0.5 is not above 0",
            "servers row 1 column repair_hours: repair_hours -2 is not above 0",
        ]
    );
}
