//! The store on PostgreSQL: every change round-trips as through SQLite, a failed batch
//! changes nothing, and the database arbitrates replicas' commits.

use super::*;

fn cell(id: &str, nodes: &[&str], version: i64) -> CellRecord {
    CellRecord {
        cell_id: id.into(),
        clients: vec!["c1".into(), "c2".into()],
        nodes: nodes.iter().map(|s| s.to_string()).collect(),
        colour: Some("blue".into()),
        risk: 1.25e-7,
        single_failure_safe: true,
        inventory_version: 1,
        version,
        created_at: 10,
        updated_at: 20 + version,
    }
}

fn mv(cell: &str, n: i64, status: MoveStatus) -> MoveRecord {
    MoveRecord {
        cell_id: cell.into(),
        n,
        out_server: "a".into(),
        into_server: "z".into(),
        status,
        cell_version: 1,
        risk_before: 0.5,
        risk_after: 0.25,
        safe_after: true,
        created_at: 1,
        updated_at: 2,
    }
}

/// Every change round-trips through PostgreSQL as through SQLite; a failed batch changes
/// nothing; replicas' commits are arbitrated by the database.
#[tokio::test]
async fn the_postgres_store_round_trips_and_arbitrates_replicas() {
    let url = database("store_round_trip").await;
    let store = PgStore::open(&url).await.unwrap();
    assert!(store.load().await.unwrap().active_inventory.is_none());
    let inv = InventoryRecord {
        version: 1,
        source: "bundled:small:0".into(),
        path: None,
        loaded_at: 5,
    };
    let a = cell("a", &["s1", "s2", "s3"], 1);
    let b = cell("b", &["s3", "s4", "s5"], 1);
    store
        .apply(&[
            Change::ActivateInventory(inv.clone()),
            Change::PutCell(a.clone()),
            Change::PutCell(b.clone()),
            Change::PutMove(mv("a", 1, MoveStatus::Superseded)),
            Change::PutMove(mv("a", 2, MoveStatus::Proposed)),
        ])
        .await
        .unwrap();
    let a2 = cell("a", &["s9", "s2", "s3"], 2);
    let many: Vec<CellRecord> = (0..100)
        .map(|i| cell(&format!("m{i:03}"), &[&format!("x{i}"), "y"], 1))
        .collect();
    store
        .apply(&[
            Change::PutCell(a2.clone()),
            Change::DeleteCell("b".into()),
            Change::InsertCells(many.clone()),
            Change::SetRisks(vec![RiskUpdate {
                cell_id: "m007".into(),
                risk: 0.5,
                single_failure_safe: false,
                inventory_version: 2,
                version: 2,
                updated_at: 99,
            }]),
        ])
        .await
        .unwrap();
    // A cell's moves, newest first, as many as asked; none for a deleted cell.
    assert_eq!(
        store.moves("a", 10).await.unwrap(),
        vec![
            mv("a", 2, MoveStatus::Proposed),
            mv("a", 1, MoveStatus::Superseded)
        ]
    );
    assert_eq!(
        store.moves("a", 1).await.unwrap(),
        vec![mv("a", 2, MoveStatus::Proposed)]
    );
    assert_eq!(store.moves("b", 10).await.unwrap(), vec![]);
    // A failed batch changes nothing: the second cell repeats a node.
    let bad = cell("c", &["s1", "s1"], 1);
    assert!(store
        .apply(&[Change::DeleteCell("a".into()), Change::PutCell(bad)])
        .await
        .is_err());
    // Another replica, whose changes were checked against an older state (feed position
    // 1): the database refuses what breaks a rule against everything committed (a quorum
    // shared with a2, a server over its capacity) or touches a cell changed since, and
    // takes the rest.
    let other = PgStore::open(&url).await.unwrap();
    let head = other.feed_head().await.unwrap();
    assert!(head >= 2);
    store
        .apply(&[Change::Capacities(vec![
            ("cap1".into(), 1),
            ("q1".into(), 5),
        ])])
        .await
        .unwrap();
    store
        .apply_at(head, &[Change::PutCell(cell("first", &["cap1"], 1))])
        .await
        .unwrap();
    for (why, bad) in [
        ("a quorum shared with a2", cell("o3", &["s2", "s3"], 1)),
        ("cap1 over capacity", cell("o4", &["cap1", "q5"], 1)),
        ("m050 changed since", cell("m050", &["q9"], 2)),
    ] {
        let e = other
            .apply_at(1, &[Change::PutCell(bad)])
            .await
            .unwrap_err();
        assert!(matches!(e, store::Error::Stale), "{why}: {e}");
    }
    // Sharing one server with a2 (not a quorum), on servers with room: taken.
    let on_s2 = cell("o1", &["s2", "q1"], 1);
    let elsewhere = cell("o2", &["q2", "q3"], 1);
    other
        .apply_at(1, &[Change::PutCell(elsewhere.clone())])
        .await
        .unwrap();
    other
        .apply_at(1, &[Change::PutCell(on_s2.clone())])
        .await
        .unwrap();
    let feed = store.feed(head).await.unwrap().unwrap();
    assert_eq!(feed.cells, vec!["o1".to_owned(), "o2".to_owned()]);
    store
        .apply(&[Change::DeleteCell("first".into())])
        .await
        .unwrap();
    assert!(!feed.inventory);
    let feed = other.feed(0).await.unwrap().unwrap();
    assert!(feed.cells.contains(&"m007".to_owned()) && !feed.cells.contains(&"o2".to_owned()));
    let got = store
        .cells(&["o1".into(), "zz".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            (a2.clone(), Some(mv("a", 2, MoveStatus::Proposed))),
            (on_s2.clone(), None)
        ]
    );
    for s in [&store, &other] {
        s.apply(&[
            Change::DeleteCell("o1".into()),
            Change::DeleteCell("o2".into()),
        ])
        .await
        .unwrap();
    }
    other.close().await;
    store.close().await;

    let store = PgStore::open(&url).await.unwrap();
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.active_inventory, Some(inv));
    assert_eq!(snapshot.max_inventory_version, 1);
    let cells = all_cells(&store).await.unwrap();
    let mut want: Vec<(CellRecord, Option<MoveRecord>)> =
        vec![(a2, Some(mv("a", 2, MoveStatus::Proposed)))];
    for mut c in many {
        if c.cell_id == "m007" {
            c.risk = 0.5;
            c.single_failure_safe = false;
            c.inventory_version = 2;
            c.version = 2;
            c.updated_at = 99;
        }
        want.push((c, None));
    }
    assert_eq!(cells, want);
    let loads = store.server_loads().await.unwrap();
    assert_eq!(loads.iter().find(|(s, _)| s == "y").map(|l| l.1), Some(100));
    store.close().await;
}
