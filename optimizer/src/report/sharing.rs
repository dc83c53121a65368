//! Pairs of cells sharing a quorum of servers, found by hashing every cell's quorum-sized
//! server subsets (in parallel) instead of comparing every pair.

use topology::Placement;

/// Pairs of cells that share at least `min(quorum(a), quorum(b))` servers: a request that
/// crashes one cell's servers could take the other's quorum with it.
///
/// Two such cells share some subset of `q` servers, `q` the smallest quorum; every cell's
/// `q`-subsets are hashed, grouped by hash, and candidate pairs are checked exactly.
pub fn quorum_sharing_pairs(placements: &[Placement]) -> Vec<(usize, usize)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    sharing_pairs(placements, BUCKET_KEYS, threads)
}

/// Subset keys per bucket: a bucket sorts in cache.
const BUCKET_KEYS: usize = 8192;

/// [`quorum_sharing_pairs`] with `bucket_keys` subset keys per bucket, on `threads` workers.
pub(super) fn sharing_pairs(
    placements: &[Placement],
    bucket_keys: usize,
    threads: usize,
) -> Vec<(usize, usize)> {
    let Some(q) = placements.iter().map(Placement::quorum).min() else {
        return Vec::new();
    };
    let threads = threads.clamp(1, placements.len().max(1));
    // Each cell's servers, sorted and distinct, in one flat array.
    let mut starts: Vec<usize> = Vec::with_capacity(placements.len() + 1);
    let mut servers: Vec<u32> = Vec::with_capacity(placements.iter().map(|p| p.nodes.len()).sum());
    let mut keys_total = 0usize;
    for p in placements {
        starts.push(servers.len());
        let from = servers.len();
        servers.extend_from_slice(&p.nodes);
        servers[from..].sort_unstable();
        let mut kept = from;
        for i in from..servers.len() {
            if i == from || servers[i] != servers[kept - 1] {
                servers[kept] = servers[i];
                kept += 1;
            }
        }
        servers.truncate(kept);
        keys_total += binomial(kept - from, q);
    }
    starts.push(servers.len());
    let nodes_of = |c: usize| &servers[starts[c]..starts[c + 1]];
    // One u64 per (subset, cell): the subset's hash in the high bits, the cell in the low
    // ones (never all ones: the cell bits count one past the last cell). A hash shortened
    // this way only adds candidates, which are checked exactly below.
    let bits = usize::BITS - placements.len().leading_zeros();
    let cell_mask = (1u64 << bits) - 1;
    let hash_of = |key: u64| key & !cell_mask;
    // Keys go to buckets by their top bits (uniform: a hash's), so equal hashes share a
    // bucket and a bucket fits in cache.
    let bucket_bits = (keys_total / bucket_keys.max(1)).max(1).ilog2().min(20);
    let buckets = 1usize << bucket_bits;
    let bucket = |key: u64| {
        if bucket_bits == 0 {
            0
        } else {
            (key >> (64 - bucket_bits)) as usize
        }
    };
    let (starts, servers) = (&starts, &servers);
    // The keys of some cells (a generic function, not a closure: it inlines).
    fn each_key(
        (starts, servers): (&[usize], &[u32]),
        cells: std::ops::Range<usize>,
        q: usize,
        cell_mask: u64,
        mut f: impl FnMut(u64),
    ) {
        for c in cells {
            let nodes = &servers[starts[c]..starts[c + 1]];
            for_each_subset_hash(nodes, q, |h| f((h & !cell_mask) | c as u64));
        }
    }
    // Every core takes a share of the cells and sorts its keys by bucket (counted first,
    // so that each key is held once).
    let share = placements.len().div_ceil(threads);
    let ranges: Vec<std::ops::Range<usize>> = (0..threads)
        .map(|t| (t * share).min(placements.len())..((t + 1) * share).min(placements.len()))
        .collect();
    let scattered: Vec<(Vec<u64>, Vec<usize>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|cells| {
                let cells = cells.clone();
                scope.spawn(move || {
                    let mut ends = vec![0usize; buckets];
                    let flat = (starts.as_slice(), servers.as_slice());
                    each_key(flat, cells.clone(), q, cell_mask, |key| {
                        ends[bucket(key)] += 1
                    });
                    let mut at = 0;
                    for e in &mut ends {
                        at += *e;
                        *e = at;
                    }
                    let mut next: Vec<usize> =
                        std::iter::once(0).chain(ends.iter().copied()).collect();
                    next.pop();
                    let mut keys = vec![0u64; at];
                    each_key(flat, cells, q, cell_mask, |key| {
                        let b = bucket(key);
                        keys[next[b]] = key;
                        next[b] += 1;
                    });
                    (keys, ends)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sharing worker panicked"))
            .collect()
    });
    // Every core takes a share of the buckets: the keys of a bucket from every share, then
    // the cells whose keys hash equal (an open-addressing table, in cache).
    let bucket_share = buckets.div_ceil(threads);
    let scattered = &scattered;
    let mut candidates: Vec<(u32, u32)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut found = Vec::new();
                    let mut keys: Vec<u64> = Vec::new();
                    let mut table: Vec<u64> = Vec::new();
                    for b in (t * bucket_share).min(buckets)..((t + 1) * bucket_share).min(buckets)
                    {
                        keys.clear();
                        for (part, ends) in scattered {
                            let from = if b == 0 { 0 } else { ends[b - 1] };
                            keys.extend_from_slice(&part[from..ends[b]]);
                        }
                        let size = (keys.len() * 2).next_power_of_two().max(2);
                        table.clear();
                        table.resize(size, u64::MAX);
                        let mask = size - 1;
                        for &key in &keys {
                            let mut i = (hash_of(key) >> bits) as usize & mask;
                            loop {
                                let slot = table[i];
                                if slot == u64::MAX {
                                    table[i] = key;
                                    break;
                                }
                                if hash_of(slot) == hash_of(key) {
                                    let (x, y) =
                                        ((slot & cell_mask) as u32, (key & cell_mask) as u32);
                                    if x != y {
                                        found.push((x.min(y), x.max(y)));
                                    }
                                }
                                i = (i + 1) & mask;
                            }
                        }
                    }
                    found
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("sharing worker panicked"))
            .collect()
    });
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .filter(|&(a, b)| {
            let (na, nb) = (nodes_of(a as usize), nodes_of(b as usize));
            let shared = na.iter().filter(|n| nb.binary_search(n).is_ok()).count();
            shared
                >= placements[a as usize]
                    .quorum()
                    .min(placements[b as usize].quorum())
        })
        .map(|(a, b)| (a as usize, b as usize))
        .collect()
}

fn binomial(n: usize, k: usize) -> usize {
    if k > n {
        return 0;
    }
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

/// Calls `f` with a hash of every `k`-subset of `items` (sorted, distinct), in
/// lexicographic order of positions. Deterministic; equal subsets hash equal.
fn for_each_subset_hash(items: &[u32], k: usize, mut f: impl FnMut(u64)) {
    let n = items.len();
    if k > n || k == 0 {
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &i in &idx {
            h = (h.rotate_left(5) ^ u64::from(items[i])).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        // Mixed down so that the high bits (the bucket and the key) depend on every id.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        f(h);
        // The next subset: the rightmost position that can move, moves; the rest follow.
        let Some(i) = (0..k).rev().find(|&i| idx[i] < n - k + i) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}
