//! The operator's routes: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use runtime::dto::Health;

use super::state::AppState;
use crate::error::{ApiError, ErrorBody};

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
