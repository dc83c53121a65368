//! A small JSON-over-HTTP/1.1 client (hyper), shared by the load generator and the tests
//! that talk to a real `cellplacer serve` over TCP.

use axum::body::Bytes;
use axum::http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A request that did not get an answer: the connection, the request or its body failed.
#[derive(Debug, thiserror::Error)]
#[error("HTTP client: {0}")]
pub struct Error(String);

/// A JSON client of one service (`base`), keeping its connections alive between requests.
#[derive(Debug, Clone)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    base: String,
}

/// A response: the status and the body parsed as JSON (`Null` when it is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
    /// The body as text (lossy UTF-8).
    pub text: String,
}

impl Client {
    /// `base` like `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Client {
        let mut connector = HttpConnector::new();
        // Small requests and replies: do not let Nagle hold them back.
        connector.set_nodelay(true);
        let http =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// One request: `body`, when given, sent as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let body = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body).map_err(|e| Error(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| Error(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error(e.to_string()))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, json, text })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, Error> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply, Error> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Reply, Error> {
        self.send(Method::DELETE, path, None).await
    }
}
