//! Stage 7, parse: load the vendor parser definitions (`parsers/*.toml`) and apply one to an
//! event.
//!
//! Input: a [`crate::split::RawEvent`] that dedup let through. Output: [`ParsedEvent`] (the
//! route's OCSF class and activity, the mapped OCSF fields and the vendor leftovers). Fails
//! per event with [`ParseError`]; the pipeline sends such an event to the dead-letter path
//! with its raw bytes, never drops it. Definitions are embedded at build time, optionally
//! overridden by a directory, and compiled once at load ([`Catalog::load`]); nothing on the
//! hot path re-reads them. The engine is generic: every vendor specific lives in the data.

pub mod compile;
pub mod compiled;
pub mod definition;
pub mod doc;
pub mod eval;
pub mod fields;
pub mod path;
pub mod quoted_list;
pub mod session_cache;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use self::compile::{Activity, Compiled, Product, Route};
use self::doc::Doc;
use self::eval::{Captures, Scope};
use self::fields::{Field, Fields};
use self::session_cache::shared::SharedSessions;
use crate::normalize::ocsf::ClassInfo;
use crate::normalize::EventContext;
use crate::split::RawEvent;

/// The built-in definitions, embedded at build time: (name, file text).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "connectsecure",
        include_str!("../parsers/connectsecure.toml"),
    ),
    ("hoop", include_str!("../parsers/hoop.toml")),
    ("hyperproof", include_str!("../parsers/hyperproof.toml")),
    ("hypr", include_str!("../parsers/hypr.toml")),
    ("hyprwatch", include_str!("../parsers/hyprwatch.toml")),
];

/// Every loaded parser, by name.
#[derive(Debug, Default)]
pub struct Catalog {
    parsers: HashMap<String, Arc<Parser>>,
}

/// One vendor's compiled parser.
#[derive(Debug)]
pub struct Parser {
    name: String,
    compiled: Compiled,
}

/// The dedup identity of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    /// The vendor's event id, or a content hash (hex SHA-256) when it sends none.
    pub id: String,
    /// How long a repeat counts as a duplicate; `None` = never deduplicated.
    pub window: Option<Duration>,
}

/// The route an event matched, chosen once (with its key, in [`Parser::key_and_route`]) so
/// that [`apply_routed`] does not evaluate the route conditions again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteChoice(Option<usize>);

/// A parsed event, ready for normalization. Its keys (and the route name) are borrowed from
/// the parser and the event for `'k`.
#[derive(Debug)]
pub struct ParsedEvent<'k> {
    /// The dedup identity (becomes `metadata.uid` and the Kafka key).
    pub key: EventKey,
    /// OCSF class of the matched route.
    pub class: &'static ClassInfo,
    /// `activity_id`.
    pub activity_id: i64,
    /// The source's own word for activity 99.
    pub activity_name: Option<String>,
    /// OCSF fields mapped by the route.
    pub fields: Fields<'k>,
    /// Vendor fields without an OCSF home.
    pub unmapped: Fields<'k>,
    /// `metadata.product`.
    pub product: Arc<Product>,
    /// Name of the matched route.
    pub route: &'k str,
}

/// Why a parser could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Operator's fault: a definition file could not be read.
    #[error("cannot read parser definition {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Operator's (or parser author's) fault: a definition is invalid.
    #[error("parser definition {file}, line {line}: {message}")]
    Definition {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Vendor's fault: the event has no shape the parser can map.
    #[error("event cannot be mapped by parser {parser}: {reason}")]
    Unmappable {
        /// Parser name.
        parser: String,
        /// Why.
        reason: &'static str,
    },
    /// Vendor's fault: a field the route cannot do without is absent or invalid.
    #[error("event cannot be mapped by parser {parser}, route {route}: no value for {field}")]
    MissingField {
        /// Parser name.
        parser: String,
        /// Route name.
        route: String,
        /// OCSF path left empty.
        field: String,
    },
}

