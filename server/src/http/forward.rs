//! Writes sent on to the writer: on a ledger shared by replicas, a replica that does not
//! hold the writer lease forwards each write it is asked for (after its own checks of the
//! URI and the token) to the replica that does, and answers with that replica's answer,
//! so that every write goes through one group-committing journal. A write the writer
//! cannot be reached for is served here: the database still arbitrates every commit.

use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use runtime::Error;

use super::extract::BodyLimit;
use super::state::AppState;
use crate::error::ApiError;

/// Marks a forwarded request: the writer serves it itself, never forwards it again.
const FORWARDED: HeaderName = HeaderName::from_static("x-cellplacer-forwarded");

/// The headers a forwarded request and its answer keep.
const KEPT: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
];

fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new())
    })
}

/// Sends a write on to the writer lease's holder when another replica holds it.
pub(super) async fn to_writer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let writer = state.service.writer_elsewhere();
    let Some(writer) = writer.filter(|_| !read && !req.headers().contains_key(&FORWARDED)) else {
        return next.run(req).await;
    };
    let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        // Over the limit, or cut off: as the route itself would answer.
        Err(e) => {
            return match super::body::timeout_of(&e) {
                Some(timeout) => ApiError(timeout).into_response(),
                None => ApiError(Error::BodyTooLarge { limit }).into_response(),
            }
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{writer}{path}"))
        .header(&FORWARDED, HeaderValue::from_static("1"));
    for name in &KEPT {
        if let Some(v) = parts.headers.get(name) {
            out = out.header(name, v);
        }
    }
    let Ok(out) = out.body(Full::new(bytes.clone())) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let metrics = state.service.metrics();
    match client().request(out).await {
        Ok(answer) => {
            let (head, body) = answer.into_parts();
            match body.collect().await {
                Ok(collected) => {
                    metrics.forwarded("forwarded");
                    let mut response = Response::new(Body::from(collected.to_bytes()));
                    *response.status_mut() = head.status;
                    for name in &KEPT[1..] {
                        if let Some(v) = head.headers.get(name) {
                            response.headers_mut().insert(name, v.clone());
                        }
                    }
                    response
                }
                Err(e) => lost(parts, bytes, next, &e.to_string(), metrics).await,
            }
        }
        // Never reached the writer (it died, the lease is moving): served here.
        Err(e) if e.is_connect() => {
            metrics.forwarded("unreachable");
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => lost(parts, bytes, next, &e.to_string(), metrics).await,
    }
}

/// A write sent to the writer whose answer never came back (the writer died meanwhile):
/// it may have been committed. A placement is served here, as a repeated placement is
/// answered (the same cell, once the state here has it: the database refuses a second
/// one); any other write is answered 503, for the client to look and retry.
async fn lost(
    parts: axum::http::request::Parts,
    bytes: Bytes,
    next: Next,
    why: &str,
    metrics: &runtime::metrics::Metrics,
) -> Response {
    if parts.method == Method::POST && parts.uri.path() == "/v1/cells" {
        metrics.forwarded("unreachable");
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    ApiError(Error::StoreUnavailable {
        message: format!("the writer's answer was lost ({why}): look, then retry"),
    })
    .into_response()
}
