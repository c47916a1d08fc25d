//! Stage 5, split: one verified body → the vendor events it carries.
//!
//! Input: the raw body bytes and the source's parser. Output: [`Split`] (a heartbeat, or one
//! [`RawEvent`] per JSON object: a single object, each element of a top-level array, each
//! line of NDJSON, or each record of a JSON text sequence). Fails with [`SplitError`] → 400
//! (413 over the per-request event cap).
//! Each event keeps its exact bytes for `raw_data`.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::parse::doc::Doc;
use crate::parse::{EventKey, Parser, RouteChoice};

mod repair;
use repair::{element_spans, repaired, same_range, without_lone_surrogates};

/// One vendor event; `'b` is the borrow of the request body its parsed strings point into.
#[derive(Debug)]
pub struct RawEvent<'b> {
    /// The event's bytes exactly as received (for a single-object body, the whole body).
    pub raw: Bytes,
    /// The event parsed (its strings borrowed from the body where they have no escapes).
    pub value: Doc<'b>,
    /// Its dedup identity.
    pub key: EventKey,
    /// The parser route it matched (chosen once, with the key).
    pub route: RouteChoice,
}

/// Longest heartbeat body taken as a ping alone (`ping`, `healthcheck from Hyperproof`,
/// `{"type":"heartbeat"}`); a longer heartbeat body, text or JSON, is also kept as a dead letter.
pub const PING_TEXT_BYTES: usize = 64;

/// When `body`, answered as a heartbeat, says more than a ping (over [`PING_TEXT_BYTES`]
/// once trimmed), the dead-letter reason it is kept under: `heartbeat_text` for text,
/// `heartbeat_json` for JSON (a shape the parser does not know as an event: it may be one
/// nobody documented). `None` for a ping.
pub fn heartbeat_says_more_than_a_ping(body: &[u8]) -> Option<&'static str> {
    let text = body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(body)
        .trim_ascii();
    if text.len() <= PING_TEXT_BYTES {
        None
    } else if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok() {
        Some("heartbeat_json")
    } else {
        Some("heartbeat_text")
    }
}

/// What a body holds.
#[derive(Debug)]
pub enum Split<'b> {
    /// The vendor's health call: answer 2xx, emit nothing.
    Heartbeat,
    /// One or more events.
    Events(Vec<RawEvent<'b>>),
}

/// Why a body is not a batch of events.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Sender's fault: no body.
    #[error("request body is empty; expected a JSON object, an array of objects, or NDJSON")]
    Empty,
    /// Sender's fault: not JSON.
    #[error("request body is not valid JSON (line {line}, column {column})")]
    Malformed {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// Sender's fault: JSON nested deeper than serde_json's limit allows (127 arrays and objects
    /// inside one another); no vendor event comes near it.
    #[error("request body nests JSON deeper than 127 levels (line {line}, column {column})")]
    TooDeep {
        /// 1-based line where the limit was passed.
        line: usize,
        /// 1-based column where the limit was passed.
        column: usize,
    },
    /// Sender's fault: valid JSON, but an element is not an object.
    #[error("event {index} is not a JSON object")]
    NotObject {
        /// 0-based position in the batch.
        index: usize,
    },
    /// Sender's fault: an empty JSON array.
    #[error("request body is an empty JSON array")]
    NoEvents,
    /// Sender's fault: more events than the cap.
    #[error("request carries more than {limit} events")]
    TooMany {
        /// The cap.
        limit: usize,
    },
}

impl SplitError {
    /// True when the body is there but holds no readable events (not JSON, nested too deep,
    /// an element not an object): no retry of it can succeed, so the gateway keeps it as a
    /// dead letter before refusing it. (An empty body or array holds nothing to keep; an
    /// oversized batch is events the sender can send in smaller batches.)
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            SplitError::Malformed { .. }
                | SplitError::TooDeep { .. }
                | SplitError::NotObject { .. }
        )
    }

    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SplitError::Empty => "body_empty",
            SplitError::Malformed { .. } => "json_malformed",
            SplitError::TooDeep { .. } => "json_too_deep",
            SplitError::NotObject { .. } => "json_not_object",
            SplitError::NoEvents => "batch_empty",
            SplitError::TooMany { .. } => "batch_too_large",
        }
    }
}

/// The body without a leading UTF-8 byte order mark, which some senders' JSON writers put
/// first and JSON forbids: read as whitespace, not refused (and never taken for text). The
/// signature was checked over the bytes as sent, before this.
pub fn without_bom(body: &Bytes) -> Bytes {
    match body.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => body.slice_ref(rest),
        None => body.clone(),
    }
}

