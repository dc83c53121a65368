//! The health routes: element states reported (one, or many at once), the overlay they
//! form, and the autopilot that acts on them.

use axum::extract::State;
use runtime::dto::{
    AutopilotUpdate, AutopilotView, ElementList, ElementStateItem, ElementStateRequest,
    ElementStatesRequest, ElementStatesResponse,
};
use runtime::Error;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{JsonBody, PathParams, QueryParams};
use super::state::AppState;
use crate::error::{ApiError, ErrorBody};

/// Report an element's state now: a server, rack, network device, link, risk group or
/// power device id, or a row, room or datacenter label. Durable before the reply, as an
/// overlay on the active inventory (the export stays the source of structure); every cell
/// is judged again on the zone it leaves, and the cells whose risk, safety or down state
/// changed are recorded before the reply. The autopilot acts on it.
#[utoipa::path(put, path = "/v1/elements/{id}/state", tag = "health",
    params(("id" = String, Path, description = "Element id, or row, room, datacenter label")),
    request_body = ElementStateRequest,
    responses(
        (status = 200, body = ElementStatesResponse),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 404, description = "unknown_element: an id the inventory lacks (`id`, `states[i].element`)", body = ErrorBody),
        (status = 409, description = "contended: the zone changed meanwhile, report again; invalid_state: a state the element cannot take (draining is for servers)", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_field: a reason too long", body = ErrorBody),
        (status = 503, description = "contended (another replica committed first: retry), store_unavailable, shutting_down", body = ErrorBody),
    ))]
pub(super) async fn put_state(
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(req): JsonBody<ElementStateRequest>,
) -> Result<axum::Json<ElementStatesResponse>, ApiError> {
    let item = ElementStateItem {
        element: id,
        state: req.state,
        reason: req.reason,
    };
    let out = state.service.report_states(vec![item]).await;
    // The one element is the path's, not `states[0]`.
    let own = |field: String| {
        field.strip_prefix("states[0].").map_or(field.clone(), |f| {
            if f == "element" {
                "id".into()
            } else {
                f.into()
            }
        })
    };
    let out = out.map_err(|e| match e {
        Error::InvalidField { field, message } => Error::InvalidField {
            field: own(field),
            message,
        },
        Error::UnknownElement { field, message } => Error::UnknownElement {
            field: own(field),
            message,
        },
        Error::InvalidState { field, message } => Error::InvalidState {
            field: own(field),
            message,
        },
        e => e,
    })?;
    Ok(axum::Json(out))
}

/// Report many states at once, all or nothing (an element at most once); see
/// `PUT /v1/elements/{id}/state`.
#[utoipa::path(post, path = "/v1/elements/states", tag = "health",
    request_body = ElementStatesRequest,
    responses(
        (status = 200, body = ElementStatesResponse),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 404, description = "unknown_element: an id the inventory lacks (`id`, `states[i].element`)", body = ErrorBody),
        (status = 409, description = "contended: the zone changed meanwhile, report again; invalid_state: a state the element cannot take (draining is for servers)", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_field, naming `states[i].element` (given twice) or `.reason`", body = ErrorBody),
        (status = 503, description = "contended (another replica committed first: retry), store_unavailable, shutting_down", body = ErrorBody),
    ))]
pub(super) async fn post_states(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ElementStatesRequest>,
) -> Result<axum::Json<ElementStatesResponse>, ApiError> {
    Ok(axum::Json(state.service.report_states(req.states).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ElementsQuery {
    /// Only the elements in this state (`failed`, `draining` or `active`).
    #[param(value_type = Option<String>)]
    state: Option<String>,
}

/// The overlay: every element whose reported state differs from the export's, with since
/// when and why.
#[utoipa::path(get, path = "/v1/elements", tag = "health",
    params(ElementsQuery),
    responses(
        (status = 200, body = ElementList),
        (status = 422, description = "invalid_field: an unknown state", body = ErrorBody),
    ))]
pub(super) async fn list_elements(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ElementsQuery>,
) -> Result<axum::Json<ElementList>, ApiError> {
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            store::ElementState::parse(s).ok_or_else(|| Error::InvalidField {
                field: "state".into(),
                message: format!("'{s}': failed, draining or active"),
            })?,
        ),
    };
    Ok(axum::Json(state.service.elements(wanted).await))
}

/// The autopilot: its settings, whether this replica's acts, the work waiting by reason,
/// the moves in flight and made by reason, the latest moves with the event behind each,
/// and the cells it cannot fix with why.
#[utoipa::path(get, path = "/v1/autopilot", tag = "health",
    responses((status = 200, body = AutopilotView)))]
pub(super) async fn get_autopilot(State(state): State<AppState>) -> axum::Json<AutopilotView> {
    axum::Json(state.service.autopilot())
}

/// Change the autopilot's settings (absent ones stay); durable before the reply, and
/// taken by every replica.
#[utoipa::path(put, path = "/v1/autopilot", tag = "health",
    request_body = AutopilotUpdate,
    responses(
        (status = 200, body = AutopilotView),
        (status = 400, description = "malformed_json", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "invalid_field", body = ErrorBody),
        (status = 503, description = "contended (another replica committed first: retry), store_unavailable, shutting_down", body = ErrorBody),
    ))]
pub(super) async fn put_autopilot(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<AutopilotUpdate>,
) -> Result<axum::Json<AutopilotView>, ApiError> {
    Ok(axum::Json(state.service.set_autopilot(req).await?))
}
