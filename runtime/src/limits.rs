//! The limits of the runtime's answers, each in one place.

/// Most items in one list or page of an answer: cells per page of `GET /v1/cells`, a
/// report's `top`, the ids a re-evaluation, an import or a plan lists, the pairs of a
/// what-if, the servers named in an inventory conflict.
pub const LIST_LIMIT: usize = 1000;

/// Most times a request whose commit another replica beat is computed again on the
/// reloaded ledger before the client is told to retry (`contended`).
pub const STALE_ATTEMPTS: u32 = 16;

/// Longest wait for the ledger to be reloaded after a commit another replica beat.
pub const RESYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
