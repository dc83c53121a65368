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

use super::occupancy::{Occupancy, OccupancyStamp};

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

/// The inventory's layout as the pool needs it, with names interned to ids whose order
/// is the names' order. Built once per [`super::Placer`].
#[derive(Debug, Clone)]
pub struct PoolIndex {
    /// Colour names, sorted; `colour[s]` indexes it (`NO_COLOUR` for none).
    colours: Vec<String>,
    colour: Vec<u32>,
    rack_dc: Vec<u32>,
    rack_room: Vec<u32>,
    /// Per datacenter and colour slot (the colour's index; the last slot: servers
    /// without a colour): its active hosts.
    dc_hosts: Vec<Vec<Vec<Host>>>,
    /// Per datacenter: its hosts that are not active (draining or failed).
    dc_inactive: Vec<usize>,
    /// Per datacenter and colour: the node capacity of its active hosts.
    dc_capacity: Vec<Vec<u64>>,
    /// Per row: whether it has hosts; per room: its rows, in id order.
    row_count: usize,
    room_rows: Vec<Vec<u32>>,
    /// Node capacity of all active hosts.
    active_capacity: u64,
    /// Per colour slot: the racks with active hosts of that colour, row by row (rows in
    /// id order, racks in index order), so that a request looks only at its colour's
    /// servers; their hosts are `colour_hosts[slot][rack.hosts]`.
    colour_racks: Vec<Vec<ColourRack>>,
    colour_hosts: Vec<Vec<Host>>,
    /// Per colour slot: its rows (runs of `colour_racks[slot]`).
    colour_rows: Vec<Vec<ColourRow>>,
    /// Per server: its colour slot and its rack's position in `colour_racks[slot]`
    /// (`NOT_A_HOST` for a server that is no active host).
    host_rack: Vec<(u32, u32)>,
    /// Per colour slot: the distinct capacities of its hosts (the balance limit is one
    /// number per capacity).
    slot_capacities: Vec<Vec<u32>>,
}

const NOT_A_HOST: (u32, u32) = (u32::MAX, u32::MAX);

/// A host as the pool reads it.
#[derive(Debug, Clone, Copy)]
struct Host {
    server: u32,
    capacity: u32,
}

/// A rack's hosts of one colour.
#[derive(Debug, Clone)]
struct ColourRack {
    rack: u32,
    row: u32,
    room: u32,
    dc: u32,
    hosts: std::ops::Range<u32>,
    /// The position of its row in `PoolIndex::colour_rows[slot]`.
    row_at: u32,
}

