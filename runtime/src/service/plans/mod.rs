//! Rebalancing plans against the ledger: computing and storing one (a dry run), reading
//! it, and starting, pausing, resuming and cancelling its execution.
//!
//! A plan is computed by [`optimizer::rebalance::plan`] on a snapshot of the ledger and
//! stored with its steps; nothing moves until it is executed. Execution (see
//! [`super::executor`], over the [`book`]) commits step by step through the same checks as every other
//! change. Plans live in memory in a [`Plans`] book and in the store; a plan that was
//! executing when the process stopped comes back paused. One plan executes at a time.

use std::collections::BTreeMap;

use optimizer::place::PlaceOptions;
use optimizer::rebalance::{self, Goals};

use crate::dto::{
    CurvePointView, ExecuteRequest, PlanList, PlanRequest, PlanSummaryView, PlanView, UnmetView,
};
use crate::Error;
use store::{Change, PlanRecord, PlanState, PlanStepRecord, StepStatus};

use super::{writable, Heavy, Service};
use crate::limits::{LIST_LIMIT, MAX_CONCURRENCY, MAX_MOVES, MAX_RATE, MIN_RATE};

pub(crate) mod book;

pub use book::Plans;
use book::{invalidated_note, plan_inventory, plan_options, Entry};

/// Most points of a plan's curve kept and shown (first and last always among them).
const CURVE_POINTS: usize = 200;
/// Steps per page of `GET /v1/plans/{id}` when no limit is given.
pub const DEFAULT_STEPS_PAGE: usize = 100;
/// Most steps per page of `GET /v1/plans/{id}`.
pub const MAX_STEPS_PAGE: usize = 10_000;
/// Execution defaults and bounds.
const DEFAULT_RATE: f64 = 10.0;
const DEFAULT_CONCURRENCY: u32 = 16;

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
        // A plan recorded against a state another replica changed first was not stored:
        // planned again on the reloaded ledger.
        self.unless_stale(|| self.create_plan_once(req.clone()))
            .await
    }

    async fn create_plan_once(&self, req: PlanRequest) -> Result<PlanView, Error> {
        validate(&req)?;
        let run = self.heavy.start(Heavy::Plan).await?;
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
        let (plan, inv, placements) = run
            .compute(move |stop| {
                let options = PlaceOptions { stop, ..options };
                let plan = rebalance::plan(&inv, &model.model, &placements, &goals, &options);
                Ok((plan, inv, placements))
            })
            .await?;
        self.core.metrics.observe_solve("plan", started.elapsed());
        let now = self.core.clock.now_ms();
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
            let ledger = self.core.write().await;
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
        if let Err(e) = self.core.journal.wait(seq).await {
            // Not stored: no such plan.
            self.plans.lock().entries.remove(&plan_id);
            return Err(e.into());
        }
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
        let took = idle;
        if idle && !self.plans.lease.take().await? {
            return Err(conflict(
                id,
                "another replica holds the executor lease (a plan executes there, or its autopilot \
                 acts): one executor per zone"
                    .into(),
            ));
        }
        let started = (|| {
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
            e.record.updated_at = self.core.clock.now_ms();
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
            Ok((seq, spawn))
        })();
        // The lease taken here goes with the executor this starts; if none starts, back.
        let (seq, spawn) = match started {
            Ok((seq, spawn)) => {
                if took && !spawn {
                    self.plans.lease.release().await;
                }
                (seq, spawn)
            }
            Err(e) => {
                if took {
                    self.plans.lease.release().await;
                }
                return Err(e);
            }
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

    /// Pauses an executing plan before its next step; resume it to go on.
    pub async fn pause_plan(&self, id: &str) -> Result<PlanView, Error> {
        self.stop_plan(id, PlanState::Paused, &[PlanState::Executing])
            .await
    }

    /// Cancels a planned, executing or paused plan; steps already committed stay.
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
                e.record.updated_at = self.core.clock.now_ms();
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

#[cfg(test)]
mod tests {
    use super::*;
    use book::reason;
    use optimizer::rebalance::Reason;

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
