//! The parser definition file format (`parsers/<vendor>.toml`), as serde types.
//!
//! Input: TOML text. Output: [`Definition`], a literal description of the file. Nothing here
//! is compiled: [`super::compile`] turns it into the runtime form once at load. Unknown keys
//! are rejected so a typo in a definition fails loudly with its line. The format is documented
//! for parser authors in `docs/parsers.md`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// One definition file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// `[parser]`: identity and input quirks.
    pub parser: ParserDef,
    /// `[id]`: where the event id (dedup key, `metadata.uid`) comes from.
    pub id: IdDef,
    /// `[session_cache]`: values remembered between events (Hoop session open → close).
    #[serde(default)]
    pub session_cache: Option<SessionCacheDef>,
    /// `[tables.<name>]`: lookup tables, string key → any value; key `"*"` matches any other.
    #[serde(default)]
    pub tables: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// `[groups]`: named lists of mappings that routes pull in with `include`.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<Spanned<MapDef>>>,
    /// `[[route]]`: tried in order; the first whose `when` holds maps the event.
    #[serde(default, rename = "route")]
    pub routes: Vec<Spanned<RouteDef>>,
}

/// `[parser]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParserDef {
    /// `metadata.product.name`.
    pub product: String,
    /// `metadata.product.vendor_name`.
    pub vendor_name: String,
    /// When strict JSON parsing fails, repair strings (stray backslashes, raw control
    /// characters) and parse again. Default false.
    #[serde(default)]
    pub lenient_json: bool,
    /// An empty body is the vendor's health call. Default false.
    #[serde(default)]
    pub heartbeat_on_empty: bool,
    /// A body that is not JSON and does not open like a JSON object or array (`ping`, `OK`)
    /// is the vendor's health call. A body that opens with `{` or `[` and does not parse is
    /// still refused with 400, so a truncated event is retried, never taken for a heartbeat.
    /// Default false.
    #[serde(default)]
    pub heartbeat_on_text: bool,
    /// A JSON object matching this condition is the vendor's health call.
    #[serde(default)]
    pub heartbeat: Option<CondDef>,
}

/// `[id]`: tried in order: headers, body paths, then the content hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdDef {
    /// Header names, first present wins (e.g. `["svix-id", "webhook-id"]`).
    #[serde(default)]
    pub header: Vec<String>,
    /// Body paths, first present wins.
    #[serde(default)]
    pub from: Vec<String>,
    /// Content-hash prefix: `sha256_hex(prefix + "\n" + canonical_json(body))`.
    #[serde(default)]
    pub hash: Option<String>,
    /// Dedup window (`"30h"`, `"90m"`, `"none"`). Routes may override.
    pub window: String,
    /// Body path of the time the vendor sent the event, covered by its signature (RFC 3339
    /// text, or an integer epoch in seconds or milliseconds): what an `hmac` check's
    /// `max_age_s` reads to refuse a replayed capture (Hyprwatch's `timestamp`). Optional.
    #[serde(default)]
    pub sent_at: Option<String>,
}

/// `[session_cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCacheDef {
    /// How long an entry lives (`"24h"`).
    pub ttl: String,
    /// Most entries kept; the oldest is evicted first.
    pub max_entries: usize,
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// Route name (logs, docs).
    pub name: String,
    /// When this route applies; absent = always (a fallback).
    #[serde(default)]
    pub when: Option<CondDef>,
    /// OCSF `class_uid`.
    pub class: u32,
    /// `activity_id`, fixed.
    #[serde(default)]
    pub activity: Option<i64>,
    /// `activity_id`, computed (a value spec); used when `activity` is absent.
    #[serde(default)]
    pub activity_from: Option<MapDef>,
    /// Source word for `activity_name` when the activity is 99 (Other).
    #[serde(default)]
    pub activity_name: Option<MapDef>,
    /// Dedup window override for events of this route (`"none"` = never dedup).
    #[serde(default)]
    pub window: Option<String>,
    /// Regex extractions run before mapping; named captures become `capture` sources.
    #[serde(default)]
    pub extract: Vec<Spanned<ExtractDef>>,
    /// Groups whose mappings run first, in order.
    #[serde(default)]
    pub include: Vec<String>,
    /// Field mappings, applied in order (after the included groups).
    #[serde(default)]
    pub map: Vec<Spanned<MapDef>>,
    /// Lists built from arrays or text segments.
    #[serde(default)]
    pub list: Vec<Spanned<ListDef>>,
    /// Vendor paths copied to `unmapped` under their last key.
    #[serde(default)]
    pub unmapped: Vec<String>,
    /// Objects whose keys no mapping of this route reads go to `unmapped` (`""` = the root).
    #[serde(default)]
    pub leftovers: Vec<String>,
    /// Store OCSF output fields in the session cache under this key.
    #[serde(default)]
    pub cache_store: Option<CacheDef>,
    /// Load OCSF output fields from the session cache; `on_miss` mappings otherwise.
    #[serde(default)]
    pub cache_load: Option<CacheDef>,
}

