//! Wall time, injected: the service reads the time only through a [`Clock`], so that the
//! same control logic can run on a virtual clock (a simulation, a test).

use std::time::{SystemTime, UNIX_EPOCH};

/// Where the runtime reads the time (Unix milliseconds) it stamps records with.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}
