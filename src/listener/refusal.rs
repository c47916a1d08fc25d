//! Requests hyper refuses before the pipeline sees them: a head that is not HTTP/1.1 (400),
//! a URI too long (414), header fields past hyper's limits (431); and those refused here for
//! the same reasons hyper lets through ([`head`]: an HTTP/1.1 head without exactly one
//! `Host`, a URI too long, HTTP/2 header fields past the HTTP/1.1 limits).
//!
//! hyper answers these itself, with an empty body and no request id, and never calls the
//! service. Every refusal must carry a short JSON body and an `X-Request-Id`, and be logged
//! and counted by reason like any other, so the connection's stream is wrapped in
//! [`Refusals`]: it recognises hyper's own answer on its way out (a 4xx head without our
//! `x-request-id`, which every answer of the pipeline carries) and sends in its place the
//! same status with the JSON body, keeping hyper's other header lines (`connection: close`,
//! `date`). Everything else passes through untouched; the check on each write is a prefix
//! compare.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::app::State;
use crate::metrics::UNMATCHED;
use crate::respond;
use crate::route::RequestId;

/// A request refused by the HTTP/1 parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolRefusal {
    /// Sender's fault: the request line or a header line is not valid HTTP/1.1.
    #[error("request is not valid HTTP/1.1")]
    Malformed,
    /// Sender's fault: the request target is longer than [`super::MAX_URI_BYTES`].
    #[error("request URI is too long (at most {} KiB)", super::MAX_URI_BYTES / 1024)]
    UriTooLong,
    /// Sender's fault: more header fields than [`super::MAX_HEADERS`], or a head longer than
    /// [`super::MAX_BUFFER_BYTES`].
    #[error(
        "request header fields are too large (at most {} fields and {} KiB)",
        super::MAX_HEADERS,
        super::MAX_BUFFER_BYTES / 1024
    )]
    HeadersTooLarge,
}

impl ProtocolRefusal {
    const ALL: [ProtocolRefusal; 3] = [
        ProtocolRefusal::Malformed,
        ProtocolRefusal::UriTooLong,
        ProtocolRefusal::HeadersTooLarge,
    ];

    /// The status hyper answers it with.
    fn status(self) -> u16 {
        match self {
            ProtocolRefusal::Malformed => 400,
            ProtocolRefusal::UriTooLong => 414,
            ProtocolRefusal::HeadersTooLarge => 431,
        }
    }

    /// The refusal hyper's answer stands for, from the status code's three digits.
    fn from_status(code: &[u8]) -> Option<ProtocolRefusal> {
        let code: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
        Self::ALL.into_iter().find(|r| r.status() == code)
    }

    /// Bounded label for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            ProtocolRefusal::Malformed => "malformed_request",
            ProtocolRefusal::UriTooLong => "uri_too_long",
            ProtocolRefusal::HeadersTooLarge => "headers_too_large",
        }
    }
}

