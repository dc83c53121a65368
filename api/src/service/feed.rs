//! Following the other replicas on a shared ledger: their commits, read from the store's
//! change log, are applied to this replica's in-memory state, so that its solves and
//! checks see them (the database still arbitrates every commit, see `Store::apply_at`).

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

use super::ops::Core;

/// How often the change log is read.
pub const FEED_INTERVAL: Duration = Duration::from_millis(20);

/// Runs until the store closes. A store no other replica shares has no feed: returns at
/// once.
pub(super) async fn follow(core: Arc<Core>, store: Arc<dyn Store>) {
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
            let mut ledger = core.ledger.write().await;
            if feed.inventory {
                // Serving another inventory than the other replicas would judge changes
                // by other rules: writes stop here until a restart loads it.
                ledger.poisoned = Some(
                    "another replica switched the inventory: restart this replica to serve it"
                        .into(),
                );
                tracing::error!("another replica switched the inventory; writes refused");
            }
            for id in &feed.cells {
                ledger.remove(id);
            }
            let seq = ledger.seq;
            for (record, last_move) in records {
                if let Err(missing) = ledger.put_record(record, last_move, seq) {
                    ledger.poisoned = Some(format!(
                        "another replica's cell names servers this inventory lacks ({:?})",
                        missing.first()
                    ));
                }
            }
            core.journal.set_feed(feed.head);
            drop(ledger);
        }
        tokio::time::sleep(FEED_INTERVAL).await;
    }
}
