//! The autopilot's loop: a pass finds the work on the ledger as it is (most urgent first),
//! decides one move per cell and commits it through [`crate::service::mover`], within the
//! rate and in-flight bounds, and says when it wants to look again. A pass reads the time
//! it is given; the loop on the service's thread gives it the service's clock.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use optimizer::rebalance::Reason;
use optimizer::risk::RiskEvaluator;
use tokio::runtime::Handle;
use topology::model::ServerStatus;

use crate::dto::{timestamp, ActionView, AutopilotSettings, CannotFixView, CauseView};
use crate::engine::Placer;
use crate::ledger::{is_down, Ledger};
use crate::zone::Zone;

use super::{Autopilot, Event, IDLE, LAST_ACTIONS};
use crate::service::mover;
use crate::service::ops::Core;

/// Why a cell needs a move, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// Out of quorum given its clients, now.
    Out,
    /// A node on a server failed for longer than the grace.
    Failed,
    /// Single-failure unsafe.
    Unsafe,
    /// A node on a draining server.
    Drain,
    /// Optional: its clients moved (a proposed move waits) or its risk can drop.
    Improve,
}

impl Need {
    fn name(self) -> &'static str {
        match self {
            Need::Out => "out",
            Need::Failed => "failed",
            Need::Unsafe => "unsafe",
            Need::Drain => "drain",
            Need::Improve => "improve",
        }
    }
}

/// One cell's work.
#[derive(Debug, Clone)]
struct Work {
    need: Need,
    cell: Arc<str>,
    /// The node to move, when the need names one.
    server: Option<u32>,
}

/// What a pass keeps for the next: the pace and the moves not yet durable.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Moves the rate allows now (fractional; at most a second's worth).
    tokens: f64,
    last_ms: Option<i64>,
    /// (journal sequence number, cell) of moves not yet durable.
    in_flight: VecDeque<(u64, Arc<str>)>,
    /// The last cell the optional goals' sweep looked at.
    sweep: Option<String>,
    /// How long a move takes once committed (a simulation's `move_s`; 0 in the service,
    /// where the commit is the move): the cell takes no other move until it ends.
    move_ms: i64,
    /// (ends, cell) of moves under way.
    moving: Vec<(i64, Arc<str>)>,
}

impl Pace {
    /// A fresh pace whose moves take `move_ms` each once committed.
    pub(crate) fn with_move_time(move_ms: i64) -> Pace {
        Pace {
            move_ms,
            ..Pace::default()
        }
    }
}

/// What a pass did and when it wants to look again.
#[derive(Debug)]
pub(crate) struct Pass {
    /// How long to wait before the next pass (at most [`IDLE`], but for a move under way).
    pub(crate) wait: Duration,
    /// Work is left that the pace held back, or moves are in flight or under way: look
    /// again after `wait`. Otherwise only a new event or `next_grace` brings work.
    pub(crate) pending: bool,
    /// When the earliest grace ends (Unix milliseconds).
    pub(crate) next_grace: Option<i64>,
    /// The moves it committed.
    pub(crate) actions: Vec<ActionView>,
}

/// Cells the optional goals look at per pass (each costs a solve).
const IMPROVE_SWEEP: usize = 64;
/// The least wait between passes while the rate holds work back (the tokens of a wait
/// this long are spent together; they are capped at a second's worth, so none is lost).
const PACED_PASS: Duration = Duration::from_millis(100);

/// Runs the loop until the service stops.
pub(crate) fn run(core: &Core, pilot: &Autopilot, rt: &Handle) {
    let mut pace = Pace::default();
    let mut holds = false;
    loop {
        let enabled = {
            let st = pilot.lock();
            if st.stopping {
                break;
            }
            st.settings.enabled
        };
        if !enabled {
            if holds {
                rt.block_on(pilot.lease.release());
                holds = false;
            }
            let mut st = pilot.lock();
            st.acting = false;
            drop(pilot.sleep(st, IDLE));
            continue;
        }
        if !holds {
            holds = rt.block_on(pilot.lease.take()).unwrap_or(false);
            pilot.lock().acting = holds;
            if !holds {
                // Another replica's autopilot acts; look again later.
                let st = pilot.lock();
                drop(pilot.sleep(st, IDLE));
                continue;
            }
            tracing::info!("autopilot acting");
        }
        let zone = core.zone();
        let mut placer = Placer::with_layout(
            &zone.inventory,
            &zone.model,
            core.placer.clone(),
            zone.layout(),
        );
        let mut evaluator = RiskEvaluator::new(&zone.model);
        // Passes on this zone until it changes.
        loop {
            let now = core.clock.now_ms();
            let Pass { wait, .. } = pass(
                core,
                pilot,
                &zone,
                &mut placer,
                &mut evaluator,
                &mut pace,
                now,
                rt,
            );
            // Each pass reads the settings; only stopping or turning off ends the loop. A
            // notify while no one waits is lost: look before sleeping, and after.
            let off = |st: &super::State| st.stopping || !st.settings.enabled;
            let st = pilot.lock();
            if off(&st) {
                break;
            }
            let st = pilot.sleep(st, wait);
            if off(&st) {
                break;
            }
            drop(st);
            if !Arc::ptr_eq(&core.zone(), &zone) {
                break;
            }
        }
    }
    // Whatever is in flight becomes durable with the journal; the lease goes back.
    if holds {
        rt.block_on(pilot.lease.release());
    }
    pilot.lock().acting = false;
}

