//! `hookgate parse`: run raw payloads through split → parse → normalize, offline, and return
//! the OCSF events (or heartbeat / dead-letter notes) as JSON lines. The parser author's tool,
//! and the in-process path the fixture test uses.
//!
//! Input: a parser, `name: value` header strings, payload bytes, a receive time. Output: one
//! JSON text per event. Fails (→ exit 64) only on unusable input: unknown parser, malformed
//! header, a body split rejects; an event the parser cannot map becomes a `dead_letter` line,
//! exactly as the gateway would dead-letter it. Never touches the network.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use crate::normalize::{self, EventContext};
use crate::parse::{Catalog, Parser};
use crate::sink::Record;
use crate::split::{self, Split};

/// Context values the preview reports as the gateway's (source, tenant, request id).
pub const PREVIEW_SOURCE: &str = "cli";

/// Normalizes each of `bodies` in order with parser `vendor` (one parser instance, so a
/// Hoop `session.open` in an earlier body fills the cache for a later `session.close`).
/// `received_at_ms` = None uses the clock.
pub fn run(
    vendor: &str,
    dir: Option<&Path>,
    headers: &[String],
    bodies: Vec<Vec<u8>>,
    received_at_ms: Option<i64>,
) -> Result<Vec<String>, String> {
    let catalog = Catalog::load(dir).map_err(|e| e.to_string())?;
    let parser = catalog.get(vendor).ok_or_else(|| {
        format!(
            "unknown parser {vendor:?}; known: {}",
            catalog.names().join(", ")
        )
    })?;
    let map = header_map(headers)?;
    let now_ms = received_at_ms.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    });
    let mut out = Vec::new();
    for body in bodies {
        out.extend(render(&parser, &map, Bytes::from(body), now_ms)?);
    }
    Ok(out)
}

/// `name: value` strings → a header map.
pub fn header_map(headers: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not `name: value`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| format!("header {name:?}: {e}"))?;
        let value =
            HeaderValue::from_str(value.trim()).map_err(|e| format!("header value: {e}"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// One body through split → parse → normalize, as the pipeline would, with a fixed context.
pub fn render(
    parser: &Parser,
    headers: &HeaderMap,
    body: Bytes,
    received_at_ms: i64,
) -> Result<Vec<String>, String> {
    let events =
        match split::events(&body, parser, headers, usize::MAX).map_err(|e| e.to_string())? {
            Split::Heartbeat => return Ok(vec![json!({"heartbeat": true}).to_string()]),
            Split::Events(events) => events,
        };
    let request = EventContext {
        source: PREVIEW_SOURCE,
        vendor: parser.name(),
        tenant: PREVIEW_SOURCE,
        request_id: PREVIEW_SOURCE,
        received_at_ms,
        auth_scheme: "none",
        headers,
        raw: "",
    };
    // The same stage call as the pipeline, so the preview cannot drift from the gateway.
    let out = normalize::events(parser, events, &request)
        .records
        .into_iter()
        .map(|record| match record {
            Record::Event(ocsf) => String::from_utf8_lossy(&ocsf.json).into_owned(),
            Record::DeadLetter(d) => json!({
                "dead_letter": true,
                "reason_code": d.reason_code,
                "reason": d.reason,
            })
            .to_string(),
        })
        .collect();
    Ok(out)
}
