//! The HTTP surface of cellplacer: the axum router over the runtime ([`app`]), the OpenAPI
//! document, bearer tokens and roles ([`auth`]), the connections ([`conn`]: a cap, header
//! timeouts, the JSON shape of hyper's own errors) and the service's start-up and graceful
//! shutdown ([`serve`]). Handlers only translate between HTTP and
//! [`runtime::service::Service`]; every failure leaves as a JSON error with a stable code.

pub mod auth;
pub mod conn;
mod error;
pub mod http;
pub mod serve;

pub use http::{app, AppState, Limits};
