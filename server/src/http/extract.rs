//! What handlers take from a request: a JSON body, path and query parameters, each failure
//! an [`Error`] naming the field (axum's own extractors answer in plain text and name none).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use runtime::Error;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The body limit of the route's group, for the message of a 413 (axum's
/// `DefaultBodyLimit` enforces it but does not tell the extractor its value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// A JSON body whose every failure is an [`Error`] naming the field.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

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
        // A declared length over the limit is refused before the body is read: hyper sends
        // `100 Continue` only once the body is polled, so a client that asked first gets
        // the 413 and never sends the body.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(Error::BodyTooLarge { limit }.into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if let Some(timeout) = super::body::timeout_of(&r) {
                timeout
            } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
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
        // Read as JSON first (trailing characters included), then as the request type.
        let mut json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::MalformedJson {
                message: e.to_string(),
            })?;
        integral_floats_as_integers(&mut json);
        let value: T = serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
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
        Ok(JsonBody(value))
    }
}

/// JSON has one number type: `9.0` is the integer 9 (JSON Schema says so too), which
/// serde would refuse for an integer field. Whole numbers written with a fraction become
/// integers; a float field takes them as well.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if f >= 0.0 && f <= u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Path parameters with JSON errors.
#[derive(Debug)]
pub(crate) struct PathParams<T>(pub(crate) T);

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
pub(crate) struct QueryParams<T>(pub(crate) T);

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

/// A query parameter read as text, parsed here so that the error names it and says what
/// it should be (`what`).
pub(crate) fn parse_param<T: std::str::FromStr>(
    value: Option<String>,
    field: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    parse_param_where(value, field, what, |_| true)
}

/// [`parse_param`] for a value that must also keep `valid` (a range its type does not
/// say); one that parses but does not keep it gets the same error.
pub(crate) fn parse_param_where<T: std::str::FromStr>(
    value: Option<String>,
    field: &str,
    what: &str,
    valid: impl Fn(&T) -> bool,
) -> Result<Option<T>, ApiError> {
    value
        .map(|v| {
            v.parse().ok().filter(|t| valid(t)).ok_or_else(|| {
                ApiError(Error::InvalidField {
                    field: field.to_owned(),
                    message: format!("{field} '{v}' is not {what}"),
                })
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    //! Request bodies of any bytes, and valid ones mutated byte by byte, for every request
    //! type: taken, or refused with a named error; never a panic.

    use axum::body::Body;
    use axum::extract::FromRequest;
    use axum::http::Request;
    use proptest::prelude::*;
    use runtime::dto::{
        AutopilotUpdate, ClientsRequest, ElementStateRequest, ElementStatesRequest, ExecuteRequest,
        ImportRequest, InventoryRequest, PlaceRequest, PlanRequest, ReplaceRequest, WhatIfRequest,
    };

    use super::{BodyLimit, JsonBody};

    /// A valid body of each request type, to mutate.
    const VALID: [&str; 11] = [
        r#"{"cell_id": "vol-1", "clients": ["s1", "s2"], "size": 7}"#,
        r#"{"server": "s1"}"#,
        r#"{"clients": ["s1"]}"#,
        r#"{"path": "zone"}"#,
        r#"{"change": {"remove": ["r1"], "fail": ["x"], "server": [{"id": "s1", "node_capacity": 3}], "rates": [{"element": "r1", "afr": 0.1}], "refeed": [{"target": "p", "upstream": ["u"]}], "add": {"racks": "rack_id\nr9"}}, "pairs_top": 3, "headroom": true}"#,
        r#"{"drain": ["r1"], "repair": true, "balance": 1.1, "max_moves": 10, "execute": {"rate": 5, "concurrency": 2}}"#,
        r#"{"rate": 5.0, "concurrency": 4}"#,
        r#"{"enabled": true, "grace_s": 60, "rate": 2, "max_in_flight": 3, "max_moves_per_hour": 100, "improve": false}"#,
        r#"{"state": "failed", "reason": "psu"}"#,
        r#"{"states": [{"element": "r1", "state": "active"}]}"#,
        r#"{"path": "cells.csv", "skip_invalid": true}"#,
    ];

    /// Whether `bytes` as the body of every request type is taken or refused with a code.
    fn every_type_answers(bytes: &[u8]) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            macro_rules! check {
                ($($t:ty),*) => {$(
                    let req = Request::builder()
                        .header("content-type", "application/json")
                        .extension(BodyLimit(1 << 20))
                        .body(Body::from(bytes.to_vec()))
                        .unwrap();
                    if let Err(e) = JsonBody::<$t>::from_request(req, &()).await {
                        let code = e.0.code();
                        if code.is_empty() || e.0.to_string().is_empty() {
                            return Err(format!("{}: {e:?}", stringify!($t)));
                        }
                    }
                )*};
            }
            check!(
                PlaceRequest,
                ReplaceRequest,
                ClientsRequest,
                InventoryRequest,
                WhatIfRequest,
                PlanRequest,
                ExecuteRequest,
                AutopilotUpdate,
                ElementStateRequest,
                ElementStatesRequest,
                ImportRequest
            );
            Ok(())
        })
    }

    /// A valid body with a few bytes flipped, inserted or cut.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::sample::select(VALID.to_vec()),
            proptest::collection::vec((0..3u8, any::<usize>(), any::<u8>()), 1..5),
        )
            .prop_map(|(valid, changes)| {
                let mut bytes = valid.as_bytes().to_vec();
                for (kind, at, byte) in changes {
                    let at = at % (bytes.len() + 1);
                    match kind {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => bytes.push(byte),
                    }
                }
                bytes
            })
    }

    #[test]
    fn the_bodies_mutated_start_valid() {
        fn take<T: serde::de::DeserializeOwned>(body: &str) {
            serde_json::from_str::<T>(body).unwrap_or_else(|e| panic!("{body}: {e}"));
        }
        take::<PlaceRequest>(VALID[0]);
        take::<ReplaceRequest>(VALID[1]);
        take::<ClientsRequest>(VALID[2]);
        take::<InventoryRequest>(VALID[3]);
        take::<WhatIfRequest>(VALID[4]);
        take::<PlanRequest>(VALID[5]);
        take::<ExecuteRequest>(VALID[6]);
        take::<AutopilotUpdate>(VALID[7]);
        take::<ElementStateRequest>(VALID[8]);
        take::<ElementStatesRequest>(VALID[9]);
        take::<ImportRequest>(VALID[10]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn a_body_of_any_bytes_is_taken_or_refused_by_name(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert!(every_type_answers(&bytes).is_ok());
        }

        #[test]
        fn a_mutated_valid_body_is_taken_or_refused_by_name(bytes in mutated()) {
            prop_assert!(every_type_answers(&bytes).is_ok());
        }
    }
}
