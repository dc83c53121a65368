//! Connections: the accept loop (a cap, a header read timeout, a graceful drain) and the
//! JSON shape for the few errors hyper answers itself, before any route sees the request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ErrorBody, ErrorDetail};

/// Limits on the connections themselves (before any request is routed).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most; one more is closed at once (and counted).
    pub max: usize,
    /// A connection must send a request's headers within this time of opening or of its
    /// previous response, or it is closed: idle and half-sent connections do not pile up.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for requests in flight.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max: 10_000,
            header_read_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(30),
        }
    }
}

/// Accepts connections until `shutdown`, each served by hyper with a header read timeout,
/// at most `limits.max` at once; then waits (up to `limits.drain`) for those in flight
/// (hyper-util's `GracefulShutdown`).
// Hand-written loop: `axum::serve` sets no header read timeout, no drain deadline and no connection cap.
pub(crate) async fn accept(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<runtime::metrics::Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    // A cap on connections, not requests (tower's `ConcurrencyLimit`): one over is closed at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // One write per response head, so that [`JsonErrors`] sees hyper's own whole.
        .writev(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connection_refused();
            drop(stream);
            continue;
        };
        metrics.connection_opened();
        let service = TowerToHyperService::new(router.clone());
        let io = TokioIo::new(JsonErrors::new(stream));
        let conn = graceful.watch(http.serve_connection(io, service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            metrics.connection_closed();
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {:?}: closing", limits.drain);
    }
}

/// Gives hyper's own error responses the JSON error shape. hyper answers a request it
/// cannot parse (a malformed request line, a URI over 64 KiB, headers over its buffer)
/// itself, with an empty body, and closes; such a response head is written whole (no
/// `writev`) and is the only 400, 414 or 431 with `content-length: 0` (every response of
/// the routes has a JSON body), so it is recognised and replaced.
// Hand-written: hyper writes these responses itself, below every tower layer.
#[derive(Debug)]
pub(crate) struct JsonErrors<T> {
    inner: T,
    /// A replacement being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> JsonErrors<T> {
    pub(crate) fn new(inner: T) -> JsonErrors<T> {
        JsonErrors {
            inner,
            pending: None,
        }
    }
}

/// The JSON version of one of hyper's automatic error responses, if `head` is one.
fn json_error(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let (code, message) = match status {
        400 => (
            "malformed_request",
            "the request could not be parsed as HTTP/1.1",
        ),
        414 => ("uri_too_long", "the request URI is too long"),
        431 => ("headers_too_large", "the request headers are too large"),
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") || !lower.ends_with("\r\n\r\n") {
        return None;
    }
    let reason = rest.lines().next().unwrap_or_default();
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code,
            message: message.into(),
            field: None,
            details: None,
        },
    })
    .ok()?;
    Some(
        format!(
            "HTTP/1.1 {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match json_error(buf) {
                Some(replacement) => this.pending = Some((replacement, 0)),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper calls again with the same head until it is reported written.
        if let Some((bytes, at)) = &mut this.pending {
            while *at < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*at..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => *at += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        this.pending = None;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_own_empty_error_heads_are_replaced() {
        let head = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(json_error(head).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        let body = out.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "uri_too_long");
        assert!(out.contains(&format!("content-length: {}\r\n", body.len())));
        for keep in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert!(
                json_error(keep).is_none(),
                "{}",
                String::from_utf8_lossy(keep)
            );
        }
    }
}
