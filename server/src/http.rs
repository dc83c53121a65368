//! The HTTP surface: routes under `/v1`, JSON in and out, limits, timeouts and metrics.
//! Handlers only translate between HTTP and [`Service`]; every failure is an [`Error`] with
//! a stable code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::auth::Tokens;
use crate::error::ErrorBody;
use crate::ApiError;
use runtime::dto::{
    CellPage, CellResponse, CellView, ClientsRequest, ClientsResponse, ExecuteRequest, Health,
    InventoryRequest, InventoryView, PlaceRequest, PlanList, PlanRequest, PlanView, ReplaceRequest,
    ServerView, SwitchResponse, ValidationView, WhatIfRequest,
};
use runtime::dto::{ImportRequest, ImportResponse};
use runtime::service::{CellQuery, Service, DEFAULT_STEPS_PAGE, MAX_STEPS_PAGE};
use runtime::view::FleetReportView;
use runtime::Error;

/// Default largest inventory upload, in MiB: a whole `az-large` export (26,612 servers,
/// with a million-cell workload table) is 81 MiB of CSV.
pub const DEFAULT_UPLOAD_MIB: usize = 128;

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest JSON body of the cell routes.
    pub body: usize,
    /// Largest inventory upload.
    pub upload: usize,
    /// Time limit of the cell and server routes.
    pub timeout: Duration,
    /// Time limit of the report and inventory routes (they evaluate every cell).
    pub admin_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body: 64 * 1024,
            upload: DEFAULT_UPLOAD_MIB * 1024 * 1024,
            timeout: Duration::from_secs(10),
            admin_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub limits: Limits,
    /// The accepted bearer tokens; `None`: every request is allowed (loopback only).
    pub tokens: Option<Arc<Tokens>>,
}

/// The body limit in force, for the message of a 413.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// A JSON body whose every failure is an [`Error`] naming the field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// The name in backticks of serde's "missing field `x`" and "unknown field `x`, ...".
fn quoted_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next()
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
            })
            .unwrap_or(false);
        if !json {
            return Err(Error::UnsupportedMediaType.into());
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::BodyTooLarge { limit }
            } else {
                Error::MalformedJson {
                    message: r.body_text(),
                }
            }
        })?;
        // Every request body is an object (serde would take a struct's fields as an array).
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            return Err(Error::InvalidField {
                field: "body".into(),
                message: "the body must be a JSON object".into(),
            }
            .into());
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Error::MalformedJson {
                    message: inner.to_string(),
                };
            }
            let message = inner.to_string();
            let field = if path == "." {
                quoted_field(&message).unwrap_or("body").to_owned()
            } else {
                path
            };
            // serde appends " at line 1 column 17": the field name says where.
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_owned();
            Error::InvalidField { field, message }
        })?;
        // Trailing characters after the value.
        de.end().map_err(|e| Error::MalformedJson {
            message: e.to_string(),
        })?;
        Ok(JsonBody(value))
    }
}

/// Path parameters with JSON errors.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e: PathRejection| {
                ApiError(Error::InvalidField {
                    field: "path".into(),
                    message: e.body_text(),
                })
            })
    }
}

/// Query parameters with JSON errors.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e: QueryRejection| {
                let message = e.body_text();
                // "Failed to deserialize query string: unknown field `x`, expected ...".
                let field = message
                    .find("unknown field `")
                    .and_then(|i| quoted_field(&message[i..]))
                    .unwrap_or("query")
                    .to_owned();
                ApiError(Error::InvalidField { field, message })
            })
    }
}

/// Place a new cell. The same request again returns the same placement (200); the same id
/// with other clients or size is a 409.
#[utoipa::path(post, path = "/v1/cells", tag = "cells",
    request_body = PlaceRequest,
    responses(
        (status = 201, description = "Placed", body = CellResponse),
        (status = 200, description = "Already placed by the same request", body = CellResponse),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 409, description = "cell_exists, no_capacity", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_field, unknown_server, duplicate_client, invalid_size, no_safe_placement", body = ErrorBody),
        (status = 503, description = "overloaded, contended, timeout, store_unavailable", body = ErrorBody),
    ))]
async fn place_cell(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PlaceRequest>,
) -> Result<Response, ApiError> {
    let (response, created) = state.service.place(req).await?;
    if created {
        let location = format!("/v1/cells/{}", response.cell.cell_id);
        let mut r = (StatusCode::CREATED, axum::Json(response)).into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Ok(r)
    } else {
        Ok(axum::Json(response).into_response())
    }
}

