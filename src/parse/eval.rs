//! Apply a compiled route to one event: conditions, regex extractions, value specs,
//! conversions, lookups and list builders.
//!
//! Input: the event JSON and its [`Scope`]. Output: values written into the OCSF field map.
//! Never fails on odd input: a value that does not convert is simply absent (the vendor data
//! stays in `raw_data`). Never panics.

use std::borrow::Cow;
use std::net::IpAddr;

use http::HeaderMap;
use serde_json::{Map, Value};

use super::compile::{
    Aggregate, Cond, ContextField, Convert, List, LookupMode, Mapping, Piece, Source, Spec,
    Subject, Test,
};
use super::doc::Doc;
use super::fields::{Field, Fields, Found};
use super::path::InPath;

/// Everything a value spec may read.
pub struct Scope<'a> {
    /// The vendor event.
    pub body: &'a Doc<'a>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Named captures.
    pub captures: &'a Captures<'a>,
    /// The current list item.
    pub item: Option<&'a Doc<'a>>,
    /// Receive time, epoch ms.
    pub received_at_ms: i64,
    /// The event id.
    pub uid: &'a str,
    /// Tenant.
    pub tenant: &'a str,
    /// Source name.
    pub source: &'a str,
}

/// The named regex captures of one event, and inside a text list those of its segment.
/// An event has a handful, so a vector searched by name costs less than hashing each name;
/// a segment's captures sit over the event's instead of copying them.
#[derive(Debug, Default)]
pub struct Captures<'a> {
    /// (name, value), names borrowed from the compiled regexes.
    entries: Vec<(&'a str, Value)>,
    /// The event's captures, under a segment's: read when the segment has no such name.
    under: Option<&'a Captures<'a>>,
}