/// Splits `body` into events, keyed by `parser`.
///
/// A leading UTF-8 byte order mark is read as whitespace ([`without_bom`]); the event's raw
/// bytes are still the body as received, mark included.
pub fn events<'b>(
    body: &'b Bytes,
    parser: &Parser,
    headers: &HeaderMap,
    max_events: usize,
) -> Result<Split<'b>, SplitError> {
    let readable = without_bom(body);
    if readable.len() == body.len() {
        return events_of_json(body, parser, headers, max_events);
    }
    let split = events_of_json(&readable, parser, headers, max_events)?;
    // Parts of the rest are parts of the body already; only the whole rest is not the body.
    Ok(owned(split, |raw| {
        if raw.len() == readable.len() {
            body.clone()
        } else {
            raw
        }
    }))
}

/// `split` with its values copied out of the text they borrow, and each event's raw bytes
/// replaced by `raw_of` them.
fn owned(split: Split<'_>, raw_of: impl Fn(Bytes) -> Bytes) -> Split<'static> {
    match split {
        Split::Heartbeat => Split::Heartbeat,
        Split::Events(events) => Split::Events(
            events
                .into_iter()
                .map(|e| RawEvent {
                    raw: raw_of(e.raw),
                    value: Doc::from(e.value.into_value()),
                    key: e.key,
                    route: e.route,
                })
                .collect(),
        ),
    }
}

/// [`events`] of a body without a byte order mark.
///
/// JSON's grammar lets a string escape a lone UTF-16 surrogate (`"\udcff"`: a truncated emoji,
/// a file name's stray byte), which serde_json refuses. Such a body is read again with each
/// lone surrogate as U+FFFD, the replacement character; `raw_data` keeps the bytes as sent.
fn events_of_json<'b>(
    body: &'b Bytes,
    parser: &Parser,
    headers: &HeaderMap,
    max_events: usize,
) -> Result<Split<'b>, SplitError> {
    let split = events_of(body, parser, headers, max_events);
    if !matches!(split, Err(SplitError::Malformed { .. })) {
        return split;
    }
    let Some(readable) = without_lone_surrogates(body) else {
        return split;
    };
    let readable = Bytes::from(readable);
    let split = events_of(&readable, parser, headers, max_events)?;
    // The rewrite keeps every length, so each event's bytes sit at the same offsets of the
    // body as sent.
    Ok(owned(split, |raw| same_range(body, &readable, &raw)))
}

