//! The HTTP surface: routes under `/v1`, JSON in and out, limits, timeouts and metrics.
//! Handlers only translate between HTTP and [`runtime::service::Service`]; every failure
//! is a [`runtime::Error`] with a stable code. This module holds the routing table.

mod body;
mod cells;
mod extract;
mod forward;
mod health;
mod inventory;
mod middleware;
mod openapi;
mod ops;
mod plans;
mod state;
mod ui;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use tower::timeout::TimeoutLayer;
use tower::BoxError;

pub use body::BodyTimeouts;
pub use state::{AppState, Limits, DEFAULT_UPLOAD_MIB};

use extract::BodyLimit;

/// The whole HTTP API on a service.
pub fn app(state: AppState) -> Router {
    let limits = state.limits;
    let cells = Router::new()
        .route("/v1/cells", get(cells::list_cells).post(cells::place_cell))
        .route(
            "/v1/cells/{id}",
            get(cells::get_cell).delete(cells::delete_cell),
        )
        .route("/v1/cells/{id}/explanation", get(cells::explain_cell))
        .route("/v1/cells/{id}/moves", get(cells::cell_moves))
        .route("/v1/cells/{id}/replace", post(cells::replace_node))
        .route("/v1/cells/{id}/clients", put(cells::put_clients))
        .route("/v1/cells/{id}/moves/{n}/commit", post(cells::commit_move))
        .route("/v1/servers/{id}", get(inventory::get_server))
        .route("/v1/racks", get(inventory::list_racks))
        .route("/v1/racks/{id}", get(inventory::get_rack))
        .route("/v1/elements", get(health::list_elements))
        .route("/v1/elements/{id}", get(inventory::get_element))
        .route("/v1/blast", get(inventory::get_blast))
        .route("/v1/elements/{id}/state", put(health::put_state))
        .route("/v1/autopilot", get(health::get_autopilot))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/whoami", get(ops::whoami))
        .route("/v1/fleet", get(ops::fleet))
        .route("/ui", get(ui::to_index))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/style.css", get(ui::style_css))
        // On a shared ledger, writes go to the writer lease's holder.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::to_writer,
        ))
        // axum enforces the body limit; the extension tells `JsonBody` its value for the 413.
        .layer(Extension(BodyLimit(limits.body)))
        .layer(DefaultBodyLimit::max(limits.body))
        // tower's time limit; its `Elapsed` is answered as the JSON 503 `timeout`.
        .layer((
            HandleErrorLayer::new(move |e: BoxError| middleware::timed_out(e, limits.timeout)),
            TimeoutLayer::new(limits.timeout),
        ));
    let admin = Router::new()
        .route("/v1/report", get(inventory::report))
        .route(
            "/v1/inventory",
            get(inventory::get_inventory).post(inventory::switch_inventory),
        )
        .route(
            "/v1/inventory/validate",
            post(inventory::validate_inventory),
        )
        .route("/v1/whatif", post(inventory::whatif))
        .route("/v1/ledger/import", post(cells::import_cells))
        .route("/v1/elements/states", post(health::post_states))
        .route("/v1/autopilot", axum::routing::put(health::put_autopilot))
        .route("/v1/plans", get(plans::list_plans).post(plans::create_plan))
        .route("/v1/plans/{id}", get(plans::get_plan))
        .route("/v1/plans/{id}/execute", post(plans::execute_plan))
        .route("/v1/plans/{id}/pause", post(plans::pause_plan))
        .route("/v1/plans/{id}/resume", post(plans::resume_plan))
        .route("/v1/plans/{id}/cancel", post(plans::cancel_plan))
        .layer(Extension(BodyLimit(limits.upload)))
        .layer(DefaultBodyLimit::max(limits.upload))
        .layer((
            HandleErrorLayer::new(move |e: BoxError| {
                middleware::timed_out(e, limits.admin_timeout)
            }),
            TimeoutLayer::new(limits.admin_timeout),
        ));
    let body_timeouts = limits.body_timeouts;
    // Outermost last: every request is counted, then its URI checked, then its token, and
    // its body is put on the clock.
    cells
        .merge(admin)
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn(move |req, next| {
            body::timed(body_timeouts, req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authorize,
        ))
        .layer(axum::middleware::from_fn(middleware::uri_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::track,
        ))
        .with_state(state)
}