impl<'a> Captures<'a> {
    /// A segment's captures over the event's `under`.
    pub fn over(under: &'a Captures<'a>) -> Captures<'a> {
        Captures {
            entries: Vec::new(),
            under: Some(under),
        }
    }

    /// The value captured as `name`, the segment's before the event's.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .or_else(|| self.under.and_then(|u| u.get(name)))
    }

    fn at(&mut self, name: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Captures `value` as `name` unless this level holds one already (the first match wins).
    pub fn keep_first(&mut self, name: &'a str, value: impl FnOnce() -> Value) {
        if self.at(name).is_none() {
            self.entries.push((name, value()));
        }
    }

    /// Captures `value` as `name`, replacing what this level holds under it.
    pub fn set(&mut self, name: &'a str, value: Value) {
        match self.at(name) {
            Some(slot) => *slot = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Appends `value` to the list captured as `name` (an `all` extraction), starting the list
    /// when there is none; a single value captured first under the name stays as it is.
    pub fn append(&mut self, name: &'a str, value: Value) {
        match self.at(name) {
            Some(Value::Array(items)) => items.push(value),
            Some(_) => {}
            None => self.entries.push((name, Value::Array(vec![value]))),
        }
    }
}

/// The named groups of `re` that took part in the match `c`, with their names. By group
/// index: looking a group up by name hashes the name for every group of every match.
pub fn named_groups<'r: 'c, 'c, 'h>(
    re: &'r regex::Regex,
    c: &'c regex::Captures<'h>,
) -> impl Iterator<Item = (&'r str, regex::Match<'h>)> + 'c {
    re.capture_names()
        .enumerate()
        .filter_map(|(i, name)| Some((name?, c.get(i)?)))
}

/// Text of a scalar (strings unquoted); `None` for arrays/objects/null.
fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn present(v: &Value) -> bool {
    !matches!(v, Value::Null) && v.as_str() != Some("")
}

/// What a test needs of a capture or an output value: whether it is present, and its text.
fn of_value(v: Option<&Value>) -> (bool, Option<Cow<'_, str>>) {
    (v.is_some_and(present), v.and_then(text))
}

/// [`of_value`] of what an output path found: an object built by paths is present, no text.
fn of_found(found: Option<Found<'_>>) -> (bool, Option<Cow<'_, str>>) {
    match found {
        Some(Found::Value(v)) => of_value(Some(v)),
        Some(Found::Text(s)) => (!s.is_empty(), Some(Cow::Borrowed(s))),
        Some(Found::Object) => (true, None),
        None => (false, None),
    }
}

/// Evaluates a condition.
pub fn holds(cond: &Cond, scope: &Scope<'_>, out: &Fields<'_>) -> bool {
    match cond {
        Cond::All(cs) => cs.iter().all(|c| holds(c, scope, out)),
        Cond::Any(cs) => cs.iter().any(|c| holds(c, scope, out)),
        Cond::Not(c) => !holds(c, scope, out),
        Cond::Test {
            subject,
            test,
            case_insensitive,
        } => {
            // What the test needs of its subject: whether it is present, and its text.
            let (is_present, t) = match subject {
                Subject::Field(paths) => {
                    // Of several paths, the first with a usable value: `null`, `""` and, for a
                    // text test, a list or an object fall through to the next path as a
                    // missing field does (HYPR's empty `detail.data.eventTags` beside the
                    // envelope's tag list). When none is usable, the first non-null value is
                    // tested as it is (so a lone `""` still equals `""`).
                    let values = || paths.iter().filter_map(|p| p.get(scope.body));
                    let usable = |v: &&Doc<'_>| {
                        v.present()
                            && (matches!(test, Test::Exists(_))
                                || !matches!(v, Doc::Array(_) | Doc::Object(_)))
                    };
                    let v = values()
                        .find(usable)
                        .or_else(|| values().find(|v| !v.is_null()));
                    (v.is_some_and(Doc::present), v.and_then(Doc::text))
                }
                Subject::Capture(name) => of_value(scope.captures.get(name)),
                Subject::Header(name) => {
                    let h = scope.headers.get(name).and_then(|h| h.to_str().ok());
                    (h.is_some_and(|s| !s.is_empty()), h.map(Cow::Borrowed))
                }
                Subject::Out(path) => of_found(path.get(out)),
            };
            if let Test::Exists(want) = test {
                return is_present == *want;
            }
            let Some(t) = t else {
                return false;
            };
            // Operands are pre-lowered; ASCII text compares without allocating.
            if *case_insensitive && t.is_ascii() {
                match test {
                    Test::Equals(s) => return t.eq_ignore_ascii_case(s),
                    Test::In(list) => return list.iter().any(|s| t.eq_ignore_ascii_case(s)),
                    _ => {}
                }
            }
            let t = if *case_insensitive {
                Cow::Owned(t.to_lowercase())
            } else {
                t
            };
            match test {
                Test::Equals(s) => t == s.as_str(),
                Test::In(list) => list.iter().any(|s| t == s.as_str()),
                Test::Contains(s) => t.contains(s.as_str()),
                Test::Prefix(s) => t.starts_with(s.as_str()),
                Test::Suffix(s) => t.ends_with(s.as_str()),
                Test::Regex(r) => r.is_match(&t),
                Test::Exists(_) => false,
            }
        }
    }
}

/// Evaluates a value spec; `None` = absent.
pub fn value(spec: &Spec, scope: &Scope<'_>, out: &Fields<'_>) -> Option<Value> {
    if let Some(when) = &spec.when {
        if !holds(when, scope, out) {
            return None;
        }
    }
    let raw = source(spec, scope, out);
    let converted = raw.and_then(|v| finish(spec, v));
    converted.or_else(|| spec.default.clone())
}

/// [`value`] as a field, and for a mapping from body paths whose conversion or lookup refused
/// the value the event carries (an `ip` that is no address, a time in no known form), or kept
/// only part of it (the first address of a list), the path it came from: so it can be kept
/// in `unmapped` rather than lost. `body` is the event
/// `scope` reads, with its own lifetime: a string the mapping copies as it is (at most
/// `convert = "string"`, no lookup or reduction) stays borrowed from it ([`Field::Text`]),
/// not copied into a `Value`.
fn value_noting_refusal<'s, 'k>(
    spec: &'s Spec,
    body: &Doc<'k>,
    scope: &Scope<'_>,
    out: &Fields<'_>,
) -> (Option<Field<'k>>, Option<&'s InPath>) {
    let Source::From(paths) = &spec.source else {
        return (value(spec, scope, out).map(Field::Value), None);
    };
    if let Some(when) = &spec.when {
        if !holds(when, scope, out) {
            return (None, None);
        }
    }
    let default = || spec.default.clone().map(Field::Value);
    let found = paths
        .iter()
        .find_map(|p| p.get(body).filter(|v| v.present()).map(|v| (p, v)));
    match found {
        None => (default(), None),
        Some((_, Doc::String(Cow::Borrowed(s)))) if copies_as_is(spec) => {
            (Some(Field::Text(s)), None)
        }
        Some((path, raw)) => match finish(spec, raw.to_value()) {
            // A value of which the conversion kept one part (an `ip` conversion takes the
            // first address of a list): the whole value is noted too.
            Some(v) => (Some(Field::Value(v)), takes_part(spec, raw).then_some(path)),
            None => (default(), Some(path)),
        },
    }
}

