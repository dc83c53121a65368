//! Baseline placers to compare cellplacer against: a CRUSH-like straw2 placer and a
//! uniform random rack-spread placer. Neither looks at clients or at the failure model.
//!
//! Both keep the same hard rules as any placement must:
//!
//! * a node goes only on an *eligible* server: status `active`, and remaining capacity
//!   (`node_capacity` minus the nodes these cells already put there) above zero; loads are
//!   tracked across the cells in the order given;
//! * the nodes of one cell sit on `cell.size` distinct racks;
//! * the nodes of one cell share one colour (servers without a colour form one group of
//!   their own: never mixed with coloured servers).
//!
//! **Cells that cannot be placed are skipped.** When no colour has `cell.size` racks with
//! an eligible server left, the cell is left out of the result and placing goes on with the
//! next cell (which may be smaller). The result keeps the order of `cells`; the number of
//! skipped cells is `cells.len() - result.len()` ([`unplaced`] names them). A baseline is
//! there to be measured, so it reports what it could not do instead of failing the run.
//!
//! Both are pure and deterministic: the same inventory, cells and seed give the same
//! placements.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use topology::model::ServerStatus;
use topology::{CellSpec, Inventory, Placement};

/// Collisions (a replica drawing a rack the cell already holds) tolerated per replica
/// before the draw leaves the cell's racks out. Ceph's `choose_total_tries` default.
const MAX_COLLISION_RETRIES: u64 = 50;

/// Uniform draws that may land on an already used rack before the random placer narrows
/// the candidates explicitly (only reached when few racks are left).
const MAX_REJECTIONS: usize = 64;

/// Domain separators so that the colour, rack and server draws of one cell are
/// independent hashes.
const COLOUR_DRAW: u64 = 1;
const RACK_DRAW: u64 = 2;
const SERVER_DRAW: u64 = 3;

/// CRUSH-like placement (straw2, as Ceph's default bucket algorithm).
///
/// For each cell, in order:
///
/// 1. The colour: a straw2 draw among the colours with at least `cell.size` eligible racks,
///    weighted by the colour's remaining capacity.
/// 2. For each replica `r` in `0..cell.size`: every eligible rack of that colour draws
///    `ln(u) / w`, `u` in (0, 1] a stable hash of (seed, cell id, rack id, r, attempt) and `w`
///    the rack's eligible capacity (the remaining capacity of its eligible servers of the
///    colour); the largest draw wins. When the winner already holds a node of the cell, the
///    replica retries with `attempt + 1`; after [`MAX_COLLISION_RETRIES`] retries the cell's
///    racks are left out of the draw, so a cell with enough racks is always placed.
/// 3. In the winning rack, one server by straw2 over its eligible servers of the colour,
///    weighted by remaining capacity.
///
/// Racks may be anywhere in the zone, clients are ignored. Skipped cells: see the module
/// documentation.
pub fn crush_like(inv: &Inventory, cells: &[CellSpec], seed: u64) -> Vec<Placement> {
    let mut pool = Pool::new(inv);
    let server_keys: Vec<u64> = inv.servers.iter().map(|s| fnv1a(s.id.as_bytes())).collect();
    let mut placements = Vec::with_capacity(cells.len());
    for cell in cells {
        let cell_key = fnv1a(cell.cell_id.as_bytes());
        let colour_candidates = pool
            .colours
            .iter()
            .enumerate()
            .filter(|(_, colour)| colour.eligible_racks >= cell.size)
            .map(|(c, colour)| {
                let hash = stable_hash(&[seed, cell_key, COLOUR_DRAW, colour.key]);
                (c, unit_interval(hash), colour.remaining as f64)
            });
        let Some(colour) = straw2(colour_candidates) else {
            continue;
        };

        let mut used_racks: Vec<usize> = Vec::with_capacity(cell.size);
        let mut nodes = Vec::with_capacity(cell.size);
        for replica in 0..cell.size as u64 {
            let racks = &pool.colours[colour].racks;
            let mut attempt = 0;
            let slot = loop {
                let exclude_used = attempt > MAX_COLLISION_RETRIES;
                let rack_candidates = racks
                    .iter()
                    .enumerate()
                    .filter(|(slot, _)| !(exclude_used && used_racks.contains(slot)))
                    .map(|(slot, rack)| {
                        let hash =
                            stable_hash(&[seed, cell_key, RACK_DRAW, rack.key, replica, attempt]);
                        (slot, unit_interval(hash), rack.remaining as f64)
                    });
                let winner =
                    straw2(rack_candidates).expect("the colour has cell.size eligible racks");
                if !used_racks.contains(&winner) {
                    break winner;
                }
                attempt += 1;
            };
            let server_candidates = racks[slot].servers.iter().map(|&s| {
                let hash = stable_hash(&[
                    seed,
                    cell_key,
                    SERVER_DRAW,
                    server_keys[s as usize],
                    replica,
                ]);
                (
                    s,
                    unit_interval(hash),
                    f64::from(pool.remaining[s as usize]),
                )
            });
            let server =
                straw2(server_candidates).expect("an eligible rack has an eligible server");
            pool.take(server);
            used_racks.push(slot);
            nodes.push(server);
        }
        placements.push(Placement {
            cell_id: cell.cell_id.clone(),
            clients: cell.clients.clone(),
            nodes,
        });
    }
    placements
}