impl ParseError {
    /// Bounded label for logs, metrics and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Read { .. } => "definition_unreadable",
            ParseError::Definition { .. } => "definition_invalid",
            ParseError::Unmappable { .. } => "unmappable",
            ParseError::MissingField { .. } => "missing_field",
        }
    }
}

impl Catalog {
    /// Loads the built-in parsers, then every `*.toml` in `dir` (a file named like a built-in
    /// replaces it).
    pub fn load(dir: Option<&Path>) -> Result<Catalog, ParseError> {
        let mut parsers = HashMap::new();
        for (name, text) in BUILT_IN {
            let file = format!("parsers/{name}.toml (built in)");
            parsers.insert(
                (*name).to_owned(),
                Arc::new(Parser::from_toml(name, text, &file)?),
            );
        }
        if let Some(dir) = dir {
            let read_err = |source| ParseError::Read {
                path: dir.display().to_string(),
                source,
            };
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .map_err(read_err)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let text = std::fs::read_to_string(&path).map_err(|source| ParseError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                let parser = Parser::from_toml(stem, &text, &path.display().to_string())?;
                parsers.insert(stem.to_owned(), Arc::new(parser));
            }
        }
        Ok(Catalog { parsers })
    }

    /// The parser called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Parser>> {
        self.parsers.get(name).cloned()
    }

    /// Every parser name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.parsers.keys().cloned().collect();
        names.sort();
        names
    }
}

impl Parser {
    /// True when the definition reads request header `name` (into events, ids or routes).
    pub fn reads_header(&self, name: &http::HeaderName) -> bool {
        self.compiled.headers_read.contains(name)
    }

    /// True when the definition names where an event's signed send time is (`[id] sent_at`).
    pub fn knows_sent_at(&self) -> bool {
        self.compiled.id.sent_at.is_some()
    }

    /// The event's signed send time (`[id] sent_at`) in epoch milliseconds: RFC 3339 text, or
    /// an integer epoch (seconds below 10^11, else milliseconds). `None` when the definition
    /// names no such field, or the event's is absent or unreadable.
    pub fn sent_at_ms(&self, event: &Doc<'_>) -> Option<i64> {
        match self.compiled.id.sent_at.as_ref()?.get(event)? {
            Doc::String(s) => eval::rfc3339_ms(s),
            Doc::Number(n) => {
                let v = n.as_i64()?;
                Some(if v.abs() < 100_000_000_000 {
                    v.checked_mul(1000)?
                } else {
                    v
                })
            }
            _ => None,
        }
    }

