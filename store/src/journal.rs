//! Ordered, group-committed writes to the store.
//!
//! Changes are submitted while the ledger's write lock is held, so their order here is the
//! order in which they were applied in memory. One committer task drains whatever has
//! queued up and applies it in a single transaction: with `synchronous=FULL` every commit
//! costs an fsync (milliseconds), and batching is what lets hundreds of placements per
//! second each be durable before their reply. Callers wait for their sequence number.
//!
//! After a failed batch nothing queued behind it may be committed (it may depend on the
//! failed changes): the committer fails everything until the owner of the in-memory state
//! has reloaded it from the store and sent [`Journal::resume`]. What to reload is known:
//! the journal keeps which cells each change not yet committed touched
//! ([`Journal::take_unsettled`]), so that only those need to be read again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::Error;
use crate::{Change, Store};

/// Told of every transaction the journal commits or fails (the service's metrics).
pub trait CommitObserver: Send + Sync + std::fmt::Debug {
    /// One transaction of `changes` changes took `elapsed`; `ok` when it committed.
    fn observe_commit(&self, elapsed: std::time::Duration, changes: usize, ok: bool);
}

/// The cells of every submission not yet committed (by sequence number); `None` for one
/// that changed more than cells (an inventory, a plan, a setting, the overlay).
type Unsettled = Arc<Mutex<BTreeMap<u64, Option<Vec<String>>>>>;

/// The cells `changes` touch, or `None` when they change something else too.
fn touched_cells(changes: &[Change]) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    for change in changes {
        match change {
            Change::PutCell(r) => ids.push(r.cell_id.clone()),
            Change::DeleteCell(id) => ids.push(id.clone()),
            Change::PutMove(m) => ids.push(m.cell_id.clone()),
            Change::InsertCells(cells) => ids.extend(cells.iter().map(|c| c.cell_id.clone())),
            Change::SetRisks(risks) => ids.extend(risks.iter().map(|r| r.cell_id.clone())),
            _ => return None,
        }
    }
    Some(ids)
}

/// Most changes in one transaction; bounds the latency of the batch itself.
const MAX_BATCH: usize = 1024;

#[derive(Debug)]
enum Entry {
    Changes {
        seq: u64,
        /// The feed position the changes were checked against (see [`Journal::set_feed`]).
        base: u64,
        changes: Vec<Change>,
    },
    /// Everything before this was failed and the state reloaded: commit again.
    Resume,
    Close,
}

/// How far the committer got.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Every sequence number up to this one is settled: durable or failed.
    pub settled: u64,
    /// Failed ranges (inclusive), each with whether it failed because another replica
    /// committed first (nothing of it is in the store: it can be retried once the state
    /// is reloaded). Store failures are rare; the list stays short.
    pub failed: Vec<(u64, u64, bool)>,
    /// Set from a failed batch until the next [`Journal::resume`].
    pub broken: bool,
    /// The message of the last failed batch.
    pub last_error: String,
}

impl Progress {
    /// `None` when `seq` did not fail; else whether it failed as stale.
    fn failed(&self, seq: u64) -> Option<bool> {
        self.failed
            .iter()
            .find(|&&(a, b, _)| a <= seq && seq <= b)
            .map(|&(_, _, stale)| stale)
    }
}

/// The ordered, group-committed queue of changes to a [`Store`]; see the module docs.
#[derive(Debug)]
pub struct Journal {
    sender: Mutex<(u64, mpsc::UnboundedSender<Entry>)>,
    /// How far the in-memory state follows the other replicas' commits (a store shared by
    /// replicas; 0 otherwise). Changed and read with the ledger's write lock held.
    feed: AtomicU64,
    progress: watch::Receiver<Progress>,
    task: Mutex<Option<JoinHandle<()>>>,
    unsettled: Unsettled,
}

