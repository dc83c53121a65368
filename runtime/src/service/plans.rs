//! Rebalancing plans against the ledger: computing and storing one (a dry run), reading
//! it, and starting, pausing, resuming and cancelling its execution.
//!
//! A plan is computed by [`optimizer::rebalance::plan`] on a snapshot of the ledger and
//! stored with its steps; nothing moves until it is executed. Execution (see
//! [`super::executor`]) commits step by step through the same checks as every other
//! change. Plans live in memory in a [`Plans`] book and in the store; a plan that was
//! executing when the process stopped comes back paused. One plan executes at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use optimizer::rebalance::{self, Goals, Reason};
use topology::model::ServerStatus;
use topology::Inventory;

use crate::dto::{
    CurvePointView, ExecuteRequest, PlanList, PlanRequest, PlanSummaryView, PlanView, UnmetView,
};
use crate::engine::PlaceOptions;
use store::{Change, PlanRecord, PlanState, PlanStepRecord, StepStatus, Store};
use crate::Error;

use super::ops::{now_ms, LIST_LIMIT};
use super::{blocking, writable, Service};

/// Most points of a plan's curve kept and shown (first and last always among them).
const CURVE_POINTS: usize = 200;
/// Steps per page of `GET /v1/plans/{id}` when no limit is given, and the most per page.
pub const DEFAULT_STEPS_PAGE: usize = 100;
pub const MAX_STEPS_PAGE: usize = 10_000;
/// Execution defaults and bounds.
const DEFAULT_RATE: f64 = 10.0;
const MAX_RATE: f64 = 100_000.0;
const MIN_RATE: f64 = 0.01;
const DEFAULT_CONCURRENCY: u32 = 16;
const MAX_CONCURRENCY: u32 = 1024;
/// Most moves a plan may ask for.
const MAX_MOVES: u64 = 10_000_000;

/// One plan in memory.
#[derive(Debug)]
pub(super) struct Entry {
    pub record: PlanRecord,
    pub request: PlanRequest,
    pub summary: PlanSummaryView,
    pub steps: Vec<PlanStepRecord>,
    /// Index of the first step that may still be pending.
    pub next: usize,
    /// +1 on every execute or resume, so the executor restarts its rate clock.
    pub epoch: u64,
}

#[derive(Debug, Default)]
pub(super) struct Book {
    pub entries: BTreeMap<String, Entry>,
    /// The highest plan number handed out.
    last: u64,
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
    /// Holds the zone's executor lease while this replica executes a plan.
    store: Arc<dyn Store>,
    pub(super) wake: Condvar,
    /// One plan computed at a time: a plan uses every core.
    planning: tokio::sync::Semaphore,
}

impl Plans {
    pub(super) fn new(store: Arc<dyn Store>) -> Plans {
        Plans {
            book: Mutex::new(Book::default()),
            store,
            wake: Condvar::new(),
            planning: tokio::sync::Semaphore::new(1),
        }
    }