/// Uniform random rack spread: per cell, `cell.size` servers drawn uniformly (ChaCha8
/// seeded with `seed`) among the eligible servers, no two in one rack.
///
/// The first node is uniform over every eligible server of the colours that still have
/// `cell.size` eligible racks, which fixes the cell's colour; each further node is uniform
/// over that colour's eligible servers in racks the cell does not use yet. Every eligible
/// server counts once whatever its remaining capacity. Skipped cells: see the module
/// documentation.
pub fn rack_spread_random(inv: &Inventory, cells: &[CellSpec], seed: u64) -> Vec<Placement> {
    let mut pool = Pool::new(inv);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut placements = Vec::with_capacity(cells.len());
    for cell in cells {
        let candidates: Vec<usize> = (0..pool.colours.len())
            .filter(|&c| pool.colours[c].eligible_racks >= cell.size)
            .collect();
        let total: usize = candidates
            .iter()
            .map(|&c| pool.colours[c].servers.len())
            .sum();
        if total == 0 {
            continue;
        }
        let mut pick = rng.random_range(0..total);
        let mut colour = candidates[0];
        for &c in &candidates {
            let len = pool.colours[c].servers.len();
            if pick < len {
                colour = c;
                break;
            }
            pick -= len;
        }
        let first = pool.colours[colour].servers[pick];

        let mut used_racks = vec![inv.servers[first as usize].rack];
        let mut nodes = vec![first];
        pool.take(first);
        while nodes.len() < cell.size {
            let servers = &pool.colours[colour].servers;
            let fresh_rack = |s: &u32| !used_racks.contains(&inv.servers[*s as usize].rack);
            let drawn = (0..MAX_REJECTIONS)
                .map(|_| servers[rng.random_range(0..servers.len())])
                .find(fresh_rack);
            let server = drawn.unwrap_or_else(|| {
                // Few fresh racks left: draw among them exactly.
                let fresh: Vec<u32> = servers.iter().copied().filter(fresh_rack).collect();
                fresh[rng.random_range(0..fresh.len())]
            });
            used_racks.push(inv.servers[server as usize].rack);
            nodes.push(server);
            pool.take(server);
        }
        placements.push(Placement {
            cell_id: cell.cell_id.clone(),
            clients: cell.clients.clone(),
            nodes,
        });
    }
    placements
}

/// The ids of the cells a placer skipped (in `cells` order).
pub fn unplaced<'a>(cells: &'a [CellSpec], placements: &[Placement]) -> Vec<&'a str> {
    let placed: std::collections::HashSet<&str> =
        placements.iter().map(|p| p.cell_id.as_str()).collect();
    cells
        .iter()
        .map(|c| c.cell_id.as_str())
        .filter(|id| !placed.contains(id))
        .collect()
}

/// The straw2 choice: each candidate `(item, u, weight)` with `u` in (0, 1] draws
/// `ln(u) / weight`, the largest draw wins (ties: the first candidate). Item `i` wins with
/// probability `weight_i / sum(weights)`, and changing one weight moves items only to or
/// from that candidate. Candidates of weight 0 (exhausted racks and servers) never win;
/// `None` when no candidate has a positive weight.
pub fn straw2<T>(candidates: impl IntoIterator<Item = (T, f64, f64)>) -> Option<T> {
    let mut best: Option<(T, f64)> = None;
    for (item, u, weight) in candidates {
        if weight <= 0.0 {
            continue;
        }
        let draw = u.ln() / weight;
        if best.as_ref().is_none_or(|(_, b)| draw > *b) {
            best = Some((item, draw));
        }
    }
    best.map(|(item, _)| item)
}

