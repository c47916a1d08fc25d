//! Compile a [`Definition`] into the runtime form, once at load: regexes compiled, paths
//! resolved, tables and class captions looked up, the fields each route reads collected for
//! leftover detection.
//!
//! Input: a parsed definition and its text (for line numbers). Output: [`Compiled`]. Fails
//! with a message and the line of the offending entry; the caller names the file.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use regex::Regex;
use serde_json::Value;
use toml::Spanned;

pub use super::compiled::{
    Activity, Aggregate, CacheUse, Compiled, Cond, ContextField, Convert, Extract, IdRule, KeySet,
    Leftover, List, LookupMode, Mapping, Piece, Product, Route, Source, Spec, Subject, Table, Test,
};
use super::definition::{CacheDef, CondDef, Definition, ListDef, MapDef, RouteDef};
use super::path::{InPath, OutPath};
use super::session_cache::SessionCache;
use crate::normalize::ocsf;
use crate::normalize::ocsf_paths::{self, Attr};

/// Email regex from OCSF `email_t`.
const EMAIL_T: &str = r"^[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$";

/// Compile context: tables and the text (for line numbers).
struct Ctx<'a> {
    text: &'a str,
    groups: &'a BTreeMap<String, Vec<Spanned<MapDef>>>,
    tables: HashMap<String, Arc<Table>>,
    /// Compiled regexes by pattern. A pattern several routes use (ConnectSecure's repeat
    /// theirs) is compiled once: clones of a `Regex` share its compiled program.
    regexes: RefCell<HashMap<String, Regex>>,
    /// Every request header the definition reads (`Compiled::headers_read`).
    headers: RefCell<Vec<HeaderName>>,
}

/// A compile failure at a line.
#[derive(Debug)]
pub struct CompileError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

type Res<T> = Result<T, String>;

/// Compiles `def` (parsed from `text`).
pub fn compile(def: Definition, text: &str) -> Result<Compiled, CompileError> {
    let at0 = |message: String| CompileError { line: 1, message };
    let mut tables = HashMap::new();
    for (name, entries) in def.tables {
        let mut table = Table {
            entries: HashMap::new(),
            other: None,
        };
        for (k, v) in entries {
            let v = to_json(v);
            if k == "*" {
                table.other = Some(v);
            } else {
                table.entries.insert(k, v);
            }
        }
        tables.insert(name, Arc::new(table));
    }
    let cx = Ctx {
        text,
        groups: &def.groups,
        tables,
        regexes: RefCell::default(),
        headers: RefCell::default(),
    };
    let heartbeat = def
        .parser
        .heartbeat
        .as_ref()
        .map(|c| cx.cond(c))
        .transpose()
        .map_err(|m| at0(format!("[parser] heartbeat: {m}")))?;
    let id = IdRule {
        headers: def
            .id
            .header
            .iter()
            .map(|h| cx.header(h))
            .collect::<Res<_>>()
            .map_err(|m| at0(format!("[id] header: {m}")))?,
        from: def
            .id
            .from
            .iter()
            .map(|p| InPath::parse(p))
            .collect::<Res<_>>()
            .map_err(|m| at0(format!("[id] from: {m}")))?,
        hash: def.id.hash.clone(),
        window: window(&def.id.window).map_err(|m| at0(format!("[id] window: {m}")))?,
        sent_at: def
            .id
            .sent_at
            .as_deref()
            .map(InPath::parse)
            .transpose()
            .map_err(|m| at0(format!("[id] sent_at: {m}")))?,
    };
    if id.headers.is_empty() && id.from.is_empty() && id.hash.is_none() {
        return Err(at0("[id] needs at least one of header, from, hash".into()));
    }
    let cache = match &def.session_cache {
        Some(c) => {
            let ttl = window(&c.ttl)
                .map_err(|m| at0(format!("[session_cache] ttl: {m}")))?
                .ok_or_else(|| at0("[session_cache] ttl must be a duration".into()))?;
            Some(SessionCache::new(ttl, c.max_entries))
        }
        None => None,
    };
    let mut routes = Vec::with_capacity(def.routes.len());
    for route in &def.routes {
        let line = cx.line(route);
        let compiled = cx.route(route.get_ref()).map_err(|e| match e {
            Located::At(line, message) => CompileError { line, message },
            Located::Here(message) => CompileError {
                line,
                message: format!("route {:?}: {message}", route.get_ref().name),
            },
        })?;
        if (compiled.cache_store.is_some() || compiled.cache_load.is_some()) && cache.is_none() {
            return Err(CompileError {
                line,
                message: "route uses the session cache but [session_cache] is missing".into(),
            });
        }
        routes.push(compiled);
    }
    if routes.is_empty() {
        return Err(at0("a definition needs at least one [[route]]".into()));
    }
    Ok(Compiled {
        product: Arc::new(Product {
            name: def.parser.product,
            vendor_name: def.parser.vendor_name,
        }),
        lenient_json: def.parser.lenient_json,
        heartbeat_on_empty: def.parser.heartbeat_on_empty,
        heartbeat_on_text: def.parser.heartbeat_on_text,
        heartbeat,
        id,
        cache,
        routes,
        headers_read: cx.headers.take(),
    })
}

