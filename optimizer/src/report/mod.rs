//! The fleet report of a placement set: safety, blast radius, risk distribution, load and
//! quorum sharing. Pure: takes the model and placements, returns numbers.

use rustc_hash::FxHashMap;
use topology::{ElementId, FailureModel, Inventory, Placement};

use crate::risk::RiskEvaluator;

#[derive(Debug, Clone, Copy)]
pub struct ReportOptions {
    /// Compute every cell's exact risk (single and double failures). Blast radius and
    /// safety need only single failures and are always computed.
    pub risk: bool,
    /// How many elements to list by blast radius, and how many riskiest cells.
    pub top: usize,
    /// Worker threads (each with its own evaluator); 0 means available parallelism.
    pub threads: usize,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            risk: true,
            top: 10,
            threads: 0,
        }
    }
}

/// The risk distribution of the cells that are not down (a down cell's risk is 1 and it
/// is counted in [`FleetReport::down_cells`], not summed), in outages per year.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskSummary {
    /// Cells the distribution is over (not down).
    pub cells: usize,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Sum over those cells: expected cell outages per year in the fleet.
    pub total: f64,
    /// The riskiest cells that are not down, riskiest first: (cell index, risk).
    pub riskiest: Vec<(usize, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadSummary {
    /// Servers that may host nodes (capacity > 0).
    pub hosts: usize,
    pub nodes_placed: u64,
    pub capacity: u64,
    pub max_load: u32,
    /// Mean load over hosts.
    pub mean_load: f64,
    /// Highest load / capacity over hosts.
    pub max_utilisation: f64,
    /// Servers holding more nodes than their capacity: (server index, load, capacity).
    pub over_capacity: Vec<(u32, u32, u32)>,
    /// Nodes on servers that are not active (draining or failed) or not hosts.
    pub nodes_on_unusable_servers: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FleetReport {
    pub cells: usize,
    /// Cells with an outage with nothing failed (down: risk 1).
    pub down_cells: Vec<usize>,
    /// Cells that some single element failure puts out (including down cells).
    pub unsafe_cells: Vec<usize>,
    /// Elements by blast radius, largest first, then likeliest first (zeros included):
    /// (element, cells out when it alone fails).
    pub top_blast_radius: Vec<(ElementId, u32)>,
    /// Blast radius of every element (index = element id).
    pub blast_radius: Vec<u32>,
    /// Every cell's outcome, in placement order.
    pub per_cell: Vec<CellOutcome>,
    pub risk: Option<RiskSummary>,
    pub load: LoadSummary,
    /// Pairs of cells (a < b) sharing at least a quorum of one of them.
    pub quorum_sharing_pairs: Vec<(usize, usize)>,
}

/// One cell's risk and single-failure standing.
#[derive(Debug, Clone, PartialEq)]
pub struct CellOutcome {
    /// Outages per year; 1 for a down cell; NaN when the risk was not computed.
    pub risk: f64,
    /// The singles' and the pairs' parts of `risk` (0 for a down cell; NaN when not
    /// computed).
    pub single_risk: f64,
    pub pair_risk: f64,
    /// Out with nothing failed.
    pub down: bool,
    /// Elements whose failure alone gives an outage (empty for a down cell, which every
    /// failure leaves out but those that restore it).
    pub breaking: Vec<ElementId>,
}

impl CellOutcome {
    pub fn single_failure_safe(&self) -> bool {
        !self.down && self.breaking.is_empty()
    }
}

/// Every cell's exact risk and single-failure safety (risk 1 for a down cell), on
/// `threads` workers (0: available parallelism).
pub fn cell_risks(
    model: &FailureModel,
    placements: &[Placement],
    threads: usize,
) -> Vec<(f64, bool)> {
    let options = ReportOptions {
        risk: true,
        top: 0,
        threads,
    };
    evaluate_cells(model, placements, &options, &[])
        .iter()
        .map(|r| (r.risk, !r.unsafe_))
        .collect()
}

/// Per-cell results gathered by the workers.
struct CellResult {
    down: bool,
    unsafe_: bool,
    /// As [`crate::risk::SingleFailures::elements`].
    elements: Vec<ElementId>,
    risk: f64,
    single_risk: f64,
    pair_risk: f64,
}

fn evaluate_cells(
    model: &FailureModel,
    placements: &[Placement],
    options: &ReportOptions,
    known_safe: &[bool],
) -> Vec<CellResult> {
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let chunk = placements.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = placements
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                let known = known_safe.get(n * chunk..).unwrap_or(&[]);
                scope.spawn(move || {
                    let mut eval = RiskEvaluator::new(model);
                    part.iter()
                        .enumerate()
                        .map(|(i, p)| {
                            if !options.risk && known.get(i) == Some(&true) {
                                // Safe: no element alone breaks it, and it is not down.
                                return CellResult {
                                    down: false,
                                    unsafe_: false,
                                    elements: Vec::new(),
                                    risk: f64::NAN,
                                    single_risk: f64::NAN,
                                    pair_risk: f64::NAN,
                                };
                            }
                            // The exact risk carries the single-failure view too.
                            let (singles, risk) = if options.risk {
                                let r = eval.evaluate(&p.clients, &p.nodes);
                                (r.singles, [r.risk, r.single_risk, r.pair_risk])
                            } else {
                                let singles = eval.single_failures(&p.clients, &p.nodes);
                                (singles, [f64::NAN; 3])
                            };
                            let unsafe_ = singles.down || !singles.elements.is_empty();
                            CellResult {
                                down: singles.down,
                                unsafe_,
                                elements: singles.elements,
                                risk: risk[0],
                                single_risk: risk[1],
                                pair_risk: risk[2],
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("report worker panicked"))
            .collect()
    })
}

/// The single-failure view of a placement set.
#[derive(Debug, Clone, PartialEq)]
pub struct BlastRadius {
    /// Cells out when each element alone fails (index = element id).
    pub blast: Vec<u32>,
    /// Cells with an outage with nothing failed (down).
    pub down_cells: Vec<usize>,
    /// Cells that some single element failure puts out (including down cells).
    pub unsafe_cells: Vec<usize>,
}

/// Blast radius of every element and the unsafe cells, without risk, load or sharing:
/// the part of [`fleet_report`] that scales with the cells and the elements.
pub fn blast_radius(model: &FailureModel, placements: &[Placement], threads: usize) -> BlastRadius {
    let options = ReportOptions {
        risk: false,
        top: 0,
        threads,
    };
    tally(model, &evaluate_cells(model, placements, &options, &[]))
}

fn tally(model: &FailureModel, results: &[CellResult]) -> BlastRadius {
    let mut blast = vec![0u32; model.element_count()];
    let mut spared_by_down = vec![0u32; model.element_count()];
    let mut down_cells = Vec::new();
    let mut unsafe_cells = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if r.down {
            down_cells.push(i);
            for e in &r.elements {
                spared_by_down[e.index()] += 1;
            }
        } else {
            for e in &r.elements {
                blast[e.index()] += 1;
            }
        }
        if r.unsafe_ {
            unsafe_cells.push(i);
        }
    }
    // A down cell stays out under every element, except the ones it lists.
    let down = down_cells.len() as u32;
    for (b, spared) in blast.iter_mut().zip(&spared_by_down) {
        *b += down - spared;
    }
    BlastRadius {
        blast,
        down_cells,
        unsafe_cells,
    }
}

/// A pair of elements and the cells that lose quorum only when both fail (neither alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairBlast {
    /// Lower element id first.
    pub pair: (ElementId, ElementId),
    /// Cell indices, ascending.
    pub cells: Vec<usize>,
}

/// The `top` element pairs by the number of cells they put out while neither element does
/// alone (most cells first, then by pair), each with its cells; on `threads` workers
/// (0: available parallelism). Cells down with nothing failed are not counted.
pub fn pair_blast_radius(
    model: &FailureModel,
    placements: &[Placement],
    top: usize,
    threads: usize,
) -> Vec<PairBlast> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let chunk = placements.len().div_ceil(threads.max(1)).max(1);
    let mut by_pair: FxHashMap<(ElementId, ElementId), Vec<usize>> = FxHashMap::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = placements
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                scope.spawn(move || {
                    let mut eval = RiskEvaluator::new(model);
                    let mut found: Vec<((ElementId, ElementId), usize)> = Vec::new();
                    for (i, p) in part.iter().enumerate() {
                        let r = eval.evaluate(&p.clients, &p.nodes);
                        found.extend(r.pairs.into_iter().map(|pair| (pair, k * chunk + i)));
                    }
                    found
                })
            })
            .collect();
        // Chunks in order, cells in order within each: every list comes out ascending.
        for h in handles {
            for (pair, cell) in h.join().expect("pair blast worker panicked") {
                by_pair.entry(pair).or_default().push(cell);
            }
        }
    });
    let mut ranked: Vec<PairBlast> = by_pair
        .into_iter()
        .map(|(pair, mut cells)| {
            // A cell may reach one pair twice (as a special pair and through its halves).
            cells.dedup();
            PairBlast { pair, cells }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.cells
            .len()
            .cmp(&a.cells.len())
            .then_with(|| a.pair.cmp(&b.pair))
    });
    ranked.truncate(top);
    ranked
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn fleet_report(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    options: &ReportOptions,
) -> FleetReport {
    fleet_report_known(inv, model, placements, options, &[])
}

