//! The JSON form of the runtime's errors: an HTTP status per error code, the body every
//! error response carries, and the headers a client acts on (`WWW-Authenticate`,
//! `Retry-After`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::Error;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorDetail,
}

/// One error: its code, message, field and details.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_server`.
    pub(crate) code: &'static str,
    /// Human-readable; names the bad field when there is one.
    pub(crate) message: String,
    /// The offending request field (`clients[1]`, `size`, `server`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
    /// Code-specific details: the explanation of a refused placement, the problems of an
    /// invalid inventory, the violations of a conflicting move.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) details: Option<Value>,
}

/// A runtime error on its way out as an HTTP response (the orphan rule keeps
/// [`IntoResponse`] off [`runtime::Error`] itself).
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError(e)
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        ApiError(e.into())
    }
}

/// The HTTP status of an error.
fn status(e: &Error) -> StatusCode {
    match e {
        Error::MalformedJson { .. } => StatusCode::BAD_REQUEST,
        Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        Error::InvalidField { .. }
        | Error::DuplicateClient { .. }
        | Error::InvalidSize { .. }
        | Error::NoSafePlacement { .. }
        | Error::InvalidImport { .. }
        | Error::InvalidInventory { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::CellNotFound { .. }
        | Error::UnknownServer { .. }
        | Error::UnknownElement { .. }
        | Error::PathNotFound { .. }
        | Error::ServerNotFound { .. }
        | Error::MoveNotFound { .. }
        | Error::PlanNotFound { .. }
        | Error::RouteNotFound { .. } => StatusCode::NOT_FOUND,
        Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Error::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
        Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        Error::CellExists { .. }
        | Error::InvalidState { .. }
        | Error::NotANode { .. }
        | Error::MoveStale { .. }
        | Error::MoveConflict { .. }
        | Error::PlanConflict { .. }
        | Error::NoCapacity { .. }
        | Error::InventoryConflict { .. } => StatusCode::CONFLICT,
        Error::Overloaded
        | Error::Contended { .. }
        | Error::Timeout { .. }
        | Error::ShuttingDown
        | Error::LedgerLocked { .. }
        | Error::Stale
        | Error::StoreUnavailable { .. }
        | Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Io { .. }
        | Error::Inventory(_)
        | Error::Internal(_)
        | Error::InvalidConfig { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of an error.
fn body(e: &Error) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: e.code(),
            message: e.public_message(),
            field: e.field().map(str::to_owned),
            details: e.details().cloned(),
        },
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = status(&e);
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(code = e.code(), "{e}");
        }
        let mut response = (status, axum::Json(body(&e))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 here is transient: overload, contention, a store hiccup, shutdown.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
