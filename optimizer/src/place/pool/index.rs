//! The zone's layout as the pool reads it: colours, rooms, rows and racks interned to
//! ids, and each colour's hosts rack by rack and row by row.

use topology::model::ServerStatus;
use topology::Inventory;

/// The inventory's layout as the pool needs it, with names interned to ids whose order
/// is the names' order. Built once per [`super::Placer`].
#[derive(Debug, Clone)]
pub struct PoolIndex {
    /// Colour names, sorted; `colour[s]` indexes it (`NO_COLOUR` for none).
    pub(super) colours: Vec<String>,
    pub(super) colour: Vec<u32>,
    pub(super) rack_dc: Vec<u32>,
    pub(super) rack_room: Vec<u32>,
    /// Per datacenter and colour slot (the colour's index; the last slot: servers
    /// without a colour): its active hosts.
    pub(super) dc_hosts: Vec<Vec<Vec<Host>>>,
    /// Per datacenter: its hosts that are not active (draining or failed).
    pub(super) dc_inactive: Vec<usize>,
    /// Per datacenter and colour: the node capacity of its active hosts.
    pub(super) dc_capacity: Vec<Vec<u64>>,
    /// Per row: whether it has hosts; per room: its rows, in id order.
    pub(super) row_count: usize,
    pub(super) room_rows: Vec<Vec<u32>>,
    /// Node capacity of all active hosts.
    pub(super) active_capacity: u64,
    /// Per colour slot: the racks with active hosts of that colour, row by row (rows in
    /// id order, racks in index order), so that a request looks only at its colour's
    /// servers; their hosts are `colour_hosts[slot][rack.hosts]`.
    pub(super) colour_racks: Vec<Vec<ColourRack>>,
    pub(super) colour_hosts: Vec<Vec<Host>>,
    /// Per colour slot: its rows (runs of `colour_racks[slot]`).
    pub(super) colour_rows: Vec<Vec<ColourRow>>,
    /// Per server: its colour slot and its rack's position in `colour_racks[slot]`
    /// (`NOT_A_HOST` for a server that is no active host).
    pub(super) host_rack: Vec<(u32, u32)>,
    /// Per colour slot: the distinct capacities of its hosts (the balance limit is one
    /// number per capacity).
    pub(super) slot_capacities: Vec<Vec<u32>>,
}

pub(super) const NOT_A_HOST: (u32, u32) = (u32::MAX, u32::MAX);

/// A host as the pool reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Host {
    pub(super) server: u32,
    pub(super) capacity: u32,
}

/// A rack's hosts of one colour.
#[derive(Debug, Clone)]
pub(super) struct ColourRack {
    pub(super) rack: u32,
    pub(super) row: u32,
    pub(super) room: u32,
    pub(super) dc: u32,
    pub(super) hosts: std::ops::Range<u32>,
    /// The position of its row in `PoolIndex::colour_rows[slot]`.
    pub(super) row_at: u32,
}

/// A row's racks of one colour: positions `racks` in `PoolIndex::colour_racks[slot]`.
#[derive(Debug, Clone)]
pub(super) struct ColourRow {
    pub(super) racks: std::ops::Range<u32>,
    /// A rack of the row has more than 64 hosts of the colour (not summarised).
    pub(super) big: bool,
}

pub(super) const NO_COLOUR: u32 = u32::MAX;

/// Ids in the order of the keys' names.
pub(super) fn intern<K: Ord + Clone>(keys: &[K]) -> Vec<u32> {
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

    /// Indexes the racks, rows, rooms and colours of `inv`.
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
