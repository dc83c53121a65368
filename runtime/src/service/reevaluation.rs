//! Re-evaluation of the cells whose risk was recorded on another inventory version (after
//! a switch, or on start): in the background, a chunk at a time, each chunk recorded in one
//! journal entry, so that placements go on meanwhile. Progress in `GET /v1/inventory` and
//! the metrics.

use std::sync::{Arc, Mutex};

use optimizer::report::{cell_risks, load_summary};
use topology::model::ServerStatus;
use topology::Placement;

use crate::dto::{timestamp, ReevaluationView};
use crate::metrics::ReevaluationGauges;
use crate::view::OverCapacityView;
use crate::zone::Zone;
use crate::Error;
use store::{Change, RiskUpdate};

use super::blocking;
use super::ops::Core;
use crate::limits::LIST_LIMIT;

/// Cells judged per chunk: each chunk holds the ledger's write lock while it is recorded
/// (tens of milliseconds), so placements wait at most that long.
pub(crate) const CHUNK: usize = 5_000;

/// The latest re-evaluation's progress.
#[derive(Debug, Default)]
pub(crate) struct Reevaluations {
    latest: Mutex<Option<ReevaluationView>>,
}

impl Reevaluations {
    /// The view of the latest re-evaluation, if one ever started.
    pub(crate) fn latest(&self) -> Option<ReevaluationView> {
        self.lock().clone()
    }