/// A session cache use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheDef {
    /// The key (value spec).
    pub key: Box<MapDef>,
    /// OCSF output fields (top-level names) stored or loaded.
    pub fields: Vec<String>,
    /// Mappings applied when a load misses.
    #[serde(default)]
    pub on_miss: Vec<Spanned<MapDef>>,
}

/// A regex run over a vendor field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractDef {
    /// Body path of the text.
    pub from: String,
    /// Regex with named captures.
    pub regex: String,
    /// Collect every match (captures become arrays) instead of the first.
    #[serde(default)]
    pub all: bool,
}

/// A list built from an array (`from` is an array) or text segments (`split`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDef {
    /// OCSF output path of the array.
    pub to: String,
    /// Body path of the array or text.
    pub from: String,
    /// For text: regex separating segments.
    #[serde(default)]
    pub split: Option<String>,
    /// For text: only segments matching this regex make items; its captures feed `item`.
    #[serde(default, rename = "match")]
    pub matches: Option<String>,
    /// For text: every match of `match` in a segment makes an item (default: the first only),
    /// for entries the sender does not put on lines of their own.
    #[serde(default)]
    pub all: bool,
    /// Most items kept.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Body path of the vendor's declared total (truncation check).
    #[serde(default)]
    pub count: Option<String>,
    /// Body path of the vendor's own "truncated" flag.
    #[serde(default)]
    pub truncated: Option<String>,
    /// Output path set to true/false: vendor flag, dropped items, or count > kept.
    #[serde(default)]
    pub truncated_to: Option<String>,
    /// Item fields; `from = "@"` is the item, `"@.x"` a path inside it.
    pub item: Vec<Spanned<MapDef>>,
}

/// One field mapping (or, inside `object`/`item`/`activity`, a value spec).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapDef {
    /// OCSF output path; `[]` after a segment appends to an array (`observables[]`).
    #[serde(default)]
    pub to: Option<String>,
    /// Body paths, first present (not null, not "") wins.
    #[serde(default)]
    pub from: Option<OneOrMany>,
    /// Header names, first present wins.
    #[serde(default)]
    pub header: Option<OneOrMany>,
    /// A named regex capture.
    #[serde(default)]
    pub capture: Option<String>,
    /// A gateway value: `received_at_ms`, `event_uid`, `tenant`, `source`.
    #[serde(default)]
    pub context: Option<String>,
    /// A constant.
    #[serde(rename = "const", default)]
    pub constant: Option<toml::Value>,
    /// Text with `{path}` (body) and `{$name}` (capture) placeholders.
    #[serde(default)]
    pub template: Option<String>,
    /// An object built from value specs.
    #[serde(default)]
    pub object: Option<BTreeMap<String, MapDef>>,
    /// Conversions applied in order; one that fails makes the value absent.
    #[serde(default)]
    pub convert: Option<OneOrMany>,
    /// Lookup table name.
    #[serde(default)]
    pub lookup: Option<String>,
    /// `"exact"` (default) or `"first_word"` (first word of the text found in the table).
    #[serde(default)]
    pub lookup_mode: Option<String>,
    /// For array values: `"max"`, `"min"`, `"first"`.
    #[serde(default)]
    pub aggregate: Option<String>,
    /// Used when the value is absent.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Only map when this holds.
    #[serde(default)]
    pub when: Option<CondDef>,
    /// For `object`: keys that must be present, else the object is skipped.
    #[serde(default)]
    pub require: Vec<String>,
    /// The event cannot be mapped without this value (→ dead letter).
    #[serde(default)]
    pub required: bool,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several, in order.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings in order.
    pub fn items(&self) -> Vec<&String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

/// A condition: one test on a subject, or a combination.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CondDef {
    /// Subject: body paths (first present).
    #[serde(default)]
    pub field: Option<OneOrMany>,
    /// Subject: a named capture.
    #[serde(default)]
    pub capture: Option<String>,
    /// Subject: a header.
    #[serde(default)]
    pub header: Option<String>,
    /// Subject: an OCSF output field mapped so far.
    #[serde(default)]
    pub out: Option<String>,
    /// Test: equal to (strings compare as text; numbers/bools by their JSON text).
    #[serde(default)]
    pub equals: Option<toml::Value>,
    /// Test: one of.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<toml::Value>>,
    /// Test: contains the substring.
    #[serde(default)]
    pub contains: Option<String>,
    /// Test: starts with.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Test: ends with.
    #[serde(default)]
    pub suffix: Option<String>,
    /// Test: regex matches.
    #[serde(default)]
    pub regex: Option<String>,
    /// Test: present (true) or absent (false).
    #[serde(default)]
    pub exists: Option<bool>,
    /// Text tests ignore case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// All of these hold.
    #[serde(default)]
    pub all: Option<Vec<CondDef>>,
    /// Any of these holds.
    #[serde(default)]
    pub any: Option<Vec<CondDef>>,
    /// This does not hold.
    #[serde(default)]
    pub not: Option<Box<CondDef>>,
}
