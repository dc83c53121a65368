//! The fleet and its inventory: a server, the racks of the map, the fleet report, the
//! active inventory (read, switch, validate) and what-if.

use axum::extract::State;
use runtime::dto::{
    BlastView, ElementDetail, InventoryRequest, InventoryView, RackMapView, RackView, ServerView,
    SwitchResponse, ValidationView, WhatIfRequest,
};
use runtime::limits::LIST_LIMIT;
use runtime::view::FleetReportView;
use runtime::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{parse_param, JsonBody, PathParams, QueryParams};
use super::state::AppState;
use crate::error::{ApiError, ErrorBody};

#[utoipa::path(get, path = "/v1/servers/{id}", tag = "fleet",
    params(("id" = String, Path, description = "Server id")),
    responses(
        (status = 200, body = ServerView),
        (status = 404, description = "server_not_found", body = ErrorBody),
    ))]
pub(super) async fn get_server(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<ServerView>, ApiError> {
    Ok(axum::Json(state.service.server(&id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
    /// Compute every cell's exact risk in outages per year (default true; false is much
    /// faster).
    risk: Option<bool>,
    /// How many elements and cells to list, at most 1000 (default 10).
    // The literal 1000 is `LIST_LIMIT` (utoipa takes literals only); a test checks them.
    #[param(maximum = 1000)]
    top: Option<usize>,
}

/// The fleet report of `cellplacer evaluate` over the ledger.
#[utoipa::path(get, path = "/v1/report", tag = "fleet", params(ReportQuery),
    responses((status = 200, body = FleetReportView)))]
pub(super) async fn report(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ReportQuery>,
) -> Result<axum::Json<FleetReportView>, ApiError> {
    let top = q.top.unwrap_or(10);
    if top > LIST_LIMIT {
        return Err(Error::InvalidField {
            field: "top".into(),
            message: format!("top {top} is over {LIST_LIMIT}"),
        }
        .into());
    }
    Ok(axum::Json(
        state.service.report(q.risk.unwrap_or(true), top).await?,
    ))
}

#[utoipa::path(get, path = "/v1/inventory", tag = "inventory",
    responses((status = 200, body = InventoryView)))]
pub(super) async fn get_inventory(State(state): State<AppState>) -> axum::Json<InventoryView> {
    axum::Json(state.service.inventory().await)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SwitchQuery {
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
        (status = 404, description = "path_not_found: no such directory under the inventory root", body = ErrorBody),
        (status = 422, description = "invalid_inventory (every problem in details), invalid_field", body = ErrorBody),
    ))]
pub(super) async fn switch_inventory(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<SwitchQuery>,
    JsonBody(req): JsonBody<InventoryRequest>,
) -> Result<axum::Json<SwitchResponse>, ApiError> {
    let wait = q.wait.unwrap_or(false);
    Ok(axum::Json(state.service.switch_inventory(req, wait).await?))
}

/// Every rack with what a map colours it by: its servers' states and load, and the
/// unsafe and out cells with a node in it.
#[utoipa::path(get, path = "/v1/racks", tag = "inventory",
    responses((status = 200, body = RackMapView)))]
pub(super) async fn list_racks(
    State(state): State<AppState>,
) -> Result<axum::Json<RackMapView>, ApiError> {
    Ok(axum::Json(state.service.racks().await?))
}

/// One rack: each of its servers with its load and cells.
#[utoipa::path(get, path = "/v1/racks/{id}", tag = "inventory",
    params(("id" = String, Path, description = "Rack id")),
    responses(
        (status = 200, body = RackView),
        (status = 404, description = "unknown_element: not a rack of the inventory", body = ErrorBody),
    ))]
pub(super) async fn get_rack(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<RackView>, ApiError> {
    Ok(axum::Json(state.service.rack(&id).await?))
}

/// Which page of an element's out cells.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ElementQuery {
    /// Out cells per page, 1 to 1000 (default 100).
    // The literal 1000 is `LIST_LIMIT` (utoipa takes literals only); a test checks them.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page (opaque).
    #[param(value_type = Option<String>, pattern = "^([0-9a-fA-F]{2}){1,256}$")]
    cursor: Option<String>,
}

/// One element (a server, rack, network device, link, risk group or power device) and
/// what its failure would do on the zone as it is now: its blast radius, the cells it
/// would put out (a page, by id), the cells it would degrade, the servers it would take
/// down and the racks holding the nodes of the cells it would put out. Every cell is
/// judged; commits nothing.
#[utoipa::path(get, path = "/v1/elements/{id}", tag = "health",
    params(("id" = String, Path, description = "Element id"), ElementQuery),
    responses(
        (status = 200, body = ElementDetail),
        (status = 404, description = "unknown_element: not an element of the inventory", body = ErrorBody),
        (status = 422, description = "invalid_field: limit, cursor or an unknown parameter", body = ErrorBody),
        (status = 503, description = "timeout", body = ErrorBody),
    ))]
pub(super) async fn get_element(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<ElementQuery>,
) -> Result<axum::Json<ElementDetail>, ApiError> {
    let limit = parse_param(
        q.limit,
        "limit",
        &format!("a number of cells from 1 to {LIST_LIMIT}"),
    )?;
    Ok(axum::Json(
        state.service.element(&id, limit, q.cursor).await?,
    ))
}

/// Every element's blast radius on the zone as it is now (the cells its failure alone
/// puts out), largest first, and per rack the largest of its own, its network's and its
/// power's: what a map colours racks by.
#[utoipa::path(get, path = "/v1/blast", tag = "health",
    responses(
        (status = 200, body = BlastView),
        (status = 503, description = "timeout", body = ErrorBody),
    ))]
pub(super) async fn get_blast(
    State(state): State<AppState>,
) -> Result<axum::Json<BlastView>, ApiError> {
    Ok(axum::Json(state.service.blast().await?))
}

/// Validate an inventory without switching to it.
#[utoipa::path(post, path = "/v1/inventory/validate", tag = "inventory",
    request_body = InventoryRequest,
    responses(
        (status = 200, body = ValidationView),
        (status = 404, description = "path_not_found: no such directory under the inventory root", body = ErrorBody),
    ))]
pub(super) async fn validate_inventory(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<InventoryRequest>,
) -> Result<axum::Json<ValidationView>, ApiError> {
    Ok(axum::Json(state.service.validate_inventory(req).await?))
}

/// What a change of the active inventory (remove, refeed, server, rates, add) and/or a
/// failure scenario (`fail`, any set of elements) does to the ledger's cells: before and
/// after side by side (scenario standing, unsafe and newly unsafe cells, risk
/// distribution, nodes that must move and the repair plan, element pairs). Commits
/// nothing.
#[utoipa::path(post, path = "/v1/whatif", tag = "inventory",
    request_body = WhatIfRequest,
    responses(
        (status = 200, description = "`valid: true` and before and after; or `valid: false` with `errors` and `warnings`: the change's problems (table change, row = the edit) or the edited tables'", content_type = "application/json"),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_field", body = ErrorBody),
    ))]
pub(super) async fn whatif(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<WhatIfRequest>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    Ok(axum::Json(state.service.whatif(req).await?))
}
