//! The book of rebalancing plans in memory, shared by the requests on plans and by the
//! executor: every plan with its steps, the executor's lease, and what both need to read a
//! plan (its inventory, its placement options, its steps' reasons and starting risks).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use optimizer::rebalance::Reason;
use store::{Change, PlanRecord, PlanState, PlanStepRecord, StepStatus};
use topology::model::ServerStatus;
use topology::Inventory;

use crate::clock::Clock;
use crate::dto::{PlanRequest, PlanSummaryView};
use crate::engine::PlaceOptions;
use crate::Error;

/// One plan in memory.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) record: PlanRecord,
    pub request: PlanRequest,
    pub summary: PlanSummaryView,
    pub steps: Vec<PlanStepRecord>,
    /// Index of the first step that may still be pending.
    pub next: usize,
    /// +1 on every execute or resume, so the executor restarts its rate clock.
    pub epoch: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    pub entries: BTreeMap<String, Entry>,
    /// The highest plan number handed out.
    pub(crate) last: u64,
    /// The plan whose executor thread is running, if any.
    pub executor: Option<String>,
    /// Set on shutdown: executors stop where they are (the plan stays `executing` in the
    /// store and comes back paused).
    pub stopping: bool,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Book {
    /// Puts a stored plan in the book (replacing one with its id); plan numbers go on
    /// after its.
    fn put(
        &mut self,
        record: PlanRecord,
        request: PlanRequest,
        summary: PlanSummaryView,
        steps: Vec<PlanStepRecord>,
    ) {
        if let Some(n) = plan_number(&record.plan_id) {
            self.last = self.last.max(n);
        }
        let next = steps
            .iter()
            .position(|s| s.status == StepStatus::Pending)
            .unwrap_or(steps.len());
        self.entries.insert(
            record.plan_id.clone(),
            Entry {
                record,
                request,
                summary,
                steps,
                next,
                epoch: 0,
            },
        );
    }
}

/// Every plan, and the signal that wakes an executor (pause, resume, cancel, shutdown).
#[derive(Debug)]
pub struct Plans {
    book: Mutex<Book>,
    /// Held while this replica executes a plan.
    pub(crate) lease: Arc<crate::service::lease::Lease>,
    /// Stamps the records of restored and invalidated plans.
    clock: Arc<dyn Clock>,
    pub(crate) wake: Condvar,
}

impl Plans {
    pub(crate) fn new(lease: Arc<crate::service::lease::Lease>, clock: Arc<dyn Clock>) -> Plans {
        Plans {
            book: Mutex::new(Book::default()),
            lease,
            clock,
            wake: Condvar::new(),
        }
    }