/// A row's racks of one colour: positions `racks` in `PoolIndex::colour_racks[slot]`.
#[derive(Debug, Clone)]
struct ColourRow {
    racks: std::ops::Range<u32>,
    /// A rack of the row has more than 64 hosts of the colour (not summarised).
    big: bool,
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
        let rack_dc = intern(&dcs);
        let rack_room = intern(&rooms);
        let rack_row = intern(&rows);
        let count = |ids: &[u32]| ids.iter().map(|&r| r as usize + 1).max().unwrap_or(0);
        let (dc_count, room_count, row_count) =
            (count(&rack_dc), count(&rack_room), count(&rack_row));
        let slots = colours.len() + 1;
        let slot = |s: u32| match colour[s as usize] {
            NO_COLOUR => colours.len(),
            c => c as usize,
        };
        let mut room_rows = vec![Vec::new(); room_count];
        for (r, &row) in rack_row.iter().enumerate() {
            room_rows[rack_room[r] as usize].push(row);
        }
        for rows in &mut room_rows {
            rows.sort_unstable();
            rows.dedup();
        }
        let mut dc_hosts = vec![vec![Vec::new(); slots]; dc_count];
        let mut dc_inactive = vec![0; dc_count];
        // Racks row by row, then by index.
        let mut rack_order: Vec<u32> = (0..inv.racks.len() as u32).collect();
        rack_order.sort_by_key(|&r| (rack_row[r as usize], r));
        let mut colour_racks = vec![Vec::new(); slots];
        let mut colour_hosts: Vec<Vec<Host>> = vec![Vec::new(); slots];
        for &r in &rack_order {
            let rack = &inv.racks[r as usize];
            let dc = rack_dc[r as usize];
            let mut of_slot: Vec<Vec<Host>> = vec![Vec::new(); slots];
            for &s in &rack.servers {
                let server = &inv.servers[s as usize];
                if server.capacity == 0 {
                    continue;
                }
                if server.status != ServerStatus::Active {
                    dc_inactive[dc as usize] += 1;
                    continue;
                }
                let host = Host {
                    server: s,
                    capacity: server.capacity,
                };
                of_slot[slot(s)].push(host);
                dc_hosts[dc as usize][slot(s)].push(host);
            }
            for (c, hosts) in of_slot.into_iter().enumerate() {
                if hosts.is_empty() {
                    continue;
                }
                let from = colour_hosts[c].len() as u32;
                colour_hosts[c].extend(hosts);
                colour_racks[c].push(ColourRack {
                    rack: r,
                    row: rack_row[r as usize],
                    room: rack_room[r as usize],
                    dc,
                    hosts: from..colour_hosts[c].len() as u32,
                    row_at: 0,
                });
            }
        }
        let mut colour_rows: Vec<Vec<ColourRow>> = vec![Vec::new(); slots];
        for (c, racks) in colour_racks.iter_mut().enumerate() {
            let mut from = 0;
            while from < racks.len() {
                let row = racks[from].row;
                let to = from + racks[from..].iter().take_while(|r| r.row == row).count();
                for rack in &mut racks[from..to] {
                    rack.row_at = colour_rows[c].len() as u32;
                }
                let big = racks[from..to].iter().any(|r| r.hosts.len() > 64);
                colour_rows[c].push(ColourRow {
                    racks: from as u32..to as u32,
                    big,
                });
                from = to;
            }
        }
        let mut host_rack = vec![NOT_A_HOST; inv.servers.len()];
        let mut slot_capacities = vec![Vec::new(); slots];
        for (c, racks) in colour_racks.iter().enumerate() {
            for (pos, cr) in racks.iter().enumerate() {
                for host in &colour_hosts[c][cr.hosts.start as usize..cr.hosts.end as usize] {
                    host_rack[host.server as usize] = (c as u32, pos as u32);
                    slot_capacities[c].push(host.capacity);
                }
            }
            slot_capacities[c].sort_unstable();
            slot_capacities[c].dedup();
        }
        let dc_capacity = dc_hosts
            .iter()
            .map(|by_colour: &Vec<Vec<Host>>| {
                by_colour
                    .iter()
                    .take(colours.len())
                    .map(|hosts| hosts.iter().map(|h| u64::from(h.capacity)).sum())
                    .collect()
            })
            .collect();
        PoolIndex {
            dc_capacity,
            colour_rows,
            host_rack,
            slot_capacities,
            colours,
            colour,
            rack_dc,
            rack_room,
            dc_hosts,
            dc_inactive,
            row_count,
            room_rows,
            active_capacity: inv
                .servers
                .iter()
                .filter(|s| s.status == ServerStatus::Active)
                .map(|s| u64::from(s.capacity))
                .sum(),
            colour_racks,
            colour_hosts,
        }
    }
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
    load < most_nodes(mean, ceiling, capacity)
}

/// The most nodes a server of `capacity` may hold under the balance rule, at mean
/// utilisation `mean` and ceiling utilisation `ceiling` (`balance` times the mean):
/// `floor(max(ceiling·capacity, mean·capacity + BALANCE_SLACK))`.
fn most_nodes(mean: f64, ceiling: f64, capacity: u32) -> u32 {
    let cap = f64::from(capacity);
    // Non-negative: the conversion truncates, i.e. floors (and saturates).
    (ceiling * cap).max(mean * cap + BALANCE_SLACK) as u32
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
        .filter(|&(i, s)| occ.load(i as u32) > most_nodes(mean, balance * mean, s.capacity))
        .count()
}

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
        let mean = occ.total_nodes() as f64 / index.active_capacity.max(1) as f64;
        let ceiling = Some((mean, balance * mean));
        let pool = draw_with(index, cache, inv, occ, req, limits, ceiling, by_rows);
        if pool.choosable.count_ones() as usize >= limits.min_choosable {
            return pool;
        }
    }
    draw_with(index, cache, inv, occ, req, limits, None, by_rows)
}

