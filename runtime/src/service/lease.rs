//! The zone's executor lease, shared in this process by everything that moves cells on
//! its own (a plan's executor, the autopilot): taken from the store by the first holder,
//! given back by the last, so that one replica acts per zone.

use std::sync::Arc;

use store::Store;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Lease {
    store: Arc<dyn Store>,
    holders: tokio::sync::Mutex<u32>,
}

impl Lease {
    pub(crate) fn new(store: Arc<dyn Store>) -> Lease {
        Lease {
            store,
            holders: tokio::sync::Mutex::new(0),
        }
    }

    /// One more holder; `false` when another replica holds the lease.
    pub(crate) async fn take(&self) -> Result<bool, store::Error> {
        let mut holders = self.holders.lock().await;
        if *holders == 0 && !self.store.take_executor_lease().await? {
            return Ok(false);
        }
        *holders += 1;
        Ok(true)
    }

    /// One holder fewer; the last gives the lease back.
    pub(crate) async fn release(&self) {
        let mut holders = self.holders.lock().await;
        if *holders == 0 {
            return;
        }
        *holders -= 1;
        if *holders == 0 {
            self.store.release_executor_lease().await;
        }
    }
}