/// An error with a known line, or one to be placed at the enclosing entry.
enum Located {
    At(usize, String),
    Here(String),
}

impl From<String> for Located {
    fn from(m: String) -> Located {
        Located::Here(m)
    }
}

impl Ctx<'_> {
    fn line<T>(&self, spanned: &Spanned<T>) -> usize {
        let start = spanned.span().start;
        1 + self
            .text
            .get(..start)
            .map(|t| t.bytes().filter(|b| *b == b'\n').count())
            .unwrap_or(0)
    }

    fn at<T>(&self, spanned: &Spanned<T>, what: &str, m: String) -> Located {
        Located::At(self.line(spanned), format!("{what}: {m}"))
    }

    fn route(&self, r: &RouteDef) -> Result<Route, Located> {
        let class = ocsf::class(r.class).ok_or_else(|| format!("unknown class {}", r.class))?;
        let activity = match (&r.activity, &r.activity_from) {
            (Some(id), None) => Activity::Fixed(*id),
            (None, Some(spec)) => Activity::Spec(Box::new(self.spec(spec)?)),
            _ => {
                return Err("set exactly one of activity, activity_from"
                    .to_owned()
                    .into())
            }
        };
        if let Activity::Fixed(id) = activity {
            if ocsf::activity_name(class, id).is_none() {
                return Err(format!("class {} has no activity {id}", class.uid).into());
            }
        }
        let when = r.when.as_ref().map(|c| self.cond(c)).transpose()?;
        let mut extract = Vec::new();
        for e in &r.extract {
            let d = e.get_ref();
            extract.push(Extract {
                from: InPath::parse(&d.from).map_err(|m| self.at(e, "extract", m))?,
                regex: self
                    .regex(&d.regex)
                    .map_err(|m| self.at(e, "extract regex", m))?,
                all: d.all,
            });
        }
        let mut maps = Vec::new();
        for g in &r.include {
            let group = self
                .groups
                .get(g)
                .ok_or_else(|| format!("include: unknown group {g:?}"))?;
            for m in group {
                maps.push(self.mapping(m)?);
            }
        }
        for m in &r.map {
            maps.push(self.mapping(m)?);
        }
        let mut lists = Vec::new();
        for l in &r.list {
            lists.push(self.list(l).map_err(|m| self.at(l, "list", m))?);
        }
        let unmapped = r
            .unmapped
            .iter()
            .map(|p| InPath::parse(p))
            .collect::<Res<Vec<_>>>()?;
        let mut read: Vec<InPath> = Vec::new();
        collect_reads(&mut read, &maps, &extract, &lists, &unmapped);
        let activity_name = r.activity_name.as_ref().map(|s| self.spec(s)).transpose()?;
        if let Some(s) = &activity_name {
            reads_of_spec(s, &mut read);
        }
        if let Activity::Spec(s) = &activity {
            reads_of_spec(s, &mut read);
        }
        let mut other_reads: Vec<InPath> = Vec::new();
        collect_reads(&mut other_reads, &[], &extract, &lists, &unmapped);
        let specs = maps.iter().map(|m| &m.spec).chain(activity_name.as_ref());
        let specs = match &activity {
            Activity::Spec(s) => specs.chain(Some(&**s)).collect(),
            _ => specs.collect(),
        };
        let alternatives = alternatives(specs, &other_reads);
        let paths = r
            .leftovers
            .iter()
            .map(|p| InPath::parse(p))
            .collect::<Res<Vec<_>>>()?;
        let mut leftovers = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            let keys = KeySet::new(
                read.iter()
                    .filter_map(|r| r.child_key_under(path).map(str::to_owned)),
            );
            let containers = KeySet::new(
                paths
                    .iter()
                    .skip(i + 1)
                    .filter_map(|later| later.child_key_under(path).map(str::to_owned)),
            );
            let outer_read = KeySet::new(
                paths
                    .iter()
                    .take(i)
                    .filter(|outer| path.child_key_under(outer).is_some())
                    .flat_map(|outer| {
                        read.iter()
                            .filter_map(|r| r.child_key_under(outer).map(str::to_owned))
                    }),
            );
            leftovers.push(Leftover {
                path: path.clone(),
                read: keys,
                keep_read: !containers.is_empty(),
                containers,
                outer_read,
            });
        }
        let cache_store = r.cache_store.as_ref().map(|c| self.cache(c)).transpose()?;
        let cache_load = r.cache_load.as_ref().map(|c| self.cache(c)).transpose()?;
        check_outputs(
            class.uid,
            &maps,
            &lists,
            [cache_store.as_ref(), cache_load.as_ref()],
        )?;
        Ok(Route {
            name: r.name.clone(),
            when,
            class,
            activity,
            activity_name,
            window: r.window.as_deref().map(window).transpose()?,
            extract,
            maps,
            lists,
            unmapped,
            alternatives,
            leftovers,
            cache_store,
            cache_load,
        })
    }

    fn cache(&self, c: &CacheDef) -> Result<CacheUse, Located> {
        let mut on_miss = Vec::new();
        for m in &c.on_miss {
            on_miss.push(self.mapping(m)?);
        }
        Ok(CacheUse {
            key: self.spec(&c.key)?,
            fields: c.fields.clone(),
            on_miss,
        })
    }

    fn mapping(&self, m: &Spanned<MapDef>) -> Result<Mapping, Located> {
        let d = m.get_ref();
        let to =
            d.to.as_deref()
                .ok_or_else(|| self.at(m, "map", "needs `to`".into()))?;
        Ok(Mapping {
            to: OutPath::parse(to).map_err(|e| self.at(m, "map", e))?,
            spec: self
                .spec(d)
                .map_err(|e| self.at(m, &format!("map to {to:?}"), e))?,
            required: d.required,
        })
    }

    fn list(&self, l: &Spanned<ListDef>) -> Res<List> {
        let d = l.get_ref();
        let mut item = Vec::new();
        for m in &d.item {
            item.push(self.mapping(m).map_err(|e| match e {
                Located::At(_, m) | Located::Here(m) => m,
            })?);
        }
        let opt_in = |p: &Option<String>| p.as_deref().map(InPath::parse).transpose();
        if d.all && d.matches.is_none() {
            return Err("list: `all = true` needs a `match` regex".into());
        }
        Ok(List {
            to: OutPath::parse(&d.to)?,
            from: InPath::parse(&d.from)?,
            split: d.split.as_deref().map(|r| self.regex(r)).transpose()?,
            matches: d.matches.as_deref().map(|r| self.regex(r)).transpose()?,
            all: d.all,
            limit: d.limit,
            count: opt_in(&d.count)?,
            truncated: opt_in(&d.truncated)?,
            truncated_to: d.truncated_to.as_deref().map(OutPath::parse).transpose()?,
            item,
        })
    }

    /// A header the definition reads ([`header_name`]), noted in `headers`.
    fn header(&self, h: &str) -> Res<HeaderName> {
        let name = header_name(h)?;
        let mut read = self.headers.borrow_mut();
        if !read.contains(&name) {
            read.push(name.clone());
        }
        Ok(name)
    }

    fn spec(&self, d: &MapDef) -> Res<Spec> {
        let mut sources = Vec::new();
        if let Some(from) = &d.from {
            let items = from.items();
            if let [one] = items.as_slice() {
                if *one == "@" || one.starts_with("@.") {
                    let inner = one.strip_prefix("@.").unwrap_or("");
                    sources.push(Source::Item(InPath::parse(inner)?));
                }
            }
            if sources.is_empty() {
                sources.push(Source::From(
                    items.iter().map(|p| InPath::parse(p)).collect::<Res<_>>()?,
                ));
            }
        }
        if let Some(h) = &d.header {
            sources.push(Source::Header(
                h.items()
                    .iter()
                    .map(|h| self.header(h))
                    .collect::<Res<_>>()?,
            ));
        }
        if let Some(c) = &d.capture {
            sources.push(Source::Capture(c.clone()));
        }
        if let Some(c) = &d.context {
            sources.push(Source::Context(match c.as_str() {
                "received_at_ms" => ContextField::ReceivedAtMs,
                "event_uid" => ContextField::EventUid,
                "tenant" => ContextField::Tenant,
                "source" => ContextField::Source,
                other => return Err(format!("unknown context {other:?}")),
            }));
        }
        if let Some(c) = &d.constant {
            sources.push(Source::Const(to_json(c.clone())));
        }
        if let Some(t) = &d.template {
            sources.push(Source::Template(template(t)?));
        }
        if let Some(o) = &d.object {
            let mut fields = Vec::new();
            for (k, v) in o {
                fields.push((k.clone(), self.spec(v).map_err(|e| format!("{k}: {e}"))?));
            }
            sources.push(Source::Object(fields));
        }
        let source =
            match sources.len() {
                1 => sources.pop().ok_or_else(String::new)?,
                0 if d.default.is_some() => Source::Const(Value::Null),
                0 => return Err(
                    "needs one source: from, header, capture, context, const, template or object"
                        .into(),
                ),
                _ => return Err("has more than one source".into()),
            };
        let mut converts = Vec::new();
        if let Some(c) = &d.convert {
            for name in c.items() {
                converts.push(self.convert(name)?);
            }
        }
        let lookup = match &d.lookup {
            Some(name) => {
                let table = self
                    .tables
                    .get(name)
                    .ok_or_else(|| format!("unknown table {name:?}"))?;
                let mode = match d.lookup_mode.as_deref() {
                    None | Some("exact") => LookupMode::Exact,
                    Some("first_word") => LookupMode::FirstWord,
                    Some(o) => return Err(format!("unknown lookup_mode {o:?}")),
                };
                Some((Arc::clone(table), mode))
            }
            None => None,
        };
        let aggregate = match d.aggregate.as_deref() {
            None => None,
            Some("max") => Some(Aggregate::Max),
            Some("min") => Some(Aggregate::Min),
            Some("first") => Some(Aggregate::First),
            Some("each") => Some(Aggregate::Each),
            Some(o) => return Err(format!("unknown aggregate {o:?}")),
        };
        Ok(Spec {
            source,
            converts,
            lookup,
            aggregate,
            default: d.default.clone().map(to_json),
            require: d.require.clone(),
            when: d.when.as_ref().map(|c| self.cond(c)).transpose()?,
        })
    }

    fn cond(&self, c: &CondDef) -> Res<Cond> {
        if let Some(all) = &c.all {
            return Ok(Cond::All(
                all.iter().map(|c| self.cond(c)).collect::<Res<_>>()?,
            ));
        }
        if let Some(any) = &c.any {
            return Ok(Cond::Any(
                any.iter().map(|c| self.cond(c)).collect::<Res<_>>()?,
            ));
        }
        if let Some(not) = &c.not {
            return Ok(Cond::Not(Box::new(self.cond(not)?)));
        }
        let subject = if let Some(f) = &c.field {
            Subject::Field(
                f.items()
                    .iter()
                    .map(|p| InPath::parse(p))
                    .collect::<Res<_>>()?,
            )
        } else if let Some(cap) = &c.capture {
            Subject::Capture(cap.clone())
        } else if let Some(h) = &c.header {
            Subject::Header(self.header(h)?)
        } else if let Some(o) = &c.out {
            Subject::Out(OutPath::parse(o)?)
        } else {
            return Err(
                "condition needs a subject (field, capture, header, out) or all/any/not".into(),
            );
        };
        let ci = c.case_insensitive;
        let norm = |s: String| if ci { s.to_lowercase() } else { s };
        let test = if let Some(v) = &c.equals {
            Test::Equals(norm(scalar_text(&to_json(v.clone()))))
        } else if let Some(vs) = &c.one_of {
            Test::In(
                vs.iter()
                    .map(|v| norm(scalar_text(&to_json(v.clone()))))
                    .collect(),
            )
        } else if let Some(s) = &c.contains {
            Test::Contains(norm(s.clone()))
        } else if let Some(s) = &c.prefix {
            Test::Prefix(norm(s.clone()))
        } else if let Some(s) = &c.suffix {
            Test::Suffix(norm(s.clone()))
        } else if let Some(r) = &c.regex {
            Test::Regex(self.regex(&if ci { format!("(?i){r}") } else { r.clone() })?)
        } else if let Some(e) = c.exists {
            Test::Exists(e)
        } else {
            return Err(
                "condition needs a test (equals, in, contains, prefix, suffix, regex, exists)"
                    .into(),
            );
        };
        Ok(Cond::Test {
            subject,
            test,
            case_insensitive: ci,
        })
    }

    /// The compiled `pattern`, shared with every earlier use of the same pattern.
    fn regex(&self, pattern: &str) -> Res<Regex> {
        if let Some(r) = self.regexes.borrow().get(pattern) {
            return Ok(r.clone());
        }
        let r = Regex::new(pattern).map_err(|e| format!("bad regex {pattern:?}: {e}"))?;
        self.regexes
            .borrow_mut()
            .insert(pattern.to_owned(), r.clone());
        Ok(r)
    }

    /// A conversion by name (`convert = "..."`).
    fn convert(&self, name: &str) -> Res<Convert> {
        Ok(match name {
            "epoch_ms" => Convert::EpochMs,
            "epoch_s" => Convert::EpochS,
            "rfc3339_ms" => Convert::Rfc3339Ms,
            "datetime_utc_ms" => Convert::DatetimeUtcMs,
            "ip" => Convert::Ip,
            "mac" => Convert::Mac,
            "email" => Convert::Email(self.regex(EMAIL_T)?),
            "lowercase" => Convert::Lowercase,
            "uppercase" => Convert::Uppercase,
            "trim_dot" => Convert::TrimDot,
            "string" => Convert::Text,
            "id" => Convert::Id,
            "int" => Convert::Int,
            "json" => Convert::Json,
            "quoted_list" => Convert::QuotedList,
            "positive" => Convert::Positive,
            other => return Err(format!("unknown conversion {other:?}")),
        })
    }
}

