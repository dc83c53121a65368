//! The autopilot: the control loop that keeps the zone's cells safe with no one in the
//! loop. Health events ([`super::health`]) change the zone; the autopilot moves nodes,
//! one node of a cell at a time, most urgent first: cells out of quorum given their
//! clients; nodes on servers failed for longer than `grace_s` (a server back within it
//! causes no move); cells a failure left single-failure unsafe, with the fewest moves;
//! draining servers emptied; optionally, cells whose clients moved or whose risk can drop,
//! within `max_moves_per_hour`. Every move goes through the checks of a plan's step
//! ([`super::mover`]) and is durable before the same cell's next; `rate` and
//! `max_in_flight` bound the pace. A cell it cannot fix is named with why and tried again
//! only when the zone changes.
//!
//! One autopilot acts per zone: it holds the executor lease (shared with plans) while it
//! acts, and another replica's takes over when its replica dies. The work is derived from
//! the ledger on every pass, never queued durably: after a restart it resumes from what
//! the ledger says, and no committed move is lost or made twice.
//!
//! Here: the settings, the shared state, the requests; [`pass`] decides and acts, on the
//! time it is given (the service's clock, or a simulation's).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::dto::{ActionView, AutopilotSettings, AutopilotUpdate, AutopilotView, CannotFixView};
use crate::overlay::Report;
use crate::Error;
use store::Change;

use super::lease::Lease;
use super::ops::Core;
use super::Service;

pub(crate) mod pass;

/// The settings' key in the ledger.
pub(crate) const SETTINGS_KEY: &str = "autopilot";
/// The latest actions kept for `GET /v1/autopilot`.
const LAST_ACTIONS: usize = 100;
/// How long an idle autopilot waits before it looks again (events wake it sooner).
pub(crate) const IDLE: Duration = Duration::from_secs(1);
use crate::limits::{MAX_GRACE_S, MAX_IN_FLIGHT, MAX_MOVES_PER_HOUR, MAX_RATE, MIN_RATE};

/// The settings a service starts with when the ledger has none: on, Ceph's
/// `mon_osd_down_out_interval` of 600 s as the grace.
pub const DEFAULT_SETTINGS: AutopilotSettings = AutopilotSettings {
    enabled: true,
    grace_s: 600.0,
    rate: 10.0,
    max_in_flight: 16,
    max_moves_per_hour: 60,
    improve: false,
};

/// A health event, as the autopilot attributes its moves to them.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub at: i64,
    pub element: String,
    pub state: &'static str,
}

/// What the autopilot knows between passes.
#[derive(Debug)]
pub(crate) struct State {
    pub settings: AutopilotSettings,
    /// This replica's autopilot holds the lease and acts.
    pub acting: bool,
    pub stopping: bool,
    /// Passes made.
    pub passes: u64,
    /// Work waiting by reason, as of the last pass.
    pub queue: BTreeMap<&'static str, u64>,
    pub in_flight: u64,
    pub moves: BTreeMap<&'static str, u64>,
    pub last_actions: VecDeque<ActionView>,
    /// Cells no move fixes on the zone they were tried on, by id.
    pub cannot_fix: BTreeMap<Arc<str>, CannotFixView>,
    /// The zone `cannot_fix` holds for; another clears it.
    pub cannot_fix_zone: usize,
    /// The latest health event.
    pub latest_event: Option<Event>,
    /// Cells waiting for a move, with the event they wait since.
    pub waiting_since: HashMap<Arc<str>, Event>,
    /// Moves for the optional goals in the current hour: (hour start, count).
    pub optional: (i64, u32),
}

/// The autopilot of one service; see the module docs.
#[derive(Debug)]
pub(crate) struct Autopilot {
    state: Mutex<State>,
    wake: Condvar,
    pub(crate) lease: Arc<Lease>,
}

