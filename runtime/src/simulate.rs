//! The autopilot on a simulation's clock: a [`sim::Policy`] that runs the service itself
//! (its ledger on a throwaway SQLite file, its health reports, its autopilot's passes)
//! with a virtual clock. Every failure and repair of the trace is reported as the health
//! system would report it; the autopilot passes when it asks to (at once after a report,
//! when a grace ends, when its pace allows the next move, when a move ends), and its
//! committed moves become the simulation's moves, each taking `move_s`. The decisions are
//! the service's, made by the same code on the same ledger; so is the judgement of which
//! cells are single-failure unsafe, exact on the zone the failures leave. Without acting
//! ([`Autopilot::judge_only`]) the same service judges a static run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sim::{MoveOrder, Policy, Transition};
use topology::model::{ElementKind, ServerStatus};
use topology::raw::RawTable;
use topology::{Inventory, Placement};

use crate::clock::Clock;
use crate::dto::{AutopilotUpdate, ElementStateItem, StateName};
use crate::service::autopilot::pass::Pace;
use crate::service::{Config, Service};
use crate::zone::Source;
use crate::Error;

/// The simulation's hour 0 on the service's clock: 2026-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_767_225_600_000;

/// A clock that shows what the simulation sets.
#[derive(Debug, Default)]
struct VirtualClock(AtomicI64);

impl Clock for VirtualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Hours since the start on the service's clock.
fn to_ms(at_h: f64) -> i64 {
    EPOCH_MS + (at_h * 3_600_000.0).round() as i64
}

/// The simulation's hours at the service's instant `at_ms`.
fn from_ms(at_ms: i64) -> f64 {
    (at_ms - EPOCH_MS) as f64 / 3_600_000.0
}

/// The autopilot's policy: the service with its autopilot, on the simulation's clock.
#[derive(Debug)]
pub struct Autopilot {
    rt: tokio::runtime::Runtime,
    service: Arc<Service>,
    clock: Arc<VirtualClock>,
    pace: Pace,
    /// Cell id → index in the simulation's placements.
    cells: HashMap<String, u32>,
    /// Server id → index in the simulation's inventory.
    servers: HashMap<String, u32>,
    /// Per element: its id and the state a repair reports (the export's).
    elements: Vec<(String, StateName)>,
    wake_h: Option<f64>,
    /// It passes (else it only judges).
    acting: bool,
    /// The cells the service judges unsafe now, sorted (simulation indices).
    unsafe_now: Vec<u32>,
    /// Cells the ledger refused (the autopilot does not manage them): (cell id, why).
    pub refused: Vec<(String, String)>,
}