/// The query of `GET /v1/cells`. Values are read as text and checked here, so that an
/// error names its parameter; any other parameter is refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only cells with a node on this server id (404 `server_not_found` if the inventory
    /// has no such server).
    #[param(value_type = Option<String>, min_length = 1)]
    server: Option<String>,
    /// true: only cells that are not single-failure safe; false: only safe ones.
    #[serde(rename = "unsafe")]
    #[param(value_type = Option<bool>)]
    unsafe_only: Option<String>,
    /// Only cells whose risk was computed on this inventory version.
    #[param(value_type = Option<i64>)]
    inventory_version: Option<String>,
    /// Cells per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page (opaque).
    #[param(value_type = Option<String>, pattern = "^([0-9a-fA-F]{2}){1,256}$")]
    cursor: Option<String>,
}

fn parse_param<T: std::str::FromStr>(
    value: Option<String>,
    field: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError(Error::InvalidField {
                    field: field.to_owned(),
                    message: format!("{field} '{v}' is not {what}"),
                })
            })
        })
        .transpose()
}

/// List cells by id, filtered, a page at a time. Pages follow `next_cursor` and are
/// stable under concurrent changes: no cell comes twice, and a cell placed after the
/// cursor's position comes on a later page.
#[utoipa::path(get, path = "/v1/cells", tag = "cells", params(ListQuery),
    responses(
        (status = 200, description = "A page of cells, by cell id", body = CellPage),
        (status = 404, description = "server_not_found", body = ErrorBody),
        (status = 422, description = "invalid_field: limit, cursor, unsafe, inventory_version or an unknown parameter", body = ErrorBody),
        (status = 503, description = "timeout, store_unavailable", body = ErrorBody),
    ))]
async fn list_cells(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<CellPage>, ApiError> {
    let query = CellQuery {
        server: q.server,
        unsafe_only: parse_param(q.unsafe_only, "unsafe", "true or false")?,
        inventory_version: parse_param(q.inventory_version, "inventory_version", "a version")?,
        limit: parse_param(q.limit, "limit", "a number of cells from 1 to 1000")?,
        cursor: q.cursor,
    };
    Ok(axum::Json(state.service.list(query).await?))
}

#[utoipa::path(get, path = "/v1/cells/{id}", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    responses(
        (status = 200, body = CellView),
        (status = 404, description = "cell_not_found", body = ErrorBody),
    ))]
async fn get_cell(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<CellView>, ApiError> {
    Ok(axum::Json(state.service.get(&id).await?))
}

/// Delete a cell; frees its capacity.
#[utoipa::path(delete, path = "/v1/cells/{id}", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "cell_not_found", body = ErrorBody),
    ))]
async fn delete_cell(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace one node of a cell (a server to take out); the other nodes stay.
#[utoipa::path(post, path = "/v1/cells/{id}/replace", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    request_body = ReplaceRequest,
    responses(
        (status = 200, body = CellResponse),
        (status = 404, description = "cell_not_found", body = ErrorBody),
        (status = 409, description = "no_capacity", body = ErrorBody),
        (status = 422, description = "unknown_server, not_a_node, no_safe_placement", body = ErrorBody),
    ))]
async fn replace_node(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<ReplaceRequest>,
) -> Result<axum::Json<CellResponse>, ApiError> {
    Ok(axum::Json(state.service.replace(&id, req.server).await?))
}

/// Record the cell's moved clients and propose the next single-node move, if one helps.
/// Nothing about the nodes changes until the move is committed.
#[utoipa::path(put, path = "/v1/cells/{id}/clients", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    request_body = ClientsRequest,
    responses(
        (status = 200, body = ClientsResponse),
        (status = 404, description = "cell_not_found", body = ErrorBody),
        (status = 422, description = "invalid_field, unknown_server, duplicate_client", body = ErrorBody),
    ))]
async fn put_clients(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<ClientsRequest>,
) -> Result<axum::Json<ClientsResponse>, ApiError> {
    Ok(axum::Json(state.service.set_clients(&id, req).await?))
}

/// Apply a proposed move once the runtime has reconfigured the cell. Repeating a commit
/// returns the same cell.
#[utoipa::path(post, path = "/v1/cells/{id}/moves/{n}/commit", tag = "cells",
    params(("id" = String, Path, description = "Cell id"), ("n" = i64, Path, description = "Move number")),
    responses(
        (status = 200, body = CellResponse),
        (status = 404, description = "cell_not_found, move_not_found", body = ErrorBody),
        (status = 409, description = "move_stale, move_conflict", body = ErrorBody),
    ))]
