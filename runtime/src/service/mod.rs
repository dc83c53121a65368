//! The cell runtime behind the HTTP routes: placement, replacement, client moves, the
//! ledger's durability, inventory versions and the fleet report.
//!
//! Concurrency: a solve reads the ledger under a shared lock; its result is checked again
//! (capacity, shared quorum, the cell unchanged) under the exclusive lock, applied in
//! memory and queued to the journal in the same critical section, and the reply waits until
//! the journal has made it durable. A solve invalidated by a concurrent commit is redone.
//! So no interleaving can oversubscribe a server or give two cells a shared quorum, and no
//! reply shows a change that a crash could still lose.
//!
//! By job: [`ops`] (the operations and the solve-then-commit loop the solver threads
//! run), [`cells`], [`moves`], [`inventory`] and [`report`] (the requests); here the
//! service itself: opening it on a store, readiness, gauges and shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::engine::PlaceOptions;
use crate::ledger::{Builder, Ledger};
use crate::limits::{RESYNC_WAIT, STALE_ATTEMPTS};
use crate::metrics::{Gauges, Metrics};
use crate::zone::{Candidate, Source};
use crate::Error;
use solver::SolverPool;
use store::Journal;
use store::{Change, Store};

pub mod autopilot;
mod blast;
mod bulk;
mod cells;
mod executor;
mod feed;
mod health;
mod heavy;
mod inventory;
mod lease;
mod mover;
mod moves;
pub mod ops;
mod plans;
mod reevaluation;
mod report;
mod solver;
#[cfg(test)]
mod testing;
mod whatif;
mod writer;

pub use autopilot::DEFAULT_SETTINGS;
pub use cells::CellQuery;
pub use health::MAX_STATES;
pub use heavy::{Heavy, HeavyLimit, HeavyLimits};
pub use plans::{Plans, DEFAULT_STEPS_PAGE, MAX_STEPS_PAGE};
use reevaluation::Reevaluations;

use crate::ledger::missing_error;
use ops::Core;

/// Service settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Uploaded inventories are kept under `DIR/inventories`.
    pub data_dir: PathBuf,
    /// Solver threads (0 = available parallelism).
    pub workers: usize,
    /// Solves that may wait for a worker before requests are refused.
    pub queue: usize,
    /// Placement engine settings (solver, pool size, ...).
    pub placer: PlaceOptions,
    /// The only directory whose files a request may name by server-side path (an
    /// inventory to switch to or validate, placements to import); `None`: such requests
    /// are refused (upload the tables instead).
    pub inventory_root: Option<PathBuf>,
    /// Autopilot settings given at start (`serve --autopilot ...`): over the ledger's, or
    /// over [`DEFAULT_SETTINGS`] when it has none.
    pub autopilot: crate::dto::AutopilotUpdate,
    /// How many heavy requests of each kind compute at once, and for how long.
    pub heavy: HeavyLimits,
}

/// The cell runtime: the ledger in memory over a store, the solver threads, plans and
/// inventory versions; every request of the HTTP API goes through one of its methods.
#[derive(Debug)]
pub struct Service {
    core: Arc<Core>,
    solver: SolverPool,
    store: Arc<dyn Store>,
    config: Config,
    /// One inventory switch at a time; holds the highest version handed out.
    switching: Mutex<i64>,
    /// Heavy requests, bounded by kind in number and time.
    heavy: heavy::Gates,
    /// Who commits the writes of the replicas sharing the ledger.
    writer: writer::Writer,
    /// Rebalancing plans and their executor.
    plans: Arc<Plans>,
    /// The latest re-evaluation of the cells on an inventory version.
    reevaluations: Arc<Reevaluations>,
    /// The control loop that acts on health events.
    autopilot: Arc<autopilot::Autopilot>,
    autopilot_thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("background task: {e}")))
}

impl Service {
    /// Opens the service on a store: picks the inventory (`source`, else the ledger's
    /// active one, else the bundled zone), rebuilds the occupancy exactly from the ledger and
    /// checks it against the store's own server loads.
    pub async fn open(
        store: Arc<dyn Store>,
        source: Option<Source>,
        config: Config,
    ) -> Result<Arc<Service>, Error> {
        Service::open_with_clock(store, source, config, Arc::new(SystemClock)).await
    }

