//! The health overlay: element states reported at run time (`PUT /v1/elements/{id}/state`)
//! on top of the active inventory's export, kept in the ledger, and what a report of new
//! states changes in it. Pure: the service applies the result to its zone.

use std::collections::BTreeMap;

use store::{ElementState, ElementStateRecord};
use topology::overlay::{Applied, Health, Named, Reported};
use topology::Inventory;

use crate::Error;

/// The export as read and validated, before any health reported at run time: the
/// structure the overlay's ids are resolved against.
#[derive(Debug)]
pub struct Export {
    /// The tables as read.
    pub raw: topology::raw::RawInventory,
    /// The tables validated.
    pub inventory: std::sync::Arc<Inventory>,
}

/// One element's reported state.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Failed, draining or active.
    pub state: ElementState,
    /// Why, as the reporter said.
    pub reason: Option<String>,
    /// Since when it holds, Unix milliseconds.
    pub since: i64,
}

/// Every element whose reported state differs from what the export says, by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    /// By element id (or row, room, datacenter label).
    pub entries: BTreeMap<String, Entry>,
}

/// One state to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// An element id, or a row, room or datacenter label.
    pub element: String,
    /// The new state.
    pub state: ElementState,
    /// Why.
    pub reason: Option<String>,
}

/// Longest reason kept.
pub const MAX_REASON: usize = 500;

fn health(state: ElementState) -> Health {
    match state {
        ElementState::Failed => Health::Failed,
        ElementState::Draining => Health::Draining,
        ElementState::Active => Health::Active,
    }
}

