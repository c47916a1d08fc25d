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

pub mod json_text;
pub mod ocsf;
pub mod ocsf_paths;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use self::json_text::Added;
use crate::parse::compile::Product;
use crate::parse::fields::{Field, Fields};
use crate::parse::{self, ParsedEvent, Parser};
use crate::sink::{DeadLetter, Record};
use crate::split::RawEvent;

/// Largest normalized event: the spool's largest record, less room for its envelope (names,
/// ids, reason). A larger one is kept as a dead letter instead.
pub const MAX_EVENT_BYTES: usize = crate::spool::MAX_RECORD_BYTES - 64 * 1024;

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
pub fn events(parser: &Parser, fresh: Vec<RawEvent<'_>>, request: &EventContext<'_>) -> Normalized {
    let mut records = Vec::with_capacity(fresh.len());
    let mut published = Vec::with_capacity(fresh.len());
    let mut dead_lettered = 0u64;
    for event in fresh {
        // split produced `raw` from a JSON document serde_json accepted, so it is UTF-8.
        let raw = std::str::from_utf8(&event.raw).unwrap_or_default();
        let ctx = EventContext { raw, ..*request };
        let (uid, window) = (event.key.id.clone(), event.key.window);
        let normalized = parse::apply_routed(parser, event.value, event.key, event.route, &ctx)
            .map_err(|e| (e.code(), e.to_string()))
            .and_then(|parsed| to_ocsf(parsed, &ctx).map_err(|e| (e.code(), e.to_string())));
        // An event too large for any record (a small body whose mapped fields copy much of
        // it, inflated) is kept as a dead letter, its raw bytes being the smaller part.
        let normalized = normalized.and_then(|ocsf| {
            if ocsf.json.len() > MAX_EVENT_BYTES {
                Err((
                    "event_too_large",
                    format!(
                        "the normalized event is {} bytes, over the largest record ({MAX_EVENT_BYTES})",
                        ocsf.json.len()
                    ),
                ))
            } else {
                Ok(ocsf)
            }
        });
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
                    window,
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
    /// How long `uid` is deduplicated (`None`: never).
    pub window: Option<std::time::Duration>,
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

/// Top-level members the gateway always writes itself; a parser value under one of these
/// names is skipped, so none is emitted twice. (`severity`, `severity_id`, `status`, `time`,
/// `metadata` and `unmapped` combine the parser's value with the gateway's and are handled
/// one by one in [`to_ocsf`].)
const GATEWAY_MEMBERS: &[&str] = &[
    "activity_id",
    "activity_name",
    "category_name",
    "category_uid",
    "class_name",
    "class_uid",
    "raw_data",
    "type_name",
    "type_uid",
];

/// Maps `parsed` to OCSF.
///
/// The members every event has (class, category, activity and type with their captions,
/// severity, time, `metadata`, `unmapped.hookgate`, `raw_data`) are written straight into the
/// output buffer, not inserted into the parser's map first: no key or caption is copied into
/// a `String` just to be serialized and dropped again.
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
    let activity_text: &str = match (activity_id, &activity_name) {
        (99, Some(word)) => word,
        _ => caption,
    };

    let status_id = fields.value("status_id").and_then(Value::as_i64);
    let status = match status_id {
        Some(id) if !fields.contains_key("status") => ocsf::status_name(class, id),
        _ => None,
    };
    // Activity classes: Informational, or Low for a failure. Findings: the vendor's severity
    // (mapped by the definition), Informational when it gives none.
    let severity_id = match fields
        .remove("severity_id")
        .as_ref()
        .and_then(Field::as_value)
        .and_then(Value::as_i64)
    {
        Some(s) => s,
        None if !class.finding && status_id == Some(2) => 2,
        None => 1,
    };
    // A severity id without a caption keeps whatever caption the parser mapped.
    let severity = ocsf::severity_name(severity_id);
    if severity.is_some() {
        fields.remove("severity");
    }
    let time = fields
        .remove("time")
        .as_ref()
        .and_then(Field::as_value)
        .and_then(Value::as_i64)
        .unwrap_or(ctx.received_at_ms);

    let metadata = fields.remove("metadata").map(object).unwrap_or_default();

    if let Some(extra) = fields.remove("unmapped").map(object) {
        for (k, v) in extra.into_members() {
            unmapped.get_or_insert_with(k, || v);
        }
    }
    unmapped.remove("hookgate");

    // One buffer, sized up front; `raw_data` is written last straight from the borrowed bytes.
    // The escaper reserves room for the worst case (6 bytes per byte of `raw_data`) before
    // it writes, so a smaller buffer would be reallocated, and copied, for every event.
    let mut json = Vec::with_capacity(7 * ctx.raw.len() + 1024);
    let mut out = Members::open(&mut json);
    out.member("activity_id", &activity_id)?;
    out.member_str("activity_name", activity_text);
    out.member_str("category_name", class.category_name);
    out.member("category_uid", &class.category_uid)?;
    out.member_str("class_name", class.name);
    out.member("class_uid", &class.uid)?;
    // A parser value under a gateway member's name is skipped, not removed from the map
    // first: a slice of nine names compares lengths before bytes, a map removal does not.
    for (k, v) in fields.iter().filter(|(k, _)| !GATEWAY_MEMBERS.contains(k)) {
        out.member_field(k, v);
    }
    out.key("metadata");
    write_metadata(out.out, &metadata, &product, &key.id, ctx.tenant);
    if let Some(s) = severity {
        out.member_str("severity", s);
    }
    out.member("severity_id", &severity_id)?;
    if let Some(s) = status {
        out.member_str("status", s);
    }
    out.member("time", &time)?;
    out.member_captions("type_name", &[class.name, ": ", caption]);
    out.member("type_uid", &(i64::from(class.uid) * 100 + activity_id))?;
    let gateway = Gateway {
        source: ctx.source,
        request_id: ctx.request_id,
        received_time: ctx.received_at_ms,
        auth_scheme: ctx.auth_scheme,
    };
    out.member_object("unmapped", &unmapped, |json| {
        if !unmapped.is_empty() {
            json.push(b',');
        }
        json.extend_from_slice(b"\"hookgate\":");
        serde_json::to_writer(json, &gateway)
    })?;
    // Where mapped fields copied much of the event (ConnectSecure's `body`), the escaper's
    // reservation below would double the buffer: reserve exactly what it asks for instead.
    out.out.reserve_exact(6 * ctx.raw.len() + 64);
    out.member_str("raw_data", ctx.raw);
    out.close();
    // The event outlives this call (spool queue, status lookback): it keeps what it uses, not
    // the escaper's worst case.
    json.shrink_to_fit();
    Ok(OcsfEvent {
        window: key.window,
        uid: key.id,
        class_uid: class.uid,
        class_name: class.name,
        json: Bytes::from(json),
    })
}

/// `metadata`: what the parser mapped, with the gateway's members merged in as it is written:
/// `product.name` and `product.vendor_name`, `uid` (the dedup id) and `version` over the
/// parser's, `tenant_uid` the source's tenant unless the parser mapped one.
fn write_metadata(
    out: &mut Vec<u8>,
    parsed: &Fields<'_>,
    product: &Product,
    uid: &str,
    tenant: &str,
) {
    let name = |out: &mut Vec<u8>, _: Option<&Field<'_>>| json_text::write_str(out, &product.name);
    let vendor =
        |out: &mut Vec<u8>, _: Option<&Field<'_>>| json_text::write_str(out, &product.vendor_name);
    let product_members = [
        Added {
            key: "name",
            parser_wins: false,
            write: &name,
        },
        Added {
            key: "vendor_name",
            parser_wins: false,
            write: &vendor,
        },
    ];
    let product = |out: &mut Vec<u8>, parsed: Option<&Field<'_>>| match parsed {
        Some(Field::Object(p)) => json_text::write_merged(out, p, &product_members),
        // A whole object mapped as `metadata.product` (rare): its members copied over.
        Some(Field::Value(Value::Object(p))) => {
            json_text::write_merged(out, &Fields::from_map(p.clone()), &product_members)
        }
        _ => json_text::write_merged(out, &Fields::new(), &product_members),
    };
    let tenant = |out: &mut Vec<u8>, _: Option<&Field<'_>>| json_text::write_str(out, tenant);
    let uid = |out: &mut Vec<u8>, _: Option<&Field<'_>>| json_text::write_str(out, uid);
    let version =
        |out: &mut Vec<u8>, _: Option<&Field<'_>>| json_text::write_str(out, OCSF_VERSION);
    json_text::write_merged(
        out,
        parsed,
        &[
            Added {
                key: "product",
                parser_wins: false,
                write: &product,
            },
            Added {
                key: "tenant_uid",
                parser_wins: true,
                write: &tenant,
            },
            Added {
                key: "uid",
                parser_wins: false,
                write: &uid,
            },
            Added {
                key: "version",
                parser_wins: false,
                write: &version,
            },
        ],
    );
}

