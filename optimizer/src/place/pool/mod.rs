//! The candidate pool of one request: which servers a placement may choose from.
//!
//! Servers of one rack share every failure domain but their own, so a pool takes the
//! least-loaded eligible server(s) of each rack, and takes racks round-robin over rows
//! (least-loaded rack of every row first, the clients' rooms first within a round, then
//! the rest of the clients' datacenters, then other datacenters). That keeps the pool
//! small enough for an exact table (at most 63 terminals with the clients) while it still
//! spans every room, row and power domain near the clients. ARCHITECTURE.md explains why.
//!
//! Here: the request, the colour and the rack-by-rack draw (the reference). `index`:
//! the zone's layout; `cache`: the per-rack and per-row summaries kept between
//! requests; `rows`: the shortcut through them; `balance`: the balance rule.

use topology::model::ServerStatus;
use topology::Inventory;

mod balance;
mod cache;
mod index;
mod rows;

use super::occupancy::Occupancy;
use balance::mean_utilisation;
pub use balance::{over_balance_ceiling, within_balance};
pub use cache::PoolCache;
use cache::{balance_limits, room, room_limit, Room};
pub use index::PoolIndex;
use index::NO_COLOUR;
use rows::{draw_by_rows, Near};

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
    /// Servers near the clients left out for having no capacity left (for the
    /// explanation; so are the other `skipped_` counts).
    pub skipped_full: usize,
    /// Servers left out for another colour.
    pub skipped_colour: usize,
    /// Servers left out for not being active.
    pub skipped_status: usize,
    /// Servers near the clients at the balance ceiling, and that ceiling's utilisation
    /// (when the rule applied).
    pub skipped_balance: usize,
    /// The balance ceiling's utilisation, when the rule applied.
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
    /// The fewest candidates the balance rule may leave; below it the pool is drawn without the
    /// rule.
    pub min_choosable: usize,
    /// Members wanted (kept nodes count) in each room that holds a group of clients
    /// needing a quorum on their own side of a partition ([`quorum_rooms`]), before the
    /// round-robin over every row fills the rest; 0: none.
    pub near_quorum: usize,
}

/// The rooms (index) in which a partition of the room would leave clients needing a
/// quorum inside it: every room holding two distinct clients or more that are not
/// failed, or the room of the only one. A pool must offer a quorum there, or the cell
/// cannot keep one on the clients' side when the room is cut off.
fn quorum_rooms(index: &PoolIndex, inv: &Inventory, clients: &[u32]) -> Vec<u32> {
    let mut distinct: Vec<u32> = clients
        .iter()
        .copied()
        .filter(|&c| inv.servers[c as usize].status != ServerStatus::Failed)
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut rooms: Vec<u32> = distinct
        .iter()
        .map(|&c| index.rack_room[inv.servers[c as usize].rack as usize])
        .collect();
    rooms.sort_unstable();
    if distinct.len() == 1 {
        return rooms;
    }
    let mut out: Vec<u32> = Vec::new();
    for w in rooms.windows(2) {
        if w[0] == w[1] && out.last() != Some(&w[0]) {
            out.push(w[0]);
        }
    }
    out
}

/// Per room of [`quorum_rooms`], the candidates it still needs: `near_quorum` less the
/// kept nodes there.
pub(super) fn room_quotas(
    index: &PoolIndex,
    inv: &Inventory,
    req: &PoolRequest<'_>,
    near_quorum: usize,
) -> Vec<(u32, usize)> {
    if near_quorum == 0 {
        return Vec::new();
    }
    let room_of = |s: u32| index.rack_room[inv.servers[s as usize].rack as usize];
    quorum_rooms(index, inv, req.clients)
        .into_iter()
        .map(|r| {
            let kept = req.keep.iter().filter(|&&k| room_of(k) == r).count();
            (r, near_quorum.saturating_sub(kept))
        })
        .filter(|&(_, wanted)| wanted > 0)
        .collect()
}

