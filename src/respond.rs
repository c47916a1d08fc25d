//! Stage 11, respond: the one place that turns an outcome or a stage error into an answer.
//!
//! Input: `Result<Outcome, Failure>`. Output: an HTTP response with a short JSON body and
//! `X-Request-Id`. Rejections say what the sender can fix and nothing more: an auth failure is
//! a plain 401/403 that never says which check failed.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::auth::AuthError;
use crate::body::BodyError;
use crate::dedup::DedupError;
use crate::limits::LimitError;
use crate::route::{RequestId, RouteError};
use crate::sink::SinkError;
use crate::split::SplitError;

/// A request that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Events were made durable (or were all duplicates).
    Accepted {
        /// New events now durable (including dead letters).
        events: usize,
        /// Events already delivered before.
        duplicates: usize,
    },
    /// The vendor's health call.
    Heartbeat,
}

/// A request that failed, by stage.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No route, or the method is not configured.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Over a rate limit (429) or shed under load (503), before the body is read.
    #[error(transparent)]
    Limited(#[from] LimitError),
    /// Not trusted.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Body refused.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Body is not a batch of events.
    #[error(transparent)]
    Split(#[from] SplitError),
    /// The same event is being delivered by another request right now.
    #[error("the same event is being processed by another request")]
    InFlight,
    /// The dedup store failed.
    #[error(transparent)]
    Dedup(#[from] DedupError),
    /// Events could not be made durable.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl Failure {
    /// Bounded reason label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Route(RouteError::NotFound) => "route_not_found",
            Failure::Route(RouteError::MethodNotAllowed { .. }) => "method_not_allowed",
            Failure::Limited(e) => e.code(),
            Failure::Auth(e) => e.code(),
            Failure::Body(e) => match e {
                BodyError::TooLarge { .. } => "body_too_large",
                BodyError::DecompressedTooLarge { .. } => "body_decompressed_too_large",
                BodyError::Timeout { .. } => "body_timeout",
                BodyError::UnsupportedEncoding { .. } => "unsupported_encoding",
                BodyError::UnsupportedTransferCoding { .. } => "unsupported_transfer_coding",
                BodyError::UnsupportedMediaType { .. } => "unsupported_media_type",
                BodyError::CorruptEncoding { .. } => "corrupt_encoding",
                BodyError::Incomplete(_) => "body_incomplete",
            },
            Failure::Split(e) => e.code(),
            Failure::InFlight => "in_flight_duplicate",
            Failure::Dedup(e) => e.code(),
            Failure::Sink(e) => e.code(),
        }
    }

    /// The stage that refused the request: a bounded label (`route`, `limits`, `auth`,
    /// `body`, `split`, `dedup`, `sink`) for metrics, so alerts need not know every code.
    pub fn stage(&self) -> &'static str {
        match self {
            Failure::Route(_) => "route",
            Failure::Limited(_) => "limits",
            Failure::Auth(_) => "auth",
            Failure::Body(_) => "body",
            Failure::Split(_) => "split",
            Failure::InFlight | Failure::Dedup(_) => "dedup",
            Failure::Sink(_) => "sink",
        }
    }

    /// True when the request failed authentication (counts toward `failing_auth` health).
    pub fn is_auth(&self) -> bool {
        matches!(self, Failure::Auth(_))
    }

    /// The HTTP status for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Route(RouteError::NotFound) => StatusCode::NOT_FOUND,
            Failure::Route(RouteError::MethodNotAllowed { .. }) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::Limited(e) if e.is_overload() => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Failure::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            Failure::Auth(_) => StatusCode::UNAUTHORIZED,
            Failure::Body(BodyError::TooLarge { .. } | BodyError::DecompressedTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Failure::Body(BodyError::Timeout { .. }) => StatusCode::REQUEST_TIMEOUT,
            Failure::Body(BodyError::UnsupportedTransferCoding { .. }) => {
                StatusCode::NOT_IMPLEMENTED
            }
            Failure::Body(
                BodyError::UnsupportedEncoding { .. } | BodyError::UnsupportedMediaType { .. },
            ) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Failure::Body(BodyError::CorruptEncoding { .. } | BodyError::Incomplete(_)) => {
                StatusCode::BAD_REQUEST
            }
            Failure::Split(SplitError::TooMany { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Split(_) => StatusCode::BAD_REQUEST,
            Failure::InFlight => StatusCode::CONFLICT,
            Failure::Dedup(_) | Failure::Sink(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the sender is told: enough to fix their side, nothing about our checks.
    fn message(&self) -> String {
        match self {
            Failure::Auth(e) if e.is_forbidden() => "source address is not allowed".to_owned(),
            Failure::Auth(_) => "authentication failed".to_owned(),
            Failure::Dedup(_) | Failure::Sink(_) => {
                "events could not be stored; retry later".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// When the sender may try again (`Retry-After`), for refusals that have one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Limited(e) => Some(e.retry_after()),
            Failure::InFlight => Some(Duration::from_secs(5)),
            Failure::Dedup(_) | Failure::Sink(_) => Some(Duration::from_secs(30)),
            _ => None,
        }
    }
}

/// The JSON body of an answer, serialized straight from borrowed fields (issue #7: no
/// `serde_json::Value` tree per request). Fields are in alphabetical order, the order the
/// former `json!` maps wrote them in, so the bytes on the wire are unchanged.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Answer<'a> {
    Accepted {
        duplicates: usize,
        events: usize,
        request_id: &'a str,
        status: &'static str,
    },
    Heartbeat {
        request_id: &'a str,
        status: &'static str,
    },
    Failed {
        error: String,
        request_id: &'a str,
    },
}

/// The JSON body of a refusal made below the pipeline (`listener/refusal.rs`: the requests
/// hyper's parser refuses), in the same shape as every other refusal's.
pub fn failure_body(message: &str, id: &RequestId) -> Vec<u8> {
    let answer = Answer::Failed {
        error: message.to_owned(),
        request_id: id.0.as_str(),
    };
    // Serializing these plain fields cannot fail; an empty body would be the only fallout.
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// Builds the answer.
pub fn build(result: &Result<Outcome, Failure>, id: &RequestId) -> Response<Full<Bytes>> {
    let request_id = id.0.as_str();
    let (status, body) = match result {
        Ok(Outcome::Accepted { events, duplicates }) => (
            StatusCode::OK,
            Answer::Accepted {
                duplicates: *duplicates,
                events: *events,
                request_id,
                status: "accepted",
            },
        ),
        Ok(Outcome::Heartbeat) => (
            StatusCode::OK,
            Answer::Heartbeat {
                request_id,
                status: "ok",
            },
        ),
        Err(failure) => (
            failure.status(),
            Answer::Failed {
                error: failure.message(),
                request_id,
            },
        ),
    };
    // Serializing these plain fields cannot fail; an empty body would be the only fallout.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    id.stamp(headers);
    if let Err(failure) = result {
        if let Some(after) = failure.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
        }
        match failure {
            Failure::Route(RouteError::MethodNotAllowed { allow, .. }) => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    headers.insert(header::ALLOW, v);
                }
            }
            Failure::Auth(e) => {
                if let Some(challenge) = e.challenge() {
                    headers.insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    );
                }
            }
            // An authenticated body nobody can read reaches here only once it is kept as a
            // dead letter (`pipeline::dead_letter_body`; else the answer is 503): its retries
            // cannot fix it. Svix stops retrying a message answered with this header (other
            // senders ignore it), instead of sending it again for 27 hours.
            Failure::Split(e) if e.is_unreadable() => {
                headers.insert(
                    http::HeaderName::from_static("webhook-delivery"),
                    HeaderValue::from_static("abort-message"),
                );
            }
            Failure::Body(BodyError::CorruptEncoding { kept: true, .. }) => {
                headers.insert(
                    http::HeaderName::from_static("webhook-delivery"),
                    HeaderValue::from_static("abort-message"),
                );
            }
            _ => {}
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    async fn body_text(response: Response<Full<Bytes>>) -> String {
        // A `Full` body is one data frame.
        let frame = response.into_body().frame().await.unwrap().unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn answers_are_the_documented_json_bytes() {
        let id = RequestId("r1".to_owned());
        let accepted = Ok(Outcome::Accepted {
            events: 2,
            duplicates: 1,
        });
        assert_eq!(
            body_text(build(&accepted, &id)).await,
            r#"{"duplicates":1,"events":2,"request_id":"r1","status":"accepted"}"#
        );
        assert_eq!(
            body_text(build(&Ok(Outcome::Heartbeat), &id)).await,
            r#"{"request_id":"r1","status":"ok"}"#
        );
        let failed = build(&Err(Failure::InFlight), &id);
        assert_eq!(failed.status(), StatusCode::CONFLICT);
        assert_eq!(
            body_text(failed).await,
            r#"{"error":"the same event is being processed by another request","request_id":"r1"}"#
        );
    }
}