/// True when `spec`'s conversion keeps only part of `raw`: an address list (`a, b`) read by
/// an `ip` conversion, which keeps the first address.
fn takes_part(spec: &Spec, raw: &Doc<'_>) -> bool {
    spec.converts.iter().any(|c| matches!(c, Convert::Ip))
        && raw.as_str().is_some_and(|s| s.contains(','))
}

/// True when `spec` passes what it reads on unchanged (a string through `convert = "string"`
/// stays the same string).
fn copies_as_is(spec: &Spec) -> bool {
    spec.lookup.is_none()
        && spec.aggregate.is_none()
        && spec.converts.iter().all(|c| matches!(c, Convert::Text))
}

/// True when `spec` reads the body path `path`.
pub fn reads(spec: &Spec, path: &InPath) -> bool {
    matches!(&spec.source, Source::From(paths) if paths.iter().any(|p| p.text() == path.text()))
}

fn source(spec: &Spec, scope: &Scope<'_>, out: &Fields<'_>) -> Option<Value> {
    match &spec.source {
        Source::From(paths) => paths
            .iter()
            .filter_map(|p| p.get(scope.body))
            .find(|v| v.present())
            .map(Doc::to_value),
        Source::Item(path) => scope
            .item
            .and_then(|i| path.get(i))
            .filter(|v| v.present())
            .map(Doc::to_value),
        Source::Header(names) => names
            .iter()
            .filter_map(|n| scope.headers.get(n))
            .filter_map(|h| h.to_str().ok())
            .find(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned())),
        Source::Capture(name) => scope.captures.get(name).filter(|v| present(v)).cloned(),
        Source::Context(f) => Some(match f {
            ContextField::ReceivedAtMs => Value::from(scope.received_at_ms),
            ContextField::EventUid => Value::String(scope.uid.to_owned()),
            ContextField::Tenant => Value::String(scope.tenant.to_owned()),
            ContextField::Source => Value::String(scope.source.to_owned()),
        }),
        Source::Const(v) if v.is_null() => None,
        Source::Const(v) => Some(v.clone()),
        Source::Template(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => s.push_str(t),
                    Piece::Path(path) => s.push_str(&path.get(scope.body).and_then(Doc::text)?),
                    Piece::Capture(c) => s.push_str(&scope.captures.get(c).and_then(text)?),
                }
            }
            Some(Value::String(s))
        }
        Source::Object(fields) => {
            let mut obj = Map::new();
            for (k, s) in fields {
                if let Some(v) = value(s, scope, out) {
                    obj.insert(k.clone(), v);
                }
            }
            if spec.require.iter().any(|k| !obj.contains_key(k)) || obj.is_empty() {
                return None;
            }
            Some(Value::Object(obj))
        }
    }
}

