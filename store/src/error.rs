//! The one error type of the durable ledger.

/// What can go wrong reading or writing the ledger. The runtime maps each variant onto its
/// own error (and so onto the service's stable error codes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database driver failed (connection, query, constraint).
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// A migration failed or the ledger is newer than this build.
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A file of the ledger could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which file.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process holds the ledger.
    #[error("{message}")]
    LedgerLocked {
        /// Who holds it.
        message: String,
    },
    /// Another replica changed the ledger since the state a change was checked against.
    #[error("another replica changed the ledger first; the request can be retried")]
    Stale,
    /// The ledger's address or settings are wrong.
    #[error("{message}")]
    InvalidConfig {
        /// What is wrong, naming the setting.
        message: String,
    },
    /// A commit failed, or the ledger refuses writes until it is reloaded.
    #[error("the ledger could not commit the change: {message}")]
    StoreUnavailable {
        /// Why.
        message: String,
    },
    /// The journal was closed.
    #[error("service shutting down")]
    ShuttingDown,
    /// A failure of ours (a background task, randomness).
    #[error("internal error: {0}")]
    Internal(String),
}
