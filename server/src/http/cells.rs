//! The cell routes: place, list, read, delete, replace a node, record clients, commit a
//! move, and the bulk import into the ledger.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::dto::{
    CellExplanation, CellMoves, CellPage, CellResponse, CellView, ClientsRequest, ClientsResponse,
    ImportRequest, ImportResponse, PlaceRequest, ReplaceRequest,
};
use runtime::limits::LIST_LIMIT;
use runtime::service::CellQuery;
use runtime::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{parse_param, parse_param_where, JsonBody, PathParams, QueryParams};
use super::state::AppState;
use crate::error::{ApiError, ErrorBody};

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
        (status = 404, description = "unknown_server: a client the inventory lacks", body = ErrorBody),
        (status = 422, description = "invalid_field, duplicate_client, invalid_size, no_safe_placement", body = ErrorBody),
        (status = 503, description = "overloaded, contended, timeout, store_unavailable", body = ErrorBody),
    ))]
pub(super) async fn place_cell(
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
pub(super) struct ListQuery {
    /// Only cells with a node on this server id (404 `server_not_found` if the inventory
    /// has no such server).
    #[param(value_type = Option<String>, min_length = 1)]
    server: Option<String>,
    /// true: only cells that are not single-failure safe; false: only safe ones.
    #[serde(rename = "unsafe")]
    #[param(value_type = Option<bool>)]
    unsafe_only: Option<String>,
    /// Only cells whose risk was computed on this inventory version (versions count from 1).
    #[param(value_type = Option<i64>, minimum = 1)]
    inventory_version: Option<String>,
    /// Cells per page, 1 to 1000 (default 100).
    // The literal 1000 is `LIST_LIMIT` (utoipa takes literals only); a test checks them.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page (opaque).
    #[param(value_type = Option<String>, pattern = "^([0-9a-fA-F]{2}){1,256}$")]
    cursor: Option<String>,
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
pub(super) async fn list_cells(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<CellPage>, ApiError> {
    let query = CellQuery {
        server: q.server,
        unsafe_only: parse_param(q.unsafe_only, "unsafe", "true or false")?,
        // Versions count from 1: a lower one can only be a mistake, never an empty page.
        inventory_version: parse_param_where(
            q.inventory_version,
            "inventory_version",
            "a version (1 or more)",
            |v: &i64| *v >= 1,
        )?,
        limit: parse_param(
            q.limit,
            "limit",
            &format!("a number of cells from 1 to {LIST_LIMIT}"),
        )?,
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
pub(super) async fn get_cell(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<CellView>, ApiError> {
    Ok(axum::Json(state.service.get(&id).await?))
}

/// A cell as it stands and why: its exact risk on the zone as it is now, the elements
/// whose failure alone puts it out, its heaviest outage scenarios and how its nodes
/// spread over the failure domains. Changes nothing.
#[utoipa::path(get, path = "/v1/cells/{id}/explanation", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    responses(
        (status = 200, body = CellExplanation),
        (status = 404, description = "cell_not_found", body = ErrorBody),
        (status = 503, description = "overloaded, timeout", body = ErrorBody),
    ))]
pub(super) async fn explain_cell(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<axum::Json<CellExplanation>, ApiError> {
    Ok(axum::Json(state.service.explain(&id).await?))
}

/// How many of a cell's moves.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct MovesQuery {
    /// Moves, 1 to 1000 (default 20).
    // The literal 1000 is `LIST_LIMIT` (utoipa takes literals only); a test checks them.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A cell's latest moves (proposed, committed or superseded), newest first.
#[utoipa::path(get, path = "/v1/cells/{id}/moves", tag = "cells",
    params(("id" = String, Path, description = "Cell id"), MovesQuery),
    responses(
        (status = 200, body = CellMoves),
        (status = 404, description = "cell_not_found", body = ErrorBody),
        (status = 422, description = "invalid_field: limit or an unknown parameter", body = ErrorBody),
        (status = 503, description = "timeout, store_unavailable", body = ErrorBody),
    ))]
pub(super) async fn cell_moves(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<MovesQuery>,
) -> Result<axum::Json<CellMoves>, ApiError> {
    let limit = parse_param(
        q.limit,
        "limit",
        &format!("a number of moves from 1 to {LIST_LIMIT}"),
    )?;
    Ok(axum::Json(state.service.moves(&id, limit).await?))
}

/// Delete a cell; frees its capacity.
#[utoipa::path(delete, path = "/v1/cells/{id}", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "cell_not_found", body = ErrorBody),
    ))]
pub(super) async fn delete_cell(
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
        (status = 404, description = "cell_not_found, unknown_server", body = ErrorBody),
        (status = 409, description = "no_capacity, not_a_node: the server holds no node of the cell", body = ErrorBody),
        (status = 422, description = "no_safe_placement", body = ErrorBody),
    ))]
pub(super) async fn replace_node(
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
        (status = 404, description = "cell_not_found, unknown_server", body = ErrorBody),
        (status = 422, description = "invalid_field, duplicate_client", body = ErrorBody),
    ))]
pub(super) async fn put_clients(
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
pub(super) async fn commit_move(
    State(state): State<AppState>,
    PathParams((id, n)): PathParams<(String, String)>,
) -> Result<axum::Json<CellResponse>, ApiError> {
    let n: i64 = n.parse().map_err(|_| Error::InvalidField {
        field: "n".into(),
        message: format!("'{n}' is not a move number"),
    })?;
    Ok(axum::Json(state.service.commit_move(&id, n).await?))
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
        (status = 404, description = "path_not_found: no such file under the inventory root", body = ErrorBody),
        (status = 422, description = "invalid_import (each refused cell with why in details), invalid_inventory (the file cannot be read)", body = ErrorBody),
    ))]
pub(super) async fn import_cells(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ImportRequest>,
) -> Result<axum::Json<ImportResponse>, ApiError> {
    Ok(axum::Json(state.service.import_cells(req).await?))
}