    /// Its progress for the metrics, if one ever started.
    pub(crate) fn gauges(&self) -> Option<ReevaluationGauges> {
        self.lock().as_ref().map(|v| ReevaluationGauges {
            running: v.state == RUNNING,
            cells: v.cells as u64,
            evaluated: v.evaluated as u64,
            recorded: v.recorded as u64,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ReevaluationView>> {
        // A panic while holding it leaves a view that is still worth showing.
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the view of the re-evaluation on `version`, unless a later one took over.
    fn update(&self, version: i64, f: impl FnOnce(&mut ReevaluationView)) {
        if let Some(v) = self
            .lock()
            .as_mut()
            .filter(|v| v.inventory_version == version)
        {
            f(v);
        }
    }
}

const RUNNING: &str = "running";

/// Starts re-evaluating the cells on `zone` (about `cells` of them) in the background and
/// returns its view as it starts; await the handle for the final one. A later start
/// supersedes it (it stops at its next chunk).
pub(super) fn start(
    core: Arc<Core>,
    progress: Arc<Reevaluations>,
    zone: Arc<Zone>,
    cells: usize,
) -> (ReevaluationView, tokio::task::JoinHandle<ReevaluationView>) {
    let view = ReevaluationView {
        state: RUNNING.into(),
        inventory_version: zone.version,
        cells,
        started_at: timestamp(core.clock.now_ms()),
        ..ReevaluationView::default()
    };
    *progress.lock() = Some(view.clone());
    let handle = tokio::spawn(async move {
        let version = zone.version;
        let outcome = judge(&core, &progress, &zone).await;
        let finished = timestamp(core.clock.now_ms());
        progress.update(version, |v| {
            v.finished_at = Some(finished);
            match &outcome {
                Ok(state) => v.state = (*state).into(),
                Err(e) => {
                    v.state = "failed".into();
                    v.error = Some(e.to_string());
                }
            }
        });
        let view = progress
            .latest()
            .filter(|v| v.inventory_version == version)
            .unwrap_or_else(|| ReevaluationView {
                state: "superseded".into(),
                inventory_version: version,
                ..ReevaluationView::default()
            });
        match &outcome {
            Ok(_) => tracing::info!(
                version,
                state = %view.state,
                cells = view.cells,
                recorded = view.recorded,
                unsafe_cells = view.unsafe_count,
                became_unsafe = view.became_unsafe_count,
                on_draining = view.on_draining_count,
                on_failed = view.on_failed_count,
                over_capacity = view.over_capacity.len(),
                "re-evaluated the cells on the inventory"
            ),
            Err(e) => tracing::warn!(version, "re-evaluating the cells: {e}"),
        }
        view
    });
    (view, handle)
}

/// The cells to judge, as of one moment.
struct Stale {
    placements: Vec<Placement>,
    /// Each cell's version and safety as recorded before.
    versions: Vec<i64>,
    safe_before: Vec<bool>,
}

/// Judges every stale cell and records it; the final state, or why it stopped.
async fn judge(
    core: &Arc<Core>,
    progress: &Reevaluations,
    zone: &Arc<Zone>,
) -> Result<&'static str, Error> {
    let version = zone.version;
    let stale = {
        let ledger = core.ledger.read().await;
        if ledger.zone.version != version {
            return Ok("superseded");
        }
        let mut stale = Stale {
            placements: Vec::new(),
            versions: Vec::new(),
            safe_before: Vec::new(),
        };
        for c in ledger.iter().filter(|c| c.inventory_version != version) {
            stale.placements.push(Placement {
                cell_id: c.id.to_string(),
                clients: c.clients.to_vec(),
                nodes: ledger.nodes(c).to_vec(),
            });
            stale.versions.push(c.version);
            stale.safe_before.push(c.single_failure_safe);
        }
        stale
    };
    progress.update(version, |v| v.cells = stale.placements.len());
    let stale = Arc::new(stale);
    let inv = &zone.inventory;
    let mut from = 0;
    while from < stale.placements.len() {
        let to = (from + CHUNK).min(stale.placements.len());
        let (z, s) = (zone.clone(), stale.clone());
        // Off the async runtime, on every core.
        let risks = blocking(move || cell_risks(&z.model, &s.placements[from..to], 0)).await?;
        progress.update(version, |v| v.evaluated = to);
        let (seq, recorded) = {
            let mut ledger = core.write().await;
            if ledger.zone.version != version {
                return Ok("superseded");
            }
            if let Some(message) = &ledger.poisoned {
                return Err(Error::StoreUnavailable {
                    message: message.clone(),
                });
            }
            let now = core.clock.now_ms();
            let mut updates = Vec::with_capacity(to - from);
            let mut touched = Vec::with_capacity(to - from);
            let mut view = ReevaluationView::default();
            for (i, &(risk, safe)) in (from..to).zip(&risks) {
                let p = &stale.placements[i];
                let Some(mut cell) = ledger.cell_mut(&p.cell_id) else {
                    continue; // deleted meanwhile
                };
                if cell.version != stale.versions[i] {
                    continue; // changed meanwhile: judged on this version by its change
                }
                cell.risk = risk;
                cell.single_failure_safe = safe;
                cell.inventory_version = version;
                cell.version += 1;
                cell.updated_at = now;
                updates.push(RiskUpdate {
                    cell_id: p.cell_id.clone(),
                    risk,
                    single_failure_safe: safe,
                    inventory_version: version,
                    version: cell.version,
                    updated_at: now,
                });
                touched.push(i);
                let id = p.cell_id.as_str();
                if !safe {
                    push(&mut view.unsafe_cells, &mut view.unsafe_count, id);
                    if stale.safe_before[i] {
                        push(&mut view.became_unsafe, &mut view.became_unsafe_count, id);
                    }
                }
                let on = |status| {
                    p.nodes
                        .iter()
                        .any(|&n| inv.servers[n as usize].status == status)
                };
                if on(ServerStatus::Draining) {
                    push(&mut view.on_draining, &mut view.on_draining_count, id);
                }
                if on(ServerStatus::Failed) {
                    push(&mut view.on_failed, &mut view.on_failed_count, id);
                }
            }
            let recorded = updates.len();
            let seq = if updates.is_empty() {
                0
            } else {
                let seq = core.journal.submit(vec![Change::SetRisks(updates)]);
                for i in touched {
                    ledger.stamp(&stale.placements[i].cell_id, seq);
                }
                seq
            };
            progress.update(version, |v| merge(v, view));
            (seq, recorded)
        };
        // Durable before it counts as recorded; also keeps the journal from piling up.
        core.journal.wait(seq).await?;
        progress.update(version, |v| v.recorded += recorded);
        from = to;
    }
    // Servers over capacity on this inventory, from the cells as they are now.
    let placements = core.ledger.read().await.placements();
    let over = blocking({
        let zone = zone.clone();
        move || load_summary(&zone.inventory, &placements).over_capacity
    })
    .await?;
    progress.update(version, |v| {
        v.over_capacity = OverCapacityView::list(&zone.inventory, &over);
    });
    Ok("done")
}

fn push(list: &mut Vec<String>, count: &mut usize, id: &str) {
    *count += 1;
    if list.len() < LIST_LIMIT {
        list.push(id.to_owned());
    }
}

/// Adds a chunk's lists and counts to the view.
fn merge(v: &mut ReevaluationView, chunk: ReevaluationView) {
    let lists = [
        (&mut v.unsafe_cells, chunk.unsafe_cells),
        (&mut v.became_unsafe, chunk.became_unsafe),
        (&mut v.on_draining, chunk.on_draining),
        (&mut v.on_failed, chunk.on_failed),
    ];
    for (list, more) in lists {
        let room = LIST_LIMIT.saturating_sub(list.len());
        list.extend(more.into_iter().take(room));
    }
    v.unsafe_count += chunk.unsafe_count;
    v.became_unsafe_count += chunk.became_unsafe_count;
    v.on_draining_count += chunk.on_draining_count;
    v.on_failed_count += chunk.on_failed_count;
}