    pub(super) async fn release_lease(&self) {
        self.store.release_executor_lease().await;
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the book leaves plain data behind: keep serving.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the book from the store. A plan that was executing comes back paused, and
    /// an unfinished plan made on another inventory version comes back invalidated; the
    /// changes that record this are returned.
    pub(super) fn restore(
        &self,
        stored: Vec<(PlanRecord, Vec<PlanStepRecord>)>,
        version: i64,
    ) -> Result<Vec<Change>, Error> {
        let mut book = self.lock();
        let mut changes = Vec::new();
        let now = now_ms();
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
    pub(super) fn mirror(&self, stored: Vec<(PlanRecord, Vec<PlanStepRecord>)>) {
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
    pub(super) fn invalidate_all(&self, version: i64) -> Vec<Change> {
        let mut book = self.lock();
        let now = now_ms();
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
    pub(super) fn counts(&self) -> [u64; PlanState::ALL.len()] {
        let mut out = [0; PlanState::ALL.len()];
        for e in self.lock().entries.values() {
            out[e.record.state as usize] += 1;
        }
        out
    }

    /// Stops the executor (it leaves its plan `executing` for the next start to pause) and
    /// waits for it.
    pub(super) fn stop(&self) -> Vec<std::thread::JoinHandle<()>> {
        let mut book = self.lock();
        book.stopping = true;
        self.wake.notify_all();
        std::mem::take(&mut book.threads)
    }

    pub(super) fn push_thread(&self, handle: std::thread::JoinHandle<()>) {
        let mut book = self.lock();
        book.threads.retain(|t| !t.is_finished());
        book.threads.push(handle);
    }
}

pub(super) fn invalidated_note(planned_on: i64, now: i64) -> String {
    format!(
        "planned on inventory version {planned_on}; the active version is now {now}: plan again"
    )
}

fn plan_number(id: &str) -> Option<u64> {
    id.strip_prefix("plan-")?.parse().ok()
}

fn not_found(id: &str) -> Error {
    Error::PlanNotFound {
        plan: id.to_owned(),
    }
}

fn conflict(id: &str, message: String) -> Error {
    Error::PlanConflict {
        plan: id.to_owned(),
        message,
    }
}

/// The zone's inventory with every server that `drain` names (directly or through a rack,
/// row, room, datacenter, network or power device) marked draining.
pub(super) fn plan_inventory(
    inv: &Inventory,
    drain: Option<&[String]>,
) -> Result<Inventory, Error> {
    let mut out = inv.clone();
    for (i, id) in drain.unwrap_or_default().iter().enumerate() {
        let servers = inv.servers_named(id).ok_or_else(|| Error::InvalidField {
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
pub(super) fn plan_options(base: &PlaceOptions, request: &PlanRequest) -> PlaceOptions {
    PlaceOptions {
        seed: request.seed.unwrap_or(base.seed),
        ..base.clone()
    }
}

fn validate(req: &PlanRequest) -> Result<(), Error> {
    let invalid = |field: &str, message: String| Error::InvalidField {
        field: field.to_owned(),
        message,
    };
    if req.drain.is_none() && !req.repair && req.balance.is_none() && !req.improve {
        return Err(invalid(
            "drain",
            "no goal: give at least one of drain, repair, balance, improve".into(),
        ));
    }
    if let Some(b) = req.balance {
        if !(b.is_finite() && b >= 1.0) {
            return Err(invalid("balance", format!("{b}: a ratio of at least 1")));
        }
    }
    if let Some(k) = req.max_moves {
        if k > MAX_MOVES {
            return Err(invalid("max_moves", format!("{k}: at most {MAX_MOVES}")));
        }
    }
    if let Some(e) = &req.execute {
        settings(e)?;
    }
    Ok(())
}

/// Rate and concurrency of an execution, defaults filled in.
pub(super) fn settings(e: &ExecuteRequest) -> Result<(f64, u32), Error> {
    let rate = e.rate.unwrap_or(DEFAULT_RATE);
    if !(rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate)) {
        return Err(Error::InvalidField {
            field: "rate".into(),
            message: format!("{rate} moves per second: from {MIN_RATE} to {MAX_RATE}"),
        });
    }
    let concurrency = e.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Err(Error::InvalidField {
            field: "concurrency".into(),
            message: format!("{concurrency}: from 1 to {MAX_CONCURRENCY}"),
        });
    }
    Ok((rate, concurrency))
}

/// At most [`CURVE_POINTS`] points, evenly spread, the first and the last kept.
fn sample_curve(curve: &[rebalance::CurvePoint]) -> Vec<CurvePointView> {
    let view = |p: &rebalance::CurvePoint| CurvePointView {
        moves: p.moves as u64,
        total_risk: p.total_risk,
        unsafe_cells: p.unsafe_cells as u64,
        load_max_over_mean: p.load_max_over_mean,
        nodes_to_move: p.nodes_to_move,
    };
    if curve.len() <= CURVE_POINTS {
        return curve.iter().map(view).collect();
    }
    let last = curve.len() - 1;
    (0..CURVE_POINTS)
        .map(|i| view(&curve[i * last / (CURVE_POINTS - 1)]))
        .collect()
}

impl Service {
    /// Computes a plan on the ledger's current cells and stores it (a dry run unless the
    /// request says `execute`).
    pub async fn create_plan(&self, req: PlanRequest) -> Result<PlanView, Error> {
        validate(&req)?;
        let _permit = self
            .plans
            .planning
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let (zone, placements) = {
            let ledger = self.core.ledger.read().await;
            writable(&ledger)?;
            (ledger.zone.clone(), ledger.placements())
        };
        let inv = plan_inventory(&zone.inventory, req.drain.as_deref())?;
        let goals = Goals {
            drain: req.drain.is_some(),
            repair: req.repair,
            balance: req.balance,
            improve: req.improve,
            max_moves: req.max_moves.map(|k| k as usize),
        };
        let options = plan_options(&self.core.placer, &req);
        let model = zone.clone();
        let started = std::time::Instant::now();
        let (plan, inv, placements) = blocking(move || {
            let plan = rebalance::plan(&inv, &model.model, &placements, &goals, &options);
            (plan, inv, placements)
        })
        .await?;
        self.core.metrics.observe_solve("plan", started.elapsed());
        let now = now_ms();
        let server = |s: u32| inv.servers[s as usize].id.clone();
        let steps: Vec<PlanStepRecord> = plan
            .moves
            .iter()
            .enumerate()
            .map(|(i, m)| PlanStepRecord {
                step: i as i64 + 1,
                cell_id: placements[m.cell].cell_id.clone(),
                remove: server(m.remove),
                add: server(m.add),
                reason: m.reason.name().to_owned(),
                risk_before: m.risk_before,
                risk_after: m.risk_after,
                safe_after: m.safe_after,
                after: m.after.iter().map(|&a| a as i64 + 1).collect(),
                status: StepStatus::Pending,
                note: None,
                updated_at: now,
            })
            .collect();
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for m in &plan.moves {
            *by_reason.entry(m.reason.name().to_owned()).or_default() += 1;
        }
        let summary = PlanSummaryView {
            moves: plan.moves.len() as u64,
            moves_by_reason: by_reason,
            curve: sample_curve(&plan.curve),
            unmet: plan
                .unmet
                .iter()
                .take(LIST_LIMIT)
                .map(|u| UnmetView {
                    reason: u.reason.name().to_owned(),
                    cell_id: u.cell.map(|c| placements[c].cell_id.clone()),
                    server: u.server.map(server),
                    why: u.why.clone(),
                })
                .collect(),
            unmet_more: plan.unmet.len().saturating_sub(LIST_LIMIT) as u64,
        };
        let execute = req.execute;
        let stored_request = PlanRequest {
            execute: None,
            ..req
        };
        let seq = {
            // Under the ledger's lock: the inventory cannot switch between this check and
            // the plan's record.
            let ledger = self.core.ledger.write().await;
            writable(&ledger)?;
            if ledger.zone.version != zone.version {
                return Err(conflict(
                    "(new)",
                    "the inventory switched while the plan was computed: plan again".into(),
                ));
            }
            let mut book = self.plans.lock();
            book.last += 1;
            let plan_id = format!("plan-{:06}", book.last);
            let record = PlanRecord {
                plan_id: plan_id.clone(),
                state: PlanState::Planned,
                inventory_version: zone.version,
                request: serde_json::to_string(&stored_request)
                    .map_err(|e| Error::Internal(format!("plan request: {e}")))?,
                summary: serde_json::to_string(&summary)
                    .map_err(|e| Error::Internal(format!("plan summary: {e}")))?,
                rate: None,
                concurrency: None,
                note: None,
                created_at: now,
                updated_at: now,
            };
            let seq = self.core.journal.submit(vec![
                Change::PutPlan(record.clone()),
                Change::AddPlanSteps {
                    plan_id: plan_id.clone(),
                    steps: steps.clone(),
                },
            ]);
            book.entries.insert(
                plan_id.clone(),
                Entry {
                    record,
                    request: stored_request,
                    summary,
                    steps,
                    next: 0,
                    epoch: 0,
                },
            );
            drop(book);
            drop(ledger);
            (seq, plan_id)
        };
        let (seq, plan_id) = seq;
        self.core.journal.wait(seq).await?;
        tracing::info!(plan = %plan_id, moves = plan.moves.len(), unmet = plan.unmet.len(), "planned");
        if let Some(e) = execute {
            return self.execute_plan(&plan_id, e).await;
        }
        self.plan(&plan_id, 0, DEFAULT_STEPS_PAGE)
    }

    /// A plan with the steps from `offset` (at most `limit`).
    pub fn plan(&self, id: &str, offset: usize, limit: usize) -> Result<PlanView, Error> {
        let book = self.plans.lock();
        let e = book.entries.get(id).ok_or_else(|| not_found(id))?;
        Ok(PlanView::new(
            &e.record, &e.request, &e.summary, &e.steps, offset, limit,
        ))
    }

    /// Every plan, newest first, without steps.
    pub fn plan_list(&self) -> PlanList {
        let book = self.plans.lock();
        PlanList {
            plans: book
                .entries
                .values()
                .rev()
                .map(|e| PlanView::new(&e.record, &e.request, &e.summary, &e.steps, 0, 0))
                .collect(),
        }
    }

    /// Starts executing a planned (or paused) plan.
    pub async fn execute_plan(&self, id: &str, req: ExecuteRequest) -> Result<PlanView, Error> {
        let (rate, concurrency) = settings(&req)?;
        self.start(
            id,
            Some((rate, concurrency)),
            &[PlanState::Planned, PlanState::Paused],
        )
        .await
    }

    /// Resumes a paused plan with the rate and concurrency it had.
    pub async fn resume_plan(&self, id: &str) -> Result<PlanView, Error> {
        self.start(id, None, &[PlanState::Paused]).await
    }

    async fn start(
        &self,
        id: &str,
        settings: Option<(f64, u32)>,
        from: &[PlanState],
    ) -> Result<PlanView, Error> {
        let version = {
            let ledger = self.core.ledger.read().await;
            writable(&ledger)?;
            ledger.zone.version
        };
        // One replica executes plans at a time: the lease, before anything changes (an
        // executor of this replica already holds it).
        let idle = self.plans.lock().executor.is_none();
        if idle && !self.plans.store.take_executor_lease().await? {
            return Err(conflict(
                id,
                "a plan executes on another replica: one executor per zone".into(),
            ));
        }
        let (seq, spawn) = {
            let mut book = self.plans.lock();
            if book.stopping {
                return Err(Error::ShuttingDown);
            }
            let busy = book.executor.clone();
            let e = book.entries.get(id).ok_or_else(|| not_found(id))?;
            if !from.contains(&e.record.state) {
                let wanted: Vec<&str> = from.iter().map(|s| s.name()).collect();
                return Err(conflict(
                    id,
                    format!(
                        "the plan is {}; this needs it {}",
                        e.record.state.name(),
                        wanted.join(" or ")
                    ),
                ));
            }
            if e.record.inventory_version != version {
                return Err(conflict(
                    id,
                    invalidated_note(e.record.inventory_version, version),
                ));
            }
            match &busy {
                Some(other) if other != id => {
                    let state = book.entries.get(other).map_or("stopping", |o| {
                        if o.record.state == PlanState::Executing {
                            "executing"
                        } else {
                            "stopping"
                        }
                    });
                    return Err(conflict(
                        id,
                        format!("plan {other} is {state}: one plan executes at a time"),
                    ));
                }
                _ => {}
            }
            let e = book.entries.get_mut(id).expect("checked above");
            e.record.state = PlanState::Executing;
            if let Some((rate, concurrency)) = settings {
                e.record.rate = Some(rate);
                e.record.concurrency = Some(i64::from(concurrency));
            }
            e.record.note = None;
            e.record.updated_at = now_ms();
            e.epoch += 1;
            let seq = self
                .core
                .journal
                .submit(vec![Change::PutPlan(e.record.clone())]);
            // The executor of this plan may still be winding down from a pause: it sees the
            // state and goes on.
            let spawn = busy.is_none();
            if spawn {
                book.executor = Some(id.to_owned());
            }
            (seq, spawn)
        };
        self.plans.wake.notify_all();
        if spawn {
            let handle = super::executor::spawn(
                self.core.clone(),
                self.plans.clone(),
                id.to_owned(),
                tokio::runtime::Handle::current(),
            )?;
            self.plans.push_thread(handle);
        }
        self.core.journal.wait(seq).await?;
        self.plan(id, 0, 0)
    }

    pub async fn pause_plan(&self, id: &str) -> Result<PlanView, Error> {
        self.stop_plan(id, PlanState::Paused, &[PlanState::Executing])
            .await
    }

    pub async fn cancel_plan(&self, id: &str) -> Result<PlanView, Error> {
        self.stop_plan(
            id,
            PlanState::Cancelled,
            &[PlanState::Planned, PlanState::Executing, PlanState::Paused],
        )
        .await
    }

    /// Pauses or cancels: the executor stops before its next step; steps already
    /// committed stay.
    async fn stop_plan(
        &self,
        id: &str,
        to: PlanState,
        from: &[PlanState],
    ) -> Result<PlanView, Error> {
        let seq = {
            let mut book = self.plans.lock();
            let e = book.entries.get_mut(id).ok_or_else(|| not_found(id))?;
            if e.record.state == to {
                // Repeated: the same answer.
                0
            } else if !from.contains(&e.record.state) {
                return Err(conflict(
                    id,
                    format!(
                        "the plan is {}: it cannot be {}",
                        e.record.state.name(),
                        to.name()
                    ),
                ));
            } else {
                e.record.state = to;
                e.record.note = None;
                e.record.updated_at = now_ms();
                self.core
                    .journal
                    .submit(vec![Change::PutPlan(e.record.clone())])
            }
        };
        self.plans.wake.notify_all();
        self.core.journal.wait(seq).await?;
        self.plan(id, 0, 0)
    }
}

/// The first `risk_before` of each cell in a plan: its risk when the plan was made, which
/// moves for balance and risk may not exceed.
pub(super) fn start_risks(steps: &[PlanStepRecord]) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for s in steps {
        out.entry(s.cell_id.clone()).or_insert(s.risk_before);
    }
    out
}

/// A step's reason back as the optimizer's.
pub(super) fn reason(name: &str) -> Option<Reason> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_is_sampled_with_its_ends() {
        let point = |moves| rebalance::CurvePoint {
            moves,
            total_risk: moves as f64,
            unsafe_cells: 0,
            load_max_over_mean: 1.0,
            nodes_to_move: 0,
        };
        let short: Vec<_> = (0..10).map(point).collect();
        assert_eq!(sample_curve(&short).len(), 10);
        let long: Vec<_> = (0..=10_000).map(point).collect();
        let s = sample_curve(&long);
        assert_eq!(s.len(), CURVE_POINTS);
        assert_eq!(s[0].moves, 0);
        assert_eq!(s.last().unwrap().moves, 10_000);
        assert!(s.windows(2).all(|w| w[0].moves < w[1].moves));
    }

    #[test]
    fn requests_without_a_goal_or_with_bad_settings_are_refused() {
        let field = |r: PlanRequest| match validate(&r) {
            Err(Error::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(PlanRequest::default()), "drain");
        let balance = PlanRequest {
            balance: Some(0.5),
            ..PlanRequest::default()
        };
        assert_eq!(field(balance), "balance");
        let rate = PlanRequest {
            repair: true,
            execute: Some(ExecuteRequest {
                rate: Some(0.0),
                concurrency: None,
            }),
            ..PlanRequest::default()
        };
        assert_eq!(field(rate), "rate");
        let concurrency = PlanRequest {
            repair: true,
            execute: Some(ExecuteRequest {
                rate: None,
                concurrency: Some(0),
            }),
            ..PlanRequest::default()
        };
        assert_eq!(field(concurrency), "concurrency");
        assert!(validate(&PlanRequest {
            drain: Some(vec![]),
            ..PlanRequest::default()
        })
        .is_ok());
        assert_eq!(reason("drain"), Some(Reason::Drain));
        assert_eq!(reason("nope"), None);
    }
}
