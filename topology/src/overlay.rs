//! Health reported at run time on top of an export (a rack failed, a server draining, a
//! PDU back): the tables of an equivalent inventory, in which any scenario `S` leaves up
//! and connected exactly what `S` together with the failed elements leaves in the export.
//!
//! The export stays the source of structure; the overlay only says which elements are
//! failed now and which servers changed status. It is applied to the tables, so that the
//! result is validated and modelled like any export:
//! - a server's `status` becomes `failed` when it is failed, its rack is failed (directly
//!   or through its row, room or datacenter) or it loses power; `draining`/`active` as
//!   reported otherwise;
//! - a failed link, a link of a failed risk group and a link of a failed or unpowered
//!   network device is dropped (a link is up only when both ends are);
//! - every feed out of a failed or unpowered power device is dropped. Whatever keeps
//!   another live feed stays powered through it; whatever had only dead feeds was marked
//!   above (an unpowered device's links dropped, an unpowered server failed), so its
//!   feeds no longer matter.
//!
//! The failed elements stay in the tables with their rates: failing one again in a
//! scenario changes nothing, as in the export with it failed. Server rows keep their
//! order, so server indices are the same in both inventories.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{ElementKind, Inventory, NetNode, ServerStatus};
use crate::raw::RawInventory;

/// What the overlay says of an element now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Down: it and what needs it.
    Failed,
    /// A server that stays up but takes no new nodes (servers only).
    Draining,
    /// Up (for a server: in service, whatever the export's status).
    Active,
}

impl Health {
    /// The state's name (`failed`, `draining`, `active`).
    pub fn name(self) -> &'static str {
        match self {
            Health::Failed => "failed",
            Health::Draining => "draining",
            Health::Active => "active",
        }
    }
}

/// What an overlay id names: an element of the catalogue, or a row, room or datacenter
/// label (which stand for their racks, and for a datacenter also the network and power
/// devices labelled with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A failure element (server, rack, network device, link, risk group, power device).
    Element(crate::ElementId),
    /// A row label.
    Row(String),
    /// A room label.
    Room(String),
    /// A datacenter label.
    Datacenter(String),
}

impl Named {
    /// What `id` names in `inv`: an element id first, then a row, room or datacenter label.
    pub fn resolve(inv: &Inventory, id: &str) -> Option<Named> {
        if let Some(e) = inv.element(id) {
            return Some(Named::Element(e));
        }
        if inv.racks.iter().any(|r| r.row == id) {
            Some(Named::Row(id.to_owned()))
        } else if inv.racks.iter().any(|r| r.room == id) {
            Some(Named::Room(id.to_owned()))
        } else if inv.racks.iter().any(|r| r.datacenter == id) {
            Some(Named::Datacenter(id.to_owned()))
        } else {
            None
        }
    }

    /// The kind's name in messages and listings (`server`, `rack`, `row`, ...).
    pub fn kind(&self, inv: &Inventory) -> &'static str {
        match self {
            Named::Element(e) => inv.elements[e.index()].kind.name(),
            Named::Row(_) => "row",
            Named::Room(_) => "room",
            Named::Datacenter(_) => "datacenter",
        }
    }

    /// Whether `health` may be reported for it: any element may fail or be active again;
    /// only a server drains.
    pub fn allows(&self, inv: &Inventory, health: Health) -> bool {
        health != Health::Draining
            || matches!(self, Named::Element(e) if inv.elements[e.index()].kind == ElementKind::Server)
    }

    /// The health the export itself gives it: a server's status, else active.
    pub fn exported(&self, inv: &Inventory) -> Health {
        match self {
            Named::Element(e) => {
                let element = &inv.elements[e.index()];
                if element.kind != ElementKind::Server {
                    return Health::Active;
                }
                match inv.servers[element.index as usize].status {
                    ServerStatus::Active => Health::Active,
                    ServerStatus::Draining => Health::Draining,
                    ServerStatus::Failed => Health::Failed,
                }
            }
            _ => Health::Active,
        }
    }
}

/// One reported state: what it names, its health, and since when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// What the id names.
    pub named: Named,
    /// Its health now.
    pub health: Health,
    /// Since when, Unix milliseconds.
    pub since: i64,
}