async fn commit_move(
    State(state): State<AppState>,
    PathParams((id, n)): PathParams<(String, String)>,
) -> Result<axum::Json<CellResponse>, ApiError> {
    let n: i64 = n.parse().map_err(|_| Error::InvalidField {
        field: "n".into(),
        message: format!("'{n}' is not a move number"),
    })?;
    Ok(axum::Json(state.service.commit_move(&id, n).await?))
}

#[utoipa::path(get, path = "/v1/servers/{id}", tag = "fleet",
    params(("id" = String, Path, description = "Server id")),
    responses(
        (status = 200, body = ServerView),
        (status = 404, description = "server_not_found", body = ErrorBody),
    ))]
async fn get_server(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<ServerView>, ApiError> {
    Ok(axum::Json(state.service.server(&id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// Compute every cell's exact risk in outages per year (default true; false is much
    /// faster).
    risk: Option<bool>,
    /// How many elements and cells to list, at most 1000 (default 10).
    #[param(maximum = 1000)]
    top: Option<usize>,
}

/// The fleet report of `cellplacer evaluate` over the ledger.
#[utoipa::path(get, path = "/v1/report", tag = "fleet", params(ReportQuery),
    responses((status = 200, body = FleetReportView)))]
async fn report(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ReportQuery>,
) -> Result<axum::Json<FleetReportView>, ApiError> {
    let top = q.top.unwrap_or(10);
    if top > 1000 {
        return Err(Error::InvalidField {
            field: "top".into(),
            message: format!("top {top} is over 1000"),
        }
        .into());
    }
    Ok(axum::Json(
        state.service.report(q.risk.unwrap_or(true), top).await?,
    ))
}

#[utoipa::path(get, path = "/v1/inventory", tag = "inventory",
    responses((status = 200, body = InventoryView)))]
async fn get_inventory(State(state): State<AppState>) -> axum::Json<InventoryView> {
    axum::Json(state.service.inventory().await)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SwitchQuery {
    /// Reply after every cell is re-evaluated on the new inventory (default false: the
    /// re-evaluation runs in the background, its progress in `GET /v1/inventory`).
    wait: Option<bool>,
}

/// Switch to a new inventory (a directory path or uploaded CSV tables): validated first,
/// then switched atomically; every cell is re-evaluated on it in the background while
/// placements go on.
#[utoipa::path(post, path = "/v1/inventory", tag = "inventory", params(SwitchQuery),
    request_body = InventoryRequest,
    responses(
        (status = 200, body = SwitchResponse),
        (status = 409, description = "inventory_conflict: cells use servers it does not have", body = ErrorBody),
        (status = 422, description = "invalid_inventory (every problem in details), invalid_field", body = ErrorBody),
    ))]
async fn switch_inventory(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<SwitchQuery>,
    JsonBody(req): JsonBody<InventoryRequest>,
) -> Result<axum::Json<SwitchResponse>, ApiError> {
    let wait = q.wait.unwrap_or(false);
    Ok(axum::Json(state.service.switch_inventory(req, wait).await?))
}

/// Validate an inventory without switching to it.
#[utoipa::path(post, path = "/v1/inventory/validate", tag = "inventory",
    request_body = InventoryRequest,
    responses((status = 200, body = ValidationView)))]
async fn validate_inventory(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<InventoryRequest>,
) -> Result<axum::Json<ValidationView>, ApiError> {
    Ok(axum::Json(state.service.validate_inventory(req).await?))
}

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
        (status = 422, description = "invalid_field (no goal, a drain id the inventory lacks, bad settings)", body = ErrorBody),
        (status = 503, description = "store_unavailable, shutting_down", body = ErrorBody),
    ))]