impl Autopilot {
    /// Imports `table` (the placements as read, the same rows as `placements`) into a new
    /// ledger at `ledger` on the inventory `dir` (cells the service would refuse, e.g. two
    /// sharing a quorum, are left to themselves and listed in `refused`) and opens the
    /// service on it with the autopilot's `settings`; a move takes `move_s` seconds.
    pub fn start(
        dir: &Path,
        inv: &Inventory,
        table: RawTable,
        placements: &[Placement],
        ledger: &Path,
        settings: AutopilotUpdate,
        move_s: f64,
    ) -> Result<Autopilot, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the simulation's runtime: {e}")))?;
        let clock = Arc::new(VirtualClock(AtomicI64::new(EPOCH_MS)));
        let url = store::LedgerUrl::parse(&ledger.display().to_string())?;
        let data_dir = ledger
            .parent()
            .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
        let (service, refused) = rt.block_on(async {
            let store = store::open(&url).await?;
            let outcome =
                crate::import::import(&*store, Source::Dir(dir.to_path_buf()), table, true).await?;
            let config = Config {
                data_dir,
                workers: 1,
                queue: 64,
                placer: Default::default(),
                inventory_root: None,
                // The loop stays off: the simulation calls its passes.
                autopilot: AutopilotUpdate {
                    enabled: Some(false),
                    ..settings
                },
                heavy: Default::default(),
            };
            let service = Service::open_with_clock(
                store,
                Some(Source::Dir(dir.to_path_buf())),
                config,
                clock.clone(),
            )
            .await?;
            Ok::<_, Error>((service, outcome.refused))
        })?;
        let elements = inv
            .elements
            .iter()
            .map(|e| {
                let repaired = match e.kind {
                    ElementKind::Server => match inv.servers[e.index as usize].status {
                        ServerStatus::Active => StateName::Active,
                        ServerStatus::Draining => StateName::Draining,
                        ServerStatus::Failed => StateName::Failed,
                    },
                    _ => StateName::Active,
                };
                (e.id.clone(), repaired)
            })
            .collect();
        Ok(Autopilot {
            rt,
            service,
            clock,
            pace: Pace::with_move_time((move_s * 1e3).round() as i64),
            cells: placements
                .iter()
                .enumerate()
                .map(|(i, p)| (p.cell_id.clone(), i as u32))
                .collect(),
            servers: inv
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i as u32))
                .collect(),
            elements,
            wake_h: None,
            acting: true,
            unsafe_now: Vec::new(),
            refused: refused.into_iter().map(|r| (r.cell_id, r.why)).collect(),
        }
        .judged())
    }

    /// The same service without its autopilot: it judges every cell's safety on the zone
    /// the failures leave and never moves a node (a static run, judged exactly).
    pub fn judge_only(mut self) -> Autopilot {
        self.acting = false;
        self
    }

    /// Reads the cells the service judges unsafe now.
    fn judged(mut self) -> Autopilot {
        self.refresh_unsafe();
        self
    }

    fn refresh_unsafe(&mut self) {
        let ids = self.service.unsafe_cell_ids();
        self.unsafe_now = ids
            .iter()
            .filter_map(|id| self.cells.get(&**id).copied())
            .collect();
        self.unsafe_now.sort_unstable();
    }

    /// Stops the service (its ledger is left as it is).
    pub fn stop(self) {
        self.rt.block_on(self.service.shutdown());
    }

    fn server(&self, id: &str) -> Result<u32, String> {
        self.servers
            .get(id)
            .copied()
            .ok_or_else(|| format!("the autopilot named server {id}, unknown to the simulation"))
    }
}

impl Policy for Autopilot {
    fn name(&self) -> &'static str {
        if self.acting {
            "autopilot"
        } else {
            "static"
        }
    }

    fn observe(&mut self, t: &Transition) -> Result<(), String> {
        self.clock.0.store(to_ms(t.at_h), Ordering::SeqCst);
        let (id, repaired) = &self.elements[t.element.index()];
        let state = if t.fails {
            StateName::Failed
        } else {
            *repaired
        };
        let item = ElementStateItem {
            element: id.clone(),
            state,
            reason: Some("simulated".into()),
        };
        self.rt
            .block_on(self.service.report_states(vec![item]))
            .map_err(|e| format!("reporting {id}: {e}"))?;
        self.refresh_unsafe();
        // Look at once: the event may have put cells out or made them unsafe.
        if self.acting {
            self.wake_h = Some(t.at_h);
        }
        Ok(())
    }

    fn wake_h(&self) -> Option<f64> {
        self.wake_h
    }

    fn act(&mut self, now_h: f64) -> Result<Vec<MoveOrder>, String> {
        let now = to_ms(now_h);
        self.clock.0.store(now, Ordering::SeqCst);
        let handle = self.rt.handle().clone();
        let pass = self
            .service
            .autopilot_pass(&mut self.pace, now, &handle)
            .map_err(|e| e.to_string())?;
        // The service counts whole milliseconds and the simulation hours: wake a
        // millisecond after the service's instant, so that a move the simulation ends at
        // the moment the service's hold on its cell ends (`move_s` after both started, up
        // to the rounding of each) has ended before the next pass looks at the cell.
        let wake_at = if pass.pending {
            Some(now + pass.wait.as_millis() as i64)
        } else {
            pass.next_grace.map(|at| at.max(now))
        };
        self.wake_h = wake_at.map(|at| from_ms(at + 1).max(now_h));
        self.refresh_unsafe();
        pass.actions
            .into_iter()
            .map(|a| {
                let cell = *self.cells.get(&a.cell_id).ok_or_else(|| {
                    format!(
                        "the autopilot moved cell {}, unknown to the simulation",
                        a.cell_id
                    )
                })?;
                Ok(MoveOrder {
                    cell,
                    out: self.server(&a.remove)?,
                    into: self.server(&a.add)?,
                    reason: a.reason,
                })
            })
            .collect()
    }

    fn unsafe_cells(&self) -> Option<&[u32]> {
        Some(&self.unsafe_now)
    }
}
