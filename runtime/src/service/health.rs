//! Health events: element states reported at run time, kept as an overlay on the active
//! inventory, and the cells they may change judged again on the zone they leave before the
//! reply.
//!
//! A report is checked whole against the export (all or nothing), the overlay's new zone
//! is built and modelled off the async runtime (the model rebuilt from the last one, which
//! names the servers that may answer otherwise: a server down touches its own cells, a
//! switch those of its racks, a partition many), and the cells on them are evaluated on
//! it, in parallel, from a snapshot. Under the ledger's lock the zone is swapped, the
//! cells that changed since the snapshot are evaluated again there, and the overlay with
//! every cell whose risk, safety or down state changed is written in one journal entry;
//! the reply waits until it is durable. Solves that ran on the old zone see it changed and run
//! again. Reports are serialised with inventory switches.

use std::collections::HashMap;
use std::sync::Arc;

use optimizer::report::cell_risks;
use optimizer::risk::RiskEvaluator;
use store::{Change, RiskUpdate};
use topology::Placement;

use crate::dto::{timestamp, ElementList, ElementStateItem, ElementStatesResponse, ElementView};
use crate::ledger::Cell;
use crate::overlay::{Overlay, Report};
use crate::zone::Zone;
use crate::Error;

use super::{blocking, writable, Service};

/// Most states in one report.
pub const MAX_STATES: usize = 10_000;

/// A cell's standing as the ledger records it: risk bits and safety.
fn standing(risk: f64, safe: bool) -> (u64, bool) {
    (risk.to_bits(), safe)
}

impl Service {
    /// Reports element states (all or nothing) and judges the cells they may change on the
    /// zone they leave; see the module docs.
    pub async fn report_states(
        &self,
        states: Vec<ElementStateItem>,
    ) -> Result<ElementStatesResponse, Error> {
        if states.is_empty() || states.len() > MAX_STATES {
            return Err(Error::InvalidField {
                field: "states".into(),
                message: format!("from 1 to {MAX_STATES} states"),
            });
        }
        let reports: Vec<Report> = states
            .into_iter()
            .map(|s| Report {
                element: s.element,
                state: s.state.into(),
                reason: s.reason,
            })
            .collect();
        let _switching = self.switching.lock().await;
        let zone = self.core.ledger.read().await.zone.clone();
        let now = self.core.clock.now_ms();
        let overlay = zone.overlay.after(&zone.export.inventory, &reports, now)?;
        let elements = |zone: &Zone| -> Vec<ElementView> {
            reports
                .iter()
                .map(|r| element_view(zone, &r.element))
                .collect()
        };
        if overlay == zone.overlay {
            let ledger = self.core.ledger.read().await;
            self.core.journal.wait(ledger.seq).await?;
            return Ok(self.states_response(&ledger, elements(&zone), false, 0, 0));
        }
        let (next, changed_servers) = {
            let zone = zone.clone();
            blocking(move || zone.after_overlay(overlay)).await??
        };
        let next = Arc::new(next);
        // The cells on a server whose answers may have changed (every cell when the
        // model cannot say), judged on the new zone from a snapshot (off the runtime, on
        // every core); the others keep their standing. Cells that change meanwhile are
        // judged again under the lock below.
        let touched = changed_servers.map(|servers| {
            let mut touched = vec![false; next.inventory.servers.len()];
            for s in servers {
                touched[s as usize] = true;
            }
            touched
        });
        let version = next.version;
        let to_judge = |c: &Cell, nodes: &[u32]| {
            c.inventory_version != version
                || touched
                    .as_ref()
                    .is_none_or(|t| c.clients.iter().chain(nodes).any(|&s| t[s as usize]))
        };
        let (placements, versions) = {
            let ledger = self.core.ledger.read().await;
            writable(&ledger)?;
            let mut placements = Vec::new();
            let mut versions = HashMap::new();
            for c in ledger.iter() {
                let nodes = ledger.nodes(c);
                if to_judge(c, nodes) {
                    versions.insert(c.id.clone(), (c.version, placements.len()));
                    placements.push(Placement {
                        cell_id: c.id.to_string(),
                        clients: c.clients.to_vec(),
                        nodes: nodes.to_vec(),
                    });
                }
            }
            (placements, versions)
        };
        let risks = {
            let (model, placements) = (next.clone(), Arc::new(placements));
            blocking(move || cell_risks(&model.model, &placements, 0)).await?
        };
        let (seq, judged, changed) = {
            let mut ledger = self.core.write().await;
            writable(&ledger)?;
            if !Arc::ptr_eq(&ledger.zone, &zone) {
                return Err(Error::Contended { attempts: 1 });
            }
            let mut evaluator = RiskEvaluator::new(&next.model);
            let mut judged = Vec::new();
            let mut evaluated = 0;
            for c in ledger.iter() {
                let nodes = ledger.nodes(c);
                let (risk, safe) = match versions.get(&c.id) {
                    Some(&(v, i)) if v == c.version => risks[i],
                    // Changed since the snapshot, or new and one to judge: judged here.
                    found if found.is_some() || to_judge(c, nodes) => {
                        let r = evaluator.evaluate(&c.clients, nodes);
                        (r.risk, r.single_failure_safe())
                    }
                    _ => continue,
                };
                evaluated += 1;
                let before = standing(c.risk, c.single_failure_safe);
                if before != standing(risk, safe) || c.inventory_version != version {
                    judged.push((c.id.clone(), risk, safe));
                }
            }
            let total = evaluated;
            let mut updates = Vec::with_capacity(judged.len());
            for (id, risk, safe) in &judged {
                let mut cell = ledger.cell_mut(id).expect("listed above");
                cell.risk = *risk;
                cell.single_failure_safe = *safe;
                cell.inventory_version = version;
                cell.version += 1;
                cell.updated_at = now;
                updates.push(RiskUpdate {
                    cell_id: id.to_string(),
                    risk: *risk,
                    single_failure_safe: *safe,
                    inventory_version: version,
                    version: cell.version,
                    updated_at: now,
                });
            }
            let mut changes = vec![Change::SetOverlay(next.overlay.records())];
            if !updates.is_empty() {
                changes.push(Change::SetRisks(updates));
            }
            let seq = self.core.journal.submit(changes);
            for (id, ..) in &judged {
                ledger.stamp(id, seq);
            }
            // The autopilot sees the new zone only after this: its moves name the event.
            self.autopilot.record_event(&reports, now);
            ledger.zone = next.clone();
            (seq, total, judged.len())
        };
        self.core.journal.wait(seq).await?;
        tracing::info!(
            elements = reports.len(),
            overlay = next.overlay.entries.len(),
            cells_changed = changed,
            "element states reported"
        );
        self.autopilot.notify();
        let ledger = self.core.ledger.read().await;
        Ok(self.states_response(&ledger, elements(&next), true, judged, changed))
    }

