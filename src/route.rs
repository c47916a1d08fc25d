//! Stage 2, route: (method, path) → the configured [`Source`].
//!
//! Input: an [`Incoming`] request whose body has not been read. Output: [`Routed`].
//! Fails with [`RouteError`] (404 unknown path, 405 method not configured) before any body
//! byte is read. Never logs the path of a source that uses a secret path token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{Method, Request};

use crate::auth::Verifier;
use crate::parse::Parser;

/// A configured source, built once from `[[source]]` and shared by every request on its route.
#[derive(Debug)]
pub struct Source {
    /// Unique name (metrics label, log field, Kafka header).
    pub name: String,
    /// `name`, shared cheaply with metrics and output batches.
    pub label: Arc<str>,
    /// `vendor`, shared cheaply with output batches.
    pub vendor_label: Arc<str>,
    /// Parser name (vendor), e.g. `hyprwatch`.
    pub vendor: String,
    /// The route's path without any secret token.
    pub path: String,
    /// Methods accepted.
    pub methods: Vec<Method>,
    /// `Allow` header value for 405 answers, prebuilt.
    pub allow: String,
    /// Tenant id for events that carry none.
    pub tenant: String,
    /// Body cap for this source, in bytes.
    pub max_body_bytes: u64,
    /// The source's trust rules.
    pub verifier: Verifier,
    /// The vendor parser.
    pub parser: Arc<Parser>,
}

/// Every route, indexed by path.
#[derive(Debug, Default)]
pub struct Routes {
    by_path: HashMap<String, Arc<Source>>,
}

impl Routes {
    /// Indexes `sources` by path.
    pub fn new(sources: Vec<Arc<Source>>) -> Routes {
        let by_path = sources.into_iter().map(|s| (s.path.clone(), s)).collect();
        Routes { by_path }
    }

    /// All sources, in no particular order.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.by_path.values()
    }
}

/// Unique id of one request: a fresh UUID, or the `X-Request-Id` a trusted proxy wrote (short
/// and plain). A client's own header is not taken: it could put its chosen id (one for all its
/// probes, or another request's) on the gateway's answers, log lines and events.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of a request from `peer`: its `X-Request-Id` when a trusted proxy sent it (see
    /// [`crate::auth::Trust::is_proxy`]), else a fresh one. Of several header lines the last
    /// counts: a proxy that adds its line rather than replacing the client's adds it last.
    pub fn of_request(headers: &http::HeaderMap, from_proxy: bool) -> RequestId {
        if !from_proxy {
            return RequestId::from_header(None);
        }
        RequestId::from_header(headers.get_all("x-request-id").iter().next_back())
    }

    /// Takes the given id if it is 1–64 characters of `[A-Za-z0-9._:-]`, else makes one.
    pub fn from_header(value: Option<&http::HeaderValue>) -> RequestId {
        let given = value.and_then(|v| v.to_str().ok()).filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        });
        match given {
            Some(id) => RequestId(id.to_owned()),
            None => {
                // 32 hex digits, written into a buffer rather than through `Display`.
                let mut digits = [0u8; uuid::fmt::Simple::LENGTH];
                RequestId(
                    uuid::Uuid::new_v4()
                        .simple()
                        .encode_lower(&mut digits)
                        .to_owned(),
                )
            }
        }
    }

    /// Echoes the id in an answer's `X-Request-Id` header.
    pub fn stamp(&self, headers: &mut http::HeaderMap) {
        if let Ok(v) = http::HeaderValue::from_str(&self.0) {
            headers.insert("x-request-id", v);
        }
    }
}