/// When `head` is hyper's own refusal (a complete 4xx head without `x-request-id`), the
/// refusal, its request id (from `new_id`, called only then) and the answer to send in its
/// place.
pub fn rewrite(
    head: &[u8],
    new_id: impl FnOnce() -> RequestId,
) -> Option<(ProtocolRefusal, RequestId, Vec<u8>)> {
    // "HTTP/1.x 4NN ..." and the whole head in this one write.
    let code = head.get(9..12)?;
    if !head.starts_with(b"HTTP/1.") || code.first() != Some(&b'4') || !head.ends_with(b"\r\n\r\n")
    {
        return None;
    }
    let refusal = ProtocolRefusal::from_status(code)?;
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.trim_end_matches("\r\n").split("\r\n");
    let status_line = lines.next()?;
    let mut others = Vec::new();
    for line in lines {
        let name = line.split(':').next().unwrap_or_default();
        if name.eq_ignore_ascii_case("x-request-id") {
            // The pipeline's own answer: not hyper's.
            return None;
        }
        if !name.eq_ignore_ascii_case("content-length") {
            others.push(line);
        }
    }
    let id = new_id();
    let body = respond::failure_body(&refusal.to_string(), &id);
    let mut answer = Vec::with_capacity(head.len() + body.len() + 96);
    answer.extend_from_slice(status_line.as_bytes());
    answer.extend_from_slice(b"\r\ncontent-type: application/json\r\nx-request-id: ");
    answer.extend_from_slice(id.0.as_bytes());
    for line in others {
        answer.extend_from_slice(b"\r\n");
        answer.extend_from_slice(line.as_bytes());
    }
    answer.extend_from_slice(format!("\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
    answer.extend_from_slice(&body);
    Some((refusal, id, answer))
}

/// Logs and counts a refusal before routing.
fn record(state: &State, peer: SocketAddr, refusal: ProtocolRefusal, id: &RequestId) {
    let status = refusal.status();
    state
        .metrics
        .rejection(UNMATCHED, "listener", refusal.code());
    state
        .metrics
        .request(UNMATCHED, status, std::time::Duration::ZERO);
    tracing::info!(
        request_id = %id.0,
        status,
        reason = refusal.code(),
        client = %peer.ip(),
        "request rejected before routing"
    );
}

/// A connection closed without an answer as a refusal (`reason`: `request_timeout`,
/// `tls_handshake`): counted under `unmatched` in the listener stage and logged at info with
/// the client and `what` happened, never a byte it sent.
pub fn closed_unanswered(
    state: &State,
    peer: SocketAddr,
    reason: &'static str,
    what: std::fmt::Arguments<'_>,
) {
    state.metrics.rejection(UNMATCHED, "listener", reason);
    tracing::info!(client = %peer.ip(), reason, "connection closed: {what}");
}

/// A request head checked against what hyper does not check itself, answered as hyper's own
/// refusals are (the same JSON, log line and metric): a request target over
/// [`super::MAX_URI_BYTES`] (414; hyper's own limit, near 64 KiB, is past the head's), and,
/// over HTTP/2, the header limits hyper applies to HTTP/1.1 heads (HTTP/2 frames its headers,
/// so [`Refusals`] cannot see them, and hyper's HTTP/2 side has no field count): over
/// [`super::MAX_HEADERS`] fields or [`super::MAX_BUFFER_BYTES`] of names and values, 431; an
/// HTTP/1.1 head without exactly one `Host` line, 400 with `Connection: close`.
pub fn head<B>(
    state: &State,
    peer: SocketAddr,
    request: &http::Request<B>,
) -> Option<http::Response<http_body_util::Full<bytes::Bytes>>> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    let refusal = if uri_bytes > super::MAX_URI_BYTES {
        ProtocolRefusal::UriTooLong
    } else if request.version() == http::Version::HTTP_2 && over_limits(request.headers()) {
        ProtocolRefusal::HeadersTooLarge
    } else if request.version() == http::Version::HTTP_11 && !one_host(request.headers()) {
        ProtocolRefusal::Malformed
    } else {
        return None;
    };
    let id = RequestId::from_header(None);
    record(state, peer, refusal, &id);
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        respond::failure_body(&refusal.to_string(), &id),
    )));
    *response.status_mut() =
        http::StatusCode::from_u16(refusal.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    id.stamp(response.headers_mut());
    // As hyper does after a head it cannot read: what follows on the connection is suspect.
    if refusal == ProtocolRefusal::Malformed {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Some(response)
}

/// True when an HTTP/1.1 head has exactly one `Host` line that can be one host (visible
/// ASCII with no list, path, query, fragment or user part), as RFC 9112 §3.2 requires of the
/// sender (and a 400 of the server otherwise); hyper lets a head without one through. A
/// character check, not the whole `uri-host [":" port]` grammar: hookgate routes on the path
/// alone. An empty value is allowed (a target with no authority).
fn one_host(headers: &http::HeaderMap) -> bool {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.as_bytes().iter().all(|&b| {
            b.is_ascii_graphic() && !matches!(b, b',' | b'/' | b'@' | b'?' | b'#' | b'\\')
        }),
        _ => false,
    }
}

/// More header fields, or more bytes of names and values, than an HTTP/1.1 head may carry.
fn over_limits(headers: &http::HeaderMap) -> bool {
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    headers.len() > super::MAX_HEADERS || bytes > super::MAX_BUFFER_BYTES
}