    /// Compiles one definition; `file` names it in errors.
    pub fn from_toml(name: &str, text: &str, file: &str) -> Result<Parser, ParseError> {
        let def: definition::Definition = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|t| 1 + t.bytes().filter(|b| *b == b'\n').count())
                .unwrap_or(1);
            ParseError::Definition {
                file: file.to_owned(),
                line,
                message: e.message().to_owned(),
            }
        })?;
        let compiled = compile::compile(def, text).map_err(|e| ParseError::Definition {
            file: file.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        Ok(Parser {
            name: name.to_owned(),
            compiled,
        })
    }

    /// The parser's name (= vendor id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the vendor is known to send not-quite-JSON that a lenient repair can read.
    pub fn lenient_json(&self) -> bool {
        self.compiled.lenient_json
    }

    /// True when a body that is not JSON at all (it opens with neither `{` nor `[`) is the
    /// vendor's health call, e.g. a text `ping`.
    pub fn heartbeat_on_text(&self) -> bool {
        self.compiled.heartbeat_on_text
    }

    /// Takes over `running`'s session cache entries (a reload; see [`SessionCache::adopt`]).
    ///
    /// [`SessionCache::adopt`]: session_cache::SessionCache::adopt
    pub fn adopt_sessions(&self, running: &Parser) {
        if let (Some(new), Some(old)) = (&self.compiled.cache, &running.compiled.cache) {
            new.adopt(old);
        }
    }

    /// Keeps the session cache in Redis too (see [`session_cache::shared`]).
    pub fn share_sessions(&self, shared: &Arc<SharedSessions>) {
        if let Some(cache) = &self.compiled.cache {
            cache.share(Arc::clone(shared));
        }
    }

    /// True when a request body (`None` = empty, or an empty array) is the vendor's health
    /// call, answered 2xx without producing an event. A JSON value that is not an object
    /// (`null`, a string, …) is tested like an object without members: a `heartbeat` rule
    /// that asks for missing fields holds for it.
    pub fn is_heartbeat(&self, body: Option<&Doc<'_>>) -> bool {
        match body {
            None => self.compiled.heartbeat_on_empty,
            Some(v) => self.compiled.heartbeat.as_ref().is_some_and(|c| {
                let captures = Captures::default();
                let headers = HeaderMap::new();
                eval::holds(
                    c,
                    &Parser::bare_scope(v, &headers, &captures),
                    &Fields::new(),
                )
            }),
        }
    }

    /// A scope for routing and heartbeat tests: body and headers only.
    fn bare_scope<'a>(
        body: &'a Doc<'a>,
        headers: &'a HeaderMap,
        captures: &'a Captures<'a>,
    ) -> Scope<'a> {
        Scope {
            body,
            headers,
            captures,
            item: None,
            received_at_ms: 0,
            uid: "",
            tenant: "",
            source: "",
        }
    }

    fn route_for(&self, event: &Doc<'_>, headers: &HeaderMap) -> RouteChoice {
        let captures = Captures::default();
        let scope = Parser::bare_scope(event, headers, &captures);
        let empty = Fields::new();
        RouteChoice(self.compiled.routes.iter().position(|r| {
            r.when
                .as_ref()
                .is_none_or(|c| eval::holds(c, &scope, &empty))
        }))
    }

    fn route(&self, choice: RouteChoice) -> Option<&Route> {
        choice.0.and_then(|i| self.compiled.routes.get(i))
    }

    /// The dedup identity of `event` (the first, or only, event of its request): a header, a
    /// body field or a content hash, as the definition's `[id]` says; the window comes from
    /// the matched route or `[id]`.
    pub fn event_key(&self, event: &Doc<'_>, headers: &HeaderMap) -> EventKey {
        self.key_and_route(event, 0, headers).0
    }

    /// The request's id from a header (`[id] headers`, e.g. Svix's `svix-id`), which names
    /// the whole request rather than one event, if the parser reads one and it is present.
    fn header_id<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.compiled
            .id
            .headers
            .iter()
            .filter_map(|h| headers.get(h))
            .filter_map(|v| v.to_str().ok())
            .find(|s| !s.is_empty())
    }

    /// [`Parser::event_key`] of the request's event at `index`, plus the route it matches,
    /// for [`apply_routed`]. A header id names the whole request: in a batch, each element
    /// after the first takes its position as a suffix (`<id>#<index>`), so the elements are
    /// not duplicates of each other while a retry of the same batch still is.
    pub fn key_and_route(
        &self,
        event: &Doc<'_>,
        index: usize,
        headers: &HeaderMap,
    ) -> (EventKey, RouteChoice) {
        let rule = &self.compiled.id;
        let from_header = self.header_id(headers).map(|id| match index {
            0 => id.to_owned(),
            _ => format!("{id}#{index}"),
        });
        let from_body = || {
            rule.from
                .iter()
                .filter_map(|p| p.get(event))
                .find_map(|v| match v {
                    // Blank is no id: every event sent with `" "` would share it.
                    Doc::String(s) if !s.trim().is_empty() => Some(s.as_ref().to_owned()),
                    // An integer, exactly as sent. A number read as a float (a fraction, or an
                    // integer past 64 bits, which has lost digits) is no id: two events would
                    // share it and the second be swallowed as a duplicate.
                    Doc::Number(n) if !n.is_f64() => Some(n.to_string()),
                    _ => None,
                })
        };
        let id = from_header
            .or_else(from_body)
            .unwrap_or_else(|| content_hash(rule.hash.as_deref().unwrap_or(&self.name), event));
        let choice = self.route_for(event, headers);
        let window = match self.route(choice).and_then(|r| r.window) {
            Some(w) => w,
            None => rule.window,
        };
        (EventKey { id, window }, choice)
    }
}

