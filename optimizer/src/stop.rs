//! A request to end long work early, set from another thread when the caller's time
//! limit runs out.
//!
//! Work that sees it set returns at once with what it has; the caller that set it throws
//! that away. A `Stop` never set changes nothing, so the same inputs still give the same
//! answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared by the caller, which may set it, and the work, which looks at it between steps.
#[derive(Debug, Clone, Default)]
pub struct Stop(Option<Arc<AtomicBool>>);

impl Stop {
    /// A flag the caller can set.
    pub fn new() -> Stop {
        Stop(Some(Arc::new(AtomicBool::new(false))))
    }

    /// Asks every holder of a clone to stop.
    pub fn set(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the caller gave up on the work.
    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::Stop;

    #[test]
    fn a_set_stop_is_seen_by_every_clone_and_a_default_one_never_is() {
        let stop = Stop::new();
        let work = stop.clone();
        assert!(!work.is_set());
        stop.set();
        assert!(work.is_set());
        let never = Stop::default();
        never.set();
        assert!(!never.is_set());
    }
}