    /// [`Service::open`] on another clock (a virtual one, in a simulation or a test).
    pub async fn open_with_clock(
        store: Arc<dyn Store>,
        source: Option<Source>,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Service>, Error> {
        // Start-up phases, timed for the log (a restart at scale is mostly these).
        let started = std::time::Instant::now();
        let snapshot = store.load().await?;
        let active = snapshot.active_inventory.clone();
        let source = match (source, &active) {
            (Some(s), _) => s,
            (None, Some(rec)) => Source::parse(&rec.source).ok_or_else(|| {
                Error::Internal(format!("unknown inventory source '{}'", rec.source))
            })?,
            (None, None) => Source::Bundled,
        };
        let label = source.label();
        let at = std::time::Instant::now();
        let candidate = blocking(move || Candidate::load(source)).await??;
        let loaded_inventory = at.elapsed();
        let (zone, fresh) = match active.filter(|a| a.source == label) {
            Some(rec) => (candidate.into_zone(rec.version, rec.loaded_at), false),
            None => (
                candidate.into_zone(snapshot.max_inventory_version + 1, clock.now_ms()),
                true,
            ),
        };
        // The health reported on top of the export, for the ids it still names.
        let stored_overlay = crate::overlay::Overlay::from_records(snapshot.overlay.clone());
        let (zone, dropped) = blocking(move || zone.keeping(&stored_overlay)).await??;
        if !dropped.is_empty() {
            tracing::warn!(
                ?dropped,
                "health states for ids the inventory no longer has dropped"
            );
        }
        let zone = Arc::new(zone);
        let at = std::time::Instant::now();
        // Each cell is resolved on the zone and recorded as it is read.
        // Other replicas' commits up to here are in what is read next.
        let feed_head = store.feed_head().await?;
        let mut builder = Builder::new(zone.clone(), 0);
        // The store's own server loads (the cross-check below) are read meanwhile.
        let mut add = |c, m| builder.add(c, m);
        let (read, stored) = tokio::join!(store.load_cells(&mut add), store.server_loads());
        read?;
        let stored = stored?;
        // Risks recorded on another inventory (or under an older risk definition, which
        // a migration marks with version 0) are judged again.
        let stale = builder.stale();
        let mut ledger = builder.finish().map_err(|m| missing_error(&m))?;
        let rebuilt_in = at.elapsed();
        let mut changes = Vec::new();
        // What a store shared by replicas checks commits against (the others ignore it).
        changes.push(zone.capacities());
        if zone.overlay.records() != snapshot.overlay {
            changes.push(Change::SetOverlay(zone.overlay.records()));
        }
        if fresh {
            changes.push(Change::ActivateInventory(zone.record()));
            // Moves were computed on another inventory.
            let superseded = ledger.supersede_moves(zone.loaded_at);
            changes.extend(superseded.into_iter().map(Change::PutMove));
        }
        let at = std::time::Instant::now();
        let rebuilt = ledger.server_loads();
        if stored.len() != rebuilt.len()
            || stored
                .iter()
                .any(|(s, load)| rebuilt.get(s).copied() != Some(*load))
        {
            return Err(Error::Internal(
                "the occupancy rebuilt from the cells differs from the ledger's server loads"
                    .into(),
            ));
        }
        let lease = Arc::new(lease::Lease::new(store.clone()));
        let plans = Arc::new(Plans::new(lease.clone(), clock.clone()));
        let pilot_settings = autopilot::start_settings(&snapshot.settings, &config.autopilot)?;
        let pilot = Arc::new(autopilot::Autopilot::new(pilot_settings, lease));
        changes.extend(plans.restore(snapshot.plans, zone.version)?);
        let checked_in = at.elapsed();
        if !changes.is_empty() {
            store.apply(&changes).await?;
        }
        tracing::info!(
            cells = ledger.len(),
            inventory_ms = loaded_inventory.as_millis() as u64,
            ledger_ms = rebuilt_in.as_millis() as u64,
            cross_check_ms = checked_in.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "ledger loaded"
        );
        let metrics = Arc::new(Metrics::default());
        let journal = Journal::start(store.clone(), metrics.clone());
        journal.set_feed(feed_head);
        let core = Arc::new(Core {
            ledger: RwLock::new(ledger),
            journal,
            metrics,
            placer: config.placer.clone(),
            clock,
            reload: tokio::sync::Notify::new(),
        });
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let solver = SolverPool::start(core.clone(), workers, config.queue);
        let version = zone.version;
        let heavy = heavy::Gates::new(config.heavy, core.metrics.clone());
        let service = Arc::new(Service {
            core,
            solver,
            store,
            config,
            switching: Mutex::new(version.max(snapshot.max_inventory_version)),
            heavy,
            writer: writer::Writer::default(),
            plans,
            reevaluations: Arc::new(Reevaluations::default()),
            autopilot: pilot,
            autopilot_thread: std::sync::Mutex::new(None),
        });
        let pilot_thread = autopilot::spawn(
            service.core.clone(),
            service.autopilot.clone(),
            tokio::runtime::Handle::current(),
        )?;
        *service
            .autopilot_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(pilot_thread);
        tokio::spawn(resync(service.core.clone(), service.store.clone()));
        tokio::spawn(feed::follow(
            service.core.clone(),
            service.store.clone(),
            service.plans.clone(),
            service.autopilot.clone(),
        ));
        if stale > 0 {
            // The cells' risks were recorded on another inventory (or an interrupted
            // re-evaluation left some): judge them again on this one, in the background so
            // that the service is up at once.
            let _ = reevaluation::start(
                service.core.clone(),
                service.reevaluations.clone(),
                zone,
                stale,
            );
        }
        Ok(service)
    }

    /// For a fleet-wide evaluation (a report, a what-if): the zone and the cells as of the
    /// last change acknowledged, copied under the ledger's read lock (held only for the
    /// copy).
    pub(super) async fn fleet(&self) -> Result<Fleet, Error> {
        let (zone, placements, known_safe, seq) = {
            let ledger = self.core.ledger.read().await;
            let version = ledger.zone.version;
            let known_safe = ledger
                .iter()
                .map(|c| c.single_failure_safe && c.inventory_version == version)
                .collect();
            (
                ledger.zone.clone(),
                ledger.placements(),
                known_safe,
                ledger.seq,
            )
        };
        self.core.journal.wait(seq).await?;
        Ok(Fleet {
            zone,
            placements,
            known_safe,
        })
    }

    /// A server-side path of a request (`field`), under the inventory root: relative to
    /// it, or absolute inside it, after symlinks are resolved. Messages show paths
    /// relative to the root, never the host's.
    pub(super) fn server_path(&self, path: &str, field: &str) -> Result<PathBuf, Error> {
        let invalid = |message: String| Error::InvalidField {
            field: field.to_owned(),
            message,
        };
        let Some(root) = &self.config.inventory_root else {
            return Err(invalid(
                "server-side paths are off: start the service with --inventory-root DIR, or \
                 upload the tables"
                    .into(),
            ));
        };
        let root = root
            .canonicalize()
            .map_err(|_| invalid("the inventory root is not readable".into()))?;
        let asked = std::path::Path::new(path);
        let joined = if asked.is_absolute() {
            asked.to_path_buf()
        } else {
            root.join(asked)
        };
        let shown = asked
            .strip_prefix(&root)
            .unwrap_or(asked)
            .display()
            .to_string();
        let resolved = joined.canonicalize().map_err(|_| Error::PathNotFound {
            field: field.to_owned(),
            message: format!("'{shown}' does not exist under the inventory root"),
        })?;
        if !resolved.starts_with(&root) {
            return Err(invalid(format!("'{shown}' is outside the inventory root")));
        }
        Ok(resolved)
    }

    #[cfg(test)]
    pub(crate) fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// The metrics, to share with the connection loop.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.core.metrics.clone()
    }