/// [`fleet_report`] when some cells' single-failure safety is already known on this
/// model (a ledger keeps it current): `known_safe[i]` true says cell `i` is safe, so no
/// element alone breaks it and it is not down, and a report without risk skips its
/// evaluation. The report is the same as [`fleet_report`]'s when the knowledge is right.
pub fn fleet_report_known(
    inv: &Inventory,
    model: &FailureModel,
    placements: &[Placement],
    options: &ReportOptions,
    known_safe: &[bool],
) -> FleetReport {
    let results = evaluate_cells(model, placements, options, known_safe);
    let BlastRadius {
        blast,
        down_cells,
        unsafe_cells,
    } = tally(model, &results);
    // Zeros included, so that a safe fleet still shows a full table; among equal radii the
    // likelier failure first.
    let mut ranked: Vec<(ElementId, u32)> = blast
        .iter()
        .enumerate()
        .map(|(e, &b)| (ElementId(e as u32), b))
        .collect();
    ranked.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(model.afr(b.0).total_cmp(&model.afr(a.0)))
            .then(a.0.cmp(&b.0))
    });
    ranked.truncate(options.top);

    let risk = if options.risk {
        let mut riskiest: Vec<(usize, f64)> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.down)
            .map(|(i, r)| (i, r.risk))
            .collect();
        let mut sorted: Vec<f64> = riskiest.iter().map(|&(_, r)| r).collect();
        sorted.sort_by(f64::total_cmp);
        riskiest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        riskiest.truncate(options.top);
        let total: f64 = sorted.iter().sum();
        let summary = RiskSummary {
            cells: sorted.len(),
            mean: if sorted.is_empty() {
                0.0
            } else {
                total / sorted.len() as f64
            },
            p50: percentile(&sorted, 0.5),
            p99: percentile(&sorted, 0.99),
            max: sorted.last().copied().unwrap_or(0.0),
            total,
            riskiest,
        };
        Some(summary)
    } else {
        None
    };
    let per_cell = results
        .into_iter()
        .map(|r| CellOutcome {
            risk: r.risk,
            single_risk: r.single_risk,
            pair_risk: r.pair_risk,
            down: r.down,
            breaking: if r.down { Vec::new() } else { r.elements },
        })
        .collect();

    let load = load_summary(inv, placements);
    let quorum_sharing_pairs = quorum_sharing_pairs(placements);
    FleetReport {
        cells: placements.len(),
        down_cells,
        unsafe_cells,
        top_blast_radius: ranked,
        blast_radius: blast,
        per_cell,
        risk,
        load,
        quorum_sharing_pairs,
    }
}

