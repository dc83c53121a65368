//! Executing a plan: one thread commits its steps in order, at the plan's rate, with at
//! most `concurrency` steps committed but not yet durable, each through the same checks
//! as every other change of the ledger.
//!
//! A step is committed as planned only if it still holds on the ledger as it is now:
//! the cell still has the node to move, and the move breaks no hard rule (capacity,
//! colour, shared quorum), makes no safe cell unsafe (except off a failed server) and,
//! for balance and risk moves, raises no cell's risk above its value when the plan was
//! made. A step that a concurrent change invalidated is re-planned for that cell when it
//! is mandatory (off a failed or draining server), otherwise skipped with the reason.
//! Steps commit in plan order, so the steps a step waits for are committed before it.
//! A step's outcome is written in the same transaction as its cell.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use optimizer::risk::RiskEvaluator;
use tokio::runtime::Handle;
use topology::Inventory;

use crate::engine::Placer;
use crate::zone::Zone;
use crate::Error;
use store::{Change, PlanState, PlanStepRecord, StepStatus};

use super::mover;
use super::ops::Core;
use super::plans::book::{
    invalidated_note, plan_inventory, plan_options, reason, start_risks, Book, Plans,
};

/// A rate clock that fell this far behind restarts instead of bursting to catch up.
const MOST_BEHIND: Duration = Duration::from_secs(1);

/// Starts the executor thread of `plan_id` (the caller has made it the book's executor).
pub(super) fn spawn(
    core: Arc<Core>,
    plans: Arc<Plans>,
    plan_id: String,
    rt: Handle,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(format!("cellplacer-{plan_id}"))
        .spawn(move || run(&core, &plans, &plan_id, &rt))
        .map_err(|e| Error::Internal(format!("starting the plan executor: {e}")))
}

/// Why execution stopped on its own.
struct Stop {
    state: PlanState,
    note: Option<String>,
}

fn run(core: &Core, plans: &Plans, plan_id: &str, rt: &Handle) {
    // Resumed while this thread wound down from a pause: `start` saw the book still name
    // this thread and left the plan to it.
    let resumed = |book: &Book, stop: &Option<Stop>| {
        stop.is_none()
            && !book.stopping
            && book
                .entries
                .get(plan_id)
                .is_some_and(|e| e.record.state == PlanState::Executing)
    };
    let (stop, durable, mut book) = loop {
        let mut in_flight: VecDeque<u64> = VecDeque::new();
        let stop = execute(core, plans, plan_id, rt, &mut in_flight);
        // Whatever happens, the committed steps become durable before the plan's end is
        // said.
        let durable = in_flight
            .back()
            .map_or(Ok(()), |&seq| rt.block_on(core.journal.wait(seq)));
        if resumed(&plans.lock(), &stop) {
            continue;
        }
        // Another replica may execute plans now. Never under the book's lock: async tasks
        // take that lock, and the release needs the runtime (holding it here deadlocked).
        // The book still names this thread meanwhile, so a resume is left to it and seen
        // just below, under the lock.
        rt.block_on(plans.release_lease());
        let book = plans.lock();
        if !resumed(&book, &stop) {
            break (stop, durable, book);
        }
        drop(book);
        // Resumed while the lease went: take it again, unless another replica took it.
        if !rt.block_on(plans.lease.take()).unwrap_or(false) {
            let lost = Stop {
                state: PlanState::Paused,
                note: Some("another replica took the executor lease; resume to retry".into()),
            };
            break (Some(lost), durable, plans.lock());
        }
    };
    book.executor = None;
    let Some(stop) = stop else {
        // Paused, cancelled or invalidated by a request, or shutting down: already said.
        return;
    };
    let Some(e) = book.entries.get_mut(plan_id) else {
        return;
    };
    if e.record.state != PlanState::Executing {
        return;
    }
    e.record.state = stop.state;
    e.record.note = match durable {
        Err(err) => Some(format!("the store failed: {err}")),
        Ok(()) => stop.note,
    };
    e.record.updated_at = core.clock.now_ms();
    tracing::info!(plan = %plan_id, state = e.record.state.name(), note = ?e.record.note, "plan stopped");
    let seq = core.journal.submit(vec![Change::PutPlan(e.record.clone())]);
    drop(book);
    let _ = rt.block_on(core.journal.wait(seq));
}

/// Runs steps until the plan stops: `None` when a request (or shutdown) stopped it, else
/// the state it ends in. A new health overlay on the same inventory version changes the
/// zone under the plan: its steps go on, judged on the new one.
fn execute(
    core: &Core,
    plans: &Plans,
    plan_id: &str,
    rt: &Handle,
    in_flight: &mut VecDeque<u64>,
) -> Option<Stop> {
    loop {
        match execute_on(core, plans, plan_id, rt, in_flight) {
            Some(Stop {
                state: PlanState::Executing,
                ..
            }) => continue,
            other => return other,
        }
    }
}

