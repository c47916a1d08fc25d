//! Stage 8, normalize: a parsed vendor event → one OCSF 1.8.0 event.
//!
//! Input: [`ParsedEvent`] plus the request's [`EventContext`]. Output: [`OcsfEvent`] (already
//! serialized, ready for any sink). Fails with [`NormalizeError`]; the pipeline dead-letters
//! such an event. `raw_data` always holds the event's exact bytes as received.
//!
//! FOUNDATION CUT (issue #4 replaces it with the per-vendor mapping): every event becomes a
//! Base Event (class 0, activity 99 "Other") with the vendor payload under `unmapped`.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::parse::ParsedEvent;

/// OCSF schema version every event is written against.
pub const OCSF_VERSION: &str = "1.8.0";

/// What the gateway knows about the request an event came in.
#[derive(Debug, Clone, Copy)]
pub struct EventContext<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor (parser) name.
    pub vendor: &'a str,
    /// Tenant id from the source config.
    pub tenant: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// Receive time, epoch milliseconds.
    pub received_at_ms: i64,
    /// Authentication scheme that passed.
    pub auth_scheme: &'static str,
    /// Request headers (e.g. the Svix message id and timestamp).
    pub headers: &'a HeaderMap,
    /// The event's exact bytes as received.
    pub raw: &'a str,
}

/// One normalized event, serialized.
#[derive(Debug, Clone)]
pub struct OcsfEvent {
    /// `metadata.uid`: the dedup id, also the Kafka message key.
    pub uid: String,
    /// `class_uid`.
    pub class_uid: u32,
    /// `class_name`.
    pub class_name: &'static str,
    /// The event as JSON text.
    pub json: Bytes,
}

/// Why an event could not be normalized.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// Gateway's fault: serialization failed.
    #[error("cannot serialize OCSF event")]
    Serialize(#[source] serde_json::Error),
}

impl NormalizeError {
    /// Bounded label for logs, metrics and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            NormalizeError::Serialize(_) => "serialize",
        }
    }
}

/// Maps `parsed` to OCSF.
pub fn to_ocsf(parsed: ParsedEvent, ctx: &EventContext<'_>) -> Result<OcsfEvent, NormalizeError> {
    let event_code = parsed
        .event
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let value = json!({
        "class_uid": 0,
        "class_name": "Base Event",
        "category_uid": 0,
        "category_name": "Uncategorized",
        "activity_id": 99,
        "activity_name": event_code,
        "type_uid": 99,
        "type_name": "Base Event: Other",
        "severity_id": 1,
        "severity": "Informational",
        "time": ctx.received_at_ms,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": parsed.key.id,
            "event_code": event_code,
            "tenant_uid": ctx.tenant,
            "product": { "name": ctx.vendor, "vendor_name": ctx.vendor },
        },
        "raw_data": ctx.raw,
        "unmapped": {
            "payload": parsed.event,
            "hookgate": {
                "source": ctx.source,
                "request_id": ctx.request_id,
                "received_time": ctx.received_at_ms,
                "auth_scheme": ctx.auth_scheme,
            },
        },
    });
    let json = serde_json::to_vec(&value).map_err(NormalizeError::Serialize)?;
    Ok(OcsfEvent {
        uid: parsed.key.id,
        class_uid: 0,
        class_name: "Base Event",
        json: Bytes::from(json),
    })
}