/// Conversions, lookup, aggregation. With an aggregate, an array is converted element-wise
/// (bad elements dropped) and then reduced to one value. Without one, the value is converted
/// whole: a target that wants one string, number or time never receives an array because the
/// vendor sent one (`string` makes it its JSON text; the other conversions and lookups find
/// nothing in it, so the value is absent).
fn finish(spec: &Spec, v: Value) -> Option<Value> {
    let one = |v: Value| -> Option<Value> {
        let mut v = v;
        for c in &spec.converts {
            v = convert(c, v)?;
        }
        match &spec.lookup {
            Some((table, mode)) => {
                let hit = match mode {
                    LookupMode::Exact => text(&v).and_then(|t| table.entries.get(t.as_ref())),
                    LookupMode::FirstWord => text(&v).and_then(|t| {
                        // Outside quoted names first, then the whole text: a quoted word
                        // counts when nothing else matches (a ConnectSecure subject may
                        // quote its severity).
                        unquoted(&t)
                            .chain(std::iter::once(t.as_ref()))
                            .flat_map(|part| part.split(|c: char| !c.is_alphanumeric()))
                            .find_map(|w| table.entries.get(&w.to_lowercase()))
                    }),
                };
                hit.or(table.other.as_ref()).cloned()
            }
            None => Some(v),
        }
    };
    match (v, spec.aggregate) {
        (Value::Array(items), Some(aggregate)) => {
            let mut items = items.into_iter().filter_map(one);
            match aggregate {
                Aggregate::First => items.next(),
                Aggregate::Max => items
                    .filter(Value::is_number)
                    .max_by(|a, b| num(a).total_cmp(&num(b))),
                Aggregate::Min => items
                    .filter(Value::is_number)
                    .min_by(|a, b| num(a).total_cmp(&num(b))),
                Aggregate::Each => {
                    let all: Vec<Value> = items.collect();
                    (!all.is_empty()).then_some(Value::Array(all))
                }
            }
        }
        // One value where a list is kept: a list of it.
        (other, Some(Aggregate::Each)) => one(other).map(|v| Value::Array(vec![v])),
        (other, _) => one(other),
    }
}

/// The parts of `text` outside double quotes: a quoted name (`The label "Set A" was removed`)
/// is not where a `first_word` lookup looks for the verb. An unmatched quote quotes nothing.
fn unquoted(text: &str) -> impl Iterator<Item = &str> {
    // Part `i` follows the `i`-th quote; after an odd count of quotes the last part follows an
    // unmatched one.
    let quotes = text.matches('"').count();
    text.split('"')
        .enumerate()
        .filter(move |(i, _)| i % 2 == 0 || (quotes % 2 == 1 && *i == quotes))
        .map(|(_, part)| part)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn convert(c: &Convert, v: Value) -> Option<Value> {
    match c {
        Convert::EpochMs => as_i64(&v).map(Value::from),
        Convert::EpochS => as_i64(&v)
            .and_then(|s| s.checked_mul(1000))
            .map(Value::from),
        Convert::Rfc3339Ms => rfc3339_ms(v.as_str()?).map(Value::from),
        Convert::DatetimeUtcMs => {
            let s = v.as_str()?.trim();
            let s = s.strip_suffix("UTC").unwrap_or(s).trim();
            let fmt =
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
            let t = time::PrimitiveDateTime::parse(s, &fmt).ok()?.assume_utc();
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .ok()
                .map(Value::from)
        }
        // A forwarded list (`client, proxy1, proxy2`, as X-Forwarded-For writes it): its first
        // address is the client's.
        Convert::Ip => {
            let s = v.as_str()?.split(',').next()?.trim();
            s.parse::<IpAddr>()
                .ok()
                .map(|ip| Value::String(ip.to_string()))
        }
        Convert::Mac => {
            let s = v.as_str()?.trim();
            let parts: Vec<&str> = s.split([':', '-']).collect();
            let ok = parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            ok.then(|| Value::String(parts.join(":").to_lowercase()))
        }
        Convert::Email(re) => {
            let s = v.as_str()?;
            re.is_match(s).then_some(v)
        }
        Convert::Lowercase => text(&v).map(|t| Value::String(t.to_lowercase())),
        Convert::Uppercase => text(&v).map(|t| Value::String(t.to_uppercase())),
        Convert::TrimDot => {
            let s = v.as_str()?.trim();
            // Every trailing dot: a sentence's full stop after a fully qualified name's root
            // dot ("Hostname host3.corp.local..") leaves neither.
            let s = s.trim_end_matches('.').trim();
            (!s.is_empty()).then(|| Value::String(s.to_owned()))
        }
        Convert::Text => match &v {
            Value::String(_) => Some(v),
            // Where OCSF wants a string and the vendor sent structure: its JSON text.
            Value::Object(_) | Value::Array(_) => Some(Value::String(v.to_string())),
            _ => text(&v).map(|t| Value::String(t.into_owned())),
        },
        Convert::Id => match &v {
            Value::String(s) if !s.trim().is_empty() => Some(v),
            Value::Number(n) if !n.is_f64() => Some(Value::String(n.to_string())),
            _ => None,
        },
        Convert::Int => as_i64(&v).map(Value::from),
        Convert::Json => serde_json::from_str(v.as_str()?).ok(),
        Convert::QuotedList => super::quoted_list::parse(v.as_str()?)
            .map(|items| Value::Array(items.into_iter().map(Value::String).collect())),
        Convert::Positive => Some(Value::Bool(
            num(&v) > 0.0 || as_i64(&v).is_some_and(|n| n > 0),
        )),
    }
}

/// Applies mappings in order. Returns the `to` text of a required mapping left absent.
/// Notes in `refused` each mapping whose conversion refused the body value it read, or kept
/// only part of it, with that value's path.
/// `body` is the event `scope` reads, with its own lifetime ([`value_noting_refusal`]).
pub fn apply_maps<'m: 'k, 'k>(
    maps: &'m [Mapping],
    body: &Doc<'k>,
    scope: &Scope<'_>,
    out: &mut Fields<'k>,
    refused: &mut Vec<(&'m Mapping, &'m InPath)>,
) -> Result<(), &'m Mapping> {
    for m in maps {
        let (v, refusal) = value_noting_refusal(&m.spec, body, scope, out);
        if let Some(path) = refusal {
            refused.push((m, path));
        }
        match v {
            Some(v) => m.to.set(out, v),
            None if m.required => return Err(m),
            None => {}
        }
    }
    Ok(())
}