/// Node count per server.
pub fn server_loads(server_count: usize, placements: &[Placement]) -> Vec<u32> {
    let mut load = vec![0u32; server_count];
    for p in placements {
        for &n in &p.nodes {
            load[n as usize] += 1;
        }
    }
    load
}

pub fn load_summary(inv: &Inventory, placements: &[Placement]) -> LoadSummary {
    let load = server_loads(inv.servers.len(), placements);
    let mut s = LoadSummary {
        hosts: 0,
        nodes_placed: 0,
        capacity: 0,
        max_load: 0,
        mean_load: 0.0,
        max_utilisation: 0.0,
        over_capacity: Vec::new(),
        nodes_on_unusable_servers: 0,
    };
    for (i, server) in inv.servers.iter().enumerate() {
        let l = load[i];
        s.nodes_placed += u64::from(l);
        if server.capacity > 0 {
            s.hosts += 1;
            s.capacity += u64::from(server.capacity);
            s.max_utilisation = s
                .max_utilisation
                .max(f64::from(l) / f64::from(server.capacity));
        }
        s.max_load = s.max_load.max(l);
        if l > server.capacity {
            s.over_capacity.push((i as u32, l, server.capacity));
        }
        if l > 0 && (server.capacity == 0 || server.status != topology::model::ServerStatus::Active)
        {
            s.nodes_on_unusable_servers += u64::from(l);
        }
    }
    s.mean_load = if s.hosts == 0 {
        0.0
    } else {
        s.nodes_placed as f64 / s.hosts as f64
    };
    s
}

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

