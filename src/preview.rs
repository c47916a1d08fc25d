//! `hookgate parse`: run one raw payload through split → parse → normalize, offline, and
//! return the OCSF events (or dead-letter reasons) as JSON lines. The parser author's tool.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use crate::normalize::{self, EventContext};
use crate::parse::{self, Catalog};
use crate::split::{self, Split};

/// Normalizes `body` with parser `vendor`; `headers` are `name: value` strings.
pub fn run(
    vendor: &str,
    dir: Option<&Path>,
    headers: &[String],
    body: Vec<u8>,
) -> Result<Vec<String>, String> {
    let catalog = Catalog::load(dir).map_err(|e| e.to_string())?;
    let parser = catalog.get(vendor).ok_or_else(|| {
        format!(
            "unknown parser {vendor:?}; known: {}",
            catalog.names().join(", ")
        )
    })?;
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
    let body = Bytes::from(body);
    let events = match split::events(&body, &parser, &map, usize::MAX).map_err(|e| e.to_string())? {
        Split::Heartbeat => return Ok(vec![json!({"heartbeat": true}).to_string()]),
        Split::Events(events) => events,
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let raw = std::str::from_utf8(&event.raw).unwrap_or_default();
        let ctx = EventContext {
            source: "cli",
            vendor,
            tenant: "cli",
            request_id: "cli",
            received_at_ms: now_ms,
            auth_scheme: "none",
            headers: &map,
            raw,
        };
        let result = parse::apply(&parser, event.value, event.key, &ctx)
            .map_err(|e| (e.code(), e.to_string()))
            .and_then(|p| normalize::to_ocsf(p, &ctx).map_err(|e| (e.code(), e.to_string())));
        match result {
            Ok(ocsf) => out.push(String::from_utf8_lossy(&ocsf.json).into_owned()),
            Err((code, reason)) => out.push(
                json!({"dead_letter": true, "reason_code": code, "reason": reason}).to_string(),
            ),
        }
    }
    Ok(out)
}
