//! The operator's console: a page, its script and its style, embedded in the binary and
//! served at `/ui/` to anyone (like the probes); the page reads and acts only through the
//! public API, with the user's bearer token.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("ui/index.html");
const APP: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");

/// Only what the page is made of, from this service: no inline script, no other origin,
/// no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /ui/`: the page.
pub(super) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /ui/app.js`.
pub(super) async fn app_js() -> Response {
    asset(APP, "text/javascript; charset=utf-8")
}

/// `GET /ui/style.css`.
pub(super) async fn style_css() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /ui`: to the page.
pub(super) async fn to_index() -> Redirect {
    Redirect::permanent("/ui/")
}
