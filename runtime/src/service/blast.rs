//! What failures would do, over the ledger's cells: one element's failure (the cells it
//! puts out, paged, and where their nodes sit) and every element's blast radius.

use optimizer::whatif::{standing, Standing};
use rustc_hash::FxHashMap;
use topology::failure::ScenarioState;
use topology::{ElementId, Inventory};

use crate::dto::{
    encode_cursor, BlastView, ElementBlastView, ElementDetail, RackBlastView, RackCountView,
};
use crate::ledger::Ledger;
use crate::Error;

use super::cells::{page_after, page_limit};
use super::{Heavy, Service};

/// Cells per page of an element's `out_cells` when no limit is given.
const DEFAULT_PAGE: usize = 100;

impl Service {
    /// The element `id` and what its failure would do to every cell on the zone as it
    /// is now; `out_cells` paged by id (`limit`, `cursor`). Every cell is judged under
    /// the ledger's read lock, a few tens of nanoseconds each; at most
    /// [`Heavy::Blast`]'s number of these at once. Changes nothing.
    pub async fn element(
        &self,
        id: &str,
        limit: Option<u64>,
        cursor: Option<String>,
    ) -> Result<ElementDetail, Error> {
        let limit = page_limit(limit, DEFAULT_PAGE, "cells")?;
        let after = page_after(cursor.as_deref())?;
        let run = self.heavy.start(Heavy::Blast).await?;
        let core = self.core.clone();
        let id = id.to_owned();
        let (view, seq) = run
            .compute(move |_stop| {
                let ledger = core.ledger.blocking_read();
                let zone = &ledger.zone;
                let e = zone
                    .inventory
                    .element(&id)
                    .ok_or_else(|| Error::UnknownElement {
                        field: "id".into(),
                        message: format!("'{id}' is not an element of the inventory"),
                    })?;
                let el = &zone.inventory.elements[e.index()];
                let impact = Impact::of(&ledger, e);
                let (out_cells, next) = impact.page(after.as_deref(), limit);
                let view = ElementDetail {
                    reported: super::health::element_view(zone, &id),
                    label: el.label.clone(),
                    afr: el.afr,
                    repair_hours: el.repair_hours,
                    inventory_version: zone.version,
                    cells: ledger.len() as u64,
                    servers_down: impact.servers_down,
                    blast_radius: impact.out.len() as u64,
                    out_already: impact.out_already,
                    degraded: impact.degraded,
                    racks: impact.racks,
                    next_cursor: next.map(|last| encode_cursor(&last)),
                    out_cells,
                };
                Ok((view, ledger.seq))
            })
            .await?;
        self.core.journal.wait(seq).await?;
        Ok(view)
    }

    /// Every element's blast radius on the zone as it is now, and each rack's largest of
    /// its own, its network's and its power's. Only the cells not known single-failure
    /// safe on this version are judged again (the others add to no blast radius).
    pub async fn blast(&self) -> Result<BlastView, Error> {
        let run = self.heavy.start(Heavy::Blast).await?;
        let (zone, placements, seq) = run
            .within(async {
                let ledger = self.core.ledger.read().await;
                let version = ledger.zone.version;
                let unknown = ledger.placements_where(|c| {
                    !(c.single_failure_safe && c.inventory_version == version)
                });
                Ok((ledger.zone.clone(), unknown, ledger.seq))
            })
            .await?;
        self.core.journal.wait(seq).await?;
        run.compute(move |_stop| {
            // 0: one thread per core.
            let blast = optimizer::report::blast_radius(&zone.model, &placements, 0).blast;
            Ok(blast_view(
                &zone.inventory,
                zone.version,
                placements.len(),
                &blast,
            ))
        })
        .await
    }
}

/// One element's failure over every cell of a ledger.
#[derive(Debug)]
struct Impact {
    /// Ids of the cells out, sorted.
    out: Vec<String>,
    out_already: u64,
    degraded: u64,
    servers_down: u64,
    racks: Vec<RackCountView>,
}

impl Impact {
    fn of(ledger: &Ledger, e: ElementId) -> Impact {
        let inv = &ledger.zone.inventory;
        let now = ScenarioState::new(inv, &[]);
        let then = ScenarioState::new(inv, &[e]);
        let mut out = Vec::new();
        let (mut out_already, mut degraded) = (0, 0);
        let mut by_rack: FxHashMap<u32, u64> = FxHashMap::default();
        let mut racks_of_cell: Vec<u32> = Vec::new();
        for cell in ledger.iter() {
            let nodes = ledger.nodes(cell);
            match standing(&then, &cell.clients, nodes) {
                Standing::Out => {
                    out.push(cell.id.to_string());
                    if standing(&now, &cell.clients, nodes) == Standing::Out {
                        out_already += 1;
                        continue;
                    }
                    racks_of_cell.clear();
                    racks_of_cell.extend(nodes.iter().map(|&s| inv.servers[s as usize].rack));
                    racks_of_cell.sort_unstable();
                    racks_of_cell.dedup();
                    for &r in &racks_of_cell {
                        *by_rack.entry(r).or_default() += 1;
                    }
                }
                Standing::Degraded => degraded += 1,
                Standing::Ok => {}
            }
        }
        out.sort_unstable();
        let mut racks: Vec<RackCountView> = by_rack
            .into_iter()
            .map(|(r, cells)| RackCountView {
                rack: inv.racks[r as usize].id.clone(),
                cells,
            })
            .collect();
        racks.sort_by(|a, b| b.cells.cmp(&a.cells).then_with(|| a.rack.cmp(&b.rack)));
        let servers_down = (0..inv.servers.len())
            .filter(|&s| now.up[s] && !then.up[s])
            .count() as u64;
        Impact {
            out,
            out_already,
            degraded,
            servers_down,
            racks,
        }
    }

