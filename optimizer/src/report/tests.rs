//! Tests of the fleet report: quorum-sharing pairs against the pairwise definition, and
//! which uplink groups partition a room.

use super::sharing::sharing_pairs;
use super::*;

/// Many cells on few servers (so that many pairs share a quorum), cut into many small
/// buckets over several threads: the pairs the definition gives, each once, in order.
#[test]
fn sharing_pairs_match_the_pairwise_definition_across_buckets_and_threads() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let placements: Vec<Placement> = (0..1500)
        .map(|i| {
            let size = rng.random_range(3..=7);
            let mut nodes: Vec<u32> = Vec::new();
            while nodes.len() < size {
                let s = rng.random_range(0..24);
                if !nodes.contains(&s) {
                    nodes.push(s);
                }
            }
            Placement {
                cell_id: format!("c{i}"),
                clients: Vec::new(),
                nodes,
            }
        })
        .collect();
    let mut naive = Vec::new();
    for a in 0..placements.len() {
        for b in a + 1..placements.len() {
            let (pa, pb) = (&placements[a], &placements[b]);
            let shared = pa.nodes.iter().filter(|x| pb.nodes.contains(x)).count();
            if shared >= pa.quorum().min(pb.quorum()) {
                naive.push((a, b));
            }
        }
    }
    assert!(naive.len() > 1000, "too few pairs to test: {}", naive.len());
    for (bucket_keys, threads) in [(usize::MAX, 1), (64, 1), (64, 3), (1, 2), (1000, 7)] {
        let got = sharing_pairs(&placements, bucket_keys, threads);
        assert_eq!(got, naive, "bucket_keys {bucket_keys} threads {threads}");
    }
    assert_eq!(quorum_sharing_pairs(&placements), naive);
}

fn inventory(params: &fixtures::ZoneParams) -> Inventory {
    let raw = fixtures::generate(params);
    Inventory::from_raw(&raw)
        .expect("generated zone is valid")
        .0
}

/// The generator's room partition groups are found, one per room, and nothing else
/// partitions a room: not the conduits, not a rack's tray (a rack is not a room).
#[test]
fn room_partitions_are_the_rooms_uplink_groups() {
    let params = fixtures::ZoneParams::small(3).with_partitions();
    let inv = inventory(&params);
    let found = room_partitions(&inv);
    assert_eq!(found.len(), params.total_rooms());
    for p in &found {
        let group = &inv.elements[p.group.index()];
        assert_eq!(group.id, format!("partition-{}", p.room));
    }
    let plain = inventory(&fixtures::ZoneParams::small(3));
    assert_eq!(room_partitions(&plain), Vec::new());
    let tiny = topology::ingest::read_dir(&fixtures::tiny_dir()).expect("tiny reads");
    let tiny = Inventory::from_raw(&tiny).expect("tiny is valid").0;
    assert_eq!(room_partitions(&tiny), Vec::new());
}