    /// The metrics, to count requests on and to render at scrape time.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// Runs `attempt` until its commit is not refused as stale: when another replica
    /// committed first, nothing of the attempt was stored, so it is computed again on the
    /// reloaded ledger (the client never sees the conflict), at most [`STALE_ATTEMPTS`]
    /// times in all.
    pub(crate) async fn unless_stale<T, F>(
        &self,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        let mut tried = 1;
        loop {
            match attempt().await {
                Err(Error::Stale) if tried < STALE_ATTEMPTS => {
                    tried += 1;
                    self.core.metrics.stale_retry();
                    self.resynced().await?;
                }
                outcome => return outcome,
            }
        }
    }

    /// Waits until the ledger has been reloaded after a failed commit and the journal
    /// takes changes again (at most [`RESYNC_WAIT`]).
    pub(crate) async fn resynced(&self) -> Result<(), Error> {
        let mut progress = self.core.journal.progress();
        let resumed = tokio::time::timeout(RESYNC_WAIT, progress.wait_for(|p| !p.broken))
            .await
            .map(|r| r.is_ok());
        match resumed {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::StoreUnavailable {
                message: progress.borrow().last_error.clone(),
            }),
        }
    }

    /// Ready when the ledger is consistent with the store and the store answers.
    pub async fn ready(&self) -> Result<(), Error> {
        if let Some(message) = self.core.ledger.read().await.poisoned.clone() {
            return Err(Error::StoreUnavailable { message });
        }
        Ok(self.store.ping().await?)
    }

    /// The gauges read at scrape time, from the ledger, the solvers, the plans and the
    /// latest re-evaluation.
    pub async fn gauges(&self) -> Gauges {
        let ledger = self.core.ledger.read().await;
        let over_balance = self.core.placer.balance.map_or(0, |b| {
            optimizer::place::pool::over_balance_ceiling(&ledger.zone.inventory, &ledger.occ, b)
        });
        let inv = &ledger.zone.inventory;
        let draining = inv
            .servers
            .iter()
            .filter(|s| s.status == topology::model::ServerStatus::Draining)
            .count();
        let utilisation_max = inv
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.status == topology::model::ServerStatus::Active && s.capacity > 0)
            .map(|(i, s)| f64::from(ledger.occ.load(i as u32)) / f64::from(s.capacity))
            .fold(0.0, f64::max);
        Gauges {
            cells: ledger.len() as u64,
            servers_draining: draining as u64,
            utilisation_max,
            cells_unsafe: ledger.unsafe_count(),
            cells_out: ledger.out_count(),
            servers_down: ledger
                .zone
                .down_since
                .iter()
                .filter(|d| d.is_some())
                .count() as u64,
            cells_by_risk: ledger.risk_counts(),
            servers_over_balance_ceiling: over_balance as u64,
            nodes_placed: ledger.nodes_placed,
            node_capacity: ledger.zone.active_capacity,
            inventory_version: ledger.zone.version,
            solver_queue: self.solver.queued() as u64,
            solver_workers: self.solver.workers() as u64,
            plans_by_state: self.plans.counts(),
            reevaluation: self.reevaluations.gauges(),
        }
    }

    /// After the HTTP server has drained: stops the solvers, commits what is queued and
    /// closes the store.
    pub async fn shutdown(&self) {
        self.heavy.close();
        self.writer.stop();
        let workers = self.solver.stop();
        let executors = self.plans.stop();
        self.autopilot.stop();
        let pilot = self
            .autopilot_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let _ = blocking(move || {
            for w in workers.into_iter().chain(executors).chain(pilot) {
                let _ = w.join();
            }
        })
        .await;
        self.core.journal.close().await;
        self.store.release_writer().await;
        self.store.close().await;
    }
}