/// One pass at time `now` (Unix milliseconds): finds the work, makes the moves the pace
/// allows, and returns how long to wait before the next.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pass(
    core: &Core,
    pilot: &Autopilot,
    zone: &Arc<Zone>,
    placer: &mut Placer<'_>,
    evaluator: &mut RiskEvaluator<'_>,
    pace: &mut Pace,
    now: i64,
    rt: &Handle,
) -> Pass {
    let settings = pilot.lock().settings;
    let settled = core.journal.progress().borrow().settled;
    while pace
        .in_flight
        .front()
        .is_some_and(|&(seq, _)| seq <= settled)
    {
        pace.in_flight.pop_front();
    }
    pace.tokens = match pace.last_ms {
        // The first pass may move at once.
        None => 1.0,
        Some(t) => {
            let elapsed = (now - t).max(0) as f64 / 1e3;
            (pace.tokens + elapsed * settings.rate).min(settings.rate.max(1.0))
        }
    };
    pace.last_ms = Some(now);
    pace.moving.retain(|(ends, _)| *ends > now);
    let zone_key = Arc::as_ptr(zone) as usize;
    let (work, counts, next_grace, sweep_to) = {
        let ledger = core.ledger.blocking_read();
        if !Arc::ptr_eq(&ledger.zone, zone) {
            return Pass {
                wait: Duration::ZERO,
                pending: true,
                next_grace: None,
                actions: Vec::new(),
            };
        }
        let mut st = pilot.lock();
        if st.cannot_fix_zone != zone_key {
            st.cannot_fix.clear();
            st.cannot_fix_zone = zone_key;
        }
        find_work(&ledger, zone, &settings, now, &st.cannot_fix, pace)
    };
    if sweep_to.is_some() {
        pace.sweep = sweep_to;
    }
    {
        let mut st = pilot.lock();
        st.queue = counts.clone();
        st.in_flight = pace.in_flight.len() as u64;
        let latest = st.latest_event.clone();
        for w in &work {
            st.waiting_since.entry(w.cell.clone()).or_insert_with(|| {
                latest.clone().unwrap_or(Event {
                    at: now,
                    element: String::new(),
                    state: "",
                })
            });
        }
    }
    for reason in crate::metrics::AUTOPILOT_REASONS {
        core.metrics
            .autopilot_queue(reason, counts.get(reason).copied().unwrap_or(0));
    }
    let mut actions = Vec::new();
    let mut left = 0usize;
    // `work` holds at most one item per cell, so no cell moves twice in a pass.
    for (i, w) in work.iter().enumerate() {
        if pace.tokens < 1.0 || pace.in_flight.len() >= settings.max_in_flight as usize {
            left = work.len() - i;
            break;
        }
        if w.need == Need::Improve {
            let mut st = pilot.lock();
            let hour = now - now.rem_euclid(3_600_000);
            if st.optional.0 != hour {
                st.optional = (hour, 0);
            }
            if st.optional.1 >= settings.max_moves_per_hour {
                continue;
            }
        }
        match act(core, zone, placer, evaluator, w, now) {
            Ok(Some((action, seq, fixed))) => {
                pace.tokens -= 1.0;
                pace.in_flight.push_back((seq, w.cell.clone()));
                if pace.move_ms > 0 {
                    pace.moving.push((now + pace.move_ms, w.cell.clone()));
                }
                core.metrics.autopilot_move(w.need.name());
                let mut st = pilot.lock();
                if w.need == Need::Improve {
                    st.optional.1 += 1;
                }
                *st.moves.entry(w.need.name()).or_default() += 1;
                // A failed node: the report that took its server down; else what the cell
                // has waited since.
                let cause = w
                    .server
                    .and_then(|s| down_cause(zone, s))
                    .or_else(|| st.waiting_since.get(&w.cell).cloned());
                let mut action = action;
                action.cause =
                    cause
                        .as_ref()
                        .filter(|e| !e.element.is_empty())
                        .map(|e| CauseView {
                            element: e.element.clone(),
                            state: e.state.to_owned(),
                            at: timestamp(e.at),
                        });
                if fixed {
                    let waited = st.waiting_since.remove(&w.cell);
                    if let Some(at) = cause.as_ref().or(waited.as_ref()).map(|e| e.at) {
                        core.metrics
                            .autopilot_repaired(Duration::from_millis((now - at).max(0) as u64));
                    }
                }
                if st.last_actions.len() == LAST_ACTIONS {
                    st.last_actions.pop_front();
                }
                st.last_actions.push_back(action.clone());
                actions.push(action);
            }
            Ok(None) => {}
            Err(why) => {
                let mut st = pilot.lock();
                st.waiting_since.remove(&w.cell);
                st.cannot_fix.insert(
                    w.cell.clone(),
                    CannotFixView {
                        cell_id: w.cell.to_string(),
                        reason: w.need.name().to_owned(),
                        why,
                        since: timestamp(now),
                    },
                );
                tracing::debug!(cell = %w.cell, need = w.need.name(), "autopilot cannot fix");
            }
        }
    }
    {
        let mut st = pilot.lock();
        st.in_flight = pace.in_flight.len() as u64;
        st.passes += 1;
    }
    let mut done = |wait: Duration, pending: bool| Pass {
        wait,
        pending,
        next_grace,
        actions: std::mem::take(&mut actions),
    };
    if let Some(&(seq, _)) = pace.in_flight.back() {
        if pace.in_flight.len() >= settings.max_in_flight as usize {
            // Full: wait for the oldest to become durable.
            let oldest = pace.in_flight.front().map_or(seq, |f| f.0);
            let _ = rt.block_on(core.journal.wait(oldest));
            return done(Duration::ZERO, true);
        }
    }
    if left > 0 {
        // A pass costs a look at all the work: at a high rate, gather the moves of at
        // least `PACED_PASS` into one pass rather than one move a pass.
        let need = (1.0 - pace.tokens).max(0.0) / settings.rate;
        return done(Duration::from_secs_f64(need).clamp(PACED_PASS, IDLE), true);
    }
    if !pace.in_flight.is_empty() {
        return done(Duration::from_millis(5), true);
    }
    // Moves under way hold their cells: look again when the first ends.
    if let Some(ends) = pace.moving.iter().map(|m| m.0).min() {
        return done(Duration::from_millis((ends - now).max(0) as u64), true);
    }
    let wait = match next_grace {
        Some(at) => Duration::from_millis((at - now).clamp(0, IDLE.as_millis() as i64) as u64),
        None => IDLE,
    };
    done(wait, false)
}