fn collect_reads(
    read: &mut Vec<InPath>,
    maps: &[Mapping],
    extract: &[Extract],
    lists: &[List],
    unmapped: &[InPath],
) {
    for m in maps {
        reads_of_spec(&m.spec, read);
    }
    for e in extract {
        read.push(e.from.clone());
    }
    for l in lists {
        read.push(l.from.clone());
        read.extend(l.count.iter().cloned());
        read.extend(l.truncated.iter().cloned());
        for m in &l.item {
            reads_of_spec(&m.spec, read);
        }
    }
    read.extend(unmapped.iter().cloned());
}

/// The `from` lists of two or more paths in `specs` (the route's mappings and activity
/// specs; each list once) that have a spare path, each path marked `true` when it is one: not
/// the first, and read nowhere else (by no mapping on its own, as the first of no list, not in
/// `other_reads`: extractions, lists, `unmapped`), with no array index (an element is no
/// field to name in `unmapped`).
fn alternatives(specs: Vec<&Spec>, other_reads: &[InPath]) -> Vec<Vec<(InPath, bool)>> {
    let mut lists: Vec<Vec<InPath>> = Vec::new();
    let mut alone: Vec<InPath> = Vec::new();
    let mut specs = specs;
    while let Some(spec) = specs.pop() {
        match &spec.source {
            Source::From(paths) if paths.len() > 1 => {
                let same = |l: &Vec<InPath>| {
                    l.len() == paths.len() && l.iter().zip(paths).all(|(a, b)| a.text() == b.text())
                };
                if !lists.iter().any(same) {
                    lists.push(paths.clone());
                }
            }
            Source::From(paths) => alone.extend(paths.iter().cloned()),
            Source::Template(pieces) => alone.extend(pieces.iter().filter_map(|p| match p {
                Piece::Path(q) => Some(q.clone()),
                Piece::Text(_) | Piece::Capture(_) => None,
            })),
            Source::Object(fields) => specs.extend(fields.iter().map(|(_, s)| s)),
            _ => {}
        }
    }
    fn named<'a>(p: &InPath, mut among: impl Iterator<Item = &'a InPath>) -> bool {
        among.any(|q| q.text() == p.text())
    }
    let mut spares: Vec<InPath> = Vec::new();
    for path in lists.iter().flat_map(|l| l.iter().skip(1)) {
        let read_elsewhere = named(path, alone.iter())
            || named(path, other_reads.iter())
            || named(path, lists.iter().filter_map(|l| l.first()))
            || named(path, spares.iter());
        if !read_elsewhere && !path.has_index() {
            spares.push(path.clone());
        }
    }
    lists
        .into_iter()
        .map(|l| {
            l.into_iter()
                .map(|p| {
                    let spare = spares.iter().any(|s| s.text() == p.text());
                    (p, spare)
                })
                .collect::<Vec<_>>()
        })
        .filter(|l| l.iter().any(|(_, spare)| *spare))
        .collect()
}

