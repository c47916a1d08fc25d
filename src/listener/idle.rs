//! Connections that stay silent: closed after the header read timeout.
//!
//! hyper's own header timeout starts only once it knows the protocol: a connection that sends
//! nothing, or the first bytes of HTTP/2's preface and then nothing, or that stays open
//! between requests, would hold one of the `max_connections` slots for ever, so a few idle
//! sockets could lock every vendor out. [`Idle`] wraps the connection's stream: when it has
//! read and written nothing for the limit while no request of it is in flight, the next read
//! fails with `TimedOut` and hyper closes the connection. A request in flight (its body
//! read, its answer awaited) is never cut by this; the body has its own timeout (408).
//!
//! A connection closed before its first request is a refusal (logged, counted as
//! `hookgate_rejections_total{stage="listener",reason="request_timeout"}`); one closed after
//! serving requests is a keep-alive connection ending, as any server ends them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::app::State;
use crate::metrics::UNMATCHED;

/// The requests of one connection, counted by its service (see [`Activity::begin`]).
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    started: AtomicUsize,
}

impl Activity {
    /// Marks a request as started; it is in flight until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's stream that fails its read once the connection has been idle too long.
pub struct Idle<S> {
    inner: S,
    limit: Duration,
    /// Last read or write.
    last: Instant,
    /// Armed for `last + limit` (re-armed when it fires early because of activity since).
    timer: Pin<Box<Sleep>>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    state: Arc<State>,
}

impl<S> Idle<S> {
    /// Wraps the stream of a connection from `peer`, whose requests `activity` counts.
    pub fn new(
        inner: S,
        limit: Duration,
        activity: Arc<Activity>,
        peer: SocketAddr,
        state: Arc<State>,
    ) -> Idle<S> {
        let last = Instant::now();
        Idle {
            inner,
            limit,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + limit)),
            activity,
            peer,
            state,
        }
    }

    /// After a read found nothing: `Ready` with the error that closes the connection once it
    /// has been idle for the limit, else `Pending` (the timer wakes the task).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
            self.last = Instant::now();
            return Poll::Pending;
        }
        loop {
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let due = self.last + self.limit;
                    if due > Instant::now() {
                        self.timer.as_mut().reset(due);
                        continue;
                    }
                    return Poll::Ready(self.timed_out());
                }
            }
        }
    }

    fn timed_out(&self) -> io::Error {
        let limit_ms = u64::try_from(self.limit.as_millis()).unwrap_or(u64::MAX);
        if self.activity.started.load(Ordering::Relaxed) == 0 {
            self.state
                .metrics
                .rejection(UNMATCHED, "listener", "request_timeout");
            tracing::info!(
                client = %self.peer.ip(),
                limit_ms,
                reason = "request_timeout",
                "connection closed: no request within the header read timeout"
            );
        } else {
            tracing::debug!(client = %self.peer.ip(), limit_ms, "idle keep-alive connection closed");
        }
        io::Error::new(io::ErrorKind::TimedOut, "connection idle")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.last = Instant::now();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.last = Instant::now();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