/// The overlay applied: the equivalent tables and, for every server the overlay takes
/// down, since when.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The export's tables with the overlay applied (validate them like any export).
    pub raw: RawInventory,
    /// Per server (by index): `Some(since)` when the overlay, not the export, takes it
    /// down: the earliest of its own failure, its rack's and the moment it lost the last
    /// of its power.
    pub down_since: Vec<Option<i64>>,
    /// Network devices the overlay takes down (failed or unpowered), by index.
    pub devices_down: Vec<bool>,
}

/// Applies `reported` to the export (`raw`, validated as `inv`). Servers keep their rows.
pub fn apply(raw: &RawInventory, inv: &Inventory, reported: &[Reported]) -> Applied {
    let failed_at = |e: crate::ElementId| -> Option<i64> {
        reported
            .iter()
            .filter(|r| r.health == Health::Failed && r.named == Named::Element(e))
            .map(|r| r.since)
            .min()
    };
    // Labels failed, with since; a datacenter also takes its devices.
    let mut rows = BTreeMap::new();
    let mut rooms = BTreeMap::new();
    let mut dcs = BTreeMap::new();
    for r in reported.iter().filter(|r| r.health == Health::Failed) {
        let (map, label) = match &r.named {
            Named::Row(l) => (&mut rows, l),
            Named::Room(l) => (&mut rooms, l),
            Named::Datacenter(l) => (&mut dcs, l),
            Named::Element(_) => continue,
        };
        let at: &mut i64 = map.entry(label.clone()).or_insert(r.since);
        *at = (*at).min(r.since);
    }
    let min = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    };
    let dc_down = |label: &str| dcs.get(label).copied();

    // Power: a device is dead from the earliest of its own failure and the moment the last
    // of its upstream devices died (it has some, and all are dead). Feeds point upstream
    // and have no cycle: relax until nothing changes.
    let n = inv.power_devices.len();
    let mut dead: Vec<Option<i64>> = inv
        .power_devices
        .iter()
        .map(|d| min(failed_at(d.element), dc_down(&d.datacenter)))
        .collect();
    let all_dead = |feeds: &[u32], dead: &[Option<i64>]| -> Option<i64> {
        if feeds.is_empty() {
            return None;
        }
        let mut last = i64::MIN;
        for &u in feeds {
            last = last.max(dead[u as usize]?);
        }
        Some(last)
    };
    loop {
        let mut changed = false;
        for d in 0..n {
            let via = all_dead(&inv.power_devices[d].feeds, &dead);
            let next = min(dead[d], via);
            if next != dead[d] {
                dead[d] = next;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    let rack_down: Vec<Option<i64>> = inv
        .racks
        .iter()
        .map(|r| {
            [
                failed_at(r.element),
                rows.get(&r.row).copied(),
                rooms.get(&r.room).copied(),
                dcs.get(&r.datacenter).copied(),
            ]
            .into_iter()
            .fold(None, min)
        })
        .collect();
    let down_since: Vec<Option<i64>> = inv
        .servers
        .iter()
        .map(|s| {
            let feeds = inv.feeds_of(s);
            [
                failed_at(s.element),
                rack_down[s.rack as usize],
                all_dead(feeds, &dead),
            ]
            .into_iter()
            .fold(None, min)
        })
        .collect();
    let devices_down: Vec<bool> = inv
        .network_devices
        .iter()
        .map(|d| {
            failed_at(d.element).is_some()
                || dc_down(&d.datacenter).is_some()
                || all_dead(&d.feeds, &dead).is_some()
        })
        .collect();
    let group_down: Vec<bool> = inv
        .risk_groups
        .iter()
        .map(|g| failed_at(g.element).is_some())
        .collect();
    let end_down = |end: NetNode| matches!(end, NetNode::Device(d) if devices_down[d as usize]);
    let links_dropped: BTreeSet<&str> = inv
        .links
        .iter()
        .filter(|l| {
            failed_at(l.element).is_some()
                || l.risk_group.is_some_and(|g| group_down[g as usize])
                || end_down(l.a)
                || end_down(l.b)
        })
        .map(|l| l.id.as_str())
        .collect();
    let dead_devices: BTreeSet<&str> = inv
        .power_devices
        .iter()
        .zip(&dead)
        .filter(|(_, d)| d.is_some())
        .map(|(p, _)| p.id.as_str())
        .collect();

    // Each server's status as the overlay says, by id.
    let mut status: BTreeMap<&str, &'static str> = BTreeMap::new();
    for r in reported {
        if let Named::Element(e) = r.named {
            let element = &inv.elements[e.index()];
            if element.kind == ElementKind::Server {
                status.insert(element.id.as_str(), r.health.name());
            }
        }
    }
    for (s, since) in inv.servers.iter().zip(&down_since) {
        if since.is_some() {
            status.insert(s.id.as_str(), ServerStatus::Failed.name());
        }
    }

    let mut out = raw.clone();
    if let Some(servers) = out.tables.get_mut("servers") {
        if let (Some(id), Some(col)) = (
            servers.column_index("server_id"),
            servers.column_index("status"),
        ) {
            for row in &mut servers.rows {
                if let Some(&s) = row[id].as_deref().and_then(|i| status.get(i)) {
                    row[col] = Some(s.to_owned());
                }
            }
        }
    }
    if let Some(links) = out.tables.get_mut("network_links") {
        if let Some(id) = links.column_index("link_id") {
            links.rows.retain(|row| {
                !row[id]
                    .as_deref()
                    .is_some_and(|l| links_dropped.contains(l))
            });
        }
    }
    if let Some(feeds) = out.tables.get_mut("power_feeds") {
        if let Some(up) = feeds.column_index("upstream") {
            feeds
                .rows
                .retain(|row| !row[up].as_deref().is_some_and(|u| dead_devices.contains(u)));
        }
    }
    Applied {
        raw: out,
        down_since,
        devices_down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::reference;
    use crate::ElementId;

    use crate::testing::tiny as zone;

    fn failed(named: Named, since: i64) -> Reported {
        Reported {
            named,
            health: Health::Failed,
            since,
        }
    }

    /// Up-ness and who reaches whom, among servers, as one comparable value.
    fn standing(state: &reference::State) -> Vec<(bool, Vec<bool>)> {
        let n = state.up.len();
        (0..n)
            .map(|a| {
                let reach = (0..n)
                    .map(|b| state.up[a] && state.up[b] && state.component[a] == state.component[b])
                    .collect();
                (state.up[a], reach)
            })
            .collect()
    }

    /// The overlay's promise, literally: for every scenario of at most two elements, the
    /// applied inventory leaves up and connected what the export leaves with the failed
    /// elements failed too. Checked with the contract's reference semantics for every
    /// element failed alone, for every pair of power devices, and for rows, rooms and
    /// the datacenter.
    #[test]
    fn the_applied_tables_behave_as_the_export_with_the_failures() {
        let (raw, inv) = zone();
        let mut overlays: Vec<Vec<Reported>> = (0..inv.elements.len())
            .map(|e| vec![failed(Named::Element(ElementId(e as u32)), 1)])
            .collect();
        let power: Vec<ElementId> = inv.power_devices.iter().map(|d| d.element).collect();
        for (i, &a) in power.iter().enumerate() {
            for &b in &power[i + 1..] {
                overlays.push(vec![
                    failed(Named::Element(a), 1),
                    failed(Named::Element(b), 2),
                ]);
            }
        }
        for label in ["dc1-h1-row01", "dc1-h2", "dc1"] {
            overlays.push(vec![failed(Named::resolve(&inv, label).unwrap(), 1)]);
        }
        let mut checked = 0;
        for overlay in &overlays {
            let applied = apply(&raw, &inv, overlay);
            let (after, _) = Inventory::from_raw(&applied.raw).unwrap();
            assert_eq!(
                after.servers.iter().map(|s| &s.id).collect::<Vec<_>>(),
                inv.servers.iter().map(|s| &s.id).collect::<Vec<_>>()
            );
            // What the overlay fails, as elements of the export.
            let mut base: Vec<ElementId> = Vec::new();
            for r in overlay {
                match &r.named {
                    Named::Element(e) => base.push(*e),
                    Named::Row(l) | Named::Room(l) | Named::Datacenter(l) => {
                        for rack in &inv.racks {
                            if rack.row == *l || rack.room == *l || rack.datacenter == *l {
                                base.push(rack.element);
                            }
                        }
                        if let Named::Datacenter(l) = &r.named {
                            for d in &inv.network_devices {
                                if d.datacenter == *l {
                                    base.push(d.element);
                                }
                            }
                            for d in &inv.power_devices {
                                if d.datacenter == *l {
                                    base.push(d.element);
                                }
                            }
                        }
                    }
                }
            }
            let scenarios: Vec<Vec<&str>> = std::iter::once(Vec::new())
                .chain(inv.elements.iter().map(|e| vec![e.id.as_str()]))
                .chain(
                    inv.elements
                        .iter()
                        .enumerate()
                        .flat_map(|(i, a)| {
                            inv.elements[i + 1..]
                                .iter()
                                .map(move |b| vec![a.id.as_str(), b.id.as_str()])
                        })
                        .step_by(7),
                )
                .collect();
            for scenario in scenarios {
                let mut before = base.clone();
                before.extend(scenario.iter().map(|id| inv.element(id).unwrap()));
                // An element the applied tables dropped is down there anyway.
                let now: Vec<ElementId> =
                    scenario.iter().filter_map(|id| after.element(id)).collect();
                assert_eq!(
                    standing(&reference::state(&after, &now)),
                    standing(&reference::state(&inv, &before)),
                    "overlay {overlay:?}, scenario {scenario:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn down_since_is_the_earliest_cause_and_power_dies_with_its_last_feed() {
        let (raw, inv) = zone();
        let server = |id: &str| inv.server_index(id).unwrap() as usize;
        let el = |id: &str| Named::Element(inv.element(id).unwrap());
        // h2-rk01 is fed by pduA only: it dies with pduA. h1 racks have pduA + pduB.
        let applied = apply(
            &raw,
            &inv,
            &[
                failed(el("dc1-h2-row01-pduA"), 50),
                failed(el("dc1-h2-row01-rk01-s01"), 20),
                failed(el("dc1-h1-row01-pduA"), 10),
            ],
        );
        assert_eq!(
            applied.down_since[server("dc1-h2-row01-rk01-s01")],
            Some(20)
        );
        assert_eq!(
            applied.down_since[server("dc1-h2-row01-rk01-s02")],
            Some(50)
        );
        // Dual-fed: still up on pduB.
        assert_eq!(applied.down_since[server("dc1-h1-row01-rk01-s01")], None);
        let applied = apply(
            &raw,
            &inv,
            &[
                failed(el("dc1-h1-row01-pduA"), 10),
                failed(el("dc1-h1-row01-pduB"), 30),
            ],
        );
        assert_eq!(
            applied.down_since[server("dc1-h1-row01-rk01-s01")],
            Some(30)
        );
        let room = apply(&raw, &inv, &[failed(Named::Room("dc1-h1".into()), 7)]);
        assert_eq!(room.down_since[server("dc1-h1-row01-rk02-s04")], Some(7));
        assert_eq!(room.down_since[server("dc1-h2-row01-rk02-s01")], None);
    }

    #[test]
    fn server_states_override_the_export_and_labels_resolve() {
        let (raw, inv) = zone();
        let el = |id: &str| Named::Element(inv.element(id).unwrap());
        let draining = "dc1-h1-row01-rk02-s02";
        let applied = apply(
            &raw,
            &inv,
            &[
                Reported {
                    named: el(draining),
                    health: Health::Active,
                    since: 1,
                },
                Reported {
                    named: el("dc1-h1-row01-rk01-s01"),
                    health: Health::Draining,
                    since: 1,
                },
            ],
        );
        let (after, _) = Inventory::from_raw(&applied.raw).unwrap();
        let status = |id: &str| after.servers[after.server_index(id).unwrap() as usize].status;
        assert_eq!(status(draining), ServerStatus::Active);
        assert_eq!(status("dc1-h1-row01-rk01-s01"), ServerStatus::Draining);
        assert_eq!(
            Named::resolve(&inv, "dc1-h1-row01"),
            Some(Named::Row("dc1-h1-row01".into()))
        );
        assert_eq!(
            Named::resolve(&inv, "dc1").unwrap().kind(&inv),
            "datacenter"
        );
        assert_eq!(Named::resolve(&inv, "nope"), None);
        let tor = el("dc1-h1-row01-rk02-tor");
        assert!(!tor.allows(&inv, Health::Draining));
        assert!(tor.allows(&inv, Health::Failed));
        assert!(el(draining).allows(&inv, Health::Draining));
        assert_eq!(el(draining).exported(&inv), Health::Draining);
    }
}
