//! What runs around the routes: the answer to a timed-out request, the URI limit, bearer
//! authorization, request metrics, and the JSON answers for no route and no method.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runtime::Error;
use tower::timeout::error::Elapsed;
use tower::BoxError;

use super::state::AppState;
use crate::error::ApiError;

/// The answer when tower's time limit runs out: the JSON 503 `timeout` (with
/// `Retry-After`). The work itself is not undone: a placement that was already queued to
/// the ledger still commits, and repeating the request returns it.
pub(super) async fn timed_out(error: BoxError, limit: Duration) -> ApiError {
    if error.is::<Elapsed>() {
        ApiError(Error::Timeout {
            ms: limit.as_millis() as u64,
        })
    } else {
        // The routes themselves never fail (their error is `Infallible`).
        ApiError(Error::Internal(format!("request failed: {error}")))
    }
}

/// Longest request URI (path and query) a route takes; hyper itself stops at 64 KiB.
const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses a URI over [`MAX_URI_BYTES`] with the JSON 414 `uri_too_long`.
// Hand-written: neither tower nor tower-http has a URI length limit.
pub(super) async fn uri_limit(req: Request, next: Next) -> Response {
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
// Hand-written: the role depends on the matched route; tower-http's auth layers check one fixed token.
pub(super) async fn authorize(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
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
    // Each refusal is logged with who asked (a token's name, never the token) and for what.
    let method = req.method().as_str();
    match presented.map(|t| tokens.check(t)) {
        None => {
            tracing::warn!(method, route, who = "no token", %need, "refused: 401");
            ApiError(Error::Unauthorized {
                message: format!("this route needs a bearer token of role {need} or above"),
            })
            .into_response()
        }
        Some(None) => {
            tracing::warn!(method, route, who = "an unknown token", %need, "refused: 401");
            ApiError(Error::Unauthorized {
                message: "the bearer token is not one of this service's".into(),
            })
            .into_response()
        }
        Some(Some((name, role))) if role < need => {
            tracing::warn!(method, route, who = name, %role, %need, "refused: 403");
            ApiError(Error::Forbidden {
                message: format!("the token '{name}' has role {role}; this route needs {need}"),
            })
            .into_response()
        }
        Some(Some((name, role))) => {
            let who = Identity {
                name: name.to_owned(),
                role,
            };
            req.extensions_mut().insert(who);
            next.run(req).await
        }
    }
}

/// Whose token a request carried (set once it is checked; absent without tokens).
#[derive(Debug, Clone)]
pub(super) struct Identity {
    /// The token's name.
    pub(super) name: String,
    /// Its role.
    pub(super) role: crate::auth::Role,
}

/// Counts every request and its latency by matched route, method and status.
// Hand-written: the metrics are the runtime's prometheus-client registry, keyed by matched route.
pub(super) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
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

/// No route has the path: the JSON 404 `route_not_found` (axum's own is empty).
pub(super) async fn not_found(req: Request) -> ApiError {
    ApiError(Error::RouteNotFound {
        path: req.uri().path().to_owned(),
    })
}

/// The route has no such method: the JSON 405 `method_not_allowed` (axum's own is empty).
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError(Error::MethodNotAllowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::error_handling::HandleErrorLayer;
    use axum::routing::get;
    use axum::Router;
    use tower::timeout::TimeoutLayer;
    use tower::ServiceExt;

    /// tower's time limit, answered by [`timed_out`] as `app` layers it, gives the JSON 503
    /// the hand-written one gave: code, message and `Retry-After`.
    #[tokio::test]
    async fn a_timed_out_request_is_the_json_503_timeout() {
        let limit = Duration::from_millis(20);
        let app: Router = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(5))))
            .route("/fast", get(|| async {}))
            .layer((
                HandleErrorLayer::new(move |e: BoxError| timed_out(e, limit)),
                TimeoutLayer::new(limit),
            ));
        let call = |path: &'static str| {
            app.clone()
                .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
        };
        assert_eq!(call("/fast").await.unwrap().status(), 200);
        let r = call("/slow").await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "timeout", "message": "request timed out after 20 ms"}})
        );
    }
}
