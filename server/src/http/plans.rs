//! The plan routes: create (a dry run unless `execute`), list, read a page of steps,
//! execute, pause, resume and cancel.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::dto::{ExecuteRequest, PlanList, PlanRequest, PlanView};
use runtime::service::{DEFAULT_STEPS_PAGE, MAX_STEPS_PAGE};
use runtime::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{parse_param, JsonBody, PathParams, QueryParams};
use super::state::AppState;
use crate::error::{ApiError, ErrorBody};

/// Compute a rebalancing plan on the ledger's current cells and store it: a dry run that
/// moves nothing, unless `execute` is given. Every step is one node of one cell; after
/// every prefix of the plan no server is over capacity, no two cells share a quorum, and
/// every single-failure-safe cell still is.
#[utoipa::path(post, path = "/v1/plans", tag = "plans",
    request_body = PlanRequest,
    responses(
        (status = 201, description = "Planned (and executing, with `execute`)", body = PlanView),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 409, description = "plan_conflict: the inventory switched while planning, or another plan executes", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 404, description = "unknown_element: a drain id the inventory lacks", body = ErrorBody),
        (status = 422, description = "invalid_field (no goal, bad settings)", body = ErrorBody),
        (status = 503, description = "contended (another replica committed first: retry), store_unavailable, shutting_down", body = ErrorBody),
    ))]
pub(super) async fn create_plan(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PlanRequest>,
) -> Result<Response, ApiError> {
    let view = state.service.create_plan(req).await?;
    let location = format!("/v1/plans/{}", view.plan_id);
    let mut r = (StatusCode::CREATED, axum::Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Every plan, newest first, without steps.
#[utoipa::path(get, path = "/v1/plans", tag = "plans",
    responses((status = 200, body = PlanList)))]
pub(super) async fn list_plans(State(state): State<AppState>) -> axum::Json<PlanList> {
    axum::Json(state.service.plan_list())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StepsQuery {
    /// The first step to list, from 0 (default 0).
    #[param(value_type = Option<u64>)]
    offset: Option<String>,
    /// Steps per page, 0 to 10000 (default 100).
    // The literal 10000 is `MAX_STEPS_PAGE` (utoipa takes literals only); a test checks them.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 10000)]
    limit: Option<String>,
}

/// A plan: state, progress by step outcome, the curve and unmet goals, a page of steps.
#[utoipa::path(get, path = "/v1/plans/{id}", tag = "plans",
    params(("id" = String, Path, description = "Plan id"), StepsQuery),
    responses(
        (status = 200, body = PlanView),
        (status = 404, description = "plan_not_found", body = ErrorBody),
        (status = 422, description = "invalid_field", body = ErrorBody),
    ))]
pub(super) async fn get_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<StepsQuery>,
) -> Result<axum::Json<PlanView>, ApiError> {
    let offset: usize = parse_param(q.offset, "offset", "a step offset")?.unwrap_or(0);
    let limit: usize = parse_param(q.limit, "limit", "a page size")?.unwrap_or(DEFAULT_STEPS_PAGE);
    if limit > MAX_STEPS_PAGE {
        return Err(Error::InvalidField {
            field: "limit".into(),
            message: format!("{limit}: at most {MAX_STEPS_PAGE} steps per page"),
        }
        .into());
    }
    Ok(axum::Json(state.service.plan(&id, offset, limit)?))
}

/// Start executing a planned or paused plan: steps commit in order at `rate` moves per
/// second, each through the same checks as every other change (a step a concurrent change
/// invalidated is re-planned for its cell, or skipped with why). One plan executes at a
/// time.
#[utoipa::path(post, path = "/v1/plans/{id}/execute", tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    request_body = ExecuteRequest,
    responses(
        (status = 200, body = PlanView),
        (status = 404, description = "plan_not_found", body = ErrorBody),
        (status = 409, description = "plan_conflict: not planned or paused, made on another inventory, or another plan executes", body = ErrorBody),
        (status = 422, description = "invalid_field", body = ErrorBody),
    ))]
pub(super) async fn execute_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> Result<axum::Json<PlanView>, ApiError> {
    Ok(axum::Json(state.service.execute_plan(&id, req).await?))
}

/// Pause an executing plan before its next step (committed steps stay).
#[utoipa::path(post, path = "/v1/plans/{id}/pause", tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    responses(
        (status = 200, body = PlanView),
        (status = 404, description = "plan_not_found", body = ErrorBody),
        (status = 409, description = "plan_conflict: not executing", body = ErrorBody),
    ))]
pub(super) async fn pause_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<PlanView>, ApiError> {
    Ok(axum::Json(state.service.pause_plan(&id).await?))
}

/// Resume a paused plan with its rate and concurrency.
#[utoipa::path(post, path = "/v1/plans/{id}/resume", tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    responses(
        (status = 200, body = PlanView),
        (status = 404, description = "plan_not_found", body = ErrorBody),
        (status = 409, description = "plan_conflict: not paused, made on another inventory, or another plan executes", body = ErrorBody),
    ))]
pub(super) async fn resume_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<PlanView>, ApiError> {
    Ok(axum::Json(state.service.resume_plan(&id).await?))
}

/// Cancel a plan: no further step runs (committed steps stay).
#[utoipa::path(post, path = "/v1/plans/{id}/cancel", tag = "plans",
    params(("id" = String, Path, description = "Plan id")),
    responses(
        (status = 200, body = PlanView),
        (status = 404, description = "plan_not_found", body = ErrorBody),
        (status = 409, description = "plan_conflict: already completed or invalidated", body = ErrorBody),
    ))]
pub(super) async fn cancel_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<PlanView>, ApiError> {
    Ok(axum::Json(state.service.cancel_plan(&id).await?))
}
