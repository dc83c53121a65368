//! The pool's shortcut for one server per rack: the best rack of each row from the
//! cache's summaries, when the first rank of the rows fills the pool.

use topology::Inventory;

use super::cache::{room, room_limit, PoolCache, Room, NO_ROOM};
use super::index::{ColourRack, PoolIndex};
use super::{mix, room_quotas, PoolLimits, PoolRequest};
use crate::place::occupancy::Occupancy;

/// The clients' rooms and datacenters.
#[derive(Debug, Clone, Copy)]
pub(super) struct Near<'a> {
    pub(super) rooms: &'a [u32],
    /// Sorted.
    pub(super) dcs: &'a [u32],
}

impl Near<'_> {
    /// 0: a room of a client, 1: another room of a client's datacenter, 2: elsewhere.
    pub(super) fn tier(&self, room: u32, dc: u32) -> u8 {
        if self.rooms.contains(&room) {
            0
        } else if self.dcs.binary_search(&dc).is_ok() {
            1
        } else {
            2
        }
    }
}

/// One server per rack, drawn from the best rack of each row.
pub(super) struct RowDraw {
    /// In pool order.
    pub(super) servers: Vec<u32>,
    pub(super) skipped_full: usize,
    pub(super) skipped_balance: usize,
}

/// [`draw_with`] for one server per rack when the best rack of every row fills the pool
/// (the usual case): the same members in the same order, from the cache's row and rack
/// summaries, hashing and choosing a server only where the order needs one. `None` when
/// the first rank of the rows does not fill the pool.
#[allow(clippy::too_many_arguments)] // one request's parts
pub(super) fn draw_by_rows(
    index: &PoolIndex,
    cache: &mut PoolCache,
    inv: &Inventory,
    occ: &Occupancy,
    req: &PoolRequest<'_>,
    limits: PoolLimits,
    ceiling: Option<(f64, f64)>,
    slot: usize,
    near: Near<'_>,
) -> Option<RowDraw> {
    let summary = cache.summaries(index, occ, slot, ceiling);
    let racks = &index.colour_racks[slot];
    let hosts_of =
        |cr: &ColourRack| &index.colour_hosts[slot][cr.hosts.start as usize..cr.hosts.end as usize];
    let special_racks: Vec<u32> = req
        .exclude
        .iter()
        .chain(req.keep)
        .map(|&s| inv.servers[s as usize].rack)
        .collect();
    // The rows holding such a rack (by position), found from the servers themselves.
    let special_rows: Vec<u32> = req
        .exclude
        .iter()
        .chain(req.keep)
        .filter_map(|&s| {
            let (at_slot, pos) = index.host_rack[s as usize];
            (at_slot as usize == slot).then(|| racks[pos as usize].row_at)
        })
        .collect();
    let rack_tie = |rack: u32| mix(u64::from(rack) | 1 << 40, req.salt);
    let server_tie = |s: u32| mix(u64::from(s), req.salt);
    let read_in_full =
        |cr: &ColourRack| hosts_of(cr).len() > 64 || special_racks.contains(&cr.rack);
    // First every row with room: its least utilisation, tier and place; the racks read
    // in full (their least utilisation and best server) in `in_full[from..to]`.
    struct RowLeast {
        at: usize,
        room: u32,
        row: u32,
        tier: u8,
        least: u64,
        read_by_rack: bool,
        in_full: (u32, u32),
    }
    let mut rows: Vec<RowLeast> = Vec::with_capacity(index.colour_rows[slot].len());
    let mut in_full: Vec<(usize, u64, u32)> = Vec::new();
    let (mut skipped_full, mut skipped_balance) = (0, 0);
    for (at, row) in index.colour_rows[slot].iter().enumerate() {
        let first = &racks[row.racks.start as usize];
        let tier = near.tier(first.room, first.dc);
        let is_near = usize::from(tier < 2);
        let from = in_full.len() as u32;
        let mut least = NO_ROOM;
        let read_by_rack = row.big || special_rows.contains(&(at as u32));
        let row_racks = row.racks.start as usize..row.racks.end as usize;
        if read_by_rack {
            for (cr, pos) in racks[row_racks.clone()].iter().zip(row_racks) {
                if !read_in_full(cr) {
                    let rs = summary.racks[pos];
                    skipped_full += is_near * rs.full as usize;
                    skipped_balance += is_near * rs.at_limit as usize;
                    least = least.min(rs.best);
                    continue;
                }
                let mut best: Option<(u64, u64, u32)> = None;
                for host in hosts_of(cr) {
                    let s = host.server;
                    if req.excludes(s) {
                        continue;
                    }
                    let limit = room_limit(index, slot, &summary.limits, host.capacity);
                    match room(occ, host, limit) {
                        Room::Full => skipped_full += is_near,
                        Room::AtLimit => skipped_balance += is_near,
                        Room::Free(utilisation) => {
                            let key = (utilisation, server_tie(s), s);
                            best = Some(best.map_or(key, |b| b.min(key)));
                        }
                    }
                }
                if let Some((utilisation, _, s)) = best {
                    least = least.min(utilisation);
                    in_full.push((pos, utilisation, s));
                }
            }
        } else {
            let rs = summary.rows[at];
            skipped_full += is_near * rs.full as usize;
            skipped_balance += is_near * rs.at_limit as usize;
            least = rs.best;
        }
        if least == NO_ROOM {
            continue;
        }
        rows.push(RowLeast {
            at,
            room: first.room,
            row: first.row,
            tier,
            least,
            read_by_rack,
            in_full: (from, in_full.len() as u32),
        });
    }
    if rows.len() < limits.size {
        return None;
    }
    // Rooms with a quota take their first rows (by rank in the room) before the rest;
    // the full draw handles a quota that the first rank of the room cannot fill.
    let quotas = room_quotas(index, inv, req, limits.near_quorum);
    let forced_rows: usize = quotas.iter().map(|q| q.1).sum();
    if forced_rows > limits.size
        || quotas
            .iter()
            .any(|&(room, wanted)| rows.iter().filter(|r| r.room == room).count() < wanted)
    {
        return None;
    }
    // Rows of a room by their best rack, then id: each row's rank in its room.
    let mut by_room: Vec<(u32, u64, u32, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.room, r.least, r.row, i))
        .collect();
    by_room.sort_unstable();
    let mut row_rank = vec![0u32; rows.len()];
    for k in 1..by_room.len() {
        if by_room[k].0 == by_room[k - 1].0 {
            row_rank[by_room[k].3] = row_rank[by_room[k - 1].3] + 1;
        }
    }
    // The first rank of every row goes by (rank of the row in its room, tier,
    // utilisation, hash, rack): only rows whose (rank, tier, utilisation) is at most the
    // pool's last one can be in the pool, so only their best racks are chosen (and
    // hashed).
    let forced = |i: usize| {
        quotas
            .iter()
            .any(|&(room, wanted)| rows[i].room == room && (row_rank[i] as usize) < wanted)
    };
    let first = limits.size - forced_rows;
    let prefix = |i: usize| (row_rank[i], rows[i].tier, rows[i].least);
    let mut prefixes: Vec<(u32, u8, u64)> = (0..rows.len())
        .filter(|&i| !forced(i))
        .map(prefix)
        .collect();
    let last_in = if first == 0 {
        (0, 0, 0)
    } else if first < prefixes.len() {
        *prefixes.select_nth_unstable(first - 1).1
    } else {
        (u32::MAX, u8::MAX, u64::MAX)
    };
    // The best rack of a row: the least (tie, rack) among those at its least utilisation;
    // its server when it was read in full.
    // (rank key, rack position, server when known).
    type RankKey = (u32, u8, u64, u64, u32, usize);
    let mut ranked: Vec<(RankKey, u32, Option<u32>)> = Vec::new();
    let mut forced_ranked: Vec<(RankKey, u32, Option<u32>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let is_forced = forced(i);
        if !is_forced && (first == 0 || prefix(i) > last_in) {
            continue;
        }
        let row = &index.colour_rows[slot][r.at];
        let full = &in_full[r.in_full.0 as usize..r.in_full.1 as usize];
        let mut pick: Option<(u64, u32, u32, Option<u32>)> = None;
        let row_racks = row.racks.start as usize..row.racks.end as usize;
        for (cr, pos) in racks[row_racks.clone()].iter().zip(row_racks) {
            let (best, server) = if !r.read_by_rack {
                (summary.racks[pos].best, None)
            } else {
                match full.iter().find(|x| x.0 == pos) {
                    Some(&(_, u, s)) => (u, Some(s)),
                    None if read_in_full(cr) => continue,
                    None => (summary.racks[pos].best, None),
                }
            };
            if best != r.least {
                continue;
            }
            let tie = rack_tie(cr.rack);
            if pick.is_none_or(|p| (tie, cr.rack) < (p.0, p.1)) {
                pick = Some((tie, cr.rack, pos as u32, server));
            }
        }
        let (tie, rack, pos, server) = pick.expect("a rack has the row's least utilisation");
        let entry = ((row_rank[i], r.tier, r.least, tie, rack, i), pos, server);
        if is_forced {
            forced_ranked.push(entry);
        } else {
            ranked.push(entry);
        }
    }
    if first > 0 && first < ranked.len() {
        ranked.select_nth_unstable(first - 1);
    }
    ranked.truncate(first);
    ranked.extend(forced_ranked);
    ranked.sort_unstable();
    let servers = ranked
        .iter()
        .map(|&(_, pos, server)| {
            server.unwrap_or_else(|| {
                // The least (hash, server) among the rack's hosts at its utilisation.
                let hosts = hosts_of(&racks[pos as usize]);
                let mut at_best = summary.racks[pos as usize].at_best;
                let ties = at_best.count_ones() > 1;
                let mut least: Option<(u64, u32)> = None;
                while at_best != 0 {
                    let s = hosts[at_best.trailing_zeros() as usize].server;
                    at_best &= at_best - 1;
                    let key = (if ties { server_tie(s) } else { 0 }, s);
                    least = Some(least.map_or(key, |l| l.min(key)));
                }
                least
                    .expect("a rack with room has a host at its utilisation")
                    .1
            })
        })
        .collect();
    Some(RowDraw {
        servers,
        skipped_full,
        skipped_balance,
    })
}
