//! The admin listener: `/healthz`, `/readyz` and `/metrics`, on their own (loopback) port.

use std::convert::Infallible;
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

/// Serves the admin endpoints until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
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
                async move { Ok::<_, Infallible>(route(&state, &req)) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(state: &State, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            "{\"error\":\"use GET\"}".into(),
        );
    }
    match req.uri().path() {
        "/healthz" => text(
            StatusCode::OK,
            "application/json",
            "{\"status\":\"ok\"}".into(),
        ),
        "/readyz" => {
            let readiness = state.sink.readiness();
            let ready = readiness.ready && !state.draining.is_cancelled();
            let body = serde_json::json!({
                "status": if ready { "ready" } else { "not ready" },
                "sink": readiness.detail,
            });
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, "application/json", body.to_string())
        }
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.metrics.render(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "application/json",
            "{\"error\":\"not found\"}".into(),
        ),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
