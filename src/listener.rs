//! Stage 1, listener: bind, TLS, accept, connection cap, HTTP/1.1 + HTTP/2, graceful drain.
//!
//! Input: the public `TcpListener`, bound by [`bind`]. Output: each request handed to
//! [`crate::pipeline::handle`]. On shutdown it stops accepting, lets in-flight requests finish
//! within the grace period, then returns. Never reads a body itself. Each connection's stream
//! is wrapped: `refusal.rs` answers what the HTTP parser refuses, `linger.rs` keeps reading
//! briefly as it closes (so a client still sending gets its answer, not a reset), `idle.rs`
//! closes connections with no request in flight for the header timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::app::State;
use crate::limits::address_slots::AddressSlots;
use crate::pipeline;

mod idle;
mod linger;
mod refusal;

pub use refusal::head as refused_head;

use idle::{Activity, Idle};
use linger::Linger;
use refusal::Refusals;

/// The answer to a HEAD request: its status and header fields (`Content-Length` included, as
/// GET would have it), no body. hyper drops a HEAD answer's body itself over HTTP/1.1 only;
/// over HTTP/2 it would send it as DATA frames, which the client must treat as a protocol
/// error (RFC 9113 §8.1.1).
fn headers_only(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
}

/// Most header fields a request head may carry; more → 431 (`listener/refusal.rs`).
pub const MAX_HEADERS: usize = 100;

/// Most bytes hyper buffers for one connection, which bounds a request head (request line and
/// header fields together); a longer head → 431. Bodies stream through it in pieces.
pub const MAX_BUFFER_BYTES: usize = 64 * 1024;

/// Longest request target (path and query) in bytes; longer → 414. No vendor's URL comes
/// near it; a path token is 43 characters.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// How the public listener behaves.
#[derive(Debug, Clone, Copy)]
pub struct ListenSettings {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one address (a trusted proxy's are not counted).
    pub max_connections_per_address: usize,
    /// Time for the request head, and the longest a connection may stay silent with no
    /// request in flight (before its first request, or between requests).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get on shutdown.
    pub grace_period: Duration,
}

/// Why the listener stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Gateway's fault: the connection semaphore closed.
    #[error("connection limiter closed")]
    LimiterClosed,
}

