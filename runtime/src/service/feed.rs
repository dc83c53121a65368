//! Following the other replicas on a shared ledger: their commits, read from the store's
//! change log, are applied to this replica's in-memory state, so that its solves and
//! checks see them (the database still arbitrates every commit, see `Store::apply_at`).
//! An inventory another replica switched to is loaded here too (from the same source:
//! replicas share the inventory directory) and the cells are re-homed on it.

use std::sync::Arc;
use std::time::Duration;

use crate::overlay::Overlay;
use crate::zone::{Candidate, Source, Zone};
use crate::Error;
use store::Store;

use super::blocking;
use super::ops::Core;
use super::Plans;

/// How often the change log is read.
pub(crate) const FEED_INTERVAL: Duration = Duration::from_millis(20);

/// Runs until the store closes. A store no other replica shares has no feed: returns at
/// once.
pub(super) async fn follow(
    core: Arc<Core>,
    store: Arc<dyn Store>,
    plans: Arc<Plans>,
    pilot: Arc<super::autopilot::Autopilot>,
) {
    loop {
        let position = core.journal.feed();
        let feed = match store.feed(position).await {
            Ok(Some(feed)) => feed,
            Ok(None) => return,
            Err(e) => {
                if store.ping().await.is_err() {
                    tracing::debug!("feed stopped: {e}");
                    return;
                }
                tracing::warn!("reading the other replicas' changes: {e}");
                tokio::time::sleep(FEED_INTERVAL * 10).await;
                continue;
            }
        };
        if feed.head > position {
            let records = if feed.cells.is_empty() {
                Vec::new()
            } else {
                match store.cells(&feed.cells).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("reading the cells other replicas changed: {e}");
                        tokio::time::sleep(FEED_INTERVAL * 10).await;
                        continue;
                    }
                }
            };
            let current = core.ledger.read().await.zone.clone();
            let zone = if feed.inventory {
                match active_zone(&*store, &current).await {
                    Ok((zone, settings)) => {
                        pilot.settings_from(&settings);
                        zone
                    }
                    Err(e) => {
                        tracing::warn!("loading the inventory another replica switched to: {e}");
                        tokio::time::sleep(FEED_INTERVAL * 10).await;
                        continue;
                    }
                }
            } else {
                None
            };
            let stored_plans = if feed.plans.is_empty() {
                Vec::new()
            } else {
                match store.plans(&feed.plans).await {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!("reading the plans other replicas changed: {e}");
                        tokio::time::sleep(FEED_INTERVAL * 10).await;
                        continue;
                    }
                }
            };
            let mut ledger = core.write().await;
            if core.journal.feed() != position {
                // The ledger was put back as the store has it after a failed commit
                // meanwhile: what was read here is older than that. Read again.
                continue;
            }
            if let Some(zone) = zone
                .as_ref()
                .filter(|z| z.version == ledger.zone.version && z.overlay != ledger.zone.overlay)
            {
                // Another replica reported health: the same export, the new overlay (the
                // cells it judged again come below).
                ledger.zone = zone.clone();
                tracing::info!("health overlay changed, as another replica reported");
            }
            if let Some(zone) = zone.filter(|z| z.version != ledger.zone.version) {
                let version = zone.version;
                match ledger.rezone(zone, ledger.seq) {
                    Ok(mut rebuilt) => {
                        rebuilt.poisoned = ledger.poisoned.take();
                        *ledger = rebuilt;
                        tracing::info!(version, "switched inventory, as another replica did");
                    }
                    Err(missing) => {
                        // Cells still on servers it lacks: they are among the cells read
                        // below, or the ledger is inconsistent; stop writes until a restart.
                        ledger.poisoned = Some(format!(
                            "another replica switched to an inventory that lacks servers of \
                             this replica's cells ({:?}): restart this replica",
                            missing.first()
                        ));
                    }
                }
            }
            let seq = ledger.seq;
            if let Err(missing) = ledger.put_back(&feed.cells, records, seq) {
                ledger.poisoned = Some(format!(
                    "another replica's cell names servers this inventory lacks ({:?})",
                    missing.first()
                ));
            }
            // Before the position moves on: a plan made after it must see these (its
            // number comes after theirs, or the database refuses it as a conflict).
            plans.mirror(stored_plans);
            core.journal.set_feed(feed.head);
            drop(ledger);
        }
        tokio::time::sleep(FEED_INTERVAL).await;
    }
}

/// The ledger's active inventory with its health overlay, loaded off the async runtime
/// (the export read again only when the version is not `current`'s), and the settings.
pub(super) async fn active_zone(
    store: &dyn Store,
    current: &Arc<Zone>,
) -> Result<(Option<Arc<Zone>>, Vec<(String, String)>), Error> {
    let snapshot = store.load().await?;
    let Some(active) = snapshot.active_inventory else {
        return Ok((None, snapshot.settings));
    };
    let overlay = Overlay::from_records(snapshot.overlay);
    if active.version == current.version && overlay == current.overlay {
        // Only the settings changed.
        return Ok((None, snapshot.settings));
    }
    let current = current.clone();
    let zone = blocking(move || -> Result<Zone, Error> {
        if active.version == current.version {
            return current.with_overlay(overlay);
        }
        let source = Source::parse(&active.source).ok_or_else(|| {
            Error::Internal(format!("unknown inventory source '{}'", active.source))
        })?;
        let zone = Candidate::load(source)?.into_zone(active.version, active.loaded_at);
        Ok(zone.keeping(&overlay)?.0)
    })
    .await??;
    Ok((Some(Arc::new(zone)), snapshot.settings))
}