fn sharing_pairs(
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

/// A risk group that partitions a room: when it alone fails, the room's servers still
/// reach each other (as they did) and no server outside the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPartition {
    pub datacenter: String,
    pub room: String,
    pub group: ElementId,
}

/// Every room that some risk group partitions, with the first such group (in the
/// inventory's order), in the order of the rooms' first racks. Found from the contract's
/// semantics directly: one connectivity pass per risk group.
pub fn room_partitions(inv: &Inventory) -> Vec<RoomPartition> {
    use topology::failure::reference::state;
    // Rooms by (datacenter, room) label, in order of first appearance: their servers.
    let mut rooms: Vec<((&str, &str), Vec<usize>)> = Vec::new();
    for rack in &inv.racks {
        let key = (rack.datacenter.as_str(), rack.room.as_str());
        let at = match rooms.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                rooms.push((key, Vec::new()));
                rooms.len() - 1
            }
        };
        rooms[at].1.extend(rack.servers.iter().map(|&s| s as usize));
    }
    let mut room_of = vec![usize::MAX; inv.servers.len()];
    for (r, (_, servers)) in rooms.iter().enumerate() {
        for &s in servers {
            room_of[s] = r;
        }
    }
    // Per component: the one room of its up servers, or `None` when it spans several.
    let rooms_by_component = |st: &topology::failure::reference::State| {
        let mut of: FxHashMap<usize, Option<usize>> = FxHashMap::default();
        for s in (0..inv.servers.len()).filter(|&s| st.up[s]) {
            of.entry(st.component[s])
                .and_modify(|r| {
                    if *r != Some(room_of[s]) {
                        *r = None;
                    }
                })
                .or_insert(Some(room_of[s]));
        }
        of
    };
    let base = state(inv, &[]);
    let base_rooms = rooms_by_component(&base);
    let up_servers = |servers: &[usize]| -> Vec<usize> {
        servers.iter().copied().filter(|&s| base.up[s]).collect()
    };
    // Something to cut: the room reached another room before.
    let reaches_out: Vec<bool> = rooms
        .iter()
        .map(|(_, servers)| {
            up_servers(servers)
                .iter()
                .any(|&s| base_rooms[&base.component[s]].is_none())
        })
        .collect();
    let mut found: Vec<Option<ElementId>> = vec![None; rooms.len()];
    for group in &inv.risk_groups {
        if found
            .iter()
            .zip(&reaches_out)
            .all(|(f, &out)| f.is_some() || !out)
        {
            break;
        }
        let cut = state(inv, &[group.element]);
        let cut_rooms = rooms_by_component(&cut);
        for (r, (_, servers)) in rooms.iter().enumerate() {
            if found[r].is_some() || !reaches_out[r] {
                continue;
            }
            // Every up server stays up, reaches only its room, and servers connected
            // before stay connected (the room is cut off, not split).
            let mut component_after: FxHashMap<usize, usize> = FxHashMap::default();
            let partitioned = up_servers(servers).iter().all(|&s| {
                cut.up[s]
                    && cut_rooms[&cut.component[s]] == Some(r)
                    && *component_after
                        .entry(base.component[s])
                        .or_insert(cut.component[s])
                        == cut.component[s]
            });
            if partitioned {
                found[r] = Some(group.element);
            }
        }
    }
    rooms
        .iter()
        .zip(found)
        .filter_map(|(((dc, room), _), group)| {
            group.map(|group| RoomPartition {
                datacenter: dc.to_string(),
                room: room.to_string(),
                group,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