impl Autopilot {
    pub(crate) fn new(settings: AutopilotSettings, lease: Arc<Lease>) -> Autopilot {
        Autopilot {
            state: Mutex::new(State {
                settings,
                acting: false,
                stopping: false,
                passes: 0,
                queue: BTreeMap::new(),
                in_flight: 0,
                moves: BTreeMap::new(),
                last_actions: VecDeque::new(),
                cannot_fix: BTreeMap::new(),
                cannot_fix_zone: 0,
                latest_event: None,
                waiting_since: HashMap::new(),
                optional: (0, 0),
            }),
            wake: Condvar::new(),
            lease,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the loop (an event, new settings, shutdown).
    pub(crate) fn notify(&self) {
        self.wake.notify_all();
    }

    /// Sleeps until woken or `timeout` passes.
    pub(crate) fn sleep<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        self.wake
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// Reported states about to change the zone: the moves it needs are attributed to
    /// them (the first that is not a return to active). Call [`Autopilot::notify`] once
    /// the change is durable.
    pub(crate) fn record_event(&self, reports: &[Report], now: i64) {
        let cause = reports
            .iter()
            .find(|r| r.state != store::ElementState::Active)
            .or(reports.first());
        if let Some(r) = cause {
            self.lock().latest_event = Some(Event {
                at: now,
                element: r.element.clone(),
                state: r.state.name(),
            });
        }
    }

    /// Settings another replica stored (the feed read them).
    pub(crate) fn settings_from(&self, settings: &[(String, String)]) {
        let mut st = self.lock();
        let next = stored_settings(settings, st.settings);
        if next != st.settings {
            st.settings = next;
            drop(st);
            self.notify();
        }
    }

    /// Stops the loop at its next look.
    pub(crate) fn stop(&self) {
        self.lock().stopping = true;
        self.notify();
    }
}

/// The settings after `update`, checked (the field of a bad one named).
fn updated(s: AutopilotSettings, u: &AutopilotUpdate) -> Result<AutopilotSettings, Error> {
    let invalid = |field: &str, message: String| Error::InvalidField {
        field: field.to_owned(),
        message,
    };
    let mut s = s;
    if let Some(v) = u.enabled {
        s.enabled = v;
    }
    if let Some(v) = u.grace_s {
        if !(v.is_finite() && (0.0..=MAX_GRACE_S).contains(&v)) {
            return Err(invalid(
                "grace_s",
                format!("{v} seconds: from 0 to {MAX_GRACE_S}"),
            ));
        }
        s.grace_s = v;
    }
    if let Some(v) = u.rate {
        if !(v.is_finite() && (MIN_RATE..=MAX_RATE).contains(&v)) {
            return Err(invalid(
                "rate",
                format!("{v} moves per second: from {MIN_RATE} to {MAX_RATE}"),
            ));
        }
        s.rate = v;
    }
    if let Some(v) = u.max_in_flight {
        if !(1..=MAX_IN_FLIGHT).contains(&v) {
            return Err(invalid(
                "max_in_flight",
                format!("{v}: from 1 to {MAX_IN_FLIGHT}"),
            ));
        }
        s.max_in_flight = v;
    }
    if let Some(v) = u.max_moves_per_hour {
        if v > MAX_MOVES_PER_HOUR {
            return Err(invalid(
                "max_moves_per_hour",
                format!("{v}: at most {MAX_MOVES_PER_HOUR}"),
            ));
        }
        s.max_moves_per_hour = v;
    }
    if let Some(v) = u.improve {
        s.improve = v;
    }
    Ok(s)
}

/// The settings a service starts with: the ledger's, else `fallback`.
pub(crate) fn stored_settings(
    settings: &[(String, String)],
    fallback: AutopilotSettings,
) -> AutopilotSettings {
    settings
        .iter()
        .find(|(k, _)| k == SETTINGS_KEY)
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .unwrap_or(fallback)
}

/// The settings a service starts with: the ledger's (else [`DEFAULT_SETTINGS`]) with the
/// ones given at start over them.
pub(crate) fn start_settings(
    stored: &[(String, String)],
    given: &AutopilotUpdate,
) -> Result<AutopilotSettings, Error> {
    updated(stored_settings(stored, DEFAULT_SETTINGS), given)
}

/// Starts the autopilot's thread.
pub(crate) fn spawn(
    core: Arc<Core>,
    pilot: Arc<Autopilot>,
    rt: tokio::runtime::Handle,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name("cellplacer-autopilot".into())
        .spawn(move || pass::run(&core, &pilot, &rt))
        .map_err(|e| Error::Internal(format!("starting the autopilot: {e}")))
}

impl Service {
    /// One autopilot pass at `now` (Unix milliseconds) on the zone as it is, as the loop
    /// makes it, for a simulation that keeps the time: the same decisions and commits;
    /// returns once its moves are durable. Call it off the async runtime.
    pub(crate) fn autopilot_pass(
        &self,
        pace: &mut pass::Pace,
        now: i64,
        rt: &tokio::runtime::Handle,
    ) -> Result<pass::Pass, Error> {
        let zone = self.core.zone();
        let mut placer = crate::engine::Placer::with_layout(
            &zone.inventory,
            &zone.model,
            self.core.placer.clone(),
            zone.layout(),
        );
        let mut evaluator = optimizer::risk::RiskEvaluator::new(&zone.model);
        let done = pass::pass(
            &self.core,
            &self.autopilot,
            &zone,
            &mut placer,
            &mut evaluator,
            pace,
            now,
            rt,
        );
        let seq = self.core.ledger.blocking_read().seq;
        rt.block_on(self.core.journal.wait(seq))?;
        Ok(done)
    }

    /// The ids of the cells not single-failure safe now (a simulation's judge; off the
    /// async runtime).
    pub(crate) fn unsafe_cell_ids(&self) -> Vec<Arc<str>> {
        self.core
            .ledger
            .blocking_read()
            .unsafe_ids()
            .cloned()
            .collect()
    }

    /// The autopilot's settings, queue, moves and the cells it cannot fix.
    pub fn autopilot(&self) -> AutopilotView {
        let st = self.autopilot.lock();
        let limit = crate::limits::LIST_LIMIT;
        AutopilotView {
            settings: st.settings,
            acting: st.acting,
            passes: st.passes,
            queue: st
                .queue
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            in_flight: st.in_flight,
            moves: st
                .moves
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            last_actions: st.last_actions.iter().rev().cloned().collect(),
            cannot_fix: st.cannot_fix.values().take(limit).cloned().collect(),
            cannot_fix_more: st.cannot_fix.len().saturating_sub(limit) as u64,
        }
    }

    /// Changes the autopilot's settings (durable before the reply).
    pub async fn set_autopilot(&self, update: AutopilotUpdate) -> Result<AutopilotView, Error> {
        let _one_at_a_time = self.switching.lock().await;
        let current = self.autopilot.lock().settings;
        let next = updated(current, &update)?;
        let value = serde_json::to_string(&next)
            .map_err(|e| Error::Internal(format!("autopilot settings: {e}")))?;
        let seq = {
            let ledger = self.core.ledger.read().await;
            super::writable(&ledger)?;
            self.core.journal.submit(vec![Change::PutSetting {
                key: SETTINGS_KEY.into(),
                value,
            }])
        };
        self.core.journal.wait(seq).await?;
        self.autopilot.lock().settings = next;
        self.autopilot.notify();
        tracing::info!(?next, "autopilot settings");
        Ok(self.autopilot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_field_by_field() {
        let field = |u: AutopilotUpdate| match updated(DEFAULT_SETTINGS, &u) {
            Err(Error::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(AutopilotUpdate {
                rate: Some(0.0),
                ..AutopilotUpdate::default()
            }),
            "rate"
        );
        assert_eq!(
            field(AutopilotUpdate {
                grace_s: Some(-1.0),
                ..AutopilotUpdate::default()
            }),
            "grace_s"
        );
        assert_eq!(
            field(AutopilotUpdate {
                max_in_flight: Some(0),
                ..AutopilotUpdate::default()
            }),
            "max_in_flight"
        );
        let s = updated(
            DEFAULT_SETTINGS,
            &AutopilotUpdate {
                enabled: Some(false),
                grace_s: Some(0.0),
                ..AutopilotUpdate::default()
            },
        )
        .unwrap();
        assert!(!s.enabled);
        assert_eq!(s.grace_s, 0.0);
        assert_eq!(s.rate, DEFAULT_SETTINGS.rate);
        let stored = vec![(SETTINGS_KEY.to_owned(), serde_json::to_string(&s).unwrap())];
        assert_eq!(stored_settings(&stored, DEFAULT_SETTINGS), s);
        assert_eq!(stored_settings(&[], DEFAULT_SETTINGS), DEFAULT_SETTINGS);
    }
}
