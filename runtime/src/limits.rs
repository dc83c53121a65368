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

/// Most clients of one cell.
pub const MAX_CLIENTS: usize = 64;

/// Moves per second a plan's execution or the autopilot may be given: at least, at most.
pub const MIN_RATE: f64 = 0.01;
/// See [`MIN_RATE`].
pub const MAX_RATE: f64 = 100_000.0;

/// Most steps of a plan committed but not yet durable at once.
pub const MAX_CONCURRENCY: u32 = 1024;

/// Longest grace of the autopilot before it moves nodes off a failed server, seconds.
pub const MAX_GRACE_S: f64 = 7.0 * 24.0 * 3600.0;
/// Most moves of the autopilot under way at once.
pub const MAX_IN_FLIGHT: u32 = 1024;
/// Most moves of the autopilot per hour.
pub const MAX_MOVES_PER_HOUR: u32 = 1_000_000;

/// Most moves a plan may ask for.
pub const MAX_MOVES: u64 = 10_000_000;

/// Most cells a what-if's headroom count may be asked to place.
pub const MAX_HEADROOM: usize = optimizer::whatif::HEADROOM_LIMIT;
