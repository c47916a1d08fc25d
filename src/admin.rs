//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and the source status (`/status`,
//! `/status/page`), on their own port (loopback by default). Never on the public port.
//!
//! Input: GET/HEAD requests from probes, Prometheus and operators. Output: small JSON, the
//! Prometheus text exposition, or the status page. The status endpoints have their own access
//! rule (see [`crate::status`]); the probes and `/metrics` are open to whoever reaches the port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::State;
use crate::status::{self, Access};

/// Serves the admin endpoints until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin on the error.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let state = Arc::clone(&state);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, &req, peer)) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";

fn route(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            "{\"error\":\"use GET\"}".into(),
        );
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, JSON, "{\"status\":\"ok\"}".into()),
        "/readyz" => {
            let readiness = state.sink.readiness();
            let dedup_ready = state.dedup.is_ready();
            let ready = readiness.ready && dedup_ready && !state.draining.is_cancelled();
            let body = serde_json::json!({
                "status": if ready { "ready" } else { "not ready" },
                "sink": readiness.detail,
                "dedup": { "ready": dedup_ready },
            });
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, JSON, body.to_string())
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(),
        ),
        path @ ("/status" | "/status/page") => {
            match status::authorize(&state.health, req.headers(), peer) {
                Access::Granted if path == "/status" => {
                    no_store(text(StatusCode::OK, JSON, status::json(&state.health)))
                }
                Access::Granted => {
                    no_store(text(StatusCode::OK, HTML, status::page(&state.health)))
                }
                refused => {
                    let (code, extra, body) = status::refusal(refused);
                    let mut response = text(code, JSON, body);
                    if let Some((name, value)) = extra {
                        response.headers_mut().insert(name, value);
                    }
                    response
                }
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            JSON,
            "{\"error\":\"not found\"}".into(),
        ),
    }
}

/// The status carries recent events: keep it out of shared caches.
fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