/// What the pool keeps between requests (one per placer): for each colour, with and
/// without the balance rule, a summary of every rack's hosts of that colour, brought up
/// to date from the servers whose load changed ([`Occupancy::changes_since`]) instead of
/// reading every host's load on every request.
#[derive(Debug, Default)]
pub struct PoolCache {
    /// By colour slot * 2 + (1 under the balance rule).
    summaries: Vec<Option<ColourSummary>>,
    /// Per datacenter and colour: the load of its active hosts (each counted up to its
    /// capacity), for choosing a new cell's colour.
    colour_loads: Option<ColourLoads>,
}

#[derive(Debug)]
struct ColourLoads {
    stamp: OccupancyStamp,
    /// Per server: what it adds to its datacenter's and colour's load.
    counted: Vec<u32>,
    loads: Vec<Vec<u64>>,
}

#[derive(Debug)]
struct ColourSummary {
    stamp: OccupancyStamp,
    /// The balance limit (most nodes) of each of the colour's capacities, in the order
    /// of `PoolIndex::slot_capacities` (empty without the rule).
    limits: Vec<u32>,
    /// Per rack of `PoolIndex::colour_racks[slot]`, and per row of
    /// `PoolIndex::colour_rows[slot]` (the least `best` of its racks, their counts).
    racks: Vec<RackSummary>,
    rows: Vec<RackSummary>,
}

/// A rack's hosts of one colour: the least utilisation among those with room (below
/// capacity and the balance limit), which of them have it (bit `k`: the rack's `k`-th
/// host; only racks of at most 64 such hosts are summarised), and how many are full or
/// at the limit.
#[derive(Debug, Clone, Copy)]
struct RackSummary {
    best: u64,
    at_best: u64,
    full: u32,
    at_limit: u32,
}

/// The balance limit (most nodes) of each of colour `slot`'s capacities, in the order of
/// `PoolIndex::slot_capacities`; empty without the rule.
fn balance_limits(index: &PoolIndex, slot: usize, ceiling: Option<(f64, f64)>) -> Vec<u32> {
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
fn room_limit(index: &PoolIndex, slot: usize, limits: &[u32], capacity: u32) -> u32 {
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
enum Room {
    Full,
    AtLimit,
    Free(u64),
}

fn room(occ: &Occupancy, host: &Host, limit: u32) -> Room {
    let load = occ.load(host.server);
    if load >= host.capacity {
        Room::Full
    } else if load >= limit {
        Room::AtLimit
    } else {
        Room::Free((f64::from(load) / f64::from(host.capacity.max(1))).to_bits())
    }
}

fn summarise(
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
const NO_ROOM: u64 = u64::MAX;

/// A row's summary from its racks': the least utilisation, and the counts summed
/// (`at_best` unused).
fn summarise_row(racks: &[RackSummary]) -> RackSummary {
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
    fn colour_loads(&mut self, index: &PoolIndex, occ: &Occupancy) -> &[Vec<u64>] {
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
    fn summaries(
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

/// The clients' rooms and datacenters.
#[derive(Debug, Clone, Copy)]
struct Near<'a> {
    rooms: &'a [u32],
    /// Sorted.
    dcs: &'a [u32],
}

impl Near<'_> {
    /// 0: a room of a client, 1: another room of a client's datacenter, 2: elsewhere.
    fn tier(&self, room: u32, dc: u32) -> u8 {
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
struct RowDraw {
    /// In pool order.
    servers: Vec<u32>,
    skipped_full: usize,
    skipped_balance: usize,
}

/// [`draw_with`] for one server per rack when the best rack of every row fills the pool
/// (the usual case): the same members in the same order, from the cache's row and rack
/// summaries, hashing and choosing a server only where the order needs one. `None` when
/// the first rank of the rows does not fill the pool.
#[allow(clippy::too_many_arguments)] // one request's parts
fn draw_by_rows(
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
    let mut ranked: Vec<(u32, u32, u8, u64, u64, u32, usize)> = if first_members >= limits.size {
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
    // Each rack gives at least one member: only the first `limits.size` racks count.
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
    'racks: for &(.., i) in &ranked {
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
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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
            let clients = [hosts[rng.random_range(0..hosts.len())]];
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
