//! `rebalance`: a drain move by move within the rules, and a repair after servers left
//! the inventory.

use super::*;

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