/// Builds one list.
pub fn build_list<'m>(list: &'m List, scope: &Scope<'_>, out: &mut Fields<'m>) {
    let mut items = Vec::new();
    let mut available = 0usize;
    let limit = list.limit.unwrap_or(usize::MAX);
    let push =
        |item: &Doc<'_>, captures: &Captures<'_>, items: &mut Vec<Value>, out: &Fields<'_>| {
            let inner = Scope {
                body: scope.body,
                headers: scope.headers,
                captures,
                item: Some(item),
                received_at_ms: scope.received_at_ms,
                uid: scope.uid,
                tenant: scope.tenant,
                source: scope.source,
            };
            let mut obj = Map::new();
            for m in &list.item {
                if let Some(v) = value(&m.spec, &inner, out) {
                    m.to.set_in_map(&mut obj, v);
                }
            }
            if !obj.is_empty() {
                items.push(Value::Object(obj));
            }
        };
    match list.from.get(scope.body) {
        Some(Doc::Array(source)) => {
            available = source.len();
            for item in source.iter().take(limit) {
                push(item, scope.captures, &mut items, out);
            }
        }
        Some(Doc::String(text)) => {
            let segments: Vec<&str> = match &list.split {
                Some(re) => re.split(text).collect(),
                None => vec![text.as_ref()],
            };
            for seg in segments {
                let Some(re) = &list.matches else {
                    available += 1;
                    if items.len() < limit {
                        let caps = Captures::over(scope.captures);
                        push(&Doc::String(Cow::Borrowed(seg)), &caps, &mut items, out);
                    }
                    continue;
                };
                let take = if list.all { usize::MAX } else { 1 };
                for c in re.captures_iter(seg).take(take) {
                    let mut caps = Captures::over(scope.captures);
                    for (name, m) in named_groups(re, &c) {
                        caps.set(name, Value::String(m.as_str().to_owned()));
                    }
                    available += 1;
                    if items.len() < limit {
                        push(&Doc::String(Cow::Borrowed(seg)), &caps, &mut items, out);
                    }
                }
            }
        }
        _ => {}
    }
    let kept = items.len();
    if !items.is_empty() {
        list.to.set(out, Field::Value(Value::Array(items)));
    }
    if let Some(to) = &list.truncated_to {
        let flag = list
            .truncated
            .as_ref()
            .and_then(|p| p.get(scope.body))
            .and_then(Doc::as_bool)
            .unwrap_or(false);
        let declared = list
            .count
            .as_ref()
            .and_then(|p| p.get(scope.body))
            .and_then(Doc::as_i64)
            .unwrap_or(0);
        let dropped = available > kept || usize::try_from(declared).unwrap_or(0) > kept;
        to.set(out, Field::Value(Value::Bool(flag || dropped)));
    }
}