/// A stable 64-bit hash of a few words: splitmix64 finalisation chained over them. Fixed
/// here (not `std`'s `Hash`) so that placements do not change across Rust releases.
pub fn stable_hash(words: &[u64]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &w in words {
        h = splitmix64(h ^ w);
    }
    h
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top 53 bits of a hash as a number in (0, 1]: never 0, so `ln` stays finite.
pub fn unit_interval(hash: u64) -> f64 {
    ((hash >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// FNV-1a of a string id: ids, not indices, feed the hashes, so that a placement does not
/// depend on table order.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Eligible servers and remaining capacity, by colour and rack, as cells are placed.
struct Pool {
    /// Remaining node slots per server (0 for a server that is not eligible at all).
    remaining: Vec<u32>,
    /// Per server: (colour, rack slot in that colour, position in the colour's `servers`).
    slot_of: Vec<Option<ServerSlot>>,
    colours: Vec<ColourPool>,
}

#[derive(Clone, Copy)]
struct ServerSlot {
    colour: usize,
    rack: usize,
    position: usize,
}

struct ColourPool {
    /// Hash of the colour label (the empty label for uncoloured servers).
    key: u64,
    /// Racks with at least one active host of this colour, in inventory order.
    racks: Vec<RackPool>,
    /// Racks whose remaining capacity in this colour is above zero.
    eligible_racks: usize,
    remaining: u64,
    /// Eligible servers (remaining > 0), in no particular order.
    servers: Vec<u32>,
}

struct RackPool {
    /// Hash of the rack id.
    key: u64,
    /// Active hosts of the colour in this rack (exhausted ones stay; their weight is 0).
    servers: Vec<u32>,
    remaining: u64,
}

impl Pool {
    fn new(inv: &Inventory) -> Pool {
        // BTreeMap: colours in label order, so the pool does not depend on table order.
        let mut by_colour: BTreeMap<Option<&str>, BTreeMap<u32, Vec<u32>>> = BTreeMap::new();
        for (s, server) in inv.servers.iter().enumerate() {
            if server.status == ServerStatus::Active && server.capacity > 0 {
                by_colour
                    .entry(server.color.as_deref())
                    .or_default()
                    .entry(server.rack)
                    .or_default()
                    .push(s as u32);
            }
        }
        let mut remaining = vec![0u32; inv.servers.len()];
        let mut slot_of = vec![None; inv.servers.len()];
        let mut colours = Vec::with_capacity(by_colour.len());
        for (c, (label, racks)) in by_colour.into_iter().enumerate() {
            let mut colour = ColourPool {
                key: fnv1a(label.unwrap_or("").as_bytes()),
                racks: Vec::with_capacity(racks.len()),
                eligible_racks: racks.len(),
                remaining: 0,
                servers: Vec::new(),
            };
            for (r, (rack, servers)) in racks.into_iter().enumerate() {
                let mut rack_remaining = 0;
                for &s in &servers {
                    let capacity = inv.servers[s as usize].capacity;
                    remaining[s as usize] = capacity;
                    rack_remaining += u64::from(capacity);
                    slot_of[s as usize] = Some(ServerSlot {
                        colour: c,
                        rack: r,
                        position: colour.servers.len(),
                    });
                    colour.servers.push(s);
                }
                colour.remaining += rack_remaining;
                colour.racks.push(RackPool {
                    key: fnv1a(inv.racks[rack as usize].id.as_bytes()),
                    servers,
                    remaining: rack_remaining,
                });
            }
            colours.push(colour);
        }
        Pool {
            remaining,
            slot_of,
            colours,
        }
    }

    /// Puts one node on `server`, which must be eligible.
    fn take(&mut self, server: u32) {
        let s = server as usize;
        let slot = self.slot_of[s].expect("only eligible servers are taken");
        assert!(
            self.remaining[s] > 0,
            "server {server} has no capacity left"
        );
        self.remaining[s] -= 1;
        let colour = &mut self.colours[slot.colour];
        colour.remaining -= 1;
        let rack = &mut colour.racks[slot.rack];
        rack.remaining -= 1;
        if rack.remaining == 0 {
            colour.eligible_racks -= 1;
        }
        if self.remaining[s] == 0 {
            // Swap-remove from the colour's eligible list, fixing the moved server's slot.
            colour.servers.swap_remove(slot.position);
            if let Some(&moved) = colour.servers.get(slot.position) {
                if let Some(moved_slot) = self.slot_of[moved as usize].as_mut() {
                    moved_slot.position = slot.position;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
