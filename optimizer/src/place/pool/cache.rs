//! What the pool keeps between requests: per colour, a summary of every rack's and row's
//! room, and per datacenter each colour's load, kept current from the occupancy's log of
//! load changes.

use super::balance::most_nodes;
use super::index::{ColourRack, Host, PoolIndex};
use crate::place::occupancy::{Occupancy, OccupancyStamp};

/// What the pool keeps between requests (one per placer): for each colour, with and
/// without the balance rule, a summary of every rack's hosts of that colour, brought up
/// to date from the servers whose load changed ([`Occupancy::changes_since`]) instead of
/// reading every host's load on every request.
#[derive(Debug, Default)]
pub struct PoolCache {
    /// By colour slot * 2 + (1 under the balance rule).
    pub(super) summaries: Vec<Option<ColourSummary>>,
    /// Per datacenter and colour: the load of its active hosts (each counted up to its
    /// capacity), for choosing a new cell's colour.
    pub(super) colour_loads: Option<ColourLoads>,
}

#[derive(Debug)]
pub(super) struct ColourLoads {
    pub(super) stamp: OccupancyStamp,
    /// Per server: what it adds to its datacenter's and colour's load.
    pub(super) counted: Vec<u32>,
    pub(super) loads: Vec<Vec<u64>>,
}

#[derive(Debug)]
pub(super) struct ColourSummary {
    pub(super) stamp: OccupancyStamp,
    /// The balance limit (most nodes) of each of the colour's capacities, in the order
    /// of `PoolIndex::slot_capacities` (empty without the rule).
    pub(super) limits: Vec<u32>,
    /// Per rack of `PoolIndex::colour_racks[slot]`, and per row of
    /// `PoolIndex::colour_rows[slot]` (the least `best` of its racks, their counts).
    pub(super) racks: Vec<RackSummary>,
    pub(super) rows: Vec<RackSummary>,
}

/// A rack's hosts of one colour: the least utilisation among those with room (below
/// capacity and the balance limit), which of them have it (bit `k`: the rack's `k`-th
/// host; only racks of at most 64 such hosts are summarised), and how many are full or
/// at the limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct RackSummary {
    pub(super) best: u64,
    pub(super) at_best: u64,
    pub(super) full: u32,
    pub(super) at_limit: u32,
}

/// The balance limit (most nodes) of each of colour `slot`'s capacities, in the order of
/// `PoolIndex::slot_capacities`; empty without the rule.
pub(super) fn balance_limits(
    index: &PoolIndex,
    slot: usize,
    ceiling: Option<(f64, f64)>,
) -> Vec<u32> {
    match ceiling {
        Some((mean, u)) => index.slot_capacities[slot]
            .iter()
            .map(|&c| most_nodes(mean, u, c))
            .collect(),
        None => Vec::new(),
    }
}

/// The most nodes a host of `capacity` may hold under the balance rule (`limits` from
/// [`balance_limits`]); `u32::MAX` without the rule.
pub(super) fn room_limit(index: &PoolIndex, slot: usize, limits: &[u32], capacity: u32) -> u32 {
    if limits.is_empty() {
        return u32::MAX;
    }
    let at = index.slot_capacities[slot]
        .binary_search(&capacity)
        .expect("every host's capacity is listed");
    limits[at]
}

/// Whether a host can take one more node: full, at its balance `limit`, or free at this
/// utilisation (ordered bits of a non-negative float).
pub(super) enum Room {
    Full,
    AtLimit,
    Free(u64),
}

pub(super) fn room(occ: &Occupancy, host: &Host, limit: u32) -> Room {
    let load = occ.load(host.server);
    if load >= host.capacity {
        Room::Full
    } else if load >= limit {
        Room::AtLimit
    } else {
        Room::Free((f64::from(load) / f64::from(host.capacity.max(1))).to_bits())
    }
}

pub(super) fn summarise(
    index: &PoolIndex,
    occ: &Occupancy,
    slot: usize,
    limits: &[u32],
    rack: &ColourRack,
) -> RackSummary {
    let mut summary = RackSummary {
        best: NO_ROOM,
        at_best: 0,
        full: 0,
        at_limit: 0,
    };
    let hosts = &index.colour_hosts[slot][rack.hosts.start as usize..rack.hosts.end as usize];
    for (k, host) in hosts.iter().enumerate() {
        match room(occ, host, room_limit(index, slot, limits, host.capacity)) {
            Room::Full => summary.full += 1,
            Room::AtLimit => summary.at_limit += 1,
            Room::Free(utilisation) => {
                if utilisation < summary.best {
                    summary.best = utilisation;
                    summary.at_best = 0;
                }
                if utilisation == summary.best {
                    summary.at_best |= 1 << k;
                }
            }
        }
    }
    summary
}

