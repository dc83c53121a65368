//! Request bodies on a clock: a body that stalls, or takes too long as a whole, is cut off
//! and answered 408 `body_timeout`, so a client trickling a byte at a time cannot hold a
//! connection and a handler for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use runtime::Error;
use tokio::time::{Instant, Sleep};

/// How long a body may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// Longest wait for the next bytes of a body.
    pub idle: Duration,
    /// Longest time for the whole body, from the request's headers.
    pub total: Duration,
}

/// Why a body was cut off; [`timeout_of`] finds it under the extractors' errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut(Duration, &'static str);

/// The [`Error::BodyTimeout`] behind a failed body read, if that is what failed.
pub(crate) fn timeout_of(error: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut at = Some(error);
    while let Some(e) = at {
        if let Some(BodyTimedOut(limit, why)) = e.downcast_ref::<BodyTimedOut>() {
            return Some(Error::BodyTimeout {
                ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                why,
            });
        }
        at = e.source();
    }
    None
}

/// Puts the request's body on `timeouts`' clock.
pub(crate) async fn timed(timeouts: BodyTimeouts, req: Request, next: Next) -> Response {
    let req = req.map(|body| {
        Body::new(TimedBody {
            inner: body,
            idle: Box::pin(tokio::time::sleep(timeouts.idle)),
            total: Box::pin(tokio::time::sleep(timeouts.total)),
            timeouts,
        })
    });
    next.run(req).await
}

/// A body that fails once its idle or total time runs out.
struct TimedBody {
    inner: Body,
    idle: Pin<Box<Sleep>>,
    total: Pin<Box<Sleep>>,
    timeouts: BodyTimeouts,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let idle = self.timeouts.idle;
                self.idle.as_mut().reset(Instant::now() + idle);
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let cut = if self.total.as_mut().poll(cx).is_ready() {
                    Some(BodyTimedOut(self.timeouts.total, "too slow"))
                } else if self.idle.as_mut().poll(cx).is_ready() {
                    Some(BodyTimedOut(self.timeouts.idle, "stalled"))
                } else {
                    None
                };
                match cut {
                    Some(cut) => Poll::Ready(Some(Err(axum::Error::new(cut)))),
                    None => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
