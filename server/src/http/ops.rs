//! The operator's routes: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use runtime::dto::{FleetView, Health};
use serde::Serialize;
use utoipa::ToSchema;

use super::middleware::Identity;
use super::state::AppState;
use crate::error::{ApiError, ErrorBody};

/// `GET /v1/whoami`: the token a request carries.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WhoAmI {
    /// The token's name; null when the service has no tokens.
    name: Option<String>,
    /// Its role (`read`, `runtime`, `admin`); `admin` without tokens, where every request
    /// is allowed.
    role: String,
    /// Whether the service checks tokens at all.
    tokens: bool,
}

/// Who the token is: its name and role (a console offers only the actions it allows).
#[utoipa::path(get, path = "/v1/whoami", tag = "ops",
    responses((status = 200, body = WhoAmI)))]
pub(super) async fn whoami(
    State(state): State<AppState>,
    identity: Option<axum::Extension<Identity>>,
) -> axum::Json<WhoAmI> {
    axum::Json(match identity {
        Some(axum::Extension(who)) => WhoAmI {
            name: Some(who.name),
            role: who.role.to_string(),
            tokens: true,
        },
        None => WhoAmI {
            name: None,
            role: "admin".into(),
            tokens: state.tokens.is_some(),
        },
    })
}

/// The zone at a glance, as the ledger keeps it current (cheap at any scale: no cell is
/// evaluated again).
#[utoipa::path(get, path = "/v1/fleet", tag = "ops",
    responses((status = 200, body = FleetView)))]
pub(super) async fn fleet(State(state): State<AppState>) -> axum::Json<FleetView> {
    axum::Json(FleetView::from(&state.service.gauges().await))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, body = Health)))]
pub(super) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the ledger is consistent and the store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()), responses(
    (status = 200, body = Health),
    (status = 503, description = "store_unavailable", body = ErrorBody)))]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state.service.ready().await?;
    Ok(axum::Json(Health {
        status: "ok".into(),
    }))
}

/// Prometheus text: requests and latency by route and status, solve time, commits, cells
/// (unsafe, by risk), utilisation, balance, build and process metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text format 1.0.0", content_type = "application/openmetrics-text")))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let gauges = state.service.gauges().await;
    let body = state.service.metrics().render(&gauges);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