impl Journal {
    /// Starts the committer task on the current runtime.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<dyn CommitObserver>) -> Journal {
        let (tx, rx) = mpsc::unbounded_channel();
        let (progress_tx, progress) = watch::channel(Progress::default());
        let unsettled = Unsettled::default();
        let task = tokio::spawn(committer(
            store,
            metrics,
            rx,
            progress_tx,
            unsettled.clone(),
        ));
        Journal {
            sender: Mutex::new((0, tx)),
            feed: AtomicU64::new(0),
            progress,
            task: Mutex::new(Some(task)),
            unsettled,
        }
    }

    /// Queues changes; returns their sequence number. Call with the ledger's write lock
    /// held, right after applying the changes in memory.
    pub fn submit(&self, changes: Vec<Change>) -> u64 {
        let mut guard = self.sender.lock();
        guard.0 += 1;
        let seq = guard.0;
        let base = self.feed.load(Ordering::Acquire);
        self.unsettled.lock().insert(seq, touched_cells(&changes));
        // A closed channel means shutdown: the waiter then sees the committer gone.
        let _ = guard.1.send(Entry::Changes { seq, base, changes });
        seq
    }

    /// The in-memory state now reflects every other replica's commit up to `position`.
    /// Call with the ledger's write lock held, after applying them.
    pub fn set_feed(&self, position: u64) {
        self.feed.store(position, Ordering::Release);
    }

    /// The feed position last set by [`Journal::set_feed`].
    pub fn feed(&self) -> u64 {
        self.feed.load(Ordering::Acquire)
    }

    /// The last sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        self.sender.lock().0
    }

    /// After a failure, with the ledger's write lock held: the cells that changes the store
    /// does not have touched (every change not committed: the failed ones, and those
    /// queued behind them, which fail too), forgotten here. `None` when one of them changed
    /// more than cells: reload everything.
    pub fn take_unsettled(&self) -> Option<Vec<String>> {
        let unsettled = std::mem::take(&mut *self.unsettled.lock());
        let mut ids = Vec::new();
        for touched in unsettled.into_values() {
            ids.extend(touched?);
        }
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    /// Lets the committer commit again after a failure (see the module docs). Call with the
    /// ledger's write lock held, after reloading the state from the store.
    pub fn resume(&self) {
        let _ = self.sender.lock().1.send(Entry::Resume);
    }

    /// Waits until `seq` (and everything before it) is durable.
    pub async fn wait(&self, seq: u64) -> Result<(), Error> {
        if seq == 0 {
            return Ok(());
        }
        let mut rx = self.progress.clone();
        let progress = rx
            .wait_for(|p| p.settled >= seq)
            .await
            .map_err(|_| Error::ShuttingDown)?;
        match progress.failed(seq) {
            None => {}
            Some(true) => return Err(Error::Stale),
            Some(false) => {
                return Err(Error::StoreUnavailable {
                    message: progress.last_error.clone(),
                })
            }
        }
        Ok(())
    }

    /// A receiver of progress, for the task that reloads the state after a failure.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Commits everything queued, then stops the committer.
    pub async fn close(&self) {
        let _ = self.sender.lock().1.send(Entry::Close);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn committer(
    store: Arc<dyn Store>,
    metrics: Arc<dyn CommitObserver>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    progress: watch::Sender<Progress>,
    unsettled: Unsettled,
) {
    let mut changes: Vec<Change> = Vec::new();
    let mut broken = false;
    // Whether the failure that broke the journal was another replica committing first.
    let mut broken_stale = false;
    let mut closing = false;
    while !closing {
        let Some(first) = rx.recv().await else { break };
        let mut pending = vec![first];
        // Whatever queued up while the previous batch was syncing joins this one.
        while pending.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => pending.push(e),
                Err(_) => break,
            }
        }
        // A Resume is only sent while the committer is broken (after a failure), and
        // nothing accumulates while broken: so the changes gathered here are all
        // contiguous and commit together.
        let mut lo = 0u64;
        let mut hi = 0u64;
        let mut base = u64::MAX;
        for entry in pending {
            match entry {
                Entry::Changes {
                    seq,
                    base: b,
                    changes: c,
                } => {
                    if broken {
                        // Refused for the failure before it, as that one was.
                        fail(&progress, seq, seq, None, broken_stale);
                    } else {
                        if lo == 0 {
                            lo = seq;
                        }
                        hi = seq;
                        base = base.min(b);
                        changes.extend(c);
                    }
                }
                Entry::Resume => {
                    broken = false;
                    progress.send_modify(|p| p.broken = false);
                }
                Entry::Close => closing = true,
            }
        }
        if lo != 0 {
            let started = Instant::now();
            // Checked against the oldest state any of them saw.
            let result = store.apply_at(base, &changes).await;
            metrics.observe_commit(started.elapsed(), changes.len(), result.is_ok());
            changes.clear();
            match result {
                Ok(()) => {
                    // Committed: lo..=hi are the batch (failed ones never join one).
                    let mut open = unsettled.lock();
                    let done: Vec<u64> = open.range(lo..=hi).map(|(&s, _)| s).collect();
                    for s in done {
                        open.remove(&s);
                    }
                    drop(open);
                    progress.send_modify(|p| p.settled = p.settled.max(hi));
                }
                Err(e) => {
                    tracing::error!("ledger commit failed: {e}");
                    broken = true;
                    broken_stale = matches!(e, Error::Stale);
                    fail(&progress, lo, hi, Some(e.to_string()), broken_stale);
                }
            }
        }
    }
}

fn fail(progress: &watch::Sender<Progress>, lo: u64, hi: u64, error: Option<String>, stale: bool) {
    progress.send_modify(|p| {
        p.settled = p.settled.max(hi);
        match p.failed.last_mut() {
            // Contiguous failures alike share one range, so the list stays short.
            Some(last) if last.1 + 1 == lo && last.2 == stale => last.1 = hi,
            _ => p.failed.push((lo, hi, stale)),
        }
        p.broken = true;
        if let Some(e) = error {
            p.last_error = e;
        }
    });
}