/// `sha256_hex(prefix + "\n" + canonical_json(event))`; canonical = keys sorted by code point,
/// no whitespace, non-ASCII unescaped: what serde_json writes for the event's sorted `Value`,
/// and what [`Doc::write_json`] writes. Written into one buffer, then hashed in one call.
pub fn content_hash(prefix: &str, event: &Doc<'_>) -> String {
    // Feeding the hasher piece by piece (one call per token) cost more than the writing.
    let mut text = Vec::with_capacity(512);
    text.extend_from_slice(prefix.as_bytes());
    text.push(b'\n');
    event.write_json(&mut text);
    hex::encode(Sha256::digest(&text))
}

/// Reads from Redis, before `events` are parsed, the session cache entries they will look up
/// and this process does not hold (another replica, or this one before a restart, stored
/// them). A key is read ahead when its route computes it from the event itself; a miss stays
/// a miss, and the request waits [`FETCH_TIMEOUT`](session_cache::shared::FETCH_TIMEOUT) at
/// most in all. Does nothing unless the cache is shared.
pub async fn recall_sessions(parser: &Parser, events: &[RawEvent<'_>], ctx: &EventContext<'_>) {
    let Some(cache) = &parser.compiled.cache else {
        return;
    };
    let Some(shared) = cache.shared() else {
        return;
    };
    // One bound for the whole request, however many events it carries.
    let deadline = tokio::time::Instant::now() + session_cache::shared::FETCH_TIMEOUT;
    let captures = Captures::default();
    for event in events {
        let Some(load) = parser
            .route(event.route)
            .and_then(|r| r.cache_load.as_ref())
        else {
            continue;
        };
        let scope = Scope {
            body: &event.value,
            headers: ctx.headers,
            captures: &captures,
            item: None,
            received_at_ms: ctx.received_at_ms,
            uid: &event.key.id,
            tenant: ctx.tenant,
            source: ctx.source,
        };
        let Some(k) = eval::value(&load.key, &scope, &Fields::new()) else {
            continue;
        };
        let key = cache_key(ctx, &k);
        if cache.holds(&key) {
            continue;
        }
        match tokio::time::timeout_at(deadline, shared.get(&key)).await {
            Ok(Some(text)) => cache.recalled(key, text.into_boxed_slice()),
            Ok(None) => {}
            Err(_) => return, // out of time: the rest are misses
        }
    }
}

/// Applies `parser` to one event: pick the route, run its extractions, mappings, lists,
/// session cache and leftovers.
pub fn apply<'k>(
    parser: &'k Parser,
    event: Doc<'k>,
    key: EventKey,
    ctx: &EventContext<'_>,
) -> Result<ParsedEvent<'k>, ParseError> {
    let choice = parser.route_for(&event, ctx.headers);
    apply_routed(parser, event, key, choice, ctx)
}

