//! The candidate pool of one request: which servers a placement may choose from.
//!
//! Servers of one rack share every failure domain but their own, so a pool takes the
//! least-loaded eligible server(s) of each rack, and takes racks round-robin over rows
//! (least-loaded rack of every row first, the clients' rooms first within a round, then
//! the rest of the clients' datacenters, then other datacenters). That keeps the pool
//! small enough for an exact table (at most 63 terminals with the clients) while it still
//! spans every room, row and power domain near the clients. ARCHITECTURE.md explains why.

use std::collections::{BTreeMap, HashSet};

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
}

/// How a pool is drawn.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Most choosable members.
    pub size: usize,
    /// Most members from one rack.
    pub per_rack: usize,
}

/// What the pool must hold or avoid.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolRequest<'a> {
    pub clients: &'a [u32],
    /// Nodes that stay (always members, fixed).
    pub keep: &'a [u32],
    /// Servers that may not be chosen (e.g. the node being replaced).
    pub exclude: &'a [u32],
}

fn utilisation(inv: &Inventory, occ: &Occupancy, s: u32) -> f64 {
    let cap = inv.servers[s as usize].capacity.max(1);
    f64::from(occ.load(s)) / f64::from(cap)
}

pub fn draw(inv: &Inventory, occ: &Occupancy, req: &PoolRequest<'_>, limits: PoolLimits) -> Pool {
    let rack_of = |s: u32| &inv.racks[inv.servers[s as usize].rack as usize];
    let client_dcs: HashSet<&str> = req
        .clients
        .iter()
        .map(|&c| rack_of(c).datacenter.as_str())
        .collect();
    let client_rooms: HashSet<(&str, &str)> = req
        .clients
        .iter()
        .map(|&c| (rack_of(c).datacenter.as_str(), rack_of(c).room.as_str()))
        .collect();
    let excluded: HashSet<u32> = req.exclude.iter().chain(req.keep).copied().collect();

    // The colour: that of the kept nodes, else the one with the most free capacity near
    // the clients (ties by name), else none when servers have no colours.
    let colour: Option<String> = match req.keep.first() {
        Some(&k) => inv.servers[k as usize].color.clone(),
        None => {
            let mut free: BTreeMap<&str, u64> = BTreeMap::new();
            for s in inv.servers.iter().enumerate().filter_map(|(i, s)| {
                let near = client_dcs.is_empty()
                    || client_dcs.contains(inv.racks[s.rack as usize].datacenter.as_str());
                (near && s.status == ServerStatus::Active).then_some(i as u32)
            }) {
                let server = &inv.servers[s as usize];
                if let Some(c) = &server.color {
                    let left = server.capacity.saturating_sub(occ.load(s));
                    *free.entry(c.as_str()).or_default() += u64::from(left);
                }
            }
            free.iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(c, _)| (*c).to_string())
        }
    };

    let mut pool = Pool {
        colour: colour.clone(),
        ..Pool::default()
    };
    // Per rack: its eligible servers, least utilised first.
    struct RackChoice {
        rack: u32,
        tier: u8,
        row_key: (String, String, String),
        servers: Vec<u32>,
        best: f64,
    }
    let mut racks: Vec<RackChoice> = Vec::new();
    for (r, rack) in inv.racks.iter().enumerate() {
        let tier = if client_rooms.contains(&(rack.datacenter.as_str(), rack.room.as_str())) {
            0
        } else if client_dcs.contains(rack.datacenter.as_str()) {
            1
        } else {
            2
        };
        let mut servers: Vec<u32> = Vec::new();
        for &s in &rack.servers {
            let server = &inv.servers[s as usize];
            if server.capacity == 0 || excluded.contains(&s) {
                continue;
            }
            let near = tier < 2;
            if server.status != ServerStatus::Active {
                pool.skipped_status += usize::from(near);
                continue;
            }
            if server.color != colour {
                pool.skipped_colour += usize::from(near);
                continue;
            }
            if occ.load(s) >= server.capacity {
                pool.skipped_full += usize::from(near);
                continue;
            }
            servers.push(s);
        }
        if servers.is_empty() {
            continue;
        }
        servers.sort_by(|&a, &b| {
            utilisation(inv, occ, a)
                .total_cmp(&utilisation(inv, occ, b))
                .then(a.cmp(&b))
        });
        servers.truncate(limits.per_rack);
        racks.push(RackChoice {
            rack: r as u32,
            tier,
            row_key: (rack.datacenter.clone(), rack.room.clone(), rack.row.clone()),
            best: utilisation(inv, occ, servers[0]),
            servers,
        });
    }
    // Order: round-robin over rooms, then over the rows of a room, then over the racks
    // of a row, least utilised first at each level, so that a pool of any size spreads
    // over as many rooms, rows and racks as it can.
    racks.sort_by(|a, b| {
        a.row_key
            .cmp(&b.row_key)
            .then(a.best.total_cmp(&b.best))
            .then(a.rack.cmp(&b.rack))
    });
    let mut rack_rank = vec![0usize; racks.len()];
    for i in 1..racks.len() {
        if racks[i].row_key == racks[i - 1].row_key {
            rack_rank[i] = rack_rank[i - 1] + 1;
        }
    }
    // Rows of a room by their best rack, then name.
    let mut rows: Vec<(&(String, String, String), f64)> = Vec::new();
    for (i, r) in racks.iter().enumerate() {
        if rack_rank[i] == 0 {
            rows.push((&r.row_key, r.best));
        }
    }
    rows.sort_by(|a, b| {
        (&a.0 .0, &a.0 .1)
            .cmp(&(&b.0 .0, &b.0 .1))
            .then(a.1.total_cmp(&b.1))
            .then(a.0 .2.cmp(&b.0 .2))
    });
    let mut row_rank: std::collections::HashMap<&(String, String, String), usize> =
        std::collections::HashMap::new();
    for i in 0..rows.len() {
        let same_room =
            i > 0 && (&rows[i].0 .0, &rows[i].0 .1) == (&rows[i - 1].0 .0, &rows[i - 1].0 .1);
        let rank = if same_room {
            row_rank[rows[i - 1].0] + 1
        } else {
            0
        };
        row_rank.insert(rows[i].0, rank);
    }
    let mut ranked: Vec<(usize, usize, u8, f64, u32, usize)> = racks
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                rack_rank[i],
                row_rank[&r.row_key],
                r.tier,
                r.best,
                r.rack,
                i,
            )
        })
        .collect();
    ranked.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.total_cmp(&b.3))
            .then(a.4.cmp(&b.4))
    });

    for &k in req.keep {
        pool.fixed |= 1 << pool.members.len();
        pool.members.push(k);
    }
    let mut chosen = 0;
    'racks: for &(_, _, _, _, _, i) in &ranked {
        for &s in &racks[i].servers {
            if chosen == limits.size {
                break 'racks;
            }
            pool.choosable |= 1 << pool.members.len();
            pool.members.push(s);
            chosen += 1;
        }
    }
    pool
}
