//! The candidate pool of one request: which servers a placement may choose from.
//!
//! Servers of one rack share every failure domain but their own, so a pool takes the
//! least-loaded eligible server(s) of each rack, and takes racks round-robin over rows
//! (least-loaded rack of every row first, the clients' rooms first within a round, then
//! the rest of the clients' datacenters, then other datacenters). That keeps the pool
//! small enough for an exact table (at most 63 terminals with the clients) while it still
//! spans every room, row and power domain near the clients. ARCHITECTURE.md explains why.

use topology::model::ServerStatus;
use topology::Inventory;

use super::occupancy::Occupancy;

/// What a request may choose from.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    /// Server indices; bit `i` of a mask is `members[i]`.
    pub members: Vec<u32>,
    /// Members that must be in the cell (the nodes that stay in a replace or a move).
    pub fixed: u64,
    /// Members the search may add.
    pub choosable: u64,
    /// The cell's colour, when servers have colours.
    pub colour: Option<String>,
    /// Servers left out near the clients, by rule (for the explanation).
    pub skipped_full: usize,
    pub skipped_colour: usize,
    pub skipped_status: usize,
    /// Servers near the clients at the balance ceiling, and that ceiling's utilisation
    /// (when the rule applied).
    pub skipped_balance: usize,
    pub balance_ceiling: Option<f64>,
}

/// How a pool is drawn.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Most choosable members.
    pub size: usize,
    /// Most members from one rack.
    pub per_rack: usize,
    /// A server may take a node only while its load stays within `balance` times the
    /// mean utilisation of the zone's active hosts (and at least `BALANCE_SLACK` nodes
    /// above the mean), unless that leaves fewer than `min_choosable` candidates.
    pub balance: Option<f64>,
    pub min_choosable: usize,
}

/// What the pool must hold or avoid.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolRequest<'a> {
    pub clients: &'a [u32],
    /// Nodes that stay (always members, fixed).
    pub keep: &'a [u32],
    /// Servers that may not be chosen (e.g. the node being replaced).
    pub exclude: &'a [u32],
    /// Breaks ties between equally loaded servers and racks, so that requests solved at
    /// the same time (a batch window, concurrent service requests) spread out instead of
    /// all taking the first. Derived from the request itself: deterministic.
    pub salt: u64,
    /// The colour for a new cell (no kept nodes), by index into
    /// [`PoolIndex::colour_count`]'s colours; `None`: the least utilised near the clients.
    pub colour: Option<u32>,
}