/// [`events_of_json`] without the second reading.
fn events_of<'b>(
    body: &'b Bytes,
    parser: &Parser,
    headers: &HeaderMap,
    max_events: usize,
) -> Result<Split<'b>, SplitError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return if parser.is_heartbeat(None) {
            Ok(Split::Heartbeat)
        } else {
            Err(SplitError::Empty)
        };
    };
    // One UTF-8 check of the whole body; the JSON parser then reads it as text and does not
    // validate each string again. A body that is not UTF-8 takes the byte parser, which
    // reports where it fails.
    let text = std::str::from_utf8(body).ok();
    let mut raws: Vec<Bytes> = Vec::new();
    let mut values: Vec<Doc<'b>> = Vec::new();
    match body.get(start) {
        Some(b'[') => {
            match json_of::<Vec<&RawValue>>(body, text) {
                Ok(elements) => {
                    if elements.is_empty() && parser.is_heartbeat(None) {
                        return Ok(Split::Heartbeat);
                    }
                    check_count(elements.len(), max_events)?;
                    for element in elements {
                        raws.push(slice_of(body, element.get()));
                        values
                            .push(serde_json::from_str(element.get()).map_err(|e| malformed(&e))?);
                    }
                }
                Err(strict) => {
                    // Only a lenient parser gets here with a result. The repair only widens
                    // strings, so the elements are where a scan of the body as sent finds
                    // them; were it ever to disagree, each element keeps the whole body.
                    let Value::Array(elements) = repaired(body, parser, &strict)? else {
                        return Err(malformed(&strict));
                    };
                    check_count(elements.len(), max_events)?;
                    let spans = element_spans(body).filter(|s| s.len() == elements.len());
                    for (i, element) in elements.into_iter().enumerate() {
                        let raw = spans.as_ref().and_then(|s| s.get(i));
                        raws.push(raw.map_or_else(|| body.clone(), |r| body.slice(r.clone())));
                        values.push(Doc::from(element));
                    }
                }
            }
        }
        _ => {
            match json_of(body, text).or_else(|e| repaired(body, parser, &e).map(Doc::from)) {
                Ok(value) => {
                    raws.push(body.clone());
                    values.push(value);
                }
                Err(single_err) => {
                    // Not JSON and with no `{` anywhere: a text health call (`ping`) where
                    // the parser says so. This branch never sees a `[`; a body with a `{` in
                    // it that does not parse (truncated, or an object behind stray bytes) is
                    // refused, so the vendor retries it instead of having an event taken for
                    // a heartbeat.
                    if parser.heartbeat_on_text() && !body.contains(&b'{') {
                        tracing::debug!(bytes = body.len(), "text body taken as a heartbeat");
                        return Ok(Split::Heartbeat);
                    }
                    // Not one JSON document: a JSON text sequence (RFC 7464, `json-seq`: each
                    // record after an RS byte), or NDJSON (one object per non-blank line).
                    let seq = is_json_seq(body);
                    let lines = records(body, seq);
                    let least = if seq { 1 } else { 2 };
                    if lines.len() < least {
                        return Err(single_err);
                    }
                    if lines.len() > max_events {
                        return Err(SplitError::TooMany { limit: max_events });
                    }
                    for (n, line) in lines.into_iter().enumerate() {
                        let value: Doc<'b> = json_of(line, std::str::from_utf8(line).ok())
                            .map_err(|e| malformed_at(&e, n + 1))?;
                        raws.push(body.slice_ref(line));
                        values.push(value);
                    }
                }
            }
        }
    }
    // A health call, or a batch of nothing but health calls (`[{}]`, or NDJSON lines or
    // JSON-seq records that each are one), is one; a batch with any event in it is all
    // events, none dropped.
    if values.iter().all(|v| parser.is_heartbeat(Some(v))) {
        return Ok(Split::Heartbeat);
    }
    let mut events = Vec::with_capacity(values.len());
    for (index, (raw, value)) in raws.into_iter().zip(values).enumerate() {
        if !value.is_object() {
            return Err(SplitError::NotObject { index });
        }
        // A batch under one header id (Svix's `svix-id`) keys its elements `<id>#<index>`.
        let (key, route) = parser.key_and_route(&value, index, headers);
        events.push(RawEvent {
            raw,
            value,
            key,
            route,
        });
    }
    Ok(Split::Events(events))
}

/// ASCII record separator, which opens each record of a JSON text sequence (RFC 7464).
const RS: u8 = 0x1E;

/// True when `body` is a JSON text sequence: its first non-blank byte is RS.
fn is_json_seq(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&RS)
}

/// The non-blank records of a body that is not one JSON document, each an event's exact
/// bytes: a JSON text sequence's (`seq`) records without the whitespace that ends them (a
/// record may span lines), or NDJSON's lines without the CR of a CRLF line end.
fn records(body: &[u8], seq: bool) -> Vec<&[u8]> {
    let blank = |r: &&[u8]| r.iter().all(u8::is_ascii_whitespace);
    if seq {
        return body
            .split(|b| *b == RS)
            .map(<[u8]>::trim_ascii_end)
            .filter(|r| !blank(r))
            .collect();
    }
    body.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|l| !blank(l))
        .collect()
}

/// `bytes` parsed as JSON; from `text` (the same bytes, already known to be UTF-8) when there
/// is one, so serde_json does not validate each string again.
fn json_of<'b, T: serde::Deserialize<'b>>(
    bytes: &'b [u8],
    text: Option<&'b str>,
) -> serde_json::Result<T> {
    match text {
        Some(t) => serde_json::from_str(t),
        None => serde_json::from_slice(bytes),
    }
}

fn check_count(n: usize, max_events: usize) -> Result<(), SplitError> {
    match n {
        0 => Err(SplitError::NoEvents),
        n if n > max_events => Err(SplitError::TooMany { limit: max_events }),
        _ => Ok(()),
    }
}

/// The refusal for a body serde_json could not read: nesting past its limit, or not JSON.
fn malformed(e: &serde_json::Error) -> SplitError {
    malformed_at(e, e.line())
}

/// [`malformed`] at `line` of the body (an NDJSON line is parsed on its own).
fn malformed_at(e: &serde_json::Error, line: usize) -> SplitError {
    let column = e.column();
    // serde_json tells the limit apart only in its message.
    if e.is_syntax() && e.to_string().starts_with("recursion limit exceeded") {
        SplitError::TooDeep { line, column }
    } else {
        SplitError::Malformed { line, column }
    }
}

/// The sub-slice of `body` that `part` (borrowed from it) covers, without copying.
fn slice_of(body: &Bytes, part: &str) -> Bytes {
    body.slice_ref(part.as_bytes())
}

#[cfg(test)]
mod tests;