/// A request as accepted from the connection, body still unread. Its `Debug` shows neither
/// headers (credentials, signatures) nor the URI (it may end in a secret path token).
pub struct Incoming {
    /// Request id (echoed in `X-Request-Id`).
    pub request_id: RequestId,
    /// TCP peer address (before any trusted-proxy header is considered).
    pub peer: SocketAddr,
    /// When the request head arrived.
    pub received_at: SystemTime,
    /// Method, URI, headers.
    pub parts: Parts,
    /// The unread body.
    pub body: hyper::body::Incoming,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("request_id", &self.request_id)
            .field("peer", &self.peer)
            .field("method", &self.parts.method)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Splits a hyper request into head and body, assigning the request id (`from_proxy`: the
    /// peer is a trusted proxy, whose `X-Request-Id` is taken).
    pub fn new(
        request: Request<hyper::body::Incoming>,
        peer: SocketAddr,
        from_proxy: bool,
    ) -> Incoming {
        let (parts, body) = request.into_parts();
        let request_id = RequestId::of_request(&parts.headers, from_proxy);
        Incoming {
            request_id,
            peer,
            received_at: SystemTime::now(),
            parts,
            body,
        }
    }
}

/// A request matched to its source.
pub struct Routed {
    /// The request.
    pub incoming: Incoming,
    /// The matched source.
    pub source: Arc<Source>,
    /// The last path segment when the source takes a secret path token (never logged).
    pub path_token: Option<String>,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routed")
            .field("incoming", &self.incoming)
            .field("source", &self.source.name)
            .field("path_token", &self.path_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why no source takes this request.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Sender's fault: no source is configured at this path.
    #[error("no source is configured at this path")]
    NotFound,
    /// Sender's fault: the source does not accept this method.
    #[error("method not allowed on this source")]
    MethodNotAllowed {
        /// The source's name.
        source_name: String,
        /// The source's metrics label, so the refusal counts under its source.
        label: Arc<str>,
        /// Value for the `Allow` header.
        allow: String,
    },
}

/// Finds the source for `incoming`. A source that takes a path token matches
/// `<path>/<token>`; the token is checked later, in constant time, by `auth`.
pub fn resolve(routes: &Routes, incoming: Incoming) -> Result<Routed, RouteError> {
    let path = incoming.parts.uri.path();
    let (source, path_token) = match routes.by_path.get(path) {
        Some(source) => (source, None),
        None => {
            let parent = path.rsplit_once('/').and_then(|(parent, last)| {
                routes
                    .by_path
                    .get(parent)
                    .filter(|s| s.verifier.takes_path_token() && !last.is_empty())
                    .map(|s| (s, last.to_owned()))
            });
            match parent {
                Some((source, token)) => (source, Some(token)),
                None => return Err(RouteError::NotFound),
            }
        }
    };
    if source.verifier.takes_path_token() && path_token.is_none() {
        // The bare prefix of a token route is not itself a route.
        return Err(RouteError::NotFound);
    }
    if !source.methods.contains(&incoming.parts.method) {
        let err = RouteError::MethodNotAllowed {
            source_name: source.name.clone(),
            label: Arc::clone(&source.label),
            allow: source.allow.clone(),
        };
        return Err(err);
    }
    Ok(Routed {
        source: Arc::clone(source),
        path_token,
        incoming,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_plain_request_id() {
        let v = http::HeaderValue::from_static("abc-123");
        assert_eq!(RequestId::from_header(Some(&v)).0, "abc-123");
    }

    #[test]
    fn takes_a_request_id_only_from_a_trusted_proxy() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", http::HeaderValue::from_static("lb-7"));
        assert_eq!(RequestId::of_request(&headers, true).0, "lb-7");
        // A proxy that adds its line after the client's: its own counts.
        headers.insert(
            "x-request-id",
            http::HeaderValue::from_static("client-says"),
        );
        headers.append("x-request-id", http::HeaderValue::from_static("lb-8"));
        assert_eq!(RequestId::of_request(&headers, true).0, "lb-8");
        let own = RequestId::of_request(&headers, false).0;
        assert_eq!(own.len(), 32);
        assert!(own.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn replaces_a_request_id_with_odd_characters() {
        let v = http::HeaderValue::from_static("abc def<script>");
        let id = RequestId::from_header(Some(&v)).0;
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