/// The cells for a fleet-wide evaluation; see [`Service::fleet`].
pub(super) struct Fleet {
    pub zone: Arc<crate::zone::Zone>,
    /// By cell id.
    pub placements: Vec<topology::Placement>,
    /// Whether each cell is single-failure safe as evaluated on this zone (its risk was
    /// recorded on this inventory version), for [`optimizer::report::fleet_report_known`].
    pub known_safe: Vec<bool>,
}

fn writable(ledger: &Ledger) -> Result<(), Error> {
    match &ledger.poisoned {
        Some(message) => Err(Error::StoreUnavailable {
            message: message.clone(),
        }),
        None => Ok(()),
    }
}

/// After a failed commit: refuse changes, put the ledger back as the store has it,
/// resume. On a store shared by replicas only the cells the failed changes touched and
/// those the others changed since are read again ([`restore`]); else, or when more than
/// cells changed, the whole ledger is reloaded. After a change that panicked half-way
/// ([`ops::LedgerWrite`]) the whole ledger is reloaded, once every change queued before
/// it is settled.
async fn resync(core: Arc<Core>, store: Arc<dyn Store>) {
    let mut progress = core.journal.progress();
    // The cells of changes taken from the journal and not yet put back (`None`: more than
    // cells; only a whole reload puts that back).
    let mut to_restore: Option<Vec<String>> = Some(Vec::new());
    loop {
        let panicked = tokio::select! {
            broken = progress.wait_for(|p| p.broken) => {
                if broken.is_err() {
                    return; // journal closed
                }
                false
            }
            () = core.reload.notified() => true,
        };
        let mut ledger = core.ledger.write().await;
        if panicked {
            // Nothing is submitted while the lock is held: wait until what was is durable
            // (or failed), so that the reload below has it.
            let last = core.journal.last_seq();
            if progress.wait_for(|p| p.settled >= last).await.is_err() {
                return;
            }
            tracing::error!("a change panicked half-way: reloading the ledger from the store");
        } else {
            ledger.poisoned = Some(progress.borrow().last_error.clone());
        }
        to_restore = match (to_restore.take(), core.journal.take_unsettled()) {
            (Some(mut ids), Some(more)) if !panicked => {
                ids.extend(more);
                Some(ids)
            }
            _ => None,
        };
        if let Some(ids) = to_restore.clone() {
            match restore(&core, &*store, &mut ledger, &ids).await {
                Ok(true) => {
                    to_restore = Some(Vec::new());
                    core.journal.resume();
                    tracing::info!(
                        cells = ids.len(),
                        "cells put back as the store has them after a failed commit"
                    );
                    drop(ledger);
                    let _ = progress.wait_for(|p| !p.broken).await;
                    continue;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("putting cells back after a failed commit: {e}"),
            }
        }
        let head = store.feed_head().await;
        // Another replica may have changed the zone (a switch, reported health): the
        // feed up to `head` is skipped below, so the zone is read here.
        let zone = match feed::active_zone(&*store, &ledger.zone).await {
            Ok((Some(zone), _)) => zone,
            _ => ledger.zone.clone(),
        };
        let mut builder = Builder::new(zone, 0);
        let read = match &head {
            Ok(_) => store.load_cells(&mut |c, m| builder.add(c, m)).await,
            Err(e) => Err(store::Error::StoreUnavailable {
                message: e.to_string(),
            }),
        };
        let reloaded = match read {
            Ok(_) => builder.finish().ok(),
            Err(e) => {
                tracing::error!("reloading the ledger after a failed commit: {e}");
                None
            }
        };
        match reloaded {
            Some(fresh) => {
                *ledger = fresh;
                to_restore = Some(Vec::new());
                if let Ok(head) = head {
                    core.journal.set_feed(head);
                }
                core.journal.resume();
                tracing::warn!("ledger reloaded from the store after a failed commit");
                drop(ledger);
                // Let the committer see the resume before looking at `broken` again.
                let _ = progress.wait_for(|p| !p.broken).await;
            }
            None => {
                drop(ledger);
                if panicked {
                    // Nothing else would wake this loop for it: try again.
                    core.reload.notify_one();
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Puts back, with the ledger's write lock held, the cells `failed` (touched by changes
/// the store does not have) and those other replicas changed since the feed position, as
/// the store has them now; `false` when that is not enough (a store without a feed, an
/// inventory or plans changed meanwhile, a cell that no longer fits): reload everything.
async fn restore(
    core: &Core,
    store: &dyn Store,
    ledger: &mut Ledger,
    failed: &[String],
) -> Result<bool, store::Error> {
    let Some(feed) = store.feed(core.journal.feed()).await? else {
        return Ok(false);
    };
    if feed.inventory || !feed.plans.is_empty() {
        return Ok(false);
    }
    let mut ids = failed.to_vec();
    ids.extend(feed.cells);
    ids.sort_unstable();
    ids.dedup();
    let records = if ids.is_empty() {
        Vec::new()
    } else {
        store.cells(&ids).await?
    };
    // Everything in memory is now as the store has it: durable (sequence 0).
    ledger.seq = 0;
    if ledger.put_back(&ids, records, 0).is_err() {
        return Ok(false);
    }
    core.journal.set_feed(feed.head);
    ledger.poisoned = None;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every cell's servers, as the ledger in memory has them.
    async fn in_memory(service: &Service) -> BTreeMap<String, Vec<String>> {
        let ledger = service.core.ledger.read().await;
        let inv = &ledger.zone.inventory;
        ledger
            .placements()
            .into_iter()
            .map(|p| {
                let mut nodes: Vec<String> = p
                    .nodes
                    .iter()
                    .map(|&s| inv.servers[s as usize].id.clone())
                    .collect();
                nodes.sort();
                (p.cell_id, nodes)
            })
            .collect()
    }

    /// Every cell's servers, as the store has them.
    async fn stored(store: &dyn Store) -> BTreeMap<String, Vec<String>> {
        let mut cells = BTreeMap::new();
        store
            .load_cells(&mut |c, _| {
                let mut nodes = c.nodes.clone();
                nodes.sort();
                cells.insert(c.cell_id, nodes);
            })
            .await
            .unwrap();
        cells
    }

    /// Issue 27: a panic in a write path (the import's, in the finding) left memory and
    /// store apart. A change that panics half-way is abandoned: writes are refused until
    /// the ledger is reloaded from the store, and then the two are equal and writes go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_that_panics_half_way_leaves_memory_as_the_store_has_it() {
        let zone = testing::SmallZone::new(12).await;
        let (service, store) = (zone.service.clone(), zone.store.clone());
        for i in 0..10 {
            service.place(zone.request(i)).await.unwrap();
        }
        let before = stored(&*store).await;
        assert_eq!(in_memory(&service).await, before);

        let core = service.core();
        let outcome = tokio::spawn(async move {
            let mut ledger = core.write().await;
            // Half a change: a cell gone from memory, nothing queued for the store.
            ledger.remove("c00");
            panic!("injected half-way through a change");
        })
        .await;
        assert!(outcome.unwrap_err().is_panic());

        let mut ready = false;
        for _ in 0..200 {
            if service.ready().await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(ready, "the ledger was never reloaded");
        assert_eq!(in_memory(&service).await, before);
        // Writes go on, and memory and store stay equal.
        service.place(zone.request(10)).await.unwrap();
        let after = stored(&*store).await;
        assert_eq!(after.len(), 11);
        assert_eq!(in_memory(&service).await, after);
        service.shutdown().await;
    }
}

#[cfg(test)]
mod gauge_tests {
    use super::testing::SmallZone;
    use crate::dto::{ElementStateItem, StateName};

    /// The fleet's draining servers and highest utilisation, against the servers' views.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gauges_count_draining_servers_and_the_fullest_host() {
        let zone = SmallZone::new(30).await;
        for i in 0..zone.cells() {
            zone.service.place(zone.request(i)).await.unwrap();
        }
        let ids: Vec<String> = {
            let ledger = zone.service.core.ledger.read().await;
            ledger
                .zone
                .inventory
                .servers
                .iter()
                .map(|s| s.id.clone())
                .collect()
        };
        let g = zone.service.gauges().await;
        assert_eq!(g.servers_draining, 0);
        let mut fullest: f64 = 0.0;
        let mut loaded = None;
        for id in &ids {
            let s = zone.service.server(id).await.unwrap();
            if s.status == "active" && s.capacity > 0 {
                fullest = fullest.max(f64::from(s.load) / f64::from(s.capacity));
            }
            if s.load > 0 && loaded.is_none() {
                loaded = Some(id.clone());
            }
        }
        assert!(fullest > 0.0);
        assert_eq!(g.utilisation_max, fullest);
        // A loaded server drains: counted, and out of the utilisation of active hosts.
        zone.service
            .report_states(vec![ElementStateItem {
                element: loaded.unwrap(),
                state: StateName::Draining,
                reason: None,
            }])
            .await
            .unwrap();
        let g = zone.service.gauges().await;
        assert_eq!(g.servers_draining, 1);
        assert!(g.utilisation_max <= fullest);
    }
}