/// RFC 3339 text (surrounding whitespace ignored) as epoch milliseconds.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_capture_hides_the_event_capture_of_its_name_and_only_that() {
        let mut event = Captures::default();
        event.keep_first("host", || Value::from("h1"));
        // The first value captured under a name stays.
        event.keep_first("host", || Value::from("h2"));
        event.keep_first("ip", || Value::from("10.0.0.1"));
        assert_eq!(event.get("host"), Some(&Value::from("h1")));
        let mut segment = Captures::over(&event);
        segment.set("host", Value::from("segment-host"));
        assert_eq!(segment.get("host"), Some(&Value::from("segment-host")));
        assert_eq!(segment.get("ip"), Some(&Value::from("10.0.0.1")));
        assert_eq!(segment.get("none"), None);
        assert_eq!(event.get("host"), Some(&Value::from("h1")));
    }

    #[test]
    fn a_first_word_lookup_skips_quoted_names() {
        let outside = |t| unquoted(t).collect::<Vec<_>>().join("|");
        assert_eq!(
            outside(r#"The label "Set A" was removed"#),
            "The label | was removed"
        );
        assert_eq!(
            outside(r#"John set status to "In Progress""#),
            "John set status to |"
        );
        // An unmatched quote quotes nothing after it.
        assert_eq!(
            outside(r#"A 5" screen was removed"#),
            "A 5| screen was removed"
        );
        assert_eq!(outside("no quotes"), "no quotes");
    }

    #[test]
    fn an_id_is_a_string_with_more_than_blanks_or_an_integer() {
        use serde_json::json;
        let id = |v: Value| convert(&Convert::Id, v);
        assert_eq!(id(Value::from("r_1")), Some(Value::from("r_1")));
        assert_eq!(id(Value::from(42)), Some(Value::from("42")));
        for no in [
            json!(" "),
            json!("\t"),
            json!(["r"]),
            json!({"a": 1}),
            json!(true),
            json!(1.5),
        ] {
            assert_eq!(id(no.clone()), None, "{no}");
        }
    }

    #[test]
    fn converts_times_to_epoch_ms_truncating_sub_ms() {
        let v = convert(
            &Convert::Rfc3339Ms,
            Value::from("2024-11-08T15:48:27.633421Z"),
        );
        assert_eq!(v, Some(Value::from(1731080907633i64)));
        let v = convert(
            &Convert::DatetimeUtcMs,
            Value::from("2024-01-15 10:30:00 UTC"),
        );
        assert_eq!(v, Some(Value::from(1705314600000i64)));
        assert_eq!(
            convert(&Convert::EpochS, Value::from("1700000000")),
            Some(Value::from(1700000000000i64))
        );
        assert_eq!(convert(&Convert::Rfc3339Ms, Value::from("yesterday")), None);
    }

    #[test]
    fn validates_ip_mac_and_email() {
        assert_eq!(convert(&Convert::Ip, Value::from("")), None);
        assert_eq!(
            convert(&Convert::Ip, Value::from("2001:db8::1")),
            Some(Value::from("2001:db8::1"))
        );
        // A forwarded list: the client's address is the first.
        assert_eq!(
            convert(&Convert::Ip, Value::from("76.167.160.255, 10.0.0.1")),
            Some(Value::from("76.167.160.255"))
        );
        assert_eq!(
            convert(&Convert::Ip, Value::from("unknown, 10.0.0.1")),
            None
        );
        assert_eq!(
            convert(&Convert::Mac, Value::from("00-1B-44-11-3A-B7")),
            Some(Value::from("00:1b:44:11:3a:b7"))
        );
        assert_eq!(convert(&Convert::Mac, Value::from("00:1B:44")), None);
        let email =
            Convert::Email(regex::Regex::new(super::super::compile::email_pattern()).unwrap());
        assert_eq!(
            convert(&email, Value::from("renée.dupont@example.com")),
            None
        );
        assert!(convert(&email, Value::from("a.b@example.com")).is_some());
    }
}