/// No host of the rack has room.
pub(super) const NO_ROOM: u64 = u64::MAX;

/// A row's summary from its racks': the least utilisation, and the counts summed
/// (`at_best` unused).
pub(super) fn summarise_row(racks: &[RackSummary]) -> RackSummary {
    racks.iter().fold(
        RackSummary {
            best: NO_ROOM,
            at_best: 0,
            full: 0,
            at_limit: 0,
        },
        |row, r| RackSummary {
            best: row.best.min(r.best),
            at_best: 0,
            full: row.full + r.full,
            at_limit: row.at_limit + r.at_limit,
        },
    )
}

impl PoolCache {
    /// Per datacenter and colour: the load of its active hosts, each up to its capacity;
    /// current for `occ`.
    pub(super) fn colour_loads(&mut self, index: &PoolIndex, occ: &Occupancy) -> &[Vec<u64>] {
        let counted = |host: &Host| occ.load(host.server).min(host.capacity);
        let changes = self
            .colour_loads
            .as_ref()
            .and_then(|c| occ.changes_since(c.stamp));
        match (self.colour_loads.as_mut(), changes) {
            (Some(cache), Some(changes)) => {
                for server in changes {
                    let (slot, pos) = index.host_rack[server as usize];
                    if slot as usize >= index.colours.len() {
                        continue; // No host, or a host without a colour.
                    }
                    let rack = &index.colour_racks[slot as usize][pos as usize];
                    let capacity = index.colour_hosts[slot as usize]
                        [rack.hosts.start as usize..rack.hosts.end as usize]
                        .iter()
                        .find(|h| h.server == server)
                        .map_or(0, |h| h.capacity);
                    let now = occ.load(server).min(capacity);
                    let before = std::mem::replace(&mut cache.counted[server as usize], now);
                    let load = &mut cache.loads[rack.dc as usize][slot as usize];
                    *load = *load + u64::from(now) - u64::from(before);
                }
                cache.stamp = occ.stamp();
            }
            _ => {
                let mut cache = ColourLoads {
                    stamp: occ.stamp(),
                    counted: vec![0; index.host_rack.len()],
                    loads: vec![vec![0; index.colours.len()]; index.dc_hosts.len()],
                };
                for (d, by_colour) in index.dc_hosts.iter().enumerate() {
                    for (c, hosts) in by_colour.iter().take(index.colours.len()).enumerate() {
                        for host in hosts {
                            cache.counted[host.server as usize] = counted(host);
                            cache.loads[d][c] += u64::from(counted(host));
                        }
                    }
                }
                self.colour_loads = Some(cache);
            }
        }
        &self.colour_loads.as_ref().expect("just filled").loads
    }

    /// The summaries of colour `slot`'s racks and rows under `ceiling`, current for `occ`.
    pub(super) fn summaries(
        &mut self,
        index: &PoolIndex,
        occ: &Occupancy,
        slot: usize,
        ceiling: Option<(f64, f64)>,
    ) -> &ColourSummary {
        let limits = balance_limits(index, slot, ceiling);
        let key = slot * 2 + usize::from(ceiling.is_some());
        if self.summaries.len() <= key {
            self.summaries.resize_with(key + 1, || None);
        }
        let racks = &index.colour_racks[slot];
        let rows = &index.colour_rows[slot];
        let entry = &mut self.summaries[key];
        let current = entry.as_ref().is_some_and(|e| e.limits == limits);
        let changes = entry
            .as_ref()
            .filter(|_| current)
            .and_then(|e| occ.changes_since(e.stamp));
        match (entry.as_mut(), changes) {
            (Some(summary), Some(changes)) => {
                for server in changes {
                    let (s, pos) = index.host_rack[server as usize];
                    if s as usize == slot {
                        let rack = &racks[pos as usize];
                        summary.racks[pos as usize] =
                            summarise(index, occ, slot, &summary.limits, rack);
                        let row = &rows[rack.row_at as usize];
                        summary.rows[rack.row_at as usize] = summarise_row(
                            &summary.racks[row.racks.start as usize..row.racks.end as usize],
                        );
                    }
                }
                summary.stamp = occ.stamp();
            }
            _ => {
                let rack_summaries: Vec<RackSummary> = racks
                    .iter()
                    .map(|rack| summarise(index, occ, slot, &limits, rack))
                    .collect();
                let row_summaries = rows
                    .iter()
                    .map(|row| {
                        summarise_row(
                            &rack_summaries[row.racks.start as usize..row.racks.end as usize],
                        )
                    })
                    .collect();
                *entry = Some(ColourSummary {
                    stamp: occ.stamp(),
                    limits,
                    racks: rack_summaries,
                    rows: row_summaries,
                });
            }
        }
        self.summaries[key].as_ref().expect("just filled")
    }
}