/// [`execute`] on the zone the ledger serves now, until it changes (then `Executing`).
fn execute_on(
    core: &Core,
    plans: &Plans,
    plan_id: &str,
    rt: &Handle,
    in_flight: &mut VecDeque<u64>,
) -> Option<Stop> {
    let zone = core.zone();
    let (request, version, ceilings) = {
        let book = plans.lock();
        let e = book.entries.get(plan_id)?;
        (
            e.request.clone(),
            e.record.inventory_version,
            start_risks(&e.steps),
        )
    };
    if zone.version != version {
        return Some(Stop {
            state: PlanState::Invalidated,
            note: Some(invalidated_note(version, zone.version)),
        });
    }
    let inv = match plan_inventory(&zone.inventory, request.drain.as_deref()) {
        Ok(inv) => inv,
        Err(e) => {
            return Some(Stop {
                state: PlanState::Paused,
                note: Some(e.to_string()),
            })
        }
    };
    let mut placer = Placer::new(&inv, &zone.model, plan_options(&core.placer, &request));
    let mut evaluator = RiskEvaluator::new(&zone.model);
    let mut epoch = u64::MAX;
    let mut clock = Instant::now();
    let mut issued: u64 = 0;
    loop {
        // Wait for the step's turn, or a pause, cancel or shutdown.
        let (index, step, concurrency) = {
            let mut book = plans.lock();
            loop {
                if book.stopping {
                    return None;
                }
                let e = book.entries.get_mut(plan_id)?;
                if e.record.state != PlanState::Executing {
                    return None;
                }
                if e.epoch != epoch {
                    // Started or resumed: the rate counts from now.
                    (epoch, clock, issued) = (e.epoch, Instant::now(), 0);
                }
                let rate = e.record.rate.unwrap_or(1.0);
                let due = clock + Duration::from_secs_f64(issued as f64 / rate);
                let now = Instant::now();
                if now >= due {
                    if now - due > MOST_BEHIND {
                        (clock, issued) = (now, 0);
                    }
                    while e.next < e.steps.len() && e.steps[e.next].status != StepStatus::Pending {
                        e.next += 1;
                    }
                    if e.next == e.steps.len() {
                        return Some(Stop {
                            state: PlanState::Completed,
                            note: None,
                        });
                    }
                    let concurrency = e.record.concurrency.unwrap_or(1).max(1) as usize;
                    break (e.next, e.steps[e.next].clone(), concurrency);
                }
                book = plans
                    .wake
                    .wait_timeout(book, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        while in_flight.len() >= concurrency {
            let seq = in_flight.pop_front().expect("not empty");
            if let Err(e) = rt.block_on(core.journal.wait(seq)) {
                return Some(Stop {
                    state: PlanState::Paused,
                    note: Some(format!("the store failed: {e}")),
                });
            }
        }
        let ceiling = ceilings.get(&step.cell_id).copied();
        let (record, seq) = match commit_step(
            core,
            &zone,
            &inv,
            &mut placer,
            &mut evaluator,
            plan_id,
            &step,
            ceiling,
        ) {
            Ok(done) => done,
            Err(stop) => return Some(stop),
        };
        core.metrics.plan_step(record.status);
        in_flight.push_back(seq);
        issued += 1;
        let mut book = plans.lock();
        if let Some(e) = book.entries.get_mut(plan_id) {
            e.steps[index] = record;
            e.next = index + 1;
        }
    }
}

/// Commits one step (as planned, re-planned, or skipped with why); its record and the
/// journal sequence number that makes it durable.
#[allow(clippy::too_many_arguments)]
fn commit_step(
    core: &Core,
    zone: &Zone,
    inv: &Inventory,
    placer: &mut Placer<'_>,
    evaluator: &mut RiskEvaluator<'_>,
    plan_id: &str,
    step: &PlanStepRecord,
    ceiling: Option<f64>,
) -> Result<(PlanStepRecord, u64), Stop> {
    let mut ledger = core.blocking_write();
    if ledger.zone.version != zone.version {
        return Err(Stop {
            state: PlanState::Invalidated,
            note: Some(invalidated_note(zone.version, ledger.zone.version)),
        });
    }
    if !std::ptr::eq(&*ledger.zone, zone) {
        // The health overlay changed: judge the step on the new zone.
        return Err(Stop {
            state: PlanState::Executing,
            note: None,
        });
    }
    if let Some(message) = &ledger.poisoned {
        return Err(Stop {
            state: PlanState::Paused,
            note: Some(format!("the store failed: {message}")),
        });
    }
    let now = core.clock.now_ms();
    let mut out = step.clone();
    out.updated_at = now;
    let skip = |mut out: PlanStepRecord, why: String| {
        out.status = StepStatus::Skipped;
        out.note = Some(why);
        let seq = core.journal.submit(vec![Change::PutPlanStep {
            plan_id: plan_id.to_owned(),
            step: out.clone(),
        }]);
        Ok((out, seq))
    };
    let Some(why) = reason(&step.reason) else {
        return skip(out, format!("unknown reason '{}'", step.reason));
    };
    let Some(cell) = ledger.cell(&step.cell_id) else {
        return skip(out, "the cell was deleted".into());
    };
    let (Some(remove), Some(planned)) =
        (inv.server_index(&step.remove), inv.server_index(&step.add))
    else {
        return skip(out, "the inventory has no such server".into());
    };
    if !ledger.nodes(cell).contains(&remove) {
        return skip(
            out,
            format!("the cell no longer has a node on {}", step.remove),
        );
    }
    let planned = if ledger.nodes(cell).contains(&planned) {
        Err(format!("the cell already has a node on {}", step.add))
    } else {
        Ok(planned)
    };
    let moved = match mover::apply(
        &mut ledger,
        mover::Move {
            zone,
            inv,
            placer,
            evaluator,
            cell_id: &step.cell_id,
            remove,
            planned,
            why,
            ceiling,
            now,
        },
    ) {
        Ok(moved) => moved,
        Err(why) => return skip(out, why),
    };
    out.add = inv.servers[moved.add as usize].id.clone();
    out.risk_after = moved.risk.risk;
    out.safe_after = moved.risk.single_failure_safe();
    out.status = if moved.replanned.is_some() {
        StepStatus::Replanned
    } else {
        StepStatus::Committed
    };
    out.note = moved
        .replanned
        .map(|problem| format!("planned {}: {problem}", step.add));
    let mut changes = moved.changes;
    changes.push(Change::PutPlanStep {
        plan_id: plan_id.to_owned(),
        step: out.clone(),
    });
    let seq = core.journal.submit(changes);
    ledger.stamp(&step.cell_id, seq);
    Ok((out, seq))
}

#[cfg(test)]
mod tests {
    use crate::dto::{ExecuteRequest, PlanRequest};
    use store::StepStatus;

    /// A step whose planned server filled up after planning is re-planned to another
    /// server (a drain is mandatory), and says which server was planned and why not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_whose_server_filled_up_is_replanned() {
        let zone = crate::service::testing::SmallZone::new(40).await;
        let service = zone.service.clone();
        for i in 0..zone.cells() {
            service.place(zone.request(i)).await.unwrap();
        }
        let rack = {
            let ledger = service.core.ledger.read().await;
            let inv = &ledger.zone.inventory;
            let node = ledger.nodes(ledger.cell("c00").unwrap())[0];
            inv.racks[inv.servers[node as usize].rack as usize]
                .id
                .clone()
        };
        let plan = service
            .create_plan(PlanRequest {
                drain: Some(vec![rack]),
                ..PlanRequest::default()
            })
            .await
            .unwrap();
        let first = plan.steps[0].clone();
        // Fill the first step's server to capacity behind the plan's back.
        {
            let mut ledger = service.core.write().await;
            let inv = ledger.zone.inventory.clone();
            let target = inv.server_index(&first.add).unwrap();
            let free = inv.servers[target as usize].capacity - ledger.occ.load(target);
            for _ in 0..free {
                ledger.occ.insert(&[target]);
            }
        }
        service
            .execute_plan(
                &plan.plan_id,
                ExecuteRequest {
                    rate: Some(10_000.0),
                    concurrency: None,
                },
            )
            .await
            .unwrap();
        let mut done = None;
        for _ in 0..500 {
            let p = service.plan(&plan.plan_id, 0, 1).unwrap();
            if p.state != "executing" {
                done = Some(p);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let done = done.expect("the plan ends");
        assert_eq!(done.state, "completed");
        let step = &done.steps[0];
        assert_eq!(step.status, StepStatus::Replanned.name(), "{step:?}");
        assert_ne!(step.add, first.add);
        let note = step.note.as_deref().unwrap();
        assert!(
            note.starts_with(&format!("planned {}:", first.add)),
            "{note}"
        );
        let ledger = service.core.ledger.read().await;
        let record = ledger.record_of(&first.cell_id).unwrap();
        assert!(record.nodes.contains(&step.add));
        assert!(!record.nodes.contains(&first.remove));
    }
}