/// The reported state that took server `s` down: a failed element whose failure started
/// when the server went down, and that names it (itself, its rack, row, room or
/// datacenter, or a power device feeding it).
fn down_cause(zone: &Zone, s: u32) -> Option<Event> {
    let since = zone.down_since.get(s as usize).copied().flatten()?;
    let inv = &zone.export.inventory;
    zone.overlay
        .entries
        .iter()
        .filter(|(_, e)| e.state == store::ElementState::Failed && e.since == since)
        .find(|(id, _)| {
            inv.servers_named(id)
                .is_some_and(|named| named.contains(&s))
                || inv.racks.iter().any(|r| {
                    (r.row == **id || r.room == **id || r.datacenter == **id)
                        && r.servers.contains(&s)
                })
        })
        .map(|(id, e)| Event {
            at: e.since,
            element: id.clone(),
            state: e.state.name(),
        })
}

/// The work on the ledger now, most urgent first (by need, then cell id, then server):
/// at most one item per cell, none for a cell with a move in flight or one it cannot fix
/// on this zone; the counts by reason (with `waiting` for nodes in their grace); and when
/// the earliest grace ends.
fn find_work(
    ledger: &Ledger,
    zone: &Zone,
    settings: &AutopilotSettings,
    now: i64,
    cannot_fix: &BTreeMap<Arc<str>, CannotFixView>,
    pace: &Pace,
) -> (
    Vec<Work>,
    BTreeMap<&'static str, u64>,
    Option<i64>,
    Option<String>,
) {
    let inv = &zone.inventory;
    let grace_ms = (settings.grace_s * 1e3) as i64;
    let mut next_grace: Option<i64> = None;
    let mut waiting = 0u64;
    // A server failed within the grace: its nodes wait.
    let in_grace = |s: u32, next_grace: &mut Option<i64>| -> bool {
        match zone.down_since.get(s as usize).copied().flatten() {
            Some(since) if now - since < grace_ms => {
                let ends = since + grace_ms;
                *next_grace = Some(next_grace.map_or(ends, |n| n.min(ends)));
                true
            }
            _ => false,
        }
    };
    let mut by_cell: BTreeMap<Arc<str>, Work> = BTreeMap::new();
    let mut sweep_to = None;
    // Cells whose clients moved, waiting for their move (the sweep is not counted).
    let mut waiting_clients = 0u64;
    // Cells with a move not yet durable or still under way (a set: a simulation holds
    // every cell moved in the last `move_s`, and thousands may wait).
    let busy_cells: HashSet<&str> = pace
        .in_flight
        .iter()
        .map(|(_, c)| &**c)
        .chain(pace.moving.iter().map(|(_, c)| &**c))
        .collect();
    let busy = |id: &str| busy_cells.contains(id);
    let offer = |w: Work, by_cell: &mut BTreeMap<Arc<str>, Work>| {
        if busy(&w.cell) || cannot_fix.contains_key(&w.cell) {
            return;
        }
        match by_cell.get(&w.cell) {
            Some(old) if old.need <= w.need => {}
            _ => {
                by_cell.insert(w.cell.clone(), w);
            }
        }
    };
    for id in ledger.unsafe_ids() {
        let Some(cell) = ledger.cell(id) else {
            continue;
        };
        let nodes = ledger.nodes(cell);
        if is_down(cell.risk, cell.single_failure_safe) {
            let server = nodes
                .iter()
                .copied()
                .find(|&s| inv.servers[s as usize].status == ServerStatus::Failed);
            offer(
                Work {
                    need: Need::Out,
                    cell: id.clone(),
                    server,
                },
                &mut by_cell,
            );
        } else if nodes
            .iter()
            .any(|&s| inv.servers[s as usize].status == ServerStatus::Failed)
        {
            // Its failed node moves first (after the grace), which may be all it needs.
        } else {
            offer(
                Work {
                    need: Need::Unsafe,
                    cell: id.clone(),
                    server: None,
                },
                &mut by_cell,
            );
        }
    }
    for (s, server) in inv.servers.iter().enumerate() {
        let s = s as u32;
        let need = match server.status {
            ServerStatus::Failed => Need::Failed,
            ServerStatus::Draining => Need::Drain,
            ServerStatus::Active => continue,
        };
        let cells = ledger.occ.cells_on(s);
        if cells.is_empty() {
            continue;
        }
        if need == Need::Failed && in_grace(s, &mut next_grace) {
            waiting += cells.len() as u64;
            continue;
        }
        for &slot in cells {
            if let Some(cell) = ledger.cell_at(slot) {
                offer(
                    Work {
                        need,
                        cell: cell.id.clone(),
                        server: Some(s),
                    },
                    &mut by_cell,
                );
            }
        }
    }
    if settings.improve {
        // Cells whose clients moved (their proposed move waits), then the next cells of
        // the sweep, which a move may make less risky.
        let pending: Vec<_> = ledger
            .iter()
            .filter(|c| c.pending_move().is_some())
            .take(IMPROVE_SWEEP)
            .collect();
        waiting_clients = pending.len() as u64;
        let mut swept = ledger
            .page(&Default::default(), pace.sweep.as_deref(), IMPROVE_SWEEP)
            .cells;
        if swept.is_empty() && pace.sweep.is_some() {
            swept = ledger.page(&Default::default(), None, IMPROVE_SWEEP).cells;
        }
        sweep_to = swept.last().map(|c| c.id.to_string());
        for cell in pending.into_iter().chain(swept) {
            offer(
                Work {
                    need: Need::Improve,
                    cell: cell.id.clone(),
                    server: None,
                },
                &mut by_cell,
            );
        }
    }
    let mut work: Vec<Work> = by_cell.into_values().collect();
    work.sort_by(|a, b| (a.need, &a.cell, a.server).cmp(&(b.need, &b.cell, b.server)));
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for w in work.iter().filter(|w| w.need != Need::Improve) {
        *counts.entry(w.need.name()).or_default() += 1;
    }
    if waiting_clients > 0 {
        counts.insert(Need::Improve.name(), waiting_clients);
    }
    if waiting > 0 {
        counts.insert("waiting", waiting);
    }
    (work, counts, next_grace, sweep_to)
}

