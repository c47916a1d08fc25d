//! Connections that stay silent: closed after the header read timeout.
//!
//! hyper's own header timeout starts only once it knows the protocol: a connection that sends
//! nothing, or the first bytes of HTTP/2's preface and then nothing, or that stays open
//! between requests, would hold one of the `max_connections` slots for ever, so a few idle
//! sockets could lock every vendor out. [`Idle`] wraps the connection's stream: when no
//! request of it has been in flight for the limit (since it opened, or since its last request
//! ended), the next read fails with `TimedOut` and hyper closes the connection. Only requests
//! count, not bytes: an HTTP/2 connection that sends PING frames, or a request's headers one
//! CONTINUATION frame at a time, is as idle as a silent one (hyper's own header timeout is
//! HTTP/1.1's alone). A request in flight (its body read, its answer awaited) is never cut by
//! this; the body has its own timeout (408).
//!
//! A connection closed before its first request is a refusal (logged, counted as
//! `hookgate_rejections_total{stage="listener",reason="request_timeout"}`); one closed after
//! serving requests is a keep-alive connection ending, as any server ends them.
//!
//! The same limit holds for the answers: a client that sends requests (pipelined over
//! HTTP/1.1) and never reads what comes back leaves hyper waiting on a full socket, reading
//! nothing, so the idle check above never runs. A write that makes no progress for the limit
//! fails with `TimedOut` (counted as `answers_not_read`), and the connection closes. The
//! kernel reports room only once a good part of the socket's buffer has drained, so a client
//! that reads a few bytes now and then is cut as one that reads none.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::app::State;

/// The requests of one connection, counted by its service (see [`Activity::begin`]).
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    started: AtomicUsize,
    /// When the last request ended: nanoseconds since [`epoch`], plus one (0: none yet).
    last_end: AtomicU64,
}

/// The process's origin for [`Activity::last_end`].
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl Activity {
    /// Marks a request as started; it is in flight until the returned guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// When the last request ended, if one has.
    fn last_end(&self) -> Option<Instant> {
        let nanos = self.last_end.load(Ordering::Relaxed).checked_sub(1)?;
        Some(Instant::from_std(epoch() + Duration::from_nanos(nanos)))
    }
}

/// A request in flight on its connection.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let since = u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.0.last_end.store(since + 1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's stream that fails its read once the connection has been idle too long.
pub struct Idle<S> {
    inner: S,
    limit: Duration,
    /// When the connection opened.
    opened: Instant,
    /// Some read brought bytes.
    read_bytes: bool,
    /// Armed for when the connection would have been idle for `limit` (re-armed when it fires
    /// while a request is in flight, or early because one ended since).
    timer: Pin<Box<Sleep>>,
    activity: Arc<Activity>,
    peer: SocketAddr,
    state: Arc<State>,
    /// Armed when a write first found the socket full since the last write that went
    /// through: when it fires before one does, the client is not reading its answers.
    write_stall: Option<Pin<Box<Sleep>>>,
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
        let opened = Instant::now();
        Idle {
            inner,
            limit,
            opened,
            read_bytes: false,
            timer: Box::pin(tokio::time::sleep_until(opened + limit)),
            activity,
            peer,
            state,
            write_stall: None,
        }
    }

    /// After a write (or flush) found the socket full: `Ready` with the error that closes the
    /// connection once no write has gone through for the limit, else `Pending`.
    fn poll_write_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stall.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
                super::refusal::closed_unanswered(
                    &self.state,
                    self.peer,
                    "answers_not_read",
                    format_args!("its answers could not be sent for {limit_ms} ms (its client does not read them)"),
                );
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "answers not read"))
            }
        }
    }

    /// A write's (or flush's) outcome, with the stall check when the socket is full.
    fn wrote<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.poll_write_stall(cx).map(Err),
            done => {
                self.write_stall = None;
                done
            }
        }
    }

    /// After a read found nothing: `Ready` with the error that closes the connection once it
    /// has been idle for the limit, else `Pending` (the timer wakes the task).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let now = Instant::now();
                    let due = if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
                        now + self.limit
                    } else {
                        // The activity is this connection's: its requests end after it opened.
                        self.activity.last_end().unwrap_or(self.opened) + self.limit
                    };
                    if due > now {
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
        // Never a request: a refusal. After requests, bytes since may be HTTP/2's own (a PING,
        // a SETTINGS ack): that connection ending is a keep-alive one, not a refusal.
        if self.activity.started.load(Ordering::Relaxed) == 0 {
            let what = if self.read_bytes {
                "request head not complete"
            } else {
                "no request"
            };
            super::refusal::closed_unanswered(
                &self.state,
                self.peer,
                "request_timeout",
                format_args!("{what} within the header read timeout ({limit_ms} ms)"),
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
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.read_bytes = true;
                }
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
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