fn reads_of_spec(spec: &Spec, read: &mut Vec<InPath>) {
    match &spec.source {
        Source::From(paths) => read.extend(paths.iter().cloned()),
        Source::Template(pieces) => {
            for p in pieces {
                if let Piece::Path(p) = p {
                    read.push(p.clone());
                }
            }
        }
        Source::Object(fields) => {
            for (_, s) in fields {
                reads_of_spec(s, read);
            }
        }
        _ => {}
    }
}

fn template(t: &str) -> Res<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let (text, after) = rest.split_at(open);
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        let close = after
            .find('}')
            .ok_or_else(|| format!("template {t:?}: unclosed '{{'"))?;
        let name = after.get(1..close).unwrap_or_default();
        pieces.push(match name.strip_prefix('$') {
            Some(cap) => Piece::Capture(cap.to_owned()),
            None => Piece::Path(InPath::parse(name)?),
        });
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// A header a parser may read: never one named like a secret (`Authorization`, a signature,
/// an API key), whose value would otherwise be copied into events on Kafka.
fn header_name(h: &str) -> Res<HeaderName> {
    if crate::telemetry::names_a_secret(h) {
        return Err(format!(
            "{h:?} names a secret (credentials, signatures): a parser may not read it"
        ));
    }
    HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("{h:?} is not a header name"))
}

