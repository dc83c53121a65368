//! The writer lease on a ledger shared by replicas: one replica holds it and commits the
//! writes of every replica, which forward theirs to the address it recorded, so that all
//! writes go through one group-committing journal. Forwarding only carries requests: the
//! database still arbitrates every commit, so a replica that cannot reach the writer (it
//! died, the lease is moving) serves the write itself, as every replica did before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::Service;

/// How often a replica tries to take the lease, and reads who holds it.
const WRITER_POLL: Duration = Duration::from_millis(500);

/// Who writes, as this replica last saw it.
#[derive(Debug, Default)]
pub(super) struct Writer {
    /// Another replica's address, while it holds the lease.
    elsewhere: Mutex<Option<String>>,
    /// Set at shutdown: the claiming loop ends.
    stopped: AtomicBool,
}

impl Writer {
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        *self.elsewhere.lock() = None;
    }
}

impl Service {
    /// Claims the writer lease as `url` (this replica's address, as the others reach it),
    /// again and again: while another replica holds it, writes are forwarded there
    /// ([`Service::writer_elsewhere`]); when its holder dies, a replica takes it over
    /// within [`WRITER_POLL`] of the database noticing.
    pub fn start_writer(self: &Arc<Self>, url: String) {
        let service = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(service) = service.upgrade() else {
                    return;
                };
                if service.writer.stopped.load(Ordering::Acquire) {
                    return;
                }
                let elsewhere = match service.store.claim_writer(&url).await {
                    Ok(true) => None,
                    Ok(false) => service
                        .store
                        .writer_url()
                        .await
                        .ok()
                        .flatten()
                        .filter(|w| *w != url),
                    Err(e) => {
                        tracing::warn!("claiming the writer lease: {e}");
                        None
                    }
                };
                let changed = {
                    let mut now = service.writer.elsewhere.lock();
                    let changed = *now != elsewhere;
                    *now = elsewhere.clone();
                    changed
                };
                if changed {
                    match &elsewhere {
                        Some(w) => {
                            tracing::info!(writer = %w, "writes are forwarded to the writer")
                        }
                        None => tracing::info!("this replica writes"),
                    }
                }
                drop(service);
                tokio::time::sleep(WRITER_POLL).await;
            }
        });
    }

    /// The writer's address when another replica holds the writer lease: where this
    /// replica forwards its writes. `None`: it writes itself.
    pub fn writer_elsewhere(&self) -> Option<String> {
        self.writer.elsewhere.lock().clone()
    }
}
