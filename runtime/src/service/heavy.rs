//! Heavy requests (fleet reports, what-ifs, plans, validations, blast radii): each kind bounded in
//! number and in time, computed off the ledger's lock on a snapshot, so reads and
//! placements never wait behind them.
//!
//! A run holds one of its kind's permits from before its snapshot until its work has
//! really ended: past the time limit the caller gets `timeout` at once and the work is
//! told to stop ([`optimizer::Stop`]), but its permit stays taken until it has, so no
//! more than the kind's number of them ever compute at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use optimizer::Stop;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::Error;

/// The kinds of heavy request, each with its own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heavy {
    /// `GET /v1/report`: every cell evaluated (with its exact risk, if asked).
    Report,
    /// `POST /v1/whatif`: every cell on two sides, a repair plan, a headroom count.
    WhatIf,
    /// `POST /v1/plans`: a rebalancing plan over every cell.
    Plan,
    /// `POST /v1/inventory/validate`: a whole inventory read, validated and compared.
    Validate,
    /// `GET /v1/elements/{id}` and `GET /v1/blast`: every cell judged under one failure,
    /// or every element's blast radius.
    Blast,
}

impl Heavy {
    /// Every kind, in the order of [`HeavyLimits`]'s fields.
    pub const ALL: [Heavy; 5] = [
        Heavy::Report,
        Heavy::WhatIf,
        Heavy::Plan,
        Heavy::Validate,
        Heavy::Blast,
    ];

    /// The kind's name (the metrics' `kind` label).
    pub fn name(self) -> &'static str {
        match self {
            Heavy::Report => "report",
            Heavy::WhatIf => "whatif",
            Heavy::Plan => "plan",
            Heavy::Validate => "validate",
            Heavy::Blast => "blast",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many of one kind compute at once, and how long one may take (waiting for a permit
/// and taking its snapshot included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimit {
    /// Runs at once; more wait for a permit, within their time limit.
    pub concurrent: usize,
    /// Past it the request is answered `timeout` and its work stopped.
    pub time: Duration,
}

/// The limits of every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimits {
    /// Fleet reports: each uses every core, so one at a time.
    pub report: HeavyLimit,
    /// What-ifs.
    pub whatif: HeavyLimit,
    /// Plan creation.
    pub plan: HeavyLimit,
    /// Inventory validation.
    pub validate: HeavyLimit,
    /// Element views and blast radii.
    pub blast: HeavyLimit,
}

impl Default for HeavyLimits {
    fn default() -> HeavyLimits {
        let limit = |concurrent, secs| HeavyLimit {
            concurrent,
            time: Duration::from_secs(secs),
        };
        HeavyLimits {
            report: limit(1, 120),
            whatif: limit(1, 120),
            plan: limit(1, 300),
            validate: limit(1, 300),
            blast: limit(2, 60),
        }
    }
}

impl HeavyLimits {
    /// The limit of `kind`.
    pub fn of(&self, kind: Heavy) -> HeavyLimit {
        match kind {
            Heavy::Report => self.report,
            Heavy::WhatIf => self.whatif,
            Heavy::Plan => self.plan,
            Heavy::Validate => self.validate,
            Heavy::Blast => self.blast,
        }
    }

    /// `kind`'s limit replaced by `limit`.
    pub fn with(mut self, kind: Heavy, limit: HeavyLimit) -> HeavyLimits {
        *match kind {
            Heavy::Report => &mut self.report,
            Heavy::WhatIf => &mut self.whatif,
            Heavy::Plan => &mut self.plan,
            Heavy::Validate => &mut self.validate,
            Heavy::Blast => &mut self.blast,
        } = limit;
        self
    }
}

/// The permits of every kind.
#[derive(Debug)]
pub(super) struct Gates {
    limits: HeavyLimits,
    permits: [Arc<Semaphore>; Heavy::ALL.len()],
    metrics: Arc<Metrics>,
}

impl Gates {
    pub(super) fn new(limits: HeavyLimits, metrics: Arc<Metrics>) -> Gates {
        for kind in Heavy::ALL {
            metrics.heavy_kind(kind.name());
        }
        Gates {
            permits: Heavy::ALL.map(|k| Arc::new(Semaphore::new(limits.of(k).concurrent.max(1)))),
            limits,
            metrics,
        }
    }

    /// Starts a run of `kind`: waits for one of its permits, within its time limit.
    pub(super) async fn start(&self, kind: Heavy) -> Result<Run, Error> {
        let limit = self.limits.of(kind);
        let deadline = Instant::now() + limit.time;
        let permit =
            tokio::time::timeout_at(deadline, self.permits[kind.index()].clone().acquire_owned())
                .await;
        let permit = match permit {
            Err(_) => {
                self.metrics.heavy_timeout(kind.name());
                return Err(timeout(limit));
            }
            Ok(permit) => permit.map_err(|_| Error::ShuttingDown)?,
        };
        Ok(Run {
            kind,
            limit,
            deadline,
            permit: Running::new(permit, kind, self.metrics.clone()),
        })
    }

    /// Closes every kind: runs not yet started are refused.
    pub(super) fn close(&self) {
        for p in &self.permits {
            p.close();
        }
    }
}

/// One heavy request under way: its permit and its deadline.
#[derive(Debug)]
pub(super) struct Run {
    kind: Heavy,
    limit: HeavyLimit,
    deadline: Instant,
    permit: Running,
}

impl Run {
    /// Awaits `step` (taking the snapshot) within the run's time limit.
    pub(super) async fn within<T>(
        &self,
        step: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout_at(self.deadline, step).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.permit.metrics.heavy_timeout(self.kind.name());
                Err(timeout(self.limit))
            }
        }
    }

    /// Runs `work` on a blocking thread, which keeps the permit until it returns. Past
    /// the deadline the answer is `timeout` and the work's [`Stop`] is set.
    pub(super) async fn compute<T: Send + 'static>(
        self,
        work: impl FnOnce(Stop) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let stop = Stop::new();
        // The work stops when its caller stops waiting for it: the time limit ran out, or
        // the client went away (the request's future was dropped).
        let _stop_when_unwaited = SetOnDrop(stop.clone());
        let (kind, limit, deadline, permit) = (self.kind, self.limit, self.deadline, self.permit);
        let metrics = permit.metrics.clone();
        let handle = tokio::task::spawn_blocking({
            let stop = stop.clone();
            move || {
                let _permit = permit;
                work(stop)
            }
        });
        match tokio::time::timeout_at(deadline, handle).await {
            Ok(joined) => {
                joined.map_err(|e| Error::Internal(format!("{} worker: {e}", kind.name())))?
            }
            Err(_) => {
                metrics.heavy_timeout(kind.name());
                Err(timeout(limit))
            }
        }
    }
}

/// Sets its [`Stop`] when dropped (harmless once the work has ended).
struct SetOnDrop(Stop);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A permit, counted in the `running` gauge for as long as it is held.
#[derive(Debug)]
struct Running {
    _permit: OwnedSemaphorePermit,
    kind: Heavy,
    metrics: Arc<Metrics>,
}

impl Running {
    fn new(permit: OwnedSemaphorePermit, kind: Heavy, metrics: Arc<Metrics>) -> Running {
        metrics.heavy_running(kind.name(), 1);
        Running {
            _permit: permit,
            kind,
            metrics,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.metrics.heavy_running(self.kind.name(), -1);
    }
}

fn timeout(limit: HeavyLimit) -> Error {
    Error::Timeout {
        ms: u64::try_from(limit.time.as_millis()).unwrap_or(u64::MAX),
    }
}