/// Longest dedup window or cache lifetime: ten years, so that every expiry is a time the
/// clocks can hold.
pub const MAX_WINDOW_SECS: u64 = 3650 * 86_400;

/// Parses `"30h"`, `"90m"`, `"3600s"`, `"2d"`; `"none"` or any zero (`"0"`, `"0s"`) = no
/// window.
pub fn window(text: &str) -> Res<Option<Duration>> {
    let t = text.trim();
    if t == "none" || t == "0" {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"30h\" or \"none\""))?;
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|s| *s <= MAX_WINDOW_SECS)
        .ok_or_else(|| format!("{text:?} is too long (ten years at most)"))?;
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

/// TOML → JSON value.
pub fn to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

/// A scalar as text (strings unquoted).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The OCSF `email_t` pattern (for tests and docs).
pub fn email_pattern() -> &'static str {
    EMAIL_T
}

/// Every output path of a route names attributes its class defines (the official schema's,
/// `normalize/ocsf_paths.rs`): list items and object fields below the object type they are
/// written into, the session cache's fields at the top. A typo is refused at load, not
/// emitted as an attribute the schema rejects.
fn check_outputs(
    uid: u32,
    maps: &[Mapping],
    lists: &[List],
    caches: [Option<&CacheUse>; 2],
) -> Res<()> {
    for m in maps {
        check_mapping(uid, None, m)?;
    }
    for l in lists {
        let at = |e: String| format!("list to {:?}: {e}", l.to.text());
        let element = ocsf_paths::resolve(uid, None, l.to.keys()).map_err(at)?;
        if let Some(t) = &l.truncated_to {
            ocsf_paths::resolve(uid, None, t.keys())
                .map_err(|e| format!("list truncated_to {:?}: {e}", t.text()))?;
        }
        if let Attr::Object(object) = element {
            for m in &l.item {
                check_mapping(uid, Some(object), m)?;
            }
        }
    }
    for cache in caches.into_iter().flatten() {
        for field in &cache.fields {
            ocsf_paths::resolve(uid, None, field.split('.'))
                .map_err(|e| format!("session cache field {field:?}: {e}"))?;
        }
        for m in &cache.on_miss {
            check_mapping(uid, None, m)?;
        }
    }
    Ok(())
}