/// A connection's stream, with hyper's refusals answered in JSON (see the module note).
pub struct Refusals<S> {
    inner: S,
    peer: SocketAddr,
    state: Arc<State>,
    /// The answer being sent in place of hyper's: its bytes, how many are written, and the
    /// length of hyper's head to report once they all are.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<S> Refusals<S> {
    /// Wraps the stream of a connection from `peer`.
    pub fn new(inner: S, peer: SocketAddr, state: Arc<State>) -> Refusals<S> {
        Refusals {
            inner,
            peer,
            state,
            replacing: None,
        }
    }

    /// Starts replacing `head` when it is hyper's refusal: logs and counts it. Most writes
    /// are ruled out by `rewrite`'s first compares (prefix, status code).
    fn check(&mut self, head: &[u8]) {
        if let Some((refusal, id, answer)) = rewrite(head, || RequestId::from_header(None)) {
            record(&self.state, self.peer, refusal, &id);
            self.replacing = Some((answer, 0, head.len()));
        }
    }
}

impl<S: AsyncWrite + Unpin> Refusals<S> {
    /// Writes the rest of the replacement; `Ready(Ok(n))` with hyper's head length once done.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((answer, written, claimed)) = &mut self.replacing else {
            return Poll::Ready(Ok(0));
        };
        while let Some(rest) = answer.get(*written..).filter(|r| !r.is_empty()) {
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let claimed = *claimed;
        self.replacing = None;
        Poll::Ready(Ok(claimed))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Refusals<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Refusals<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            this.check(buf);
        }
        if this.replacing.is_some() {
            return this.drive(cx);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            // hyper's head is always the first slice of a write.
            if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
                this.check(first);
            }
        }
        if this.replacing.is_some() {
            return this.drive(cx);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 09:26:54 GMT\r\n\r\n";

    fn id() -> RequestId {
        RequestId("req-1".to_owned())
    }

    /// An id source that fails the test when it is asked.
    fn no_id() -> RequestId {
        panic!("a request id was made for a write that is not hyper's refusal")
    }

    #[test]
    fn hypers_refusal_becomes_the_same_status_with_a_json_body_and_request_id() {
        let (refusal, _, answer) = rewrite(HYPER_431, id).unwrap();
        assert_eq!(refusal, ProtocolRefusal::HeadersTooLarge);
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("HTTP/1.1 431 Request Header Fields Too Large")
        );
        let headers: Vec<&str> = lines.collect();
        assert!(headers.contains(&"content-type: application/json"));
        assert!(headers.contains(&"x-request-id: req-1"));
        assert!(headers.contains(&"connection: close"));
        assert!(headers.contains(&"date: Tue, 01 Dec 2026 09:26:54 GMT"));
        assert!(headers.contains(&format!("content-length: {}", body.len()).as_str()));
        assert_eq!(
            headers
                .iter()
                .filter(|h| h.starts_with("content-length"))
                .count(),
            1
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["request_id"], "req-1");
        assert_eq!(
            json["error"],
            "request header fields are too large (at most 100 fields and 64 KiB)"
        );
    }

    #[test]
    fn each_status_hyper_refuses_with_maps_to_its_reason() {
        for (status, code) in [
            ("400 Bad Request", "malformed_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let head =
                format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
            let (refusal, _, answer) = rewrite(head.as_bytes(), id).unwrap();
            assert_eq!(refusal.code(), code);
            assert!(answer.starts_with(format!("HTTP/1.1 {status}\r\n").as_bytes()));
        }
    }

    #[test]
    fn the_pipelines_answers_and_other_writes_pass_untouched() {
        // Every answer of the pipeline carries x-request-id.
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nx-request-id: abc\r\ncontent-length: 2\r\n\r\n";
        assert!(rewrite(ours, no_id).is_none());
        // Statuses hyper does not refuse with, partial heads, bodies.
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", no_id).is_none());
        assert!(rewrite(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconn",
            no_id
        )
        .is_none());
        assert!(rewrite(b"{\"error\":\"x\"}", no_id).is_none());
        assert!(rewrite(b"", no_id).is_none());
    }
}