/// A well-mixed 64-bit hash of `x` under `salt` (splitmix64).
pub fn mix(x: u64, salt: u64) -> u64 {
    let mut z = x ^ salt.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The inventory's layout as the pool needs it, with names interned to ids whose order
/// is the names' order. Built once per [`super::Placer`].
#[derive(Debug, Clone)]
pub struct PoolIndex {
    /// Colour names, sorted; `colour[s]` indexes it (`NO_COLOUR` for none).
    colours: Vec<String>,
    colour: Vec<u32>,
    rack_dc: Vec<u32>,
    rack_room: Vec<u32>,
    rack_row: Vec<u32>,
    /// Per rack: its servers that can host nodes (capacity above 0).
    hosts: Vec<Vec<u32>>,
    /// Per datacenter: its racks.
    dc_racks: Vec<Vec<u32>>,
    /// Per row: its racks, in index order; per room: its rows, in id order.
    row_racks: Vec<Vec<u32>>,
    room_rows: Vec<Vec<u32>>,
    /// Node capacity of all active hosts.
    active_capacity: u64,
    /// Per rack: (colour, active hosts of that colour), colours in order, so that a
    /// request looks only at its colour's servers.
    by_colour: Vec<Vec<(u32, Vec<u32>)>>,
    /// Per rack: hosts that are not active (draining or failed).
    inactive: Vec<u32>,
}

const NO_COLOUR: u32 = u32::MAX;

/// Nodes a server may always hold above the mean load, so that the balance rule does not
/// scatter the first cells of an empty zone.
const BALANCE_SLACK: f64 = 5.0;

/// Ids in the order of the keys' names.
fn intern<K: Ord + Clone>(keys: &[K]) -> Vec<u32> {
    let mut sorted: Vec<&K> = keys.iter().collect();
    sorted.sort();
    sorted.dedup();
    keys.iter()
        .map(|k| sorted.binary_search(&k).expect("present") as u32)
        .collect()
}

impl PoolIndex {
    /// How many colours the zone has (0 when servers have none).
    pub fn colour_count(&self) -> u32 {
        self.colours.len() as u32
    }

    /// The name of colour `c` (`c < colour_count()`).
    pub fn colour_name(&self, c: u32) -> &str {
        &self.colours[c as usize]
    }

    pub fn new(inv: &Inventory) -> PoolIndex {
        let mut colours: Vec<String> = inv.servers.iter().filter_map(|s| s.color.clone()).collect();
        colours.sort();
        colours.dedup();
        let colour: Vec<u32> = inv
            .servers
            .iter()
            .map(|s| match &s.color {
                Some(c) => colours.binary_search(c).expect("interned") as u32,
                None => NO_COLOUR,
            })
            .collect();
        let dcs: Vec<&str> = inv.racks.iter().map(|r| r.datacenter.as_str()).collect();
        let rooms: Vec<(&str, &str)> = inv
            .racks
            .iter()
            .map(|r| (r.datacenter.as_str(), r.room.as_str()))
            .collect();
        let rows: Vec<(&str, &str, &str)> = inv
            .racks
            .iter()
            .map(|r| (r.datacenter.as_str(), r.room.as_str(), r.row.as_str()))
            .collect();
        let colour: Vec<u32> = colour;
        let mut by_colour: Vec<Vec<(u32, Vec<u32>)>> = vec![Vec::new(); inv.racks.len()];
        let mut inactive = vec![0u32; inv.racks.len()];
        for (r, rack) in inv.racks.iter().enumerate() {
            for &s in &rack.servers {
                let server = &inv.servers[s as usize];
                if server.capacity == 0 {
                    continue;
                }
                if server.status != ServerStatus::Active {
                    inactive[r] += 1;
                    continue;
                }
                let c = colour[s as usize];
                match by_colour[r].iter_mut().find(|(x, _)| *x == c) {
                    Some((_, list)) => list.push(s),
                    None => by_colour[r].push((c, vec![s])),
                }
            }
            by_colour[r].sort_unstable();
        }
        let rack_dc = intern(&dcs);
        let dc_count = rack_dc.iter().map(|&d| d as usize + 1).max().unwrap_or(0);
        let mut dc_racks = vec![Vec::new(); dc_count];
        for (r, &d) in rack_dc.iter().enumerate() {
            dc_racks[d as usize].push(r as u32);
        }
        let rack_room = intern(&rooms);
        let rack_row = intern(&rows);
        let row_count = rack_row.iter().map(|&r| r as usize + 1).max().unwrap_or(0);
        let room_count = rack_room.iter().map(|&r| r as usize + 1).max().unwrap_or(0);
        let mut row_racks = vec![Vec::new(); row_count];
        let mut room_rows = vec![Vec::new(); room_count];
        for (r, &row) in rack_row.iter().enumerate() {
            if row_racks[row as usize].is_empty() {
                room_rows[rack_room[r] as usize].push(row);
            }
            row_racks[row as usize].push(r as u32);
        }
        for rows in &mut room_rows {
            rows.sort_unstable();
        }
        PoolIndex {
            colours,
            colour,
            rack_dc,
            rack_room,
            rack_row,
            row_racks,
            room_rows,
            hosts: inv
                .racks
                .iter()
                .map(|r| {
                    r.servers
                        .iter()
                        .copied()
                        .filter(|&s| inv.servers[s as usize].capacity > 0)
                        .collect()
                })
                .collect(),
            dc_racks,
            active_capacity: inv
                .servers
                .iter()
                .filter(|s| s.status == ServerStatus::Active)
                .map(|s| u64::from(s.capacity))
                .sum(),
            by_colour,
            inactive,
        }
    }
}

fn utilisation(inv: &Inventory, occ: &Occupancy, s: u32) -> f64 {
    let cap = inv.servers[s as usize].capacity.max(1);
    f64::from(occ.load(s)) / f64::from(cap)
}

/// Whether server `s` may take one more node under the balance rule (`balance` times
/// the mean utilisation of active hosts, at least `BALANCE_SLACK` nodes above the mean).
pub fn within_balance(
    index: &PoolIndex,
    inv: &Inventory,
    occ: &Occupancy,
    s: u32,
    balance: f64,
) -> bool {
    let mean = occ.total_nodes() as f64 / index.active_capacity.max(1) as f64;
    fits(
        mean,
        balance * mean,
        occ.load(s),
        inv.servers[s as usize].capacity,
    )
}

fn fits(mean: f64, ceiling: f64, load: u32, capacity: u32) -> bool {
    f64::from(load) + 1.0 <= most_nodes(mean, ceiling, capacity)
}

/// The most nodes a server of `capacity` may hold under the balance rule, at mean
/// utilisation `mean` and ceiling utilisation `ceiling` (`balance` times the mean):
/// `floor(max(ceiling·capacity, mean·capacity + BALANCE_SLACK))`.
fn most_nodes(mean: f64, ceiling: f64, capacity: u32) -> f64 {
    let cap = f64::from(capacity);
    (ceiling * cap).max(mean * cap + BALANCE_SLACK).floor()
}

/// Active hosts whose load is above the balance ceiling (`balance` times the mean
/// utilisation of active hosts, at least `BALANCE_SLACK` nodes above the mean): the
/// servers the balance rule would refuse even a node it had already placed. Pure; for
/// monitoring (one pass over the servers).
pub fn over_balance_ceiling(inv: &Inventory, occ: &Occupancy, balance: f64) -> usize {
    let active = |s: &&topology::model::Server| s.status == ServerStatus::Active && s.capacity > 0;
    let capacity: u64 = inv
        .servers
        .iter()
        .filter(active)
        .map(|s| u64::from(s.capacity))
        .sum();
    let mean = occ.total_nodes() as f64 / capacity.max(1) as f64;
    inv.servers
        .iter()
        .enumerate()
        .filter(|(_, s)| active(s))
        .filter(|&(i, s)| {
            f64::from(occ.load(i as u32)) > most_nodes(mean, balance * mean, s.capacity)
        })
        .count()
}

pub fn draw(
    index: &PoolIndex,
    inv: &Inventory,
    occ: &Occupancy,
    req: &PoolRequest<'_>,
    limits: PoolLimits,
) -> Pool {
    if let Some(balance) = limits.balance {
        let mean = occ.total_nodes() as f64 / index.active_capacity.max(1) as f64;
        let pool = draw_with(index, inv, occ, req, limits, Some((mean, balance * mean)));
        if pool.choosable.count_ones() as usize >= limits.min_choosable {
            return pool;
        }
    }
    draw_with(index, inv, occ, req, limits, None)
}

fn draw_with(
    index: &PoolIndex,
    inv: &Inventory,
    occ: &Occupancy,
    req: &PoolRequest<'_>,
    limits: PoolLimits,
    ceiling: Option<(f64, f64)>,
) -> Pool {
    let rack_of = |s: u32| inv.servers[s as usize].rack as usize;
    let mut client_dcs: Vec<u32> = req
        .clients
        .iter()
        .map(|&c| index.rack_dc[rack_of(c)])
        .collect();
    client_dcs.sort_unstable();
    client_dcs.dedup();
    let client_rooms: Vec<u32> = req
        .clients
        .iter()
        .map(|&c| index.rack_room[rack_of(c)])
        .collect();
    let excluded = |s: u32| req.exclude.contains(&s) || req.keep.contains(&s);

    // The colour: that of the kept nodes, else the least utilised one near the clients
    // (load over capacity of its active hosts; ties by name), else none when servers
    // have no colours. Utilisation, not free capacity: a colour with more hosts would
    // otherwise fill its servers further than the others.
    let colour: u32 = match (req.keep.first(), req.colour) {
        (Some(&k), _) => index.colour[k as usize],
        (None, Some(c)) => c,
        (None, None) => {
            let mut seen = vec![(0u64, 0u64); index.colours.len()];
            let near_racks: Box<dyn Iterator<Item = u32>> = if client_dcs.is_empty() {
                Box::new(0..inv.racks.len() as u32)
            } else {
                Box::new(
                    client_dcs
                        .iter()
                        .flat_map(|&d| index.dc_racks[d as usize].iter().copied()),
                )
            };
            for r in near_racks {
                for &s in &index.hosts[r as usize] {
                    let server = &inv.servers[s as usize];
                    let c = index.colour[s as usize];
                    if c != NO_COLOUR && server.status == ServerStatus::Active {
                        let (load, capacity) = &mut seen[c as usize];
                        *load += u64::from(occ.load(s).min(server.capacity));
                        *capacity += u64::from(server.capacity);
                    }
                }
            }
            // Least load / capacity, compared exactly by cross-multiplication.
            let mut best: Option<(u32, u64, u64)> = None;
            for (c, &(load, capacity)) in seen.iter().enumerate() {
                if capacity == 0 || load >= capacity {
                    continue;
                }
                let lower = best.is_none_or(|(_, bl, bc)| {
                    u128::from(load) * u128::from(bc) < u128::from(bl) * u128::from(capacity)
                });
                if lower {
                    best = Some((c as u32, load, capacity));
                }
            }
            best.map_or(NO_COLOUR, |(c, _, _)| c)
        }
    };

    let mut pool = Pool {
        colour: (colour != NO_COLOUR).then(|| index.colours[colour as usize].clone()),
        balance_ceiling: ceiling.map(|c| c.1),
        ..Pool::default()
    };
    // Per rack: its eligible servers, least utilised first (ties by the request's hash),
    // kept in one flat list.
    struct RackChoice {
        rack: u32,
        tier: u8,
        row: u32,
        /// `chosen[from..from + len]`.
        from: u32,
        len: u32,
        /// Utilisation of the best server, as ordered bits (non-negative floats).
        best: u64,
        tie: u64,
    }
    let mut racks: Vec<RackChoice> = Vec::with_capacity(inv.racks.len());
    let mut chosen: Vec<u32> = Vec::new();
    let mut eligible: Vec<(u64, u64, u32)> = Vec::new();
    // Racks row by row, so that each row's racks are one run of `racks`.
    let mut row_runs: Vec<(u32, u32)> = Vec::with_capacity(index.row_racks.len());
    for (row, row_racks) in index.row_racks.iter().enumerate() {
        let run_start = racks.len() as u32;
        for &r in row_racks {
            let r = r as usize;
            let tier = if client_rooms.contains(&index.rack_room[r]) {
                0
            } else if client_dcs.binary_search(&index.rack_dc[r]).is_ok() {
                1
            } else {
                2
            };
            let near = tier < 2;
            eligible.clear();
            let mut of_colour: &[u32] = &[];
            let mut other_colours = 0;
            for (c, list) in &index.by_colour[r] {
                if *c == colour {
                    of_colour = list;
                } else {
                    other_colours += list.len();
                }
            }
            if near {
                pool.skipped_status += index.inactive[r] as usize;
                pool.skipped_colour += other_colours;
            }
            for &s in of_colour {
                if excluded(s) {
                    continue;
                }
                let server = &inv.servers[s as usize];
                if occ.load(s) >= server.capacity {
                    pool.skipped_full += usize::from(near);
                    continue;
                }
                if let Some((mean, u)) = ceiling {
                    if !fits(mean, u, occ.load(s), server.capacity) {
                        pool.skipped_balance += usize::from(near);
                        continue;
                    }
                }
                eligible.push((
                    utilisation(inv, occ, s).to_bits(),
                    mix(u64::from(s), req.salt),
                    s,
                ));
            }
            if eligible.is_empty() {
                continue;
            }
            if limits.per_rack == 1 {
                let best = *eligible.iter().min().expect("not empty");
                eligible.clear();
                eligible.push(best);
            } else {
                eligible.sort_unstable();
                eligible.truncate(limits.per_rack);
            }
            racks.push(RackChoice {
                rack: r as u32,
                tier,
                row: index.rack_row[r],
                from: chosen.len() as u32,
                len: eligible.len() as u32,
                best: eligible[0].0,
                tie: mix(r as u64 | 1 << 40, req.salt),
            });
            chosen.extend(eligible.iter().map(|e| e.2));
        }
        if racks.len() as u32 > run_start {
            row_runs.push((row as u32, run_start));
        }
    }
    // Order: round-robin over rooms, then over the rows of a room, then over the racks
    // of a row, least utilised first at each level, so that a pool of any size spreads
    // over as many rooms, rows and racks as it can. Each rack gives at least one member,
    // so only the first `limits.size` racks of that order are needed.
    let mut rack_rank = vec![0usize; racks.len()];
    let mut row_best: Vec<(u64, u32)> = vec![(0, 0); index.row_racks.len()];
    for (k, &(row, from)) in row_runs.iter().enumerate() {
        let to = row_runs.get(k + 1).map_or(racks.len(), |r| r.1 as usize);
        let run = &mut racks[from as usize..to];
        run.sort_unstable_by_key(|r| (r.best, r.tie, r.rack));
        for (rank, at) in (from as usize..to).enumerate() {
            rack_rank[at] = rank;
        }
        row_best[row as usize] = (racks[from as usize].best, row);
    }
    // Rows of a room by their best rack, then id.
    let mut row_rank = vec![0usize; index.row_racks.len()];
    let mut room_rows: Vec<(u64, u32)> = Vec::new();
    for rows in &index.room_rows {
        room_rows.clear();
        room_rows.extend(
            rows.iter()
                .map(|&row| row_best[row as usize])
                .filter(|&(_, row)| row_runs.binary_search_by_key(&row, |r| r.0).is_ok()),
        );
        room_rows.sort_unstable();
        for (rank, &(_, row)) in room_rows.iter().enumerate() {
            row_rank[row as usize] = rank;
        }
    }
    let mut ranked: Vec<(usize, usize, u8, u64, u64, usize)> = racks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                rack_rank[i],
                row_rank[r.row as usize],
                r.tier,
                r.best,
                r.tie,
                i,
            )
        })
        .collect();
    let first = limits.size.min(ranked.len());
    if first > 0 && first < ranked.len() {
        ranked.select_nth_unstable(first - 1);
    }
    ranked.truncate(first);
    ranked.sort_unstable();

    for &k in req.keep {
        pool.fixed |= 1 << pool.members.len();
        pool.members.push(k);
    }
    let mut taken = 0;
    'racks: for &(_, _, _, _, _, i) in &ranked {
        let r = &racks[i];
        for &s in &chosen[r.from as usize..(r.from + r.len) as usize] {
            if taken == limits.size {
                break 'racks;
            }
            pool.choosable |= 1 << pool.members.len();
            pool.members.push(s);
            taken += 1;
        }
    }
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_balance_ceiling_counts_hosts_above_the_rule() {
        let raw = fixtures::generate(&fixtures::ZoneParams::tiny(0));
        let (inv, _) = Inventory::from_raw(&raw).expect("generated zone is valid");
        let hosts: Vec<u32> = (0..inv.servers.len() as u32)
            .filter(|&s| {
                let srv = &inv.servers[s as usize];
                srv.status == ServerStatus::Active && srv.capacity >= 8
            })
            .collect();
        assert!(hosts.len() >= 2, "the tiny zone needs two active hosts");
        let mut occ = Occupancy::new(&inv);
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 0);
        // One node on each of two hosts: both within mean·cap + slack.
        occ.insert(&[hosts[0], hosts[1]]);
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 0);
        // Pile nodes onto the first host until it passes mean·cap + 5.
        let index = PoolIndex::new(&inv);
        let mut piled = 1;
        while within_balance(&index, &inv, &occ, hosts[0], 1.04) {
            occ.insert(&[hosts[0]]);
            piled += 1;
        }
        // At the ceiling (the rule refuses one more) but not above it.
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 0, "{piled} nodes");
        occ.insert(&[hosts[0]]);
        assert_eq!(over_balance_ceiling(&inv, &occ, 1.04), 1);
    }
}