    fn states_response(
        &self,
        ledger: &crate::ledger::Ledger,
        elements: Vec<ElementView>,
        changed: bool,
        judged: usize,
        cells_changed: usize,
    ) -> ElementStatesResponse {
        let zone = &ledger.zone;
        ElementStatesResponse {
            inventory_version: zone.version,
            elements,
            changed,
            cells_judged: judged as u64,
            cells_changed: cells_changed as u64,
            cells_unsafe: ledger.unsafe_count(),
            cells_out: ledger.out_count(),
            servers_down: zone.down_since.iter().filter(|d| d.is_some()).count() as u64,
        }
    }

    /// The overlay, by id; only the entries in `state` when given.
    pub async fn elements(&self, state: Option<store::ElementState>) -> ElementList {
        let zone = self.core.ledger.read().await.zone.clone();
        ElementList {
            inventory_version: zone.version,
            elements: zone
                .overlay
                .entries
                .iter()
                .filter(|(_, e)| state.is_none_or(|s| s == e.state))
                .map(|(id, _)| element_view(&zone, id))
                .collect(),
        }
    }
}

/// An element as the overlay holds it (`active` since the export's load when it holds no
/// entry).
pub(super) fn element_view(zone: &Zone, id: &str) -> ElementView {
    let kind = Overlay::kind(&zone.export.inventory, id).to_owned();
    match zone.overlay.entries.get(id) {
        Some(e) => ElementView {
            element: id.to_owned(),
            kind,
            state: e.state.name().to_owned(),
            reason: e.reason.clone(),
            since: timestamp(e.since),
        },
        None => {
            let exported = topology::overlay::Named::resolve(&zone.export.inventory, id)
                .map_or("active", |n| n.exported(&zone.export.inventory).name());
            ElementView {
                element: id.to_owned(),
                kind,
                state: exported.to_owned(),
                reason: None,
                since: timestamp(zone.loaded_at),
            }
        }
    }
}
