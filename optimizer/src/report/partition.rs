//! Which risk groups partition a room (cut it off whole from the rest of the zone), found
//! from the contract's semantics by one connectivity pass per group.

use rustc_hash::FxHashMap;
use topology::{ElementId, Inventory};

/// A risk group that partitions a room: when it alone fails, the room's servers still
/// reach each other (as they did) and no server outside the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPartition {
    /// The room's datacenter.
    pub datacenter: String,
    /// The room's label.
    pub room: String,
    /// The risk group that cuts it off.
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