/// [`apply`] with the route already chosen by [`Parser::key_and_route`] for this event and
/// these headers (the split stage does that once per event).
pub fn apply_routed<'k>(
    parser: &'k Parser,
    event: Doc<'k>,
    key: EventKey,
    choice: RouteChoice,
    ctx: &EventContext<'_>,
) -> Result<ParsedEvent<'k>, ParseError> {
    if !event.is_object() {
        return Err(ParseError::Unmappable {
            parser: parser.name.clone(),
            reason: "event is not a JSON object",
        });
    }
    let route = parser.route(choice).ok_or_else(|| ParseError::Unmappable {
        parser: parser.name.clone(),
        reason: "no route matches and the definition has no fallback route",
    })?;
    let mut captures = Captures::default();
    for ex in &route.extract {
        // A string is searched as is; any other value as its JSON text (e.g. a whole card).
        let owned;
        let text = match ex.from.get(&event) {
            Some(Doc::String(s)) => s.as_ref(),
            Some(Doc::Null) | None => continue,
            Some(other) => {
                owned = other.json_text();
                owned.as_str()
            }
        };
        if ex.all {
            for c in ex.regex.captures_iter(text) {
                for (name, m) in eval::named_groups(&ex.regex, &c) {
                    captures.append(name, Value::String(m.as_str().to_owned()));
                }
            }
        } else if let Some(c) = ex.regex.captures(text) {
            // The first extraction that captures a name keeps it.
            for (name, m) in eval::named_groups(&ex.regex, &c) {
                captures.keep_first(name, || Value::String(m.as_str().to_owned()));
            }
        }
    }
    let scope = Scope {
        body: &event,
        headers: ctx.headers,
        captures: &captures,
        item: None,
        received_at_ms: ctx.received_at_ms,
        uid: &key.id,
        tenant: ctx.tenant,
        source: ctx.source,
    };
    // At most one top-level member per mapping and list.
    let mut fields = Fields::with_capacity(route.maps.len() + route.lists.len());
    let missing = |m: &compile::Mapping| ParseError::MissingField {
        parser: parser.name.clone(),
        route: route.name.clone(),
        field: m.to.text().to_owned(),
    };
    // Lists first, so mappings can test what they built (`when = { out = ... }`).
    for list in &route.lists {
        eval::build_list(list, &scope, &mut fields);
    }
    let mut refused = Vec::new();
    eval::apply_maps(&route.maps, &event, &scope, &mut fields, &mut refused).map_err(missing)?;
    if let (Some(cache), Some(store)) = (&parser.compiled.cache, &route.cache_store) {
        if let Some(k) = eval::value(&store.key, &scope, &fields) {
            let mut kept = Map::new();
            for f in &store.fields {
                if let Some(v) = fields.get(f) {
                    kept.insert(f.clone(), v.to_value());
                }
            }
            cache.store(cache_key(ctx, &k), kept);
        }
    }
    if let (Some(cache), Some(load)) = (&parser.compiled.cache, &route.cache_load) {
        let hit =
            eval::value(&load.key, &scope, &fields).and_then(|k| cache.load(&cache_key(ctx, &k)));
        match hit {
            Some(kept) => {
                for f in &load.fields {
                    if let Some(v) = kept.get(f) {
                        fields.insert(Cow::Borrowed(f), Field::Value(v.clone()));
                    }
                }
            }
            None => eval::apply_maps(&load.on_miss, &event, &scope, &mut fields, &mut refused)
                .map_err(missing)?,
        }
    }
    let activity_id = match &route.activity {
        Activity::Fixed(id) => *id,
        Activity::Spec(spec) => eval::value(spec, &scope, &fields)
            .and_then(|v| v.as_i64())
            .unwrap_or(99),
    };
    let activity_name = route
        .activity_name
        .as_ref()
        .and_then(|s| eval::value(s, &scope, &fields))
        .map(|v| compile::scalar_text(&v));
    // A value the vendor sent that a mapping's conversion refused or kept only part of, and
    // that no other mapping placed (an `ip_address` that is no address, or a list of them):
    // kept in `unmapped`.
    let mut unmapped = Fields::new();
    for (m, path) in refused {
        let placed = route.maps.iter().any(|o| {
            !std::ptr::eq(o, m) && eval::reads(&o.spec, path) && o.to.get(&fields).is_some()
        });
        if let (false, Some(raw)) = (placed, path.get(&event)) {
            unmapped.get_or_insert_with(Cow::Borrowed(path.last_key()), || Field::of_doc(raw));
        }
    }
    // A `from` list's alternatives present beside the one used (the first present), which
    // the leftovers count as read: kept in `unmapped`, so no field the vendor sent is lost.
    for list in &route.alternatives {
        let mut present = list.iter().filter_map(|(p, spare)| {
            p.get(&event)
                .filter(|v| v.present())
                .map(|v| (p, *spare, v))
        });
        present.next();
        for (path, _, v) in present.filter(|(_, spare, _)| *spare) {
            unmapped.get_or_insert_with(Cow::Borrowed(path.last_key()), || Field::of_doc(v));
        }
    }
    let mut event = event;
    for path in &route.unmapped {
        if let Some(v) = path.get(&event) {
            // A deeper key whose name the event's top level has too (its own leftover, put
            // in below): under its full path, so neither value is lost.
            let name = path.last_key();
            let key = if path.is_nested() && event.get(name).is_some() {
                Cow::Borrowed(path.text())
            } else {
                Cow::Borrowed(name)
            };
            unmapped.insert(key, Field::of_doc(v));
        }
    }
    // Leftovers are moved out of the event (it is not needed any more), not cloned. The map is
    // taken apart once; a read key goes back only when a later leftover path needs it.
    for left in &route.leftovers {
        if let Some(Doc::Object(obj)) = left.path.get_mut(&mut event) {
            let mut all = obj.take();
            // Last member first: of a key the vendor repeated, the last value is the one that
            // counts (as in serde_json's map); an earlier repeat then finds its key taken.
            let mut kept = Vec::new();
            // Keys this object put in (borrowed from the body, mostly: no copies).
            let mut mine: Vec<Cow<'_, str>> = Vec::with_capacity(all.len());
            while let Some((k, v)) = all.pop() {
                if left.read.contains(&k) {
                    if left.keep_read {
                        kept.push((k, v));
                    }
                    continue;
                }
                // One search: the key is put in unless it is already there.
                match unmapped.find(&k) {
                    // A name an outer level has too, read there (so not in `unmapped`): under
                    // its full path, so `unmapped.event` never means another field than the
                    // event's own `event`.
                    Err(_) if left.outer_read.contains(&k) => {
                        let qualified = format!("{}.{}", left.path.text(), k);
                        unmapped.get_or_insert_with(Cow::Owned(qualified), || Field::from_doc(v));
                    }
                    Err(at) => {
                        unmapped.insert_at(at, k.clone(), Field::from_doc(v));
                        mine.push(k);
                    }
                    // This object's own repeat of a key: its last value counts.
                    Ok(_) if mine.contains(&k) => {}
                    Ok(_) if left.containers.contains(k.as_ref()) => kept.push((k, v)),
                    // Taken by a level listed earlier (or by `unmapped`): under its full path,
                    // so neither value is lost (at the top level there is no longer name).
                    Ok(_) => {
                        if !left.path.text().is_empty() {
                            let qualified = format!("{}.{}", left.path.text(), k);
                            unmapped
                                .get_or_insert_with(Cow::Owned(qualified), || Field::from_doc(v));
                        }
                    }
                }
            }
            obj.put_back(kept.into_iter().rev());
        }
    }
    Ok(ParsedEvent {
        key,
        class: route.class,
        activity_id,
        activity_name,
        fields,
        unmapped,
        product: Arc::clone(&parser.compiled.product),
        route: &route.name,
    })
}

/// Session cache keys are scoped by source so tenants never see each other's sessions.
fn cache_key(ctx: &EventContext<'_>, k: &Value) -> String {
    format!("{}\n{}", ctx.source, compile::scalar_text(k))
}

#[cfg(test)]
mod tests;