    /// The out cells after `after` (an id), at most `limit`, and the last id when more
    /// follow.
    fn page(&self, after: Option<&str>, limit: usize) -> (Vec<String>, Option<String>) {
        let start = after.map_or(0, |a| self.out.partition_point(|id| id.as_str() <= a));
        let page: Vec<String> = self.out[start..].iter().take(limit).cloned().collect();
        let more = start + page.len() < self.out.len();
        let next = if more { page.last().cloned() } else { None };
        (page, next)
    }
}

/// The elements with a blast radius and every rack's largest.
fn blast_view(inv: &Inventory, version: i64, judged: usize, blast: &[u32]) -> BlastView {
    let mut elements: Vec<ElementBlastView> = blast
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(i, &n)| ElementBlastView {
            element: inv.elements[i].id.clone(),
            label: inv.elements[i].label.clone(),
            blast_radius: u64::from(n),
        })
        .collect();
    elements.sort_by(|a, b| {
        b.blast_radius
            .cmp(&a.blast_radius)
            .then_with(|| a.element.cmp(&b.element))
    });
    let of = |e: ElementId| u64::from(blast[e.index()]);
    let most = |devices: &[u32], element: &dyn Fn(u32) -> ElementId| {
        devices.iter().map(|&d| of(element(d))).max().unwrap_or(0)
    };
    let network = inv.rack_network_devices();
    let racks = inv
        .racks
        .iter()
        .enumerate()
        .map(|(r, rack)| RackBlastView {
            rack: rack.id.clone(),
            own: of(rack.element),
            network: most(&network[r], &|d| inv.network_devices[d as usize].element),
            power: most(&inv.rack_power_devices(r), &|d| {
                inv.power_devices[d as usize].element
            }),
        })
        .collect();
    BlastView {
        inventory_version: version,
        cells_judged: judged as u64,
        elements,
        racks,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use optimizer::whatif::{scenario, Standing};

    use super::super::testing::SmallZone;
    use crate::dto::{ElementStateItem, StateName};

    /// Every page of the element's out cells, by the cursor.
    async fn all_out(zone: &SmallZone, id: &str) -> (crate::dto::ElementDetail, Vec<String>) {
        let first = zone.service.element(id, Some(7), None).await.unwrap();
        let mut out = first.out_cells.clone();
        let mut cursor = first.next_cursor.clone();
        while let Some(c) = cursor {
            let page = zone.service.element(id, Some(7), Some(c)).await.unwrap();
            assert!(page.out_cells.len() <= 7);
            out.extend(page.out_cells);
            cursor = page.next_cursor;
        }
        (first, out)
    }

    /// The element view and the blast view against the what-if's scenario and the fleet
    /// report over every cell, on the zone as exported and with a rack failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_elements_failure_is_the_scenarios_and_blast_radii_the_reports() {
        let zone = SmallZone::new(60).await;
        for i in 0..zone.cells() {
            zone.service.place(zone.request(i)).await.unwrap();
        }
        // The racks of four of c00's nodes: with three failed, c00 is unsafe (one more of
        // its racks puts it out); with the fourth, it is out already.
        let failed_racks: Vec<String> = {
            let ledger = zone.service.core.ledger.read().await;
            let inv = &ledger.zone.inventory;
            let mut racks: Vec<String> = ledger
                .nodes(ledger.cell("c00").unwrap())
                .iter()
                .map(|&s| inv.racks[inv.servers[s as usize].rack as usize].id.clone())
                .collect();
            racks.dedup();
            racks.truncate(4);
            racks
        };
        let mut checked_out = 0;
        let mut checked_already = 0;
        let (three, fourth) = failed_racks.split_at(3);
        assert_eq!(fourth.len(), 1, "c00 spans four racks");
        for failed in [None, Some(three.to_vec()), Some(fourth.to_vec())] {
            if let Some(racks) = &failed {
                let states = racks
                    .iter()
                    .map(|rack| ElementStateItem {
                        element: rack.clone(),
                        state: StateName::Failed,
                        reason: None,
                    })
                    .collect();
                zone.service.report_states(states).await.unwrap();
            }
            let (zone_now, placements) = {
                let ledger = zone.service.core.ledger.read().await;
                (ledger.zone.clone(), ledger.placements())
            };
            let inv = &zone_now.inventory;
            let now = scenario(inv, &[], &placements);
            // Every rack, network and power device, and some servers and links.
            let ids: Vec<String> = inv
                .racks
                .iter()
                .map(|r| r.id.clone())
                .chain(inv.network_devices.iter().map(|d| d.id.clone()))
                .chain(inv.power_devices.iter().map(|d| d.id.clone()))
                .chain(inv.servers.iter().step_by(97).map(|s| s.id.clone()))
                .chain(inv.links.iter().step_by(211).map(|l| l.id.clone()))
                .collect();
            for id in &ids {
                let e = inv.element(id).unwrap();
                let then = scenario(inv, &[e], &placements);
                let of = |want: Standing| -> BTreeSet<String> {
                    then.iter()
                        .zip(&placements)
                        .filter(|(s, _)| **s == want)
                        .map(|(_, p)| p.cell_id.clone())
                        .collect()
                };
                let (view, out) = all_out(&zone, id).await;
                let want = of(Standing::Out);
                assert_eq!(out, want.iter().cloned().collect::<Vec<_>>(), "{id}");
                assert_eq!(view.blast_radius, want.len() as u64, "{id}");
                assert_eq!(view.degraded, of(Standing::Degraded).len() as u64, "{id}");
                let already = then
                    .iter()
                    .zip(&now)
                    .filter(|(t, n)| **t == Standing::Out && **n == Standing::Out)
                    .count();
                assert_eq!(view.out_already, already as u64, "{id}");
                let newly: u64 = view.racks.iter().map(|r| r.cells).sum();
                assert!(newly >= view.blast_radius - view.out_already, "{id}");
                assert_eq!(view.cells, placements.len() as u64);
                checked_out += view.blast_radius;
                checked_already += view.out_already;
            }

            let blast = zone.service.blast().await.unwrap();
            let report = optimizer::report::blast_radius(&zone_now.model, &placements, 1).blast;
            let mut want: Vec<(u64, String)> = report
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(i, &n)| (u64::from(n), inv.elements[i].id.clone()))
                .collect();
            want.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let got: Vec<(u64, String)> = blast
                .elements
                .iter()
                .map(|e| (e.blast_radius, e.element.clone()))
                .collect();
            assert_eq!(
                got, want,
                "the blast view against the report over every cell"
            );
            assert!(blast.cells_judged < placements.len() as u64 || failed.is_some());
            // Each rack's power: the largest blast radius of the devices that reach it
            // downstream (walked the other way from the view's upstream walk).
            for (r, rack) in inv.racks.iter().enumerate() {
                let view = &blast.racks[r];
                assert_eq!(view.rack, rack.id);
                assert_eq!(view.own, u64::from(report[rack.element.index()]));
                let mut power = 0;
                for d in &inv.power_devices {
                    let mut reached = BTreeSet::new();
                    let mut stack = vec![d.element];
                    while let Some(x) = stack.pop() {
                        if !reached.insert(x) {
                            continue;
                        }
                        for down in &inv.power_devices {
                            let feeds_it = down
                                .feeds
                                .iter()
                                .any(|&f| inv.power_devices[f as usize].element == x);
                            if feeds_it {
                                stack.push(down.element);
                            }
                        }
                    }
                    let feeds = |f: &[u32]| {
                        f.iter()
                            .any(|&f| reached.contains(&inv.power_devices[f as usize].element))
                    };
                    let reaches = feeds(&rack.feeds)
                        || rack
                            .servers
                            .iter()
                            .any(|&s| feeds(&inv.servers[s as usize].feeds));
                    if reaches {
                        power = power.max(u64::from(report[d.element.index()]));
                    }
                }
                assert_eq!(view.power, power, "{}", rack.id);
            }
        }
        assert!(
            checked_out > checked_already,
            "no element put a cell out: the test shows nothing"
        );
        assert!(
            checked_already > 0,
            "no cell was out already: the test shows less"
        );
        let unknown = zone.service.element("no-such-element", None, None).await;
        assert!(
            matches!(unknown, Err(crate::Error::UnknownElement { .. })),
            "{unknown:?}"
        );
        let zero = zone
            .service
            .element(&blast_rack(&zone).await, Some(0), None)
            .await;
        assert!(
            matches!(zero, Err(crate::Error::InvalidField { .. })),
            "{zero:?}"
        );
        let bad = zone
            .service
            .element(&blast_rack(&zone).await, None, Some("zz".into()))
            .await;
        assert!(
            matches!(bad, Err(crate::Error::InvalidField { .. })),
            "{bad:?}"
        );
    }

    async fn blast_rack(zone: &SmallZone) -> String {
        zone.service.core.ledger.read().await.zone.inventory.racks[1]
            .id
            .clone()
    }
}
