//! A bounded pool of long-lived OS threads that run the placement engine.
//!
//! Solves are CPU-heavy and synchronous, so they stay off the async runtime. A `Placer`
//! borrows its zone, so each worker owns an `Arc<Zone>` and a `Placer` on it, and builds a
//! new one when the ledger has switched to another inventory version. The queue is bounded:
//! when it is full the request is refused at once (503) instead of piling up latency.
//! A solve that panics (a bug) fails its request with a 500; the worker lives on with a
//! fresh `Placer`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::ops::{execute, Core, Op, Outcome, Step};
use crate::engine::Placer;
use crate::zone::Zone;
use crate::Error;

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, Error>>,
}

/// The solver threads and their bounded queue of ops.
#[derive(Debug)]
pub(crate) struct SolverPool {
    sender: Mutex<Option<SyncSender<Job>>>,
    queued: Arc<AtomicUsize>,
    workers: usize,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("op", &self.op).finish()
    }
}

/// What a worker runs for an op: [`execute`], or a test's stand-in.
type Run = fn(&Core, &Arc<Zone>, &mut Placer<'_>, &Op) -> Step;

impl SolverPool {
    /// Starts `workers` threads (at least 1) behind a queue of `queue` ops (at least 1).
    pub(crate) fn start(core: Arc<Core>, workers: usize, queue: usize) -> SolverPool {
        SolverPool::start_with(core, workers, queue, execute)
    }

    fn start_with(core: Arc<Core>, workers: usize, queue: usize, run: Run) -> SolverPool {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let handles = (0..workers)
            .map(|i| {
                let core = core.clone();
                let rx = rx.clone();
                let queued = queued.clone();
                std::thread::Builder::new()
                    .name(format!("solver-{i}"))
                    .spawn(move || worker(&core, &rx, &queued, run))
                    .expect("spawning a solver thread")
            })
            .collect();
        SolverPool {
            sender: Mutex::new(Some(tx)),
            queued,
            workers,
            handles: Mutex::new(handles),
        }
    }

    /// Solver threads.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Solves waiting for a worker.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs `op` on a worker; `Overloaded` at once when the queue is full.
    pub(crate) async fn run(&self, op: Op) -> Result<Outcome, Error> {
        let (reply, rx) = oneshot::channel();
        {
            let sender = self.sender.lock();
            let Some(sender) = sender.as_ref() else {
                return Err(Error::ShuttingDown);
            };
            self.queued.fetch_add(1, Ordering::Relaxed);
            match sender.try_send(Job { op, reply }) {
                Ok(()) => {}
                Err(e) => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    return Err(match e {
                        TrySendError::Full(_) => Error::Overloaded,
                        TrySendError::Disconnected(_) => Error::ShuttingDown,
                    });
                }
            }
        }
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Closes the queue: the workers finish what is queued and exit. Join the handles
    /// returned off the async runtime.
    pub(crate) fn stop(&self) -> Vec<JoinHandle<()>> {
        self.sender.lock().take();
        std::mem::take(&mut *self.handles.lock())
    }
}

fn worker(core: &Core, rx: &Mutex<Receiver<Job>>, queued: &AtomicUsize, run: Run) {
    let mut carried: Option<Job> = None;
    loop {
        // One Placer per zone version; it borrows `zone`, which this frame keeps alive.
        let zone = core.zone();
        let mut placer = Placer::with_layout(
            &zone.inventory,
            &zone.model,
            core.placer.clone(),
            zone.layout(),
        );
        loop {
            let job = match carried.take() {
                Some(job) => job,
                None => {
                    let next = rx.lock().recv();
                    let Ok(job) = next else { return };
                    queued.fetch_sub(1, Ordering::Relaxed);
                    job
                }
            };
            // The request gave up (timeout, client gone): skip the solve.
            if job.reply.is_closed() {
                continue;
            }
            let ran = catch_unwind(AssertUnwindSafe(|| run(core, &zone, &mut placer, &job.op)));
            match ran {
                Ok(Step::Done(result)) => {
                    let _ = job.reply.send(result);
                }
                Ok(Step::ZoneChanged) => {
                    carried = Some(job);
                    break;
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(op = ?job.op, "a solve panicked: {what}");
                    let _ = job.reply.send(Err(Error::Internal(
                        "the solve failed unexpectedly (logged); the request changed nothing \
                         it did not report"
                            .into(),
                    )));
                    // The placer may be half-updated: a fresh one.
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Config, Service};
    use crate::zone::Source;
    use store::SqliteStore;

    /// Panics on the cell `boom`, else solves as the service does.
    fn boom(core: &Core, zone: &Arc<Zone>, placer: &mut Placer<'_>, op: &Op) -> Step {
        if matches!(op, Op::Place { cell_id, .. } if cell_id == "boom") {
            panic!("boom");
        }
        execute(core, zone, placer, op)
    }

    /// A panicking solve fails its request with a 500 in the JSON shape, and the one worker
    /// serves the next request.
    #[tokio::test]
    async fn a_worker_survives_a_panicking_solve() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("l.db");
        let store = Arc::new(SqliteStore::open(&db).await.unwrap());
        let config = Config {
            queue: 8,
            ..crate::service::testing::config(dir.path())
        };
        let service = Service::open(store, Some(Source::Dir(fixtures::tiny_dir())), config)
            .await
            .unwrap();
        let core = service.core();
        let zone = core.ledger.read().await.zone.clone();
        let client = zone
            .inventory
            .servers
            .iter()
            .find(|s| s.capacity == 0)
            .unwrap()
            .id
            .clone();
        let pool = SolverPool::start_with(core, 1, 8, boom);
        let place = |id: &str| Op::Place {
            cell_id: id.into(),
            clients: vec![client.clone()],
            size: 5,
        };
        let e = pool.run(place("boom")).await.unwrap_err();
        // The code of a failure of ours (a 500 at the HTTP surface), never the panic's text.
        assert_eq!(e.code(), "internal");
        assert!(!e.public_message().contains("boom"));
        assert!(!e.to_string().contains("boom"), "{e}");
        let fine = pool.run(place("fine")).await;
        assert!(
            matches!(fine, Ok(Outcome::Cell { created: true, .. })),
            "{fine:?}"
        );
        for w in pool.stop() {
            w.join().unwrap();
        }
        service.shutdown().await;
    }
}
