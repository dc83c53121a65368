//! The one error type of the runtime: every failure a request or a command can meet, with
//! a stable code, the field it names and optional details (the HTTP status is the server's).

use serde_json::Value;

/// Everything that can go wrong in the api library. Variants that answer a request carry
/// what the client needs to fix it; [`Error::code`] is the stable machine-readable name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed JSON: {message}")]
    MalformedJson { message: String },
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("request body over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{refused} cell(s) of the import break a rule; nothing was imported")]
    InvalidImport { refused: usize, details: Value },
    #[error("plan '{plan}' not found")]
    PlanNotFound { plan: String },
    #[error("plan '{plan}': {message}")]
    PlanConflict { plan: String, message: String },
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("{field}: unknown server '{server}'")]
    UnknownServer { field: String, server: String },
    #[error("{field}: server '{server}' is listed twice")]
    DuplicateClient { field: String, server: String },
    #[error("{field}: {message}")]
    InvalidSize { field: String, message: String },
    #[error("{field}: server '{server}' is not a node of cell '{cell}'")]
    NotANode {
        field: String,
        server: String,
        cell: String,
    },
    #[error("no cell '{cell}'")]
    CellNotFound { cell: String },
    #[error("no server '{server}'")]
    ServerNotFound { server: String },
    #[error("cell '{cell}' has no move {n}")]
    MoveNotFound { cell: String, n: i64 },
    #[error("no route {path}")]
    RouteNotFound { path: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("cell '{cell}' exists with different {field}")]
    CellExists { cell: String, field: String },
    #[error("move {n} of cell '{cell}' is {state}")]
    MoveStale { cell: String, n: i64, state: String },
    #[error("move {n} of cell '{cell}' conflicts with the current placements: {message}")]
    MoveConflict {
        cell: String,
        n: i64,
        message: String,
        details: Value,
    },
    #[error("no capacity: {message}")]
    NoCapacity { message: String, details: Value },
    #[error("no safe placement: {message}")]
    NoSafePlacement { message: String, details: Value },
    #[error("invalid inventory: {errors} error(s)")]
    InvalidInventory { errors: usize, details: Value },
    #[error("inventory conflicts with the ledger: {message}")]
    InventoryConflict { message: String, details: Value },
    #[error("too many requests in flight; retry later")]
    Overloaded,
    #[error("gave up after {attempts} attempts: concurrent changes kept invalidating the solve")]
    Contended { attempts: u32 },
    #[error("request timed out after {ms} ms")]
    Timeout { ms: u64 },
    #[error("service shutting down")]
    ShuttingDown,
    #[error("the ledger could not commit the change: {message}")]
    StoreUnavailable { message: String },
    #[error("{message}")]
    Unauthorized { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("the request URI is {len} bytes, over the limit of {max}")]
    UriTooLong { len: usize, max: usize },
    #[error("{message}")]
    LedgerLocked { message: String },
    #[error("another replica changed the ledger first; the request can be retried")]
    Stale,
    #[error("{message}")]
    InvalidConfig { message: String },
    /// The ledger's driver or a migration failed (see [`store::Error`]).
    #[error("{0}")]
    Store(store::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Inventory(#[from] topology::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedJson { .. } => "malformed_json",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::InvalidField { .. } => "invalid_field",
            Error::UnknownServer { .. } => "unknown_server",
            Error::DuplicateClient { .. } => "duplicate_client",
            Error::InvalidSize { .. } => "invalid_size",
            Error::NotANode { .. } => "not_a_node",
            Error::CellNotFound { .. } => "cell_not_found",
            Error::ServerNotFound { .. } => "server_not_found",
            Error::MoveNotFound { .. } => "move_not_found",
            Error::PlanNotFound { .. } => "plan_not_found",
            Error::InvalidImport { .. } => "invalid_import",
            Error::PlanConflict { .. } => "plan_conflict",
            Error::RouteNotFound { .. } => "route_not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::CellExists { .. } => "cell_exists",
            Error::MoveStale { .. } => "move_stale",
            Error::MoveConflict { .. } => "move_conflict",
            Error::NoCapacity { .. } => "no_capacity",
            Error::NoSafePlacement { .. } => "no_safe_placement",
            Error::InvalidInventory { .. } => "invalid_inventory",
            Error::InventoryConflict { .. } => "inventory_conflict",
            Error::Overloaded => "overloaded",
            Error::Contended { .. } => "contended",
            Error::Timeout { .. } => "timeout",
            Error::ShuttingDown => "shutting_down",
            Error::LedgerLocked { .. } => "ledger_locked",
            Error::Stale => "contended",
            Error::UriTooLong { .. } => "uri_too_long",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::InvalidConfig { .. } => "invalid_config",
            Error::StoreUnavailable { .. } | Error::Store(_) => "store_unavailable",
            Error::Io { .. } | Error::Inventory(_) | Error::Internal(_) => "internal",
        }
    }

    /// The request field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidField { field, .. }
            | Error::UnknownServer { field, .. }
            | Error::DuplicateClient { field, .. }
            | Error::InvalidSize { field, .. }
            | Error::NotANode { field, .. }
            | Error::CellExists { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn details(&self) -> Option<&Value> {
        match self {
            Error::MoveConflict { details, .. }
            | Error::NoCapacity { details, .. }
            | Error::NoSafePlacement { details, .. }
            | Error::InvalidInventory { details, .. }
            | Error::InvalidImport { details, .. }
            | Error::InventoryConflict { details, .. } => Some(details),
            _ => None,
        }
    }

    /// What a client is told: for a failure of the service itself (IO, the store's
    /// driver, a bug) only that it happened and was logged, never a host path or a
    /// library's message.
    pub fn public_message(&self) -> String {
        match self {
            Error::Io { .. }
            | Error::Store(_)
            | Error::Inventory(_)
            | Error::Internal(_)
            | Error::InvalidConfig { .. } => format!(
                "{} error on the server (logged there)",
                if matches!(self, Error::Store(_)) {
                    "ledger"
                } else {
                    "internal"
                }
            ),
            e => e.to_string(),
        }
    }
}

impl From<store::Error> for Error {
    /// The ledger's errors keep the codes they had when the ledger lived in this crate.
    fn from(e: store::Error) -> Error {
        match e {
            store::Error::Io { context, source } => Error::Io { context, source },
            store::Error::LedgerLocked { message } => Error::LedgerLocked { message },
            store::Error::Stale => Error::Stale,
            store::Error::InvalidConfig { message } => Error::InvalidConfig { message },
            store::Error::StoreUnavailable { message } => Error::StoreUnavailable { message },
            store::Error::ShuttingDown => Error::ShuttingDown,
            store::Error::Internal(message) => Error::Internal(message),
            e @ (store::Error::Store(_) | store::Error::Migrate(_)) => Error::Store(e),
        }
    }
}
