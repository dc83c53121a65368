//! The one error type of the runtime: every failure a request or a command can meet, with
//! a stable code, the field it names and optional details (the HTTP status is the server's).

use serde_json::Value;

/// Everything that can go wrong in the api library. Variants that answer a request carry
/// what the client needs to fix it; [`Error::code`] is the stable machine-readable name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body is not valid JSON (a syntax error, a truncated body or trailing
    /// characters).
    #[error("malformed JSON: {message}")]
    MalformedJson {
        /// The JSON parser's message.
        message: String,
    },
    /// The request has a body but its `Content-Type` is not JSON.
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The request body is larger than the service takes.
    #[error("request body over the limit of {limit} bytes")]
    BodyTooLarge {
        /// The largest body taken, in bytes.
        limit: usize,
    },
    /// The request body did not arrive in time: nothing came for too long, or all of it
    /// took longer than the service waits for a body.
    #[error("the request body did not arrive within {ms} ms ({why})")]
    BodyTimeout {
        /// The limit that ran out, in milliseconds.
        ms: u64,
        /// Which one: `stalled` (nothing for that long) or `too slow` (the whole body).
        why: &'static str,
    },
    /// An import that was not told to skip invalid rows has rows that break a rule.
    #[error("{refused} cell(s) of the import break a rule; nothing was imported")]
    InvalidImport {
        /// How many rows were refused.
        refused: usize,
        /// `{"refused": [...]}`: the first refused rows and why.
        details: Value,
    },
    /// No plan has that id.
    #[error("plan '{plan}' not found")]
    PlanNotFound {
        /// The plan id asked for.
        plan: String,
    },
    /// The plan cannot do what was asked in its current state.
    #[error("plan '{plan}': {message}")]
    PlanConflict {
        /// The plan id.
        plan: String,
        /// Why the plan refused.
        message: String,
    },
    /// A request field has a value the service does not take.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field, as a path into the request (`clients[2]`, `rate`, `body`).
        field: String,
        /// What is wrong with its value.
        message: String,
    },
    /// A request names a server the inventory does not have.
    #[error("{field}: unknown server '{server}'")]
    UnknownServer {
        /// The field that names it (`clients[2]`, `server`).
        field: String,
        /// The server id.
        server: String,
    },
    /// A request names an element (a rack, a row, a device, ...) the inventory does not
    /// have: like a missing resource, 404.
    #[error("{field}: {message}")]
    UnknownElement {
        /// The field that names it (`states[0].element`, `drain[1]`, `id`).
        field: String,
        /// Which id, and what it could have been.
        message: String,
    },
    /// A request names a server-side path that does not exist (under the inventory root).
    #[error("{field}: {message}")]
    PathNotFound {
        /// The field that names it.
        field: String,
        /// Which path, relative to the root.
        message: String,
    },
    /// A state the element cannot take as the inventory has it (draining is for servers):
    /// a conflict with the element as it is, 409.
    #[error("{field}: {message}")]
    InvalidState {
        /// The field (`states[0].state`, `state`).
        field: String,
        /// Why.
        message: String,
    },
    /// A server is listed twice among a cell's clients.
    #[error("{field}: server '{server}' is listed twice")]
    DuplicateClient {
        /// The field of the second listing (`clients[2]`).
        field: String,
        /// The server id.
        server: String,
    },
    /// The cell size asked for is not one the engine places.
    #[error("{field}: {message}")]
    InvalidSize {
        /// The field (`size`).
        field: String,
        /// What is wrong with the size.
        message: String,
    },
    /// A replace names a server that is not one of the cell's nodes.
    #[error("{field}: server '{server}' is not a node of cell '{cell}'")]
    NotANode {
        /// The field that names it (`server`).
        field: String,
        /// The server id.
        server: String,
        /// The cell id.
        cell: String,
    },
    /// No cell has that id.
    #[error("no cell '{cell}'")]
    CellNotFound {
        /// The cell id asked for.
        cell: String,
    },
    /// The inventory has no server with that id.
    #[error("no server '{server}'")]
    ServerNotFound {
        /// The server id asked for.
        server: String,
    },
    /// The cell has no move with that number.
    #[error("cell '{cell}' has no move {n}")]
    MoveNotFound {
        /// The cell id.
        cell: String,
        /// The move number asked for.
        n: i64,
    },
    /// No route has the request's path.
    #[error("no route {path}")]
    RouteNotFound {
        /// The request's path.
        path: String,
    },
    /// The route exists but not with the request's method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A placement repeats a cell id with other clients or another size than the cell has.
    #[error("cell '{cell}' exists with different {field}")]
    CellExists {
        /// The cell id.
        cell: String,
        /// The field that differs (`clients` or `size`).
        field: String,
    },
    /// The move can no longer be committed (superseded, or the cell or the inventory
    /// changed since it was proposed).
    #[error("move {n} of cell '{cell}' is {state}")]
    MoveStale {
        /// The cell id.
        cell: String,
        /// The move number.
        n: i64,
        /// Why it is stale.
        state: String,
    },
    /// Committing the move would break a separation rule against the current placements.
    #[error("move {n} of cell '{cell}' conflicts with the current placements: {message}")]
    MoveConflict {
        /// The cell id.
        cell: String,
        /// The move number.
        n: i64,
        /// The violations' messages, joined with `; `.
        message: String,
        /// `{"violations": [...]}`: the rules the move would break.
        details: Value,
    },
    /// The fleet has no capacity left for the placement (it may clear after deletes).
    #[error("no capacity: {message}")]
    NoCapacity {
        /// The engine's reason.
        message: String,
        /// `{"reason", "binding"}`: the engine's reason and the rules that bound the choice.
        details: Value,
    },
    /// The separation rules leave no safe choice for the placement.
    #[error("no safe placement: {message}")]
    NoSafePlacement {
        /// The engine's reason.
        message: String,
        /// `{"reason", "binding"}`: the engine's reason and the rules that bound the choice.
        details: Value,
    },
    /// The inventory could not be read or does not validate.
    #[error("invalid inventory: {errors} error(s)")]
    InvalidInventory {
        /// How many errors it has.
        errors: usize,
        /// `{"errors": [...], "warnings": [...]}`: the problems found.
        details: Value,
    },
    /// The inventory does not fit the ledger (it lacks servers the cells use, it is not the
    /// one the ledger serves, or it switched during an import).
    #[error("inventory conflicts with the ledger: {message}")]
    InventoryConflict {
        /// What conflicts.
        message: String,
        /// What the conflict is about (e.g. `{"missing": [...]}` or `{"active": ...}`).
        details: Value,
    },
    /// The solver queue is full.
    #[error("too many requests in flight; retry later")]
    Overloaded,
    /// A solve was redone too often because concurrent commits kept changing its cell or
    /// taking its servers.
    #[error("gave up after {attempts} attempts: concurrent changes kept invalidating the solve")]
    Contended {
        /// How many solves were tried.
        attempts: u32,
    },
    /// The request ran over the service's time limit.
    #[error("request timed out after {ms} ms")]
    Timeout {
        /// The time limit, in milliseconds.
        ms: u64,
    },
    /// The service is stopping (its solvers, plans or journal closed) and takes no more
    /// work.
    #[error("service shutting down")]
    ShuttingDown,
    /// A commit to the ledger failed, or the service refuses changes until it has reloaded
    /// the ledger after one.
    #[error("the ledger could not commit the change: {message}")]
    StoreUnavailable {
        /// The failure, as the store reported it.
        message: String,
    },
    /// The request has no bearer token, or one the service does not know.
    #[error("{message}")]
    Unauthorized {
        /// What is missing.
        message: String,
    },
    /// The request's token has a lesser role than the route needs.
    #[error("{message}")]
    Forbidden {
        /// The token's role and the role needed.
        message: String,
    },
    /// The request's URI (path and query) is longer than the service takes.
    #[error("the request URI is {len} bytes, over the limit of {max}")]
    UriTooLong {
        /// The URI's length, in bytes.
        len: usize,
        /// The longest URI taken, in bytes.
        max: usize,
    },
    /// Another process holds the ledger (see [`store::Error::LedgerLocked`]).
    #[error("{message}")]
    LedgerLocked {
        /// Which ledger and who holds it.
        message: String,
    },
    /// Another replica committed to the ledger first; the request can be retried.
    #[error("another replica changed the ledger first; the request can be retried")]
    Stale,
    /// The service's configuration is invalid (the ledger's address, a token file, an
    /// option).
    #[error("{message}")]
    InvalidConfig {
        /// What is wrong with it.
        message: String,
    },
    /// The ledger's driver or a migration failed (see [`store::Error`]).
    #[error("{0}")]
    Store(store::Error),
    /// A file or socket operation failed (see [`store::Error::Io`]).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which file.
        context: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An inventory could not be loaded (see [`topology::Error`]).
    #[error(transparent)]
    Inventory(#[from] topology::Error),
    /// A bug or an unexpected failure of a library; the message is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable machine-readable name of the error (`cell_not_found`, `contended`...),
    /// the `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MalformedJson { .. } => "malformed_json",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::BodyTimeout { .. } => "body_timeout",
            Error::InvalidField { .. } => "invalid_field",
            Error::UnknownServer { .. } => "unknown_server",
            Error::UnknownElement { .. } => "unknown_element",
            Error::PathNotFound { .. } => "path_not_found",
            Error::InvalidState { .. } => "invalid_state",
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
            | Error::UnknownElement { field, .. }
            | Error::PathNotFound { field, .. }
            | Error::InvalidState { field, .. }
            | Error::DuplicateClient { field, .. }
            | Error::InvalidSize { field, .. }
            | Error::NotANode { field, .. }
            | Error::CellExists { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Structured details for the client (violations, refused rows, problems), if any.
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