async fn create_plan(
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
async fn list_plans(State(state): State<AppState>) -> axum::Json<PlanList> {
    axum::Json(state.service.plan_list())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StepsQuery {
    /// The first step to list, from 0 (default 0).
    #[param(value_type = Option<u64>)]
    offset: Option<String>,
    /// Steps per page, 0 to 10000 (default 100).
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
async fn get_plan(
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
async fn execute_plan(
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
async fn pause_plan(
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
async fn resume_plan(
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
async fn cancel_plan(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<PlanView>, ApiError> {
    Ok(axum::Json(state.service.cancel_plan(&id).await?))
}

/// What a change of the active inventory (remove, refeed, server, rates, add) and/or a
/// failure scenario (`fail`, any set of elements) does to the ledger's cells: before and
/// after side by side (scenario standing, unsafe and newly unsafe cells, risk
/// distribution, nodes that must move and the repair plan, element pairs). Commits
/// nothing.
#[utoipa::path(post, path = "/v1/whatif", tag = "inventory",
    request_body = WhatIfRequest,
    responses(
        (status = 200, description = "before and after", content_type = "application/json"),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_inventory: the change's problems (table change, row = the edit) or the edited tables', in details; invalid_field", body = ErrorBody),
    ))]
async fn whatif(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<WhatIfRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(state.service.whatif(req).await?))
}

/// Load cells in bulk from a placement export on the service's host: every cell checked as
/// a placement would be; all or nothing unless `skip_invalid`.
#[utoipa::path(post, path = "/v1/ledger/import", tag = "cells",
    request_body = ImportRequest,
    responses(
        (status = 200, body = ImportResponse),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 409, description = "inventory_conflict: the inventory switched meanwhile", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_import (each refused cell with why in details), invalid_inventory (the file cannot be read)", body = ErrorBody),
    ))]
async fn import_cells(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ImportRequest>,
) -> Result<axum::Json<ImportResponse>, ApiError> {
    Ok(axum::Json(state.service.import_cells(req).await?))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the ledger is consistent and the store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(()), responses(
    (status = 200, body = Health),
    (status = 503, description = "store_unavailable", body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state.service.ready().await?;
    Ok(axum::Json(Health {
        status: "ok".into(),
    }))
}

/// Prometheus text: requests and latency by route and status, solve time, commits, cells
/// (unsafe, by risk), utilisation, balance, build and process metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "OpenMetrics text format 1.0.0", content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> Response {
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

/// The bearer scheme, and the 401 and 403 every route that needs a token can answer.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                // `security(())`: open to all (the probes).
                let open = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
                if open {
                    continue;
                }
                op.responses.responses.insert(
                    "401".into(),
                    error("unauthorized: no bearer token, or not one of this service's (with --tokens)").into(),
                );
                op.responses.responses.insert(
                    "403".into(),
                    error("forbidden: the token's role is below the route's").into(),
                );
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cellplacer",
        description = "Topology-aware placement of consensus cells"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        place_cell,
        list_cells,
        get_cell,
        delete_cell,
        replace_node,
        put_clients,
        commit_move,
        get_server,
        report,
        get_inventory,
        switch_inventory,
        validate_inventory,
        create_plan,
        list_plans,
        get_plan,
        execute_plan,
        pause_plan,
        resume_plan,
        cancel_plan,
        whatif,
        import_cells,
        healthz,
        readyz,
        metrics
    )
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of this API, as served: what the derive gives, completed with
/// what it cannot say (see [`complete`]).
pub fn openapi() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    complete(&mut doc);
    doc
}

/// Completes the derived document so that it says exactly what the service takes and
/// answers: the errors every route with a body or parameters can give, the constraints
/// the request types check by hand, and unsigned integers as such.
fn complete(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                let open = op["security"].as_array().is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                });
                let has_body = op.get("requestBody").is_some();
                let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
                let Some(responses) = op["responses"].as_object_mut() else {
                    continue;
                };
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status)
                        .or_insert_with(|| error(description));
                };
                if has_body {
                    add("400", "malformed_json: the body is not JSON");
                    add("413", "body_too_large");
                    add(
                        "415",
                        "unsupported_media_type: the body is not application/json",
                    );
                }
                if has_body || has_params {
                    add(
                        "422",
                        "invalid_field: a field or parameter is not as declared",
                    );
                }
                if !open {
                    add("503", "overloaded, contended, timeout, store_unavailable or shutting_down (transient: retry)");
                }
            }
        }
    }
    // Unsigned integers: `int64` would bound them to the signed range the service exceeds.
    fn unsigned(v: &mut Value) {
        match v {
            Value::Object(o) => {
                let is_unsigned = o.get("format").and_then(Value::as_str) == Some("int64")
                    && o.get("minimum").and_then(Value::as_i64) == Some(0);
                if is_unsigned {
                    o.insert("format".into(), json!("uint64"));
                }
                o.values_mut().for_each(unsigned);
            }
            Value::Array(a) => a.iter_mut().for_each(unsigned),
            _ => {}
        }
    }
    unsigned(doc);
    let schemas = &mut doc["components"]["schemas"];
    // Exactly one of a server-side path and uploaded tables (the only two properties).
    schemas["InventoryRequest"]["minProperties"] = json!(1);
    schemas["InventoryRequest"]["maxProperties"] = json!(1);
    schemas["InventoryRequest"]["properties"]["path"]["minLength"] = json!(1);
    schemas["ImportRequest"]["properties"]["path"]["minLength"] = json!(1);
    // At least one goal.
    schemas["PlanRequest"]["anyOf"] = json!([
        {"required": ["drain"], "properties": {"drain": {"type": "array"}}},
        {"required": ["repair"], "properties": {"repair": {"const": true}}},
        {"required": ["balance"], "properties": {"balance": {"type": "number"}}},
        {"required": ["improve"], "properties": {"improve": {"const": true}}}
    ]);
    schemas["PlaceRequest"]["properties"]["size"]["minimum"] = json!(1);
    schemas["PlaceRequest"]["properties"]["size"]["maximum"] =
        json!(topology::workload::MAX_CELL_SIZE);
}