/// What the pool must hold or avoid.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolRequest<'a> {
    /// The cell's clients (server indices).
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

impl PoolRequest<'_> {
    /// Whether server `s` may not be a candidate: excluded, or kept (already a member).
    fn excludes(&self, s: u32) -> bool {
        self.exclude.contains(&s) || self.keep.contains(&s)
    }
}

/// A well-mixed 64-bit hash of `x` under `salt` (splitmix64).
pub fn mix(x: u64, salt: u64) -> u64 {
    let mut z = x ^ salt.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Draws the pool of `req` under `limits` on the loads of `occ`.
pub fn draw(
    index: &PoolIndex,
    cache: &mut PoolCache,
    inv: &Inventory,
    occ: &Occupancy,
    req: &PoolRequest<'_>,
    limits: PoolLimits,
) -> Pool {
    draw_by(index, cache, inv, occ, req, limits, true)
}

/// [`draw`]; `by_rows: false` never takes the [`draw_by_rows`] shortcut (for tests).
fn draw_by(
    index: &PoolIndex,
    cache: &mut PoolCache,
    inv: &Inventory,
    occ: &Occupancy,
    req: &PoolRequest<'_>,
    limits: PoolLimits,
    by_rows: bool,
) -> Pool {
    if let Some(balance) = limits.balance {
        let mean = mean_utilisation(index, occ);
        let ceiling = Some((mean, balance * mean));
        let pool = draw_with(index, cache, inv, occ, req, limits, ceiling, by_rows);
        if pool.choosable.count_ones() as usize >= limits.min_choosable {
            return pool;
        }
    }
    draw_with(index, cache, inv, occ, req, limits, None, by_rows)
}

#[allow(clippy::too_many_arguments)] // one request's parts
fn draw_with(
    index: &PoolIndex,
    cache: &mut PoolCache,
    inv: &Inventory,
    occ: &Occupancy,
    req: &PoolRequest<'_>,
    limits: PoolLimits,
    ceiling: Option<(f64, f64)>,
    by_rows: bool,
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

    // The colour: that of the kept nodes, else the least utilised one near the clients
    // (load over capacity of its active hosts; ties by name), else none when servers
    // have no colours. Utilisation, not free capacity: a colour with more hosts would
    // otherwise fill its servers further than the others.
    let colour: u32 = match (req.keep.first(), req.colour) {
        (Some(&k), _) => index.colour[k as usize],
        (None, Some(c)) => c,
        (None, None) => {
            let mut seen = vec![(0u64, 0u64); index.colours.len()];
            let all_dcs: Vec<u32>;
            let near_dcs = if client_dcs.is_empty() {
                all_dcs = (0..index.dc_hosts.len() as u32).collect();
                &all_dcs
            } else {
                &client_dcs
            };
            let loads = cache.colour_loads(index, occ);
            for &d in near_dcs {
                for (c, (load, capacity)) in seen.iter_mut().enumerate() {
                    *load += loads[d as usize][c];
                    *capacity += index.dc_capacity[d as usize][c];
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
    let slot = if colour == NO_COLOUR {
        index.colours.len()
    } else {
        colour as usize
    };

    let mut pool = Pool {
        colour: (colour != NO_COLOUR).then(|| index.colours[colour as usize].clone()),
        balance_ceiling: ceiling.map(|c| c.1),
        ..Pool::default()
    };
    // Hosts near the clients (in their datacenters) left out by status or colour.
    for &d in &client_dcs {
        pool.skipped_status += index.dc_inactive[d as usize];
        pool.skipped_colour += index.dc_hosts[d as usize]
            .iter()
            .enumerate()
            .filter(|&(c, _)| c != slot)
            .map(|(_, hosts)| hosts.len())
            .sum::<usize>();
    }
    let near = Near {
        rooms: &client_rooms,
        dcs: &client_dcs,
    };
    if by_rows && limits.per_rack == 1 {
        if let Some(fast) = draw_by_rows(index, cache, inv, occ, req, limits, ceiling, slot, near) {
            pool.skipped_full += fast.skipped_full;
            pool.skipped_balance += fast.skipped_balance;
            for &k in req.keep {
                pool.fixed |= 1 << pool.members.len();
                pool.members.push(k);
            }
            for s in fast.servers {
                pool.choosable |= 1 << pool.members.len();
                pool.members.push(s);
            }
            return pool;
        }
    }
    // Per rack: its eligible servers, least utilised first (ties by the request's hash),
    // kept in one flat list. This reads every host of the colour: the reference the row
    // shortcut is tested against, and the way for several servers per rack or a pool
    // that the first rank of the rows does not fill.
    struct RackChoice {
        rack: u32,
        room: u32,
        tier: u8,
        row: u32,
        /// `chosen[from..from + len]`.
        from: u32,
        len: u32,
        /// Utilisation of the best server, as ordered bits (non-negative floats).
        best: u64,
        tie: u64,
    }
    let limits_by_capacity = balance_limits(index, slot, ceiling);
    let colour_racks = &index.colour_racks[slot];
    let mut racks: Vec<RackChoice> = Vec::with_capacity(colour_racks.len());
    let mut chosen: Vec<u32> = Vec::new();
    let mut eligible: Vec<(u64, u64, u32)> = Vec::new();
    // Each row's racks are one run of `racks`: (row, start).
    let mut row_runs: Vec<(u32, u32)> = Vec::new();
    for cr in colour_racks {
        let tier = near.tier(cr.room, cr.dc);
        let near = usize::from(tier < 2);
        eligible.clear();
        for host in &index.colour_hosts[slot][cr.hosts.start as usize..cr.hosts.end as usize] {
            let s = host.server;
            if req.excludes(s) {
                continue;
            }
            let limit = room_limit(index, slot, &limits_by_capacity, host.capacity);
            match room(occ, host, limit) {
                Room::Full => pool.skipped_full += near,
                Room::AtLimit => pool.skipped_balance += near,
                Room::Free(utilisation) => {
                    eligible.push((utilisation, mix(u64::from(s), req.salt), s));
                }
            }
        }
        if eligible.is_empty() {
            continue;
        }
        eligible.sort_unstable();
        eligible.truncate(limits.per_rack);
        if row_runs.last().is_none_or(|r| r.0 != cr.row) {
            row_runs.push((cr.row, racks.len() as u32));
        }
        racks.push(RackChoice {
            rack: cr.rack,
            room: cr.room,
            tier,
            row: cr.row,
            from: chosen.len() as u32,
            len: eligible.len() as u32,
            best: eligible[0].0,
            tie: mix(u64::from(cr.rack) | 1 << 40, req.salt),
        });
        chosen.extend(eligible.iter().map(|e| e.2));
    }
    // Order: round-robin over rooms, then over the rows of a room, then over the racks
    // of a row, least utilised first at each level, so that a pool of any size spreads
    // over as many rooms, rows and racks as it can: racks by (rank in their row, rank of
    // the row in its room, tier, utilisation, hash). The first rank of every row is
    // usually enough to fill the pool; the others are ranked only when it is not.
    let run_end = |k: usize| row_runs.get(k + 1).map_or(racks.len(), |r| r.1 as usize);
    let rack_key = |r: &RackChoice| (r.best, r.tie, r.rack);
    let mut row_best: Vec<(u64, u32)> = vec![(0, 0); index.row_count];
    let mut firsts: Vec<usize> = Vec::with_capacity(row_runs.len());
    for (k, &(row, from)) in row_runs.iter().enumerate() {
        let first = (from as usize..run_end(k))
            .min_by_key(|&i| rack_key(&racks[i]))
            .expect("runs are not empty");
        row_best[row as usize] = (racks[first].best, row);
        firsts.push(first);
    }
    // Rows of a room by their best rack, then id.
    let mut row_rank = vec![0u32; index.row_count];
    let mut room_rows: Vec<(u64, u32)> = Vec::new();
    for rows in &index.room_rows {
        room_rows.clear();
        room_rows.extend(
            rows.iter()
                .filter(|&&row| row_runs.binary_search_by_key(&row, |r| r.0).is_ok())
                .map(|&row| row_best[row as usize]),
        );
        room_rows.sort_unstable();
        for (rank, &(_, row)) in room_rows.iter().enumerate() {
            row_rank[row as usize] = rank as u32;
        }
    }
    let rank_key = |rank: u32, i: usize| {
        let r = &racks[i];
        (
            rank,
            row_rank[r.row as usize],
            r.tier,
            r.best,
            r.tie,
            r.rack,
            i,
        )
    };
    let first_members: usize = firsts.iter().map(|&i| racks[i].len as usize).sum();
    // The first rank suffices when it fills the pool and every room's quota.
    let quotas = room_quotas(index, inv, req, limits.near_quorum);
    let first_in_room = |room: u32| -> usize {
        firsts
            .iter()
            .filter(|&&i| racks[i].room == room)
            .map(|&i| racks[i].len as usize)
            .sum()
    };
    let firsts_suffice = first_members >= limits.size
        && quotas
            .iter()
            .all(|&(room, wanted)| first_in_room(room) >= wanted);
    let mut ranked: Vec<(u32, u32, u8, u64, u64, u32, usize)> = if firsts_suffice {
        firsts.iter().map(|&i| rank_key(0, i)).collect()
    } else {
        let mut all = Vec::with_capacity(racks.len());
        for (k, &(_, from)) in row_runs.iter().enumerate() {
            let mut run: Vec<usize> = (from as usize..run_end(k)).collect();
            run.sort_unstable_by_key(|&i| rack_key(&racks[i]));
            all.extend(
                run.iter()
                    .enumerate()
                    .map(|(rank, &i)| rank_key(rank as u32, i)),
            );
        }
        all
    };
    // Each rack gives at least one member: without quotas only the first `limits.size`
    // racks count.
    let first = limits.size.min(ranked.len());
    if quotas.is_empty() && first > 0 && first < ranked.len() {
        ranked.select_nth_unstable(first - 1);
        ranked.truncate(first);
    }
    ranked.sort_unstable();

    for &k in req.keep {
        pool.fixed |= 1 << pool.members.len();
        pool.members.push(k);
    }
    // Members taken per ranked rack (a prefix of its servers): each room's quota first,
    // in rank order, then the rest in rank order; listed in rank order.
    let mut take = vec![0usize; ranked.len()];
    let mut taken = 0;
    for &(room, wanted) in &quotas {
        let mut left = wanted;
        for (k, &(.., i)) in ranked.iter().enumerate() {
            if left == 0 || taken == limits.size {
                break;
            }
            if racks[i].room == room {
                take[k] = (racks[i].len as usize).min(left).min(limits.size - taken);
                left -= take[k];
                taken += take[k];
            }
        }
    }
    for (k, &(.., i)) in ranked.iter().enumerate() {
        let more = (racks[i].len as usize - take[k]).min(limits.size - taken);
        take[k] += more;
        taken += more;
    }
    for (k, &(.., i)) in ranked.iter().enumerate() {
        let r = &racks[i];
        for &s in &chosen[r.from as usize..r.from as usize + take[k]] {
            pool.choosable |= 1 << pool.members.len();
            pool.members.push(s);
        }
    }
    pool
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use topology::model::ServerStatus;

    use super::*;

    /// Pools drawn with a cache kept across changes of the occupancy (inserts, removals,
    /// moves, a clone) equal pools drawn afresh and pools drawn rack by rack without the
    /// row shortcut, for new cells and repairs, with and without the balance rule, one or
    /// several per rack.
    #[test]
    fn a_kept_cache_draws_what_a_fresh_one_draws() {
        // Two hosts of each colour per rack, then one (a repair's excluded server can be
        // its rack's only host of the colour).
        for colors in [2, 4] {
            let params = fixtures::ZoneParams {
                colors,
                ..fixtures::ZoneParams::small(3)
            };
            kept_cache_draws_what_a_fresh_one_draws(&params);
        }
    }

    fn kept_cache_draws_what_a_fresh_one_draws(params: &fixtures::ZoneParams) {
        let raw = fixtures::generate(params);
        let (inv, _) = Inventory::from_raw(&raw).expect("generated zone is valid");
        let index = PoolIndex::new(&inv);
        let hosts: Vec<u32> = (0..inv.servers.len() as u32)
            .filter(|&s| {
                let srv = &inv.servers[s as usize];
                srv.status == ServerStatus::Active && srv.capacity > 0
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut occ = Occupancy::new(&inv);
        let mut kept = PoolCache::default();
        let mut slots = Vec::new();
        for step in 0..600 {
            // Change the occupancy: mostly inserts, some removals and moves.
            let pick = |rng: &mut ChaCha8Rng| {
                let mut nodes: Vec<u32> = Vec::new();
                while nodes.len() < 7 {
                    let s = hosts[rng.random_range(0..hosts.len())];
                    if !nodes.contains(&s) {
                        nodes.push(s);
                    }
                }
                nodes
            };
            match rng.random_range(0..10) {
                0 if !slots.is_empty() => {
                    let at = rng.random_range(0..slots.len());
                    occ.remove(slots.swap_remove(at));
                }
                1 if !slots.is_empty() => {
                    let slot = slots[rng.random_range(0..slots.len())];
                    let nodes = pick(&mut rng);
                    occ.update(slot, &nodes);
                }
                _ => {
                    let nodes = pick(&mut rng);
                    slots.push(occ.insert(&nodes));
                }
            }
            if step == 300 {
                // A clone is another occupancy: the cache must not take it for this one.
                occ = occ.clone();
            }
            // One client, or three with two in one rack (a room needing a quorum).
            let first = rng.random_range(0..hosts.len() - 1);
            let clients: Vec<u32> = if step % 4 == 1 {
                vec![
                    hosts[first],
                    hosts[first + 1],
                    hosts[rng.random_range(0..hosts.len())],
                ]
            } else {
                vec![hosts[first]]
            };
            // A repair: six nodes kept, the seventh excluded.
            let nodes = pick(&mut rng);
            let (keep, exclude) = if step % 3 == 0 {
                (&nodes[..6], &nodes[6..])
            } else {
                (&[][..], &[][..])
            };
            let req = PoolRequest {
                clients: &clients,
                keep,
                exclude,
                salt: step,
                colour: None,
            };
            let limits = PoolLimits {
                size: 12 + (step as usize % 3) * 4,
                per_rack: 1 + usize::from(step % 7 == 0),
                balance: (step % 5 != 0).then_some(1.04),
                min_choosable: 12,
                near_quorum: if step % 2 == 0 { 5 } else { 0 },
            };
            let with_kept = draw(&index, &mut kept, &inv, &occ, &req, limits);
            let fresh = draw(&index, &mut PoolCache::default(), &inv, &occ, &req, limits);
            let racks = draw_by(
                &index,
                &mut PoolCache::default(),
                &inv,
                &occ,
                &req,
                limits,
                false,
            );
            assert_eq!(
                (
                    &fresh.members,
                    fresh.choosable,
                    fresh.skipped_full,
                    fresh.skipped_balance
                ),
                (
                    &racks.members,
                    racks.choosable,
                    racks.skipped_full,
                    racks.skipped_balance
                ),
                "step {step}: rows and racks differ"
            );
            assert_eq!(
                (
                    with_kept.members,
                    with_kept.choosable,
                    with_kept.skipped_full,
                    with_kept.skipped_balance
                ),
                (
                    fresh.members,
                    fresh.choosable,
                    fresh.skipped_full,
                    fresh.skipped_balance
                ),
                "step {step}"
            );
        }
    }
}