    pub(crate) async fn release_lease(&self) {
        self.lease.release().await;
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the book leaves plain data behind: keep serving.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the book from the store. A plan that was executing comes back paused, and
    /// an unfinished plan made on another inventory version comes back invalidated; the
    /// changes that record this are returned.
    pub(crate) fn restore(
        &self,
        stored: Vec<(PlanRecord, Vec<PlanStepRecord>)>,
        version: i64,
    ) -> Result<Vec<Change>, Error> {
        let mut book = self.lock();
        let mut changes = Vec::new();
        let now = self.clock.now_ms();
        for (mut record, steps) in stored {
            let request: PlanRequest = serde_json::from_str(&record.request).map_err(|e| {
                Error::Internal(format!("plan {}: stored request: {e}", record.plan_id))
            })?;
            let summary: PlanSummaryView = serde_json::from_str(&record.summary).map_err(|e| {
                Error::Internal(format!("plan {}: stored summary: {e}", record.plan_id))
            })?;
            if !record.state.finished() && record.inventory_version != version {
                record.state = PlanState::Invalidated;
                record.note = Some(invalidated_note(record.inventory_version, version));
                record.updated_at = now;
                changes.push(Change::PutPlan(record.clone()));
            } else if record.state == PlanState::Executing {
                record.state = PlanState::Paused;
                record.note = Some("the service stopped while the plan executed".into());
                record.updated_at = now;
                changes.push(Change::PutPlan(record.clone()));
            }
            book.put(record, request, summary, steps);
        }
        Ok(changes)
    }

    /// Takes plans as another replica stored them (it made or changed them): each replaces
    /// this book's entry, except the plan this replica executes, of which it is the writer;
    /// plan numbers go on after the highest seen.
    pub(crate) fn mirror(&self, stored: Vec<(PlanRecord, Vec<PlanStepRecord>)>) {
        let mut book = self.lock();
        for (record, steps) in stored {
            if book.executor.as_deref() == Some(record.plan_id.as_str()) {
                continue;
            }
            let (Ok(request), Ok(summary)) = (
                serde_json::from_str::<PlanRequest>(&record.request),
                serde_json::from_str::<PlanSummaryView>(&record.summary),
            ) else {
                tracing::warn!(plan = %record.plan_id, "another replica's plan does not parse");
                continue;
            };
            book.put(record, request, summary, steps);
        }
    }

    /// Marks every unfinished plan invalidated (the inventory switches to `version`);
    /// returns the changes that record it.
    pub(crate) fn invalidate_all(&self, version: i64) -> Vec<Change> {
        let mut book = self.lock();
        let now = self.clock.now_ms();
        let changes = book
            .entries
            .values_mut()
            .filter(|e| !e.record.state.finished())
            .map(|e| {
                e.record.state = PlanState::Invalidated;
                e.record.note = Some(invalidated_note(e.record.inventory_version, version));
                e.record.updated_at = now;
                Change::PutPlan(e.record.clone())
            })
            .collect();
        drop(book);
        self.wake.notify_all();
        changes
    }

    /// Plans by state, for the gauges (in [`PlanState::ALL`] order).
    pub(crate) fn counts(&self) -> [u64; PlanState::ALL.len()] {
        let mut out = [0; PlanState::ALL.len()];
        for e in self.lock().entries.values() {
            out[e.record.state as usize] += 1;
        }
        out
    }

    /// Stops the executor (it leaves its plan `executing` for the next start to pause) and
    /// waits for it.
    pub(crate) fn stop(&self) -> Vec<std::thread::JoinHandle<()>> {
        let mut book = self.lock();
        book.stopping = true;
        self.wake.notify_all();
        std::mem::take(&mut book.threads)
    }

    pub(crate) fn push_thread(&self, handle: std::thread::JoinHandle<()>) {
        let mut book = self.lock();
        book.threads.retain(|t| !t.is_finished());
        book.threads.push(handle);
    }
}

pub(crate) fn invalidated_note(planned_on: i64, now: i64) -> String {
    format!(
        "planned on inventory version {planned_on}; the active version is now {now}: plan again"
    )
}

fn plan_number(id: &str) -> Option<u64> {
    id.strip_prefix("plan-")?.parse().ok()
}

/// The zone's inventory with every server that `drain` names (directly or through a rack,
/// row, room, datacenter, network or power device) marked draining.
pub(crate) fn plan_inventory(
    inv: &Inventory,
    drain: Option<&[String]>,
) -> Result<Inventory, Error> {
    let mut out = inv.clone();
    for (i, id) in drain.unwrap_or_default().iter().enumerate() {
        let servers = inv.servers_named(id).ok_or_else(|| Error::UnknownElement {
            field: format!("drain[{i}]"),
            message: format!(
                "'{id}' names no server, rack, row, room, datacenter, network device or power \
                 device of the inventory"
            ),
        })?;
        for s in servers {
            let server = &mut out.servers[s as usize];
            if server.status == ServerStatus::Active {
                server.status = ServerStatus::Draining;
            }
        }
    }
    Ok(out)
}

/// The placement options of a plan: the service's, with the request's seed.
pub(crate) fn plan_options(base: &PlaceOptions, request: &PlanRequest) -> PlaceOptions {
    PlaceOptions {
        seed: request.seed.unwrap_or(base.seed),
        ..base.clone()
    }
}

/// The first `risk_before` of each cell in a plan: its risk when the plan was made, which
/// moves for balance and risk may not exceed.
pub(crate) fn start_risks(steps: &[PlanStepRecord]) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for s in steps {
        out.entry(s.cell_id.clone()).or_insert(s.risk_before);
    }
    out
}

/// A step's reason back as the optimizer's.
pub(crate) fn reason(name: &str) -> Option<Reason> {
    [
        Reason::Failed,
        Reason::Drain,
        Reason::Unsafe,
        Reason::Balance,
        Reason::Improve,
    ]
    .into_iter()
    .find(|r| r.name() == name)
}
