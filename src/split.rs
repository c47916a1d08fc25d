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
                    // A batch of nothing but health calls (`[{}]`) is one; a batch with any
                    // event in it is all events, none dropped.
                    if values.iter().all(|v| parser.is_heartbeat(Some(v))) {
                        return Ok(Split::Heartbeat);
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
                    if parser.is_heartbeat(Some(&value)) {
                        return Ok(Split::Heartbeat);
                    }
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

/// After strict parsing failed with `strict`: for parsers that allow it, parse again with
/// the strings repaired ([`repair_strings`]; ConnectSecure's own sample has
/// `Corporation\ Product`, and its `body` "may contain multi-line text").
fn repaired(
    body: &Bytes,
    parser: &Parser,
    strict: &serde_json::Error,
) -> Result<Value, SplitError> {
    if !parser.lenient_json() || !strict.is_syntax() {
        return Err(malformed(strict));
    }
    serde_json::from_slice(&repair_strings(body)).map_err(|_| malformed(strict))
}

/// Where the elements of the top-level array in `body` are, each without the whitespace
/// around it, found by bytes alone: strings (a backslash escaping the byte after it, as
/// [`repair_strings`] reads them too), nesting, and the commas between elements. For a body
/// that is not strict JSON but repairs into an array. `None` when it is not that shape.
fn element_spans(body: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let blank = |b: &u8| b.is_ascii_whitespace();
    let open = body
        .iter()
        .position(|b| !blank(b))
        .filter(|&i| body.get(i) == Some(&b'['))?;
    let mut spans = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = open + 1;
    for (i, &b) in body.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    spans.push(trimmed(body, start..i)?);
                    let rest = body.get(i + 1..)?;
                    return rest.iter().all(blank).then_some(spans);
                }
            }
            b',' if depth == 1 => {
                spans.push(trimmed(body, start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// `range` of `body` without the whitespace at its ends; `None` when nothing is left.
fn trimmed(body: &[u8], range: std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    let part = body.get(range.clone())?;
    let lead = part.iter().position(|b| !b.is_ascii_whitespace())?;
    let trail = part.iter().rev().position(|b| !b.is_ascii_whitespace())?;
    Some(range.start + lead..range.end - trail)
}

/// Inside JSON strings, doubles every backslash that does not start a valid escape (`\"`,
/// `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX`) and escapes raw control characters
/// (a templated multi-line value: `\n`, `\r`, `\t`, else `\u00XX`). Bytes outside strings
/// are kept, so whitespace between members stays whitespace.
pub fn repair_strings(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                out.push(b);
            }
            b'\\' => {
                let next = body.get(i).copied();
                let valid = match next {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => true,
                    Some(b'u') => body
                        .get(i + 1..i + 5)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
                    _ => false,
                };
                match next {
                    Some(n) if valid => {
                        out.extend_from_slice(&[b'\\', n]);
                        i += 1;
                    }
                    _ => out.extend_from_slice(b"\\\\"),
                }
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hex = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0');
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out
}

/// `body` with every `\uXXXX` escape of a UTF-16 surrogate that is not half of a high-low
/// pair, inside a string, rewritten as `\ufffd` (six bytes for six, so offsets hold); `None`
/// when it has none.
fn without_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                match surrogate_at(body, i) {
                    Some(0xD800..=0xDBFF)
                        if matches!(surrogate_at(body, i + 6), Some(0xDC00..=0xDFFF)) =>
                    {
                        i += 12;
                        continue;
                    }
                    Some(_) => {
                        let copy = out.get_or_insert_with(|| body.to_vec());
                        if let Some(escape) = copy.get_mut(i..i + 6) {
                            escape.copy_from_slice(b"\\ufffd");
                        }
                        i += 6;
                        continue;
                    }
                    // Any other escape: step over the escaped character too.
                    None => i += 1,
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The UTF-16 code unit of the `\uXXXX` escape at `i`, if it is one of a surrogate.
fn surrogate_at(body: &[u8], i: usize) -> Option<u16> {
    let escape = body.get(i..i + 6)?;
    let hex = escape.strip_prefix(b"\\u")?;
    let unit = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    (0xD800..=0xDFFF).contains(&unit).then_some(unit)
}

/// The part of `body` at the offsets `part` has in `copy` (a same-length rewrite of it).
fn same_range(body: &Bytes, copy: &Bytes, part: &Bytes) -> Bytes {
    let start = (part.as_ptr() as usize).saturating_sub(copy.as_ptr() as usize);
    body.get(start..start + part.len())
        .map_or_else(|| body.clone(), |bytes| body.slice_ref(bytes))
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
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_kept_when_it_says_more_than_a_ping() {
        for quiet in [
            &b""[..],
            b"ping",
            b"  healthcheck from Hyperproof \r\n",
            b"{\"type\":\"heartbeat\"}",
            &[b'x'; 64][..],
        ] {
            assert_eq!(heartbeat_says_more_than_a_ping(quiet), None, "{quiet:?}");
        }
        let long = b"<event><description>Alice deleted control C-7</description></event>";
        assert_eq!(
            heartbeat_says_more_than_a_ping(long),
            Some("heartbeat_text")
        );
        assert_eq!(
            heartbeat_says_more_than_a_ping(&[b'x'; 65]),
            Some("heartbeat_text")
        );
        let json = format!("{{\"type\":\"heartbeat\",\"pad\":\"{}\"}}", "p".repeat(80));
        assert_eq!(
            heartbeat_says_more_than_a_ping(json.as_bytes()),
            Some("heartbeat_json")
        );
        assert_eq!(
            heartbeat_says_more_than_a_ping(format!("\u{feff}{json}").as_bytes()),
            Some("heartbeat_json")
        );
    }

    fn hash_keyed() -> Parser {
        Parser::from_toml(
            "t",
            "[parser]\nproduct = \"T\"\nvendor_name = \"T\"\n[id]\nfrom = [\"id\"]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n",
            "t.toml",
        )
        .unwrap()
    }

    /// Each event's raw bytes and its value (as a `serde_json::Value`, the oracle's type).
    fn split(body: &[u8]) -> Result<Vec<(Bytes, Value)>, SplitError> {
        let body = Bytes::copy_from_slice(body);
        match events(&body, &hash_keyed(), &HeaderMap::new(), 100)? {
            Split::Events(events) => Ok(events
                .into_iter()
                .map(|e| (e.raw, e.value.into_value()))
                .collect()),
            Split::Heartbeat => panic!("no heartbeat rule"),
        }
    }

    #[test]
    fn a_lone_surrogate_escape_is_read_as_the_replacement_character_and_raw_bytes_stay() {
        // A lone low surrogate, a lone high one at a string's end, a valid pair, and an
        // escaped backslash before "udcff" (text, not an escape).
        let body = br#"[{"id":"a","path":"/tmp/bad\udcff name"},{"id":"b","d":"cut \ud83d","ok":"\ud83d\ude00","t":"\\udcff"}]"#;
        let events = split(body).unwrap();
        assert_eq!(events.len(), 2);
        let (raw_a, a) = &events[0];
        assert_eq!(
            raw_a.as_ref(),
            br#"{"id":"a","path":"/tmp/bad\udcff name"}"#
        );
        assert_eq!(a["path"], "/tmp/bad\u{FFFD} name");
        let (raw_b, b) = &events[1];
        assert_eq!(
            raw_b.as_ref(),
            br#"{"id":"b","d":"cut \ud83d","ok":"\ud83d\ude00","t":"\\udcff"}"#
        );
        assert_eq!(b["d"], "cut \u{FFFD}");
        assert_eq!(b["ok"], "\u{1F600}");
        assert_eq!(b["t"], "\\udcff");
        // A single object and NDJSON too; the whole body, or each line, is the raw bytes.
        let one = br#"{"id":"c","x":"\uDC00\uD800"}"#;
        let events = split(one).unwrap();
        assert_eq!(events[0].0.as_ref(), one.as_slice());
        assert_eq!(events[0].1["x"], "\u{FFFD}\u{FFFD}");
        let lines = b"{\"id\":\"d\",\"x\":\"\\udfff\"}\n{\"id\":\"e\"}\n";
        let events = split(lines).unwrap();
        assert_eq!(events[0].0.as_ref(), b"{\"id\":\"d\",\"x\":\"\\udfff\"}");
        // Still refused: a body broken otherwise, even with a lone surrogate in it.
        assert!(matches!(
            split(br#"{"id":"f","x":"\udcff""#),
            Err(SplitError::Malformed { .. })
        ));
    }

    #[test]
    fn a_batch_is_a_heartbeat_only_when_every_element_is_one() {
        let parser = Parser::from_toml(
            "hb",
            "[parser]\nproduct = \"T\"\nvendor_name = \"T\"\nheartbeat_on_empty = true\nheartbeat = { not = { field = \"description\", exists = true } }\n[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n",
            "hb.toml",
        )
        .unwrap();
        let split = |body: &str| {
            let body = Bytes::copy_from_slice(body.as_bytes());
            match events(&body, &parser, &HeaderMap::new(), 100).unwrap() {
                Split::Heartbeat => None,
                Split::Events(events) => Some(events.len()),
            }
        };
        for heartbeat in ["", "{}", "[]", "null", "\"ping\"", "[{}, {\"x\": 1}]"] {
            assert_eq!(split(heartbeat), None, "{heartbeat:?}");
        }
        assert_eq!(split(r#"[{}, {"description": "a"}]"#), Some(2));
        assert_eq!(split(r#"{"description": "a"}"#), Some(1));
        // Without a heartbeat rule, the same shapes are refused, not acknowledged.
        for refused in ["[]", "null"] {
            let body = Bytes::copy_from_slice(refused.as_bytes());
            assert!(events(&body, &hash_keyed(), &HeaderMap::new(), 100).is_err());
        }
    }

    #[test]
    fn a_batch_under_one_header_id_gives_each_element_its_own_key() {
        let catalog = crate::parse::Catalog::load(None).unwrap();
        let hoop = catalog.get("hoop").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("svix-id", "msg_2X".parse().unwrap());
        let keys = |body: &'static str| {
            let body = Bytes::from_static(body.as_bytes());
            match events(&body, &hoop, &headers, 100) {
                Ok(Split::Events(e)) => e.iter().map(|e| e.key.id.clone()).collect::<Vec<_>>(),
                _ => panic!("not events"),
            }
        };
        let batch = r#"[{"event_type":"session.open","a":1},{"event_type":"session.close","a":2},{"event_type":"session.close","a":3}]"#;
        assert_eq!(keys(batch), ["msg_2X", "msg_2X#1", "msg_2X#2"]);
        // A retry of the batch has the same keys (so it is a duplicate), and one event is
        // keyed by the header alone, as before.
        assert_eq!(keys(batch), ["msg_2X", "msg_2X#1", "msg_2X#2"]);
        assert_eq!(keys(r#"{"event_type":"session.open"}"#), ["msg_2X"]);
        // Ids from the body are left as they are.
        let hyprwatch = catalog.get("hyprwatch").unwrap();
        let body =
            Bytes::from_static(br#"[{"id":"evt_1","event":"x"},{"id":"evt_2","event":"x"}]"#);
        let Ok(Split::Events(e)) = events(&body, &hyprwatch, &headers, 100) else {
            panic!("not events");
        };
        assert_eq!(e[1].key.id, "evt_2");
    }

    #[test]
    fn a_text_body_is_a_heartbeat_only_where_the_parser_says_and_never_a_broken_object() {
        let parser = |flag: bool| {
            Parser::from_toml(
                "hb",
                &format!("[parser]\nproduct = \"T\"\nvendor_name = \"T\"\nheartbeat_on_text = {flag}\n[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n"),
                "hb.toml",
            )
            .unwrap()
        };
        let (text_ok, strict) = (parser(true), parser(false));
        let split = |parser: &Parser, body: &[u8]| {
            let body = Bytes::copy_from_slice(body);
            match events(&body, parser, &HeaderMap::new(), 100) {
                Ok(Split::Heartbeat) => Ok(None),
                Ok(Split::Events(events)) => Ok(Some(events.len())),
                Err(e) => Err(e.code()),
            }
        };
        for text in [
            &b"ping"[..],
            b"OK\n",
            b"  heartbeat",
            b"nope",
            b"ping\npong",
            b"\xff\xfe",
        ] {
            assert_eq!(split(&text_ok, text), Ok(None), "{text:?}");
            assert_eq!(split(&strict, text), Err("json_malformed"), "{text:?}");
        }
        // Opening like an object or an array but broken, or an object behind stray bytes:
        // refused, so the vendor retries.
        for broken in [
            &b"{\"description\": \"cut"[..],
            b"[{\"a\":1}",
            b"{ping}",
            b"\xc2\xa0{\"description\": \"a\"}",
            b"x{\"description\": \"a\"}",
        ] {
            assert_eq!(split(&text_ok, broken), Err("json_malformed"), "{broken:?}");
        }
        // A byte order mark is whitespace, not text: the event behind it is an event.
        let bom = Bytes::from_static(b"\xEF\xBB\xBF{\"description\": \"a\"}");
        let body = without_bom(&bom);
        assert_eq!(&body[..], b"{\"description\": \"a\"}");
        assert!(matches!(
            events(&body, &text_ok, &HeaderMap::new(), 100),
            Ok(Split::Events(e)) if e.len() == 1
        ));
        assert_eq!(without_bom(&body), body);
        // Behind the mark too, and the event's raw bytes are the body as received.
        match events(&bom, &text_ok, &HeaderMap::new(), 100) {
            Ok(Split::Events(e)) => {
                assert_eq!(e.len(), 1);
                assert_eq!(e[0].raw, bom);
                assert_eq!(e[0].value.to_value()["description"], "a");
            }
            _ => panic!("the event behind a byte order mark"),
        }
        // In a batch behind the mark, each element is its own bytes.
        let batch = Bytes::from_static(b"\xEF\xBB\xBF[{\"d\": 1}, {\"d\": 2}]");
        match events(&batch, &text_ok, &HeaderMap::new(), 100) {
            Ok(Split::Events(e)) => {
                let raws: Vec<&[u8]> = e.iter().map(|e| e.raw.as_ref()).collect();
                assert_eq!(raws, [&b"{\"d\": 1}"[..], b"{\"d\": 2}"]);
            }
            _ => panic!("a batch behind a byte order mark"),
        }
        // JSON is still read as JSON, and NDJSON of objects is still events.
        assert_eq!(split(&text_ok, b"{\"a\": 1}"), Ok(Some(1)));
        assert_eq!(split(&text_ok, b"{\"a\": 1}\n{\"a\": 2}\n"), Ok(Some(2)));
    }

    #[test]
    fn text_bodies_keep_each_event_exact_bytes_and_non_ascii_values() {
        let array = "[{\"id\":\"é1\",\"m\":\"naïve\"} , {\"id\":\"2\",\"m\":\"\\u00e9\"}]";
        let events = split(array.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            &events[0].0[..],
            "{\"id\":\"é1\",\"m\":\"naïve\"}".as_bytes()
        );
        assert_eq!(events[0].1["m"], "naïve");
        assert_eq!(events[1].1["m"], "é");
        let ndjson = "{\"id\":\"a\",\"m\":\"ü\"}\n{\"id\":\"b\"}\n";
        let events = split(ndjson.as_bytes()).unwrap();
        assert_eq!(events[0].1["m"], "ü");
        assert_eq!(&events[1].0[..], b"{\"id\":\"b\"}");
    }

    #[test]
    fn crlf_lines_and_json_text_sequences_give_each_event_its_own_bytes() {
        let raws = |body: &[u8]| -> Vec<Vec<u8>> {
            split(body)
                .unwrap()
                .into_iter()
                .map(|(raw, _)| raw.to_vec())
                .collect()
        };
        // NDJSON with CRLF line ends: the CR ends the line, it is not the event's.
        assert_eq!(
            raws(b"{\"id\":\"a\"}\r\n{\"id\":\"b\"} \r\n\r\n"),
            [b"{\"id\":\"a\"}".to_vec(), b"{\"id\":\"b\"} ".to_vec()]
        );
        // RFC 7464: RS before each record, LF after it; a record may span lines; one record
        // is a sequence too.
        assert_eq!(
            raws(b"\x1e{\"id\":\"a\"}\n\x1e{\n  \"id\": \"b\"\n}\r\n"),
            [
                b"{\"id\":\"a\"}".to_vec(),
                b"{\n  \"id\": \"b\"\n}".to_vec()
            ]
        );
        assert_eq!(raws(b"\x1e{\"id\":\"a\"}\n"), [b"{\"id\":\"a\"}".to_vec()]);
        // A record that is not JSON is refused, with its position.
        assert!(matches!(
            split(b"\x1e{\"id\":\"a\"}\n\x1e{\"id\":\n"),
            Err(SplitError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn json_nested_past_the_limit_is_too_deep_not_malformed() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        // 126 arrays inside the object: within the limit, an ordinary event.
        assert_eq!(split(deep(126).as_bytes()).map(|e| e.len()).ok(), Some(1));
        assert!(matches!(
            split(deep(127).as_bytes()),
            Err(SplitError::TooDeep { .. })
        ));
        match split(deep(200).as_bytes()) {
            Err(e @ SplitError::TooDeep { line: 1, .. }) => {
                assert_eq!(e.code(), "json_too_deep");
                assert!(e.to_string().contains("deeper than 127 levels"), "{e}");
            }
            other => panic!("expected too deep, got {other:?}"),
        }
        let array = format!("[{}]", deep(200));
        assert!(matches!(
            split(array.as_bytes()),
            Err(SplitError::TooDeep { .. })
        ));
        // In NDJSON, the line is the event's.
        let ndjson = format!("{{\"id\":\"a\"}}\n{}\n", deep(200));
        assert!(matches!(
            split(ndjson.as_bytes()),
            Err(SplitError::TooDeep { line: 2, .. })
        ));
        // Broken JSON stays malformed.
        assert!(matches!(
            split(b"{\"a\":[1,}"),
            Err(SplitError::Malformed { .. })
        ));
    }

    #[test]
    fn a_body_that_is_not_utf8_is_malformed_where_the_bad_byte_is() {
        let mut body = b"{\"id\":\"x\",\"m\":\"".to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(b"\"}");
        match split(&body) {
            Err(SplitError::Malformed { line, column }) => assert_eq!((line, column), (1, 16)),
            other => panic!("expected malformed, got {other:?}"),
        }
        let mut array = b"[{\"id\":\"x\"},{\"m\":\"".to_vec();
        array.extend_from_slice(&[0xc3]);
        array.extend_from_slice(b"\"}]");
        assert!(matches!(split(&array), Err(SplitError::Malformed { .. })));
    }

    #[test]
    fn repairs_only_stray_backslashes_and_raw_control_characters_inside_strings() {
        let fixed = repair_strings(br#"{"b":"Acme\ Product \n \u00e9 \""}"#);
        assert_eq!(fixed, br#"{"b":"Acme\\ Product \n \u00e9 \""}"#.to_vec());
        let v: Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v["b"], "Acme\\ Product \n \u{e9} \"");
        // A templated multi-line value; the whitespace between members stays as it is.
        let body =
            b"{\n\t\"subject\": \"Job\",\r\n \"body\": \"line 1\nline\t2\r\n\x01end \\q\"\n}";
        let fixed = repair_strings(body);
        assert!(serde_json::from_slice::<Value>(body).is_err());
        let v: Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v["body"], "line 1\nline\t2\r\n\u{1}end \\q");
        assert_eq!(v["subject"], "Job");
        assert!(fixed.starts_with(b"{\n\t\"subject\""));
        // Valid JSON comes out unchanged.
        let valid = br#"{"a":"x\"y\\","b":["\u0041\n",1,{"c":"\/"}]}"#;
        assert_eq!(repair_strings(valid), valid.to_vec());
    }

    /// A lenient parser's array that only the repair reads: each element keeps its own bytes
    /// as sent, found where strings, nesting and commas put them.
    #[test]
    fn a_repaired_array_gives_each_element_its_own_bytes() {
        let lenient = Parser::from_toml(
            "t",
            "[parser]\nproduct = \"T\"\nvendor_name = \"T\"\nlenient_json = true\n\
             [id]\nfrom = [\"id\"]\nhash = \"t\"\nwindow = \"1h\"\n\
             [[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n",
            "t.toml",
        )
        .unwrap();
        let elements: [&[u8]; 3] = [
            b"{\"subject\": \"A, [b]\", \"body\": \"Acme\\ Product\nline 2\"}",
            b"{\"subject\": \"q\\\"}\", \"n\": [1, {\"x\": \"]\"}]}",
            b"{\"body\": \"tab\there \\d\"}",
        ];
        let body = [
            b"\n [ ".as_slice(),
            elements[0],
            b" ,\r\n",
            elements[1],
            b",",
            elements[2],
            b" ]\n",
        ]
        .concat();
        assert!(
            serde_json::from_slice::<Value>(&body).is_err(),
            "strict JSON reads it"
        );
        let body = Bytes::from(body);
        let Ok(Split::Events(events)) = events(&body, &lenient, &HeaderMap::new(), 100) else {
            panic!("the repaired array is not split");
        };
        let raws: Vec<&[u8]> = events.iter().map(|e| e.raw.as_ref()).collect();
        assert_eq!(raws, elements);
        assert_eq!(events[1].value.to_value()["subject"], "q\"}");
        // Not an array of that shape: no spans (the caller then keeps the whole body).
        assert_eq!(element_spans(b"[{\"a\": 1}] x"), None);
        assert_eq!(element_spans(b"[{\"a\": 1},]"), None);
        assert_eq!(element_spans(b"{\"a\": [1, 2]}"), None);
    }
}
