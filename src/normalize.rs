//! Stage 8, normalize: a parsed vendor event → one OCSF 1.8.0 event.
//!
//! Input: [`ParsedEvent`] (class, activity and mapped fields from the parser) plus the
//! request's [`EventContext`]. Output: [`OcsfEvent`] (already serialized, ready for any sink).
//! Here the rules common to every vendor are applied once: captions beside every id,
//! `type_uid = class_uid*100 + activity_id`, the severity rule, `time` defaulting to the
//! receive time, `metadata` (version, product, uid = dedup key, tenant), `raw_data` = the
//! event's exact bytes, and the gateway's own context under `unmapped.hookgate`.
//! Fails with [`NormalizeError`]; the pipeline dead-letters such an event. Never adds a
//! top-level attribute the class does not define.

pub mod ocsf;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::parse::{self, ParsedEvent, Parser};
use crate::sink::{DeadLetter, Record};
use crate::split::RawEvent;

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

/// One request's events after parse and normalize, in request order.
#[derive(Debug)]
pub struct Normalized {
    /// What goes to the sink: OCSF events and dead letters.
    pub records: Vec<Record>,
    /// (class name, JSON) of each OCSF event, for metrics and the status lookback once durable.
    pub published: Vec<(&'static str, Bytes)>,
    /// How many events became dead letters.
    pub dead_lettered: u64,
}

/// Stages 7–8 for a whole request: parse and normalize each event with `parser`. An event
/// that cannot be mapped becomes a dead letter with its raw bytes and the reason, never a drop.
/// `request` is the request-wide context; each event's own raw bytes are filled in here.
pub fn events(parser: &Parser, fresh: Vec<RawEvent>, request: &EventContext<'_>) -> Normalized {
    let mut records = Vec::with_capacity(fresh.len());
    let mut published = Vec::with_capacity(fresh.len());
    let mut dead_lettered = 0u64;
    for event in fresh {
        // split produced `raw` from a JSON document serde_json accepted, so it is UTF-8.
        let raw = std::str::from_utf8(&event.raw).unwrap_or_default();
        let ctx = EventContext { raw, ..*request };
        let uid = event.key.id.clone();
        let normalized = parse::apply_routed(parser, event.value, event.key, event.route, &ctx)
            .map_err(|e| (e.code(), e.to_string()))
            .and_then(|parsed| to_ocsf(parsed, &ctx).map_err(|e| (e.code(), e.to_string())));
        match normalized {
            Ok(ocsf) => {
                published.push((ocsf.class_name, ocsf.json.clone()));
                records.push(Record::Event(ocsf));
            }
            Err((reason_code, reason)) => {
                tracing::warn!(reason = reason_code, "event dead-lettered");
                dead_lettered += 1;
                records.push(Record::DeadLetter(DeadLetter {
                    uid,
                    reason_code,
                    reason,
                    raw: event.raw,
                }));
            }
        }
    }
    Normalized {
        records,
        published,
        dead_lettered,
    }
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
    /// Parser author's fault: a computed activity id the class does not define.
    #[error("class {class_uid} has no activity {activity_id}")]
    UnknownActivity {
        /// Class.
        class_uid: u32,
        /// Activity computed by the parser.
        activity_id: i64,
    },
}

impl NormalizeError {
    /// Bounded label for logs, metrics and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            NormalizeError::Serialize(_) => "serialize",
            NormalizeError::UnknownActivity { .. } => "unknown_activity",
        }
    }
}

/// Maps `parsed` to OCSF.
pub fn to_ocsf(parsed: ParsedEvent, ctx: &EventContext<'_>) -> Result<OcsfEvent, NormalizeError> {
    let ParsedEvent {
        key,
        class,
        activity_id,
        activity_name,
        mut fields,
        mut unmapped,
        product,
        ..
    } = parsed;
    let caption =
        ocsf::activity_name(class, activity_id).ok_or(NormalizeError::UnknownActivity {
            class_uid: class.uid,
            activity_id,
        })?;
    let activity_text = match (activity_id, activity_name) {
        (99, Some(word)) => word,
        _ => caption.to_owned(),
    };
    let mut put = |k: &str, v: Value| {
        fields.insert(k.to_owned(), v);
    };
    put("class_uid", Value::from(class.uid));
    put("class_name", Value::from(class.name));
    put("category_uid", Value::from(class.category_uid));
    put("category_name", Value::from(class.category_name));
    put("activity_id", Value::from(activity_id));
    put("activity_name", Value::from(activity_text));
    put(
        "type_uid",
        Value::from(i64::from(class.uid) * 100 + activity_id),
    );
    put(
        "type_name",
        Value::from(format!("{}: {caption}", class.name)),
    );

    let status_id = fields.get("status_id").and_then(Value::as_i64);
    if let Some(id) = status_id {
        if !fields.contains_key("status") {
            if let Some(s) = ocsf::status_name(class, id) {
                fields.insert("status".into(), Value::from(s));
            }
        }
    }
    // Activity classes: Informational, or Low for a failure. Findings: the vendor's severity
    // (mapped by the definition), Informational when it gives none.
    let severity_id = match fields.get("severity_id").and_then(Value::as_i64) {
        Some(s) => s,
        None if !class.finding && status_id == Some(2) => 2,
        None => 1,
    };
    fields.insert("severity_id".into(), Value::from(severity_id));
    if let Some(s) = ocsf::severity_name(severity_id) {
        fields.insert("severity".into(), Value::from(s));
    }
    if !fields.get("time").is_some_and(Value::is_i64) {
        fields.insert("time".into(), Value::from(ctx.received_at_ms));
    }

    let mut metadata = match fields.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut prod = match metadata.remove("product") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    prod.insert("name".into(), Value::from(product.name.as_str()));
    prod.insert(
        "vendor_name".into(),
        Value::from(product.vendor_name.as_str()),
    );
    metadata.insert("product".into(), Value::Object(prod));
    metadata.insert("version".into(), Value::from(OCSF_VERSION));
    metadata.insert("uid".into(), Value::from(key.id.as_str()));
    metadata
        .entry("tenant_uid")
        .or_insert_with(|| Value::from(ctx.tenant));
    fields.insert("metadata".into(), Value::Object(metadata));

    if let Some(Value::Object(extra)) = fields.remove("unmapped") {
        for (k, v) in extra {
            unmapped.entry(k).or_insert(v);
        }
    }
    unmapped.insert(
        "hookgate".into(),
        json!({
            "source": ctx.source,
            "request_id": ctx.request_id,
            "received_time": ctx.received_at_ms,
            "auth_scheme": ctx.auth_scheme,
        }),
    );
    fields.insert("unmapped".into(), Value::Object(unmapped));

    // `raw_data` is appended as the last member straight from the borrowed bytes: no copy of
    // the (possibly large) body into the map. One buffer, sized up front.
    let mut json = Vec::with_capacity(2 * ctx.raw.len() + 1024);
    serde_json::to_writer(&mut json, &fields).map_err(NormalizeError::Serialize)?;
    if json.last() == Some(&b'}') {
        json.pop();
        if fields.is_empty() {
            json.extend_from_slice(b"\"raw_data\":");
        } else {
            json.extend_from_slice(b",\"raw_data\":");
        }
        serde_json::to_writer(&mut json, ctx.raw).map_err(NormalizeError::Serialize)?;
        json.push(b'}');
    }
    Ok(OcsfEvent {
        uid: key.id,
        class_uid: class.uid,
        class_name: class.name,
        json: Bytes::from(json),
    })
}
