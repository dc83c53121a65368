//! A bounded pool of long-lived OS threads that run the placement engine.
//!
//! Solves are CPU-heavy and synchronous, so they stay off the async runtime. A `Placer`
//! borrows its zone, so each worker owns an `Arc<Zone>` and a `Placer` on it, and builds a
//! new one when the ledger has switched to another inventory version. The queue is bounded:
//! when it is full the request is refused at once (503) instead of piling up latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::engine::Placer;
use crate::service::ops::{execute, Core, Op, Outcome, Step};
use crate::Error;

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, Error>>,
}

#[derive(Debug)]
pub struct SolverPool {
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

impl SolverPool {
    pub fn start(core: Arc<Core>, workers: usize, queue: usize) -> SolverPool {
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
                    .spawn(move || worker(&core, &rx, &queued))
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

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Solves waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs `op` on a worker; `Overloaded` at once when the queue is full.
    pub async fn run(&self, op: Op) -> Result<Outcome, Error> {
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
    pub fn stop(&self) -> Vec<JoinHandle<()>> {
        self.sender.lock().take();
        std::mem::take(&mut *self.handles.lock())
    }
}

fn worker(core: &Core, rx: &Mutex<Receiver<Job>>, queued: &AtomicUsize) {
    let mut carried: Option<Job> = None;
    loop {
        // One Placer per zone version; it borrows `zone`, which this frame keeps alive.
        let zone = core.zone();
        let mut placer = Placer::new(&zone.inventory, &zone.model, core.placer.clone());
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
            match execute(core, &zone, &mut placer, &job.op) {
                Step::Done(result) => {
                    let _ = job.reply.send(result);
                }
                Step::ZoneChanged => {
                    carried = Some(job);
                    break;
                }
            }
        }
    }
}