impl Overlay {
    /// The overlay as the ledger keeps it.
    pub fn from_records(records: Vec<ElementStateRecord>) -> Overlay {
        Overlay {
            entries: records
                .into_iter()
                .map(|r| {
                    (
                        r.element,
                        Entry {
                            state: r.state,
                            reason: r.reason,
                            since: r.since,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The records to keep in the ledger.
    pub fn records(&self) -> Vec<ElementStateRecord> {
        self.entries
            .iter()
            .map(|(id, e)| ElementStateRecord {
                element: id.clone(),
                state: e.state,
                reason: e.reason.clone(),
                since: e.since,
            })
            .collect()
    }

    /// The entries whose ids the export `inv` still names with a state it allows (kept),
    /// and the ids of the others (dropped), for an inventory switch.
    pub fn retain_known(&self, inv: &Inventory) -> (Overlay, Vec<String>) {
        let mut kept = Overlay::default();
        let mut dropped = Vec::new();
        for (id, e) in &self.entries {
            match Named::resolve(inv, id) {
                Some(named)
                    if named.allows(inv, health(e.state))
                        && named.exported(inv) != health(e.state) =>
                {
                    kept.entries.insert(id.clone(), e.clone());
                }
                _ => dropped.push(id.clone()),
            }
        }
        (kept, dropped)
    }

    /// The overlay after `reports` (checked against the export `inv`, all or nothing; the
    /// field of a bad one named as `states[i].element`...): a state equal to the export's
    /// removes the entry; a state unchanged keeps its `since`; a new one starts at `now`.
    pub fn after(&self, inv: &Inventory, reports: &[Report], now: i64) -> Result<Overlay, Error> {
        let mut next = self.clone();
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in reports.iter().enumerate() {
            let field = |name: &str| format!("states[{i}].{name}");
            let named = Named::resolve(inv, &r.element).ok_or_else(|| Error::UnknownElement {
                field: field("element"),
                message: format!(
                    "'{}' names no server, rack, row, room, datacenter, network device, link, \
                     risk group or power device of the inventory",
                    r.element
                ),
            })?;
            if !seen.insert(r.element.as_str()) {
                return Err(Error::InvalidField {
                    field: field("element"),
                    message: format!("'{}' is given twice", r.element),
                });
            }
            if !named.allows(inv, health(r.state)) {
                return Err(Error::InvalidState {
                    field: field("state"),
                    message: format!(
                        "a {} cannot be {}: only a server drains",
                        named.kind(inv),
                        r.state.name()
                    ),
                });
            }
            if r.reason
                .as_ref()
                .is_some_and(|s| s.chars().count() > MAX_REASON)
            {
                return Err(Error::InvalidField {
                    field: field("reason"),
                    message: format!("at most {MAX_REASON} characters"),
                });
            }
            if named.exported(inv) == health(r.state) {
                next.entries.remove(&r.element);
                continue;
            }
            let since = match self.entries.get(&r.element) {
                Some(e) if e.state == r.state => e.since,
                _ => now,
            };
            next.entries.insert(
                r.element.clone(),
                Entry {
                    state: r.state,
                    reason: r.reason.clone(),
                    since,
                },
            );
        }
        Ok(next)
    }

    /// The export's tables with this overlay applied (ids it no longer names are left
    /// out: [`Overlay::retain_known`] drops them on a switch).
    pub fn apply(&self, export: &Export) -> Applied {
        let inv = &export.inventory;
        let reported: Vec<Reported> = self
            .entries
            .iter()
            .filter_map(|(id, e)| {
                Some(Reported {
                    named: Named::resolve(inv, id)?,
                    health: health(e.state),
                    since: e.since,
                })
            })
            .collect();
        topology::overlay::apply(&export.raw, inv, &reported)
    }

    /// The kind of what `id` names in the export (`server`, `rack`, `room`...).
    pub fn kind(inv: &Inventory, id: &str) -> &'static str {
        Named::resolve(inv, id).map_or("unknown", |n| n.kind(inv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> Export {
        let raw = topology::ingest::read_dir(&fixtures::tiny_dir()).unwrap();
        let (inventory, _) = Inventory::from_raw(&raw).unwrap();
        Export {
            raw,
            inventory: inventory.into(),
        }
    }

    fn report(element: &str, state: ElementState) -> Report {
        Report {
            element: element.into(),
            state,
            reason: Some("test".into()),
        }
    }

    #[test]
    fn reports_are_checked_all_or_nothing_and_kept_minimal() {
        let e = export();
        let inv = &e.inventory;
        let o = Overlay::default()
            .after(
                inv,
                &[report("dc1-h1-row01-rk02", ElementState::Failed)],
                10,
            )
            .unwrap();
        assert_eq!(o.entries["dc1-h1-row01-rk02"].since, 10);
        // The same state again keeps its since; another report adds on.
        let o2 = o
            .after(
                inv,
                &[
                    report("dc1-h1-row01-rk02", ElementState::Failed),
                    report("dc1-h1-row01-rk01-s01", ElementState::Draining),
                ],
                20,
            )
            .unwrap();
        assert_eq!(o2.entries["dc1-h1-row01-rk02"].since, 10);
        assert_eq!(o2.entries.len(), 2);
        // Back to what the export says: gone from the overlay.
        let o3 = o2
            .after(
                inv,
                &[report("dc1-h1-row01-rk01-s01", ElementState::Active)],
                30,
            )
            .unwrap();
        assert_eq!(o3.entries.len(), 1);
        // A bad report names its field, and nothing changes.
        let bad = |reports: &[Report]| match o.after(inv, reports, 40) {
            Err(
                Error::InvalidField { field, .. }
                | Error::UnknownElement { field, .. }
                | Error::InvalidState { field, .. },
            ) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bad(&[
                report("dc1-h1-row01-rk02", ElementState::Active),
                report("nope", ElementState::Failed)
            ]),
            "states[1].element"
        );
        assert_eq!(
            bad(&[report("dc1-h1-row01-rk02", ElementState::Draining)]),
            "states[0].state"
        );
        assert_eq!(
            bad(&[
                report("dc1-spine1", ElementState::Failed),
                report("dc1-spine1", ElementState::Active)
            ]),
            "states[1].element"
        );
        // The export's own draining server made active is an entry.
        let o4 = Overlay::default()
            .after(
                inv,
                &[report("dc1-h1-row01-rk02-s02", ElementState::Active)],
                1,
            )
            .unwrap();
        assert_eq!(o4.entries.len(), 1);
        // Round trip through the ledger's records.
        assert_eq!(Overlay::from_records(o2.records()), o2);
    }

    #[test]
    fn a_switch_keeps_what_the_new_export_still_names() {
        let e = export();
        let o = Overlay::default()
            .after(
                &e.inventory,
                &[
                    report("dc1-h2", ElementState::Failed),
                    report("l2", ElementState::Failed),
                ],
                5,
            )
            .unwrap();
        let mut raw = e.raw.clone();
        let links = raw.tables.get_mut("network_links").unwrap();
        links.rows.retain(|r| r[0].as_deref() != Some("l2"));
        let (smaller, _) = Inventory::from_raw(&raw).unwrap();
        let (kept, dropped) = o.retain_known(&smaller);
        assert_eq!(dropped, vec!["l2".to_owned()]);
        assert!(kept.entries.contains_key("dc1-h2"));
        let applied = kept.apply(&Export {
            raw,
            inventory: smaller.into(),
        });
        assert!(applied.down_since.iter().any(Option::is_some));
    }
}
