//! The pool's shortcut for one server per rack: the best rack of each row from the
//! cache's summaries, when the first rank of the rows fills the pool.

use topology::Inventory;

use super::cache::{room, room_limit, PoolCache, Room, NO_ROOM};
use super::index::{ColourRack, PoolIndex};
use super::{mix, PoolLimits, PoolRequest};
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
    // Per row with room: (room, best, row id) of its best rack, and that rack's (tie,
    // rack id, position, tier, server when already known).
    struct Pick {
        room: u32,
        row: u32,
        tier: u8,
        best: u64,
        tie: u64,
        rack: u32,
        pos: u32,
        server: Option<u32>,
    }
    let mut picks: Vec<Pick> = Vec::with_capacity(index.colour_rows[slot].len());
    let (mut skipped_full, mut skipped_balance) = (0, 0);
    for (at, row) in index.colour_rows[slot].iter().enumerate() {
        let first = &racks[row.racks.start as usize];
        let tier = near.tier(first.room, first.dc);
        let is_near = usize::from(tier < 2);
        let read_in_full =
            |cr: &ColourRack| hosts_of(cr).len() > 64 || special_racks.contains(&cr.rack);
        let row_racks = row.racks.start as usize..row.racks.end as usize;
        // Each rack's least utilisation (and server, for a rack read in full).
        let mut least = NO_ROOM;
        let mut in_full: Vec<(usize, u64, u32)> = Vec::new();
        let read_by_rack = row.big || special_rows.contains(&(at as u32));
        if read_by_rack {
            for pos in row_racks.clone() {
                let cr = &racks[pos];
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
        // The row's best rack: the least (tie, rack) among those at the least utilisation.
        let mut pick: Option<Pick> = None;
        for pos in row_racks {
            let cr = &racks[pos];
            let (best, server) = if !read_by_rack {
                (summary.racks[pos].best, None)
            } else {
                match in_full.iter().find(|x| x.0 == pos) {
                    Some(&(_, u, s)) => (u, Some(s)),
                    None if read_in_full(cr) => continue,
                    None => (summary.racks[pos].best, None),
                }
            };
            if best != least {
                continue;
            }
            let tie = rack_tie(cr.rack);
            if pick
                .as_ref()
                .is_none_or(|p| (tie, cr.rack) < (p.tie, p.rack))
            {
                pick = Some(Pick {
                    room: cr.room,
                    row: cr.row,
                    tier,
                    best,
                    tie,
                    rack: cr.rack,
                    pos: pos as u32,
                    server,
                });
            }
        }
        picks.push(pick.expect("a rack has the row's least utilisation"));
    }
    if picks.len() < limits.size {
        return None;
    }
    // Rows of a room by their best rack, then id; then the first rank of every row by
    // (rank of the row in its room, tier, utilisation, hash, rack).
    let mut by_room: Vec<(u32, u64, u32, usize)> = picks
        .iter()
        .enumerate()
        .map(|(i, p)| (p.room, p.best, p.row, i))
        .collect();
    by_room.sort_unstable();
    let mut row_rank = vec![0u32; picks.len()];
    for k in 1..by_room.len() {
        if by_room[k].0 == by_room[k - 1].0 {
            row_rank[by_room[k].3] = row_rank[by_room[k - 1].3] + 1;
        }
    }
    let mut ranked: Vec<(u32, u8, u64, u64, u32, usize)> = picks
        .iter()
        .enumerate()
        .map(|(i, p)| (row_rank[i], p.tier, p.best, p.tie, p.rack, i))
        .collect();
    let first = limits.size;
    if first > 0 && first < ranked.len() {
        ranked.select_nth_unstable(first - 1);
    }
    ranked.truncate(first);
    ranked.sort_unstable();
    let servers = ranked
        .iter()
        .map(|&(.., i)| {
            let p = &picks[i];
            p.server.unwrap_or_else(|| {
                // The least (hash, server) among the rack's hosts at its utilisation.
                let hosts = hosts_of(&racks[p.pos as usize]);
                let mut at_best = summary.racks[p.pos as usize].at_best;
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