/// Writes the members of one JSON object into a buffer, in the order given.
struct Members<'b> {
    out: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Members<'b> {
    fn open(out: &'b mut Vec<u8>) -> Members<'b> {
        out.push(b'{');
        Members { out, first: true }
    }

    /// Writes `"key":`, after a comma unless it is the first member.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        json_text::write_str(self.out, key);
        self.out.push(b':');
    }

    /// A number member (serde_json's integer formatting).
    fn member<V: serde::Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &V,
    ) -> Result<(), NormalizeError> {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value).map_err(NormalizeError::Serialize)
    }

    /// A string member. `raw_data` (the vendor's JSON text, quotes and all) is the longest
    /// string of every event; escaping it with SIMD rather than serde_json's byte-at-a-time
    /// loop was the largest single saving of normalizing.
    fn member_str(&mut self, key: &str, value: &str) {
        self.key(key);
        json_text::write_str(self.out, value);
    }

    /// A string member joined from static OCSF captions, copied as they are: every caption
    /// in `ocsf.rs` is plain text that JSON needs no escape for (a test checks them all).
    fn member_captions(&mut self, key: &str, parts: &[&'static str]) {
        self.key(key);
        self.out.push(b'"');
        for part in parts {
            self.out.extend_from_slice(part.as_bytes());
        }
        self.out.push(b'"');
    }

    /// A member whose value the parser built.
    fn member_field(&mut self, key: &str, value: &Field<'_>) {
        self.key(key);
        json_text::write_field(self.out, value);
    }

    /// An object member: the entries of `map`, then what `more` appends before the brace.
    fn member_object(
        &mut self,
        key: &str,
        map: &Fields<'_>,
        more: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<(), NormalizeError> {
        self.key(key);
        self.out.push(b'{');
        json_text::write_fields(self.out, map);
        more(self.out).map_err(NormalizeError::Serialize)?;
        self.out.push(b'}');
        Ok(())
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// A parser-built object member as an object of the tree (a leaf object's keys moved over);
/// empty when the parser put something else there.
fn object(field: Field<'_>) -> Fields<'_> {
    match field {
        Field::Object(fields) => fields,
        Field::Value(Value::Object(map)) => Fields::from_map(map),
        Field::Value(_) | Field::Text(_) => Fields::new(),
    }
}

/// `unmapped.hookgate`.
#[derive(serde::Serialize)]
struct Gateway<'a> {
    source: &'a str,
    request_id: &'a str,
    received_time: i64,
    auth_scheme: &'a str,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use http::HeaderMap;
    use serde_json::{json, Value};

    use super::*;

    /// Top-level member names in order, duplicates included (a `Value` would hide them).
    fn top_level_keys(json: &[u8]) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Keys;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some((k, _)) =
                            map.next_entry::<String, serde::de::IgnoredAny>()?
                        {
                            keys.push(k);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_slice::<Keys>(json).unwrap().0
    }

    /// `event` (JSON text) through a parser of `definition` and `to_ocsf`, with `raw` as its
    /// exact bytes.
    fn ocsf_of(definition: &str, event: &str, raw: &str) -> OcsfEvent {
        let text = format!("[parser]\nproduct = \"P\"\nvendor_name = \"V\"\n{definition}");
        let parser = Parser::from_toml("t", &text, "t.toml").unwrap();
        let headers = HeaderMap::new();
        let event = parse::doc::Doc::parse(event).unwrap();
        let key = parser.event_key(&event, &headers);
        let ctx = EventContext {
            source: "src",
            vendor: "t",
            tenant: "tenant-1",
            request_id: "req-1",
            received_at_ms: 1_700_000_000_000,
            auth_scheme: "hmac",
            headers: &headers,
            raw,
        };
        let parsed = parse::apply(&parser, event, key, &ctx).unwrap();
        to_ocsf(parsed, &ctx).unwrap()
    }

    fn normalize(definition: &str, event: Value, raw: &str) -> Value {
        let ocsf = ocsf_of(definition, &event.to_string(), raw);
        let keys = top_level_keys(&ocsf.json);
        let mut seen = BTreeMap::new();
        for k in &keys {
            *seen.entry(k.clone()).or_insert(0) += 1;
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "duplicate members: {keys:?}"
        );
        let value: Value = serde_json::from_slice(&ocsf.json).unwrap();
        // `metadata` is written merged, in key order: exactly serde_json's text of its value
        // (so no key twice at any level).
        let raw: BTreeMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&ocsf.json).unwrap();
        assert_eq!(
            raw["metadata"].get(),
            serde_json::to_string(&value["metadata"]).unwrap()
        );
        value
    }

    #[test]
    fn parser_metadata_is_merged_with_the_gateway_s() {
        let definition = r#"
[id]
from = ["id"]
window = "1h"

[[route]]
name = "any"
class = 3002
activity = 1
map = [
  { to = "metadata.uid", const = "spoofed" },
  { to = "metadata.version", const = "0.1" },
  { to = "metadata.tenant_uid", from = "tenant" },
  { to = "metadata.product.name", const = "spoofed" },
  { to = "metadata.product.lang", const = "en" },
  { to = "metadata.correlation_uid", const = 1 },
  { to = "metadata.untruncated_size", const = 2 },
]
"#;
        let raw = r#"{"id":"e1","tenant":"acme"}"#;
        let e = normalize(definition, serde_json::from_str(raw).unwrap(), raw);
        assert_eq!(
            e["metadata"],
            json!({
                "correlation_uid": 1,
                "product": {"lang": "en", "name": "P", "vendor_name": "V"},
                "tenant_uid": "acme",
                "uid": "e1",
                "untruncated_size": 2,
                "version": OCSF_VERSION
            })
        );
        let e = normalize(
            "[id]\nfrom = [\"id\"]\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 3002\nactivity = 1\n\
             map = [ { to = \"metadata.product\", const = \"flat\" } ]\n",
            json!({"id": "e2"}),
            "{}",
        );
        assert_eq!(
            e["metadata"]["product"],
            json!({"name": "P", "vendor_name": "V"})
        );
    }

    #[test]
    fn gateway_members_win_over_parser_values_and_appear_once() {
        let definition = r#"
[id]
from = ["id"]
window = "1h"

[[route]]
name = "login"
class = 3002
activity = 1
map = [
  { to = "class_name", const = "spoofed" },
  { to = "raw_data", const = "spoofed" },
  { to = "type_uid", const = 1 },
  { to = "time", from = "when" },
  { to = "status_id", const = 2 },
  { to = "unmapped.hookgate", const = "spoofed" },
  { to = "unmapped.extra", from = "extra" },
  { to = "metadata.event_code", from = "code" },
  { to = "user.name", from = "who" },
]
"#;
        let raw = r#"{"id":"e1","when":"yesterday","extra":"x","code":"LOGIN","who":"ann"}"#;
        let e = normalize(definition, serde_json::from_str(raw).unwrap(), raw);
        assert_eq!(e["class_uid"], 3002);
        assert_eq!(e["class_name"], "Authentication");
        assert_eq!(e["category_uid"], 3);
        assert_eq!(e["activity_id"], 1);
        assert_eq!(e["activity_name"], "Logon");
        assert_eq!(e["type_uid"], 300201);
        assert_eq!(e["type_name"], "Authentication: Logon");
        assert_eq!(e["raw_data"], raw);
        // Not an epoch-ms integer: the receive time instead.
        assert_eq!(e["time"], 1_700_000_000_000i64);
        // A failure with no vendor severity is Low; its status caption is added.
        assert_eq!(
            (e["severity_id"].clone(), e["severity"].clone()),
            (json!(2), json!("Low"))
        );
        assert_eq!(e["status"], "Failure");
        assert_eq!(e["user"]["name"], "ann");
        assert_eq!(e["metadata"]["uid"], "e1");
        assert_eq!(e["metadata"]["event_code"], "LOGIN");
        assert_eq!(e["metadata"]["tenant_uid"], "tenant-1");
        assert_eq!(e["metadata"]["version"], OCSF_VERSION);
        assert_eq!(
            e["metadata"]["product"],
            json!({"name": "P", "vendor_name": "V"})
        );
        assert_eq!(e["unmapped"]["extra"], "x");
        assert_eq!(
            e["unmapped"]["hookgate"],
            json!({"source": "src", "request_id": "req-1", "received_time": 1_700_000_000_000i64, "auth_scheme": "hmac"})
        );
    }

    #[test]
    fn an_event_holds_the_memory_of_its_text_not_of_the_escaper_s_worst_case() {
        let definition = "[id]\nfrom = [\"id\"]\nwindow = \"1h\"\n\
                          [[route]]\nname = \"any\"\nclass = 3002\nactivity = 1\n";
        // A large event (a status lookback keeps 20 per source).
        let raw = serde_json::to_string(&json!({"id": "e1", "rows": vec!["x".repeat(100); 640]}))
            .unwrap();
        let json = ocsf_of(definition, &raw, &raw).json;
        let len = json.len();
        assert!(len > raw.len());
        let held = json.try_into_mut().unwrap().capacity();
        assert!(held < len + len / 8, "{held} bytes held for {len}");
    }

    #[test]
    fn a_vendor_severity_and_an_epoch_time_are_kept() {
        let definition = r#"
[id]
from = ["id"]
window = "1h"

[[route]]
name = "finding"
class = 2004
activity = 1
map = [
  { to = "severity_id", const = 4 },
  { to = "time", from = "at", convert = "epoch_ms" },
  { to = "finding_info.title", from = "title" },
  { to = "finding_info.uid", from = "id" },
]
"#;
        let raw = r#"{"id":"f1","at":1700000000123,"title":"Port opened"}"#;
        let e = normalize(definition, serde_json::from_str(raw).unwrap(), raw);
        assert_eq!(e["severity_id"], 4);
        assert_eq!(e["severity"], "High");
        assert_eq!(e["time"], 1_700_000_000_123i64);
        assert!(e.get("status").is_none());
    }
}