/// Decides and commits one move for `w`: the action, its journal sequence number and
/// whether the cell is fine after it (safe, off failed servers); `None` when the cell no
/// longer needs it; why not when no move does it.
fn act(
    core: &Core,
    zone: &Arc<Zone>,
    placer: &mut Placer<'_>,
    evaluator: &mut RiskEvaluator<'_>,
    w: &Work,
    now: i64,
) -> Result<Option<(ActionView, u64, bool)>, String> {
    let inv = &zone.inventory;
    // Decide on a shared read, commit under the write lock (checked again there).
    let (remove, add, why) = {
        let ledger = core.ledger.blocking_read();
        if !Arc::ptr_eq(&ledger.zone, zone) {
            return Ok(None);
        }
        let Some(cell) = ledger.cell(&w.cell) else {
            return Ok(None);
        };
        let nodes = ledger.nodes(cell).to_vec();
        let (clients, slot) = (cell.clients.clone(), cell.slot);
        let replace = |placer: &mut Placer<'_>, server: u32| {
            placer
                .replace(&ledger.occ, &clients, &nodes, server, Some(slot))
                .map(|d| {
                    let add = *d
                        .nodes
                        .iter()
                        .find(|s| !nodes.contains(s))
                        .expect("a replacement adds one server");
                    (add, d.explanation.single_failure_safe, d.explanation.risk)
                })
                .map_err(|e| e.to_string())
        };
        match (w.need, w.server) {
            (Need::Failed | Need::Drain | Need::Out, Some(server)) => {
                if !nodes.contains(&server) {
                    return Ok(None);
                }
                let (add, ..) = replace(placer, server)?;
                let why = if w.need == Need::Drain {
                    Reason::Drain
                } else {
                    Reason::Failed
                };
                (server, add, why)
            }
            (Need::Out | Need::Unsafe | Need::Improve, _) => {
                if w.need == Need::Unsafe && cell.single_failure_safe {
                    return Ok(None);
                }
                let path = placer
                    .plan_moves(&ledger.occ, &clients, &nodes, Some(slot))
                    .map_err(|e| e.to_string())?;
                if w.need == Need::Unsafe && !path.target().single_failure_safe {
                    return Err("no single-failure-safe placement in reach of its clients".into());
                }
                let Some(first) = path.steps.first() else {
                    return match w.need {
                        Need::Improve => Ok(None),
                        _ => Err("no placement in reach of its clients does better".into()),
                    };
                };
                // The fewest moves: one node replaced, when one replacement makes it safe.
                let mut best: Option<(u32, u32, f64)> = None;
                if w.need == Need::Unsafe && path.steps.len() > 1 {
                    for &n in &nodes {
                        if let Ok((add, true, risk)) = replace(placer, n) {
                            if best.is_none_or(|b| risk < b.2) {
                                best = Some((n, add, risk));
                            }
                        }
                    }
                }
                let (remove, add) = best.map_or((first.out, first.into), |b| (b.0, b.1));
                let why = match w.need {
                    Need::Out => Reason::Failed,
                    Need::Unsafe => Reason::Unsafe,
                    _ => Reason::Improve,
                };
                (remove, add, why)
            }
            (Need::Failed | Need::Drain, None) => return Ok(None),
        }
    };
    let mut ledger = core.blocking_write();
    if !Arc::ptr_eq(&ledger.zone, zone) || ledger.poisoned.is_some() {
        return Ok(None);
    }
    let moved = mover::apply(
        &mut ledger,
        mover::Move {
            zone,
            inv,
            placer,
            evaluator,
            cell_id: &w.cell,
            remove,
            planned: Ok(add),
            why,
            ceiling: None,
            now,
        },
    )?;
    let seq = core.journal.submit(moved.changes);
    ledger.stamp(&w.cell, seq);
    let on_failed = ledger.cell(&w.cell).is_some_and(|c| {
        ledger
            .nodes(c)
            .iter()
            .any(|&s| inv.servers[s as usize].status == ServerStatus::Failed)
    });
    let action = ActionView {
        at: timestamp(now),
        cell_id: w.cell.to_string(),
        remove: inv.servers[remove as usize].id.clone(),
        add: inv.servers[moved.add as usize].id.clone(),
        reason: w.need.name().to_owned(),
        risk_before: moved.risk_before,
        risk_after: moved.risk.risk,
        safe_after: moved.risk.single_failure_safe(),
        cause: None,
    };
    Ok(Some((
        action,
        seq,
        moved.risk.single_failure_safe() && !on_failed,
    )))
}