/// [`check_outputs`] for one mapping written below `start` (the class when `None`).
fn check_mapping(uid: u32, start: Option<&'static str>, m: &Mapping) -> Res<()> {
    let at = |e: String| format!("map to {:?}: {e}", m.to.text());
    let target = ocsf_paths::resolve(uid, start, m.to.keys()).map_err(at)?;
    check_object_fields(uid, target, &m.spec).map_err(at)
}

/// The fields of an `object = { ... }` spec, below the object type it is written as.
fn check_object_fields(uid: u32, target: Attr, spec: &Spec) -> Res<()> {
    let Source::Object(fields) = &spec.source else {
        return Ok(());
    };
    let object = match target {
        Attr::Object(object) => object,
        Attr::Any => return Ok(()),
        Attr::Scalar => return Err("an object written where the class holds a value".into()),
    };
    for (key, field) in fields {
        let below = ocsf_paths::resolve(uid, Some(object), key.split('.'))?;
        check_object_fields(uid, below, field)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_used_twice_is_compiled_once() {
        let groups = BTreeMap::new();
        let cx = Ctx {
            text: "",
            groups: &groups,
            tables: HashMap::new(),
            regexes: RefCell::default(),
            headers: RefCell::default(),
        };
        let a = cx.regex(r"\d+").unwrap();
        let b = cx.regex(r"\d+").unwrap();
        cx.regex("x").unwrap();
        assert_eq!(cx.regexes.borrow().len(), 2);
        assert!(a.is_match("7") && b.is_match("7") && !b.is_match("x"));
        assert!(cx.regex("(").unwrap_err().contains("bad regex"));
        assert_eq!(cx.regexes.borrow().len(), 2);
    }
}