/// Binds the public port with room for `backlog` connections not yet accepted. tokio's
/// `TcpListener::bind` asks the kernel for 128, as the standard library does: a burst of
/// more new connections than that (a vendor's retry storm, a sender's pool opening at once)
/// loses SYNs, and each lost one costs its client a 1 s retransmission.
pub fn bind(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As tokio's `bind`: a restarted gateway can bind again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// Serves the public port until `shutdown` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ArcSwap<ServerConfig>>>,
    state: Arc<State>,
    settings: ListenSettings,
    shutdown: CancellationToken,
) -> Result<(), ListenError> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_BUFFER_BYTES)
        .keep_alive(true);
    // Room above the head limit, so an HTTP/2 head over it reaches `refusal::head` and
    // gets the JSON 431 (past this, the h2 layer answers 431 itself).
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(4 * MAX_BUFFER_BYTES).unwrap_or(u32::MAX));
    // Over TLS the protocol is the one ALPN settled on (RFC 9113 §3.2): `h2` speaks only
    // HTTP/2, anything else only HTTP/1.1. The plain port tells them apart by the preface.
    let by_alpn = Arc::new(ByAlpn {
        h2: builder.clone().http2_only(),
        http1: builder.clone().http1_only(),
    });
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let shares = AddressSlots::new(settings.max_connections_per_address);
    let graceful = GracefulShutdown::new();
    // Cancelled when the grace period runs out: the connections still open are closed then,
    // not at the process's exit (their requests' dedup keys settle meanwhile).
    let closing = CancellationToken::new();

    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.map_err(|_| ListenError::LimiterClosed)?,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // The address's share of the slots, held as long as the connection; a trusted proxy,
        // carrying every client behind it, is exempt.
        let share = if state.runtime.load().trust.is_proxy(peer) {
            None
        } else if let Some(held) = shares.take(peer.ip()) {
            Some(held)
        } else {
            let cap = settings.max_connections_per_address;
            let what =
                format_args!("its address already holds its share of the connections ({cap})");
            refusal::closed_unanswered(&state, peer, "connections_per_address", what);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let for_refusals = Arc::clone(&state);
        let ended = Arc::clone(&state);
        let activity = Arc::new(Activity::default());
        let idle = IdleLimit {
            limit: settings.header_read_timeout,
            activity: Arc::clone(&activity),
            peer,
            state: Arc::clone(&state),
        };
        let state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            let in_flight = activity.begin();
            let head = req.method() == http::Method::HEAD;
            async move {
                let response = pipeline::handle(state, peer, req).await;
                drop(in_flight);
                Ok::<_, Infallible>(if head {
                    headers_only(response)
                } else {
                    response
                })
            }
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(
                        TokioIo::new(idle.wrap(Linger::new(Refusals::new(
                            stream,
                            peer,
                            for_refusals,
                        )))),
                        service,
                    )
                    .into_owned();
                let conn = watcher.watch(conn);
                let closing = closing.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        served = conn => if let Err(e) = served {
                            closed_with_error(&*e, peer, &ended);
                        },
                        () = closing.cancelled() => {}
                    }
                    drop(permit);
                    drop(share);
                });
            }
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.load_full());
                let handshake_timeout = settings.header_read_timeout;
                let closing = closing.clone();
                let by_alpn = Arc::clone(&by_alpn);
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        // A client that closed before finishing a handshake (a load
                        // balancer's TCP check, a port scan) is no refusal, as on the plain
                        // listener a connection closed without a request is none.
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            tracing::debug!(client = %peer.ip(), "connection closed during the TLS handshake");
                            return;
                        }
                        // Refusals like any other: counted, and logged without the bytes.
                        Ok(Err(e)) => {
                            let what = format_args!("TLS handshake failed: {e}");
                            refusal::closed_unanswered(&ended, peer, "tls_handshake", what);
                            return;
                        }
                        Err(_) => {
                            let what = format_args!(
                                "TLS handshake not complete within the header read timeout ({} ms)",
                                handshake_timeout.as_millis()
                            );
                            refusal::closed_unanswered(&ended, peer, "request_timeout", what);
                            return;
                        }
                    };
                    let builder = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        &by_alpn.h2
                    } else {
                        &by_alpn.http1
                    };
                    let conn = builder
                        .serve_connection(
                            TokioIo::new(idle.wrap(Linger::new(Refusals::new(
                                stream,
                                peer,
                                for_refusals,
                            )))),
                            service,
                        )
                        .into_owned();
                    tokio::select! {
                        served = watcher.watch(conn) => if let Err(e) = served {
                            closed_with_error(&*e, peer, &ended);
                        },
                        () = closing.cancelled() => {}
                    }
                    drop(permit);
                    drop(share);
                });
            }
        }
    }

    drop(listener);
    tracing::info!(
        grace_period_ms = settings.grace_period.as_millis() as u64,
        "stopped accepting; draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(settings.grace_period) => {
            tracing::warn!("grace period ran out; closing remaining connections");
            closing.cancel();
            // A moment for their tasks to end, and their requests' drop guards to start
            // settling dedup keys, while the runtime still runs them.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The connection builders a TLS connection picks from by its ALPN protocol.
struct ByAlpn {
    h2: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
}

/// A connection that ended in an error. A request head still incomplete when the header
/// read timeout ran out (sent a byte at a time, say: hyper closes such a connection without
/// an answer) is a refusal, logged and counted as `request_timeout` like a silent connection
/// (see `idle.rs`); any other error is the peer going away, for debugging only.
fn closed_with_error(e: &(dyn std::error::Error + 'static), peer: SocketAddr, state: &State) {
    let head_timed_out = e
        .downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout);
    if head_timed_out {
        let what = format_args!("request head not complete within the header read timeout");
        refusal::closed_unanswered(state, peer, "request_timeout", what);
    } else if let Some((reason, h2)) = http2_refusal(e) {
        let what = format_args!("HTTP/2 connection ended for the client's frames: {h2}");
        refusal::closed_unanswered(state, peer, reason, what);
    } else {
        tracing::debug!(error = %e, "connection closed with error");
    }
}

/// The refusal code when hyper's HTTP/2 side ended the connection because of what the client
/// sent (a GOAWAY of ours: a protocol or flow-control error, or `ENHANCE_YOUR_CALM` for a
/// flood of resets, CONTINUATION or empty frames); `None` for anything else (the client
/// going away, or its own GOAWAY).
fn http2_refusal<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<(&'static str, &'e h2::Error)> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            if h2.is_remote() || h2.is_io() {
                return None;
            }
            let code = match h2.reason()? {
                h2::Reason::ENHANCE_YOUR_CALM => "http2_flood",
                h2::Reason::FLOW_CONTROL_ERROR => "http2_flow_control_error",
                h2::Reason::NO_ERROR | h2::Reason::CANCEL => return None,
                _ => "http2_protocol_error",
            };
            return Some((code, h2));
        }
        source = err.source();
    }
    None
}

/// What a connection's [`Idle`] wrapper needs, gathered before its stream exists (after
/// the TLS handshake, for TLS).
struct IdleLimit {
    limit: Duration,
    activity: Arc<Activity>,
    peer: SocketAddr,
    state: Arc<State>,
}

impl IdleLimit {
    fn wrap<S>(self, stream: S) -> Idle<S> {
        Idle::new(stream, self.limit, self.activity, self.peer, self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens up to `n` connections to `address` that nobody accepts; returns how many
    /// completed their handshake before the first one that took longer than 300 ms.
    async fn queued(address: SocketAddr, n: usize) -> (usize, Vec<tokio::net::TcpStream>) {
        let mut open = Vec::new();
        for _ in 0..n {
            let connect = tokio::net::TcpStream::connect(address);
            match tokio::time::timeout(Duration::from_millis(300), connect).await {
                Ok(Ok(stream)) => open.push(stream),
                _ => break,
            }
        }
        (open.len(), open)
    }

    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_accept_queue_instead_of_losing_syns() {
        // 200 connections before the first accept: beyond the 128 of tokio's own `bind`.
        let listener = bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
        let (done, _open) = queued(listener.local_addr().unwrap(), 200).await;
        assert_eq!(done, 200);
        // The check can fail: a short queue holds its length (Linux: plus one), and the next
        // SYN is dropped (its client would retry after 1 s).
        let short = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let (done, _open) = queued(short.local_addr().unwrap(), 40).await;
        assert!((16..=17).contains(&done), "{done} connections queued");
    }
}