async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi().to_string(),
    )
        .into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError(Error::RouteNotFound {
        path: req.uri().path().to_owned(),
    })
}

async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed)
}

/// Fails a request that takes longer than the limit, with a JSON 503. The work itself is
/// not undone: a placement that was already queued to the ledger still commits, and
/// repeating the request returns it.
async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError(Error::Timeout {
            ms: limit.as_millis() as u64,
        })
        .into_response(),
    }
}

async fn body_limit(State(limit): State<usize>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(BodyLimit(limit));
    next.run(req).await
}

/// Longest request URI (path and query) a route takes; hyper itself stops at 64 KiB.
pub const MAX_URI_BYTES: usize = 8 * 1024;

async fn uri_limit(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError(Error::UriTooLong {
            len,
            max: MAX_URI_BYTES,
        })
        .into_response();
    }
    next.run(req).await
}

/// Refuses a request without a token of the route's role (401 without a known token, 403
/// with one of a lesser role), when the service has tokens.
async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(tokens) = &state.tokens else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let Some(need) = crate::auth::required(req.method(), route) else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented.map(|t| tokens.check(t)) {
        None => ApiError(Error::Unauthorized {
            message: format!("this route needs a bearer token of role {need} or above"),
        })
        .into_response(),
        Some(None) => ApiError(Error::Unauthorized {
            message: "the bearer token is not one of this service's".into(),
        })
        .into_response(),
        Some(Some((name, role))) if role < need => ApiError(Error::Forbidden {
            message: format!("the token '{name}' has role {role}; this route needs {need}"),
        })
        .into_response(),
        Some(Some(_)) => next.run(req).await,
    }
}

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    state.service.metrics().observe_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The whole HTTP API on a service.
pub fn app(state: AppState) -> Router {
    let limits = state.limits;
    let cells = Router::new()
        .route("/v1/cells", get(list_cells).post(place_cell))
        .route("/v1/cells/{id}", get(get_cell).delete(delete_cell))
        .route("/v1/cells/{id}/replace", post(replace_node))
        .route("/v1/cells/{id}/clients", put(put_clients))
        .route("/v1/cells/{id}/moves/{n}/commit", post(commit_move))
        .route("/v1/servers/{id}", get(get_server))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .layer(middleware::from_fn_with_state(limits.body, body_limit))
        .layer(DefaultBodyLimit::max(limits.body))
        .layer(middleware::from_fn_with_state(limits.timeout, time_limit));
    let admin = Router::new()
        .route("/v1/report", get(report))
        .route("/v1/inventory", get(get_inventory).post(switch_inventory))
        .route("/v1/inventory/validate", post(validate_inventory))
        .route("/v1/whatif", post(whatif))
        .route("/v1/ledger/import", post(import_cells))
        .route("/v1/plans", get(list_plans).post(create_plan))
        .route("/v1/plans/{id}", get(get_plan))
        .route("/v1/plans/{id}/execute", post(execute_plan))
        .route("/v1/plans/{id}/pause", post(pause_plan))
        .route("/v1/plans/{id}/resume", post(resume_plan))
        .route("/v1/plans/{id}/cancel", post(cancel_plan))
        .layer(middleware::from_fn_with_state(limits.upload, body_limit))
        .layer(DefaultBodyLimit::max(limits.upload))
        .layer(middleware::from_fn_with_state(
            limits.admin_timeout,
            time_limit,
        ));
    cells
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn(uri_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}
