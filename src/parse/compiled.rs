//! The compiled (runtime) form of a parser definition: what [`super::compile`] builds once at
//! load and the hot path reads. Plain data: regexes already compiled, paths resolved, tables
//! shared, class captions looked up.
//!
//! Input: none (types only). Output: the types. Never holds definition text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use regex::Regex;
use serde_json::Value;

use super::doc::same_key;
use super::path::{InPath, OutPath};
use super::session_cache::SessionCache;
use crate::normalize::ocsf::ClassInfo;

/// `metadata.product`.
#[derive(Debug, Clone)]
pub struct Product {
    /// `name`.
    pub name: String,
    /// `vendor_name`.
    pub vendor_name: String,
}

/// A compiled parser definition.
#[derive(Debug)]
pub struct Compiled {
    /// `metadata.product`.
    pub product: Arc<Product>,
    /// Repair strings (stray backslashes, raw control characters) when strict JSON fails.
    pub lenient_json: bool,
    /// Empty body = heartbeat.
    pub heartbeat_on_empty: bool,
    /// A body that is not JSON and opens with neither `{` nor `[` = heartbeat.
    pub heartbeat_on_text: bool,
    /// Object body matching this = heartbeat.
    pub heartbeat: Option<Cond>,
    /// Event id rule.
    pub id: IdRule,
    /// Session cache, when the definition has one.
    pub cache: Option<SessionCache>,
    /// Every request header the definition reads (ids, mappings, conditions): a source
    /// whose credentials travel in one of them may not use this parser (`app.rs`).
    pub headers_read: Vec<HeaderName>,
    /// Routes in order.
    pub routes: Vec<Route>,
}

/// Where the event id comes from.
#[derive(Debug)]
pub struct IdRule {
    /// Headers, first present wins.
    pub headers: Vec<HeaderName>,
    /// Body paths, first present wins.
    pub from: Vec<InPath>,
    /// Content-hash prefix.
    pub hash: Option<String>,
    /// Default dedup window (`None` = never).
    pub window: Option<Duration>,
    /// Where the signed send time is (`[id] sent_at`).
    pub sent_at: Option<InPath>,
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Name.
    pub name: String,
    /// Condition (`None` = always).
    pub when: Option<Cond>,
    /// OCSF class.
    pub class: &'static ClassInfo,
    /// `activity_id`.
    pub activity: Activity,
    /// `activity_name` source for activity 99.
    pub activity_name: Option<Spec>,
    /// Dedup window override (`Some(None)` = never dedup).
    pub window: Option<Option<Duration>>,
    /// Regex extractions.
    pub extract: Vec<Extract>,
    /// Field mappings.
    pub maps: Vec<Mapping>,
    /// List builders.
    pub lists: Vec<List>,
    /// Paths copied to `unmapped`.
    pub unmapped: Vec<InPath>,
    /// The `from = [a, b, ..]` lists (each once) with a path that nothing else reads, each
    /// path marked so: present beside the one used (the first present), it goes to
    /// `unmapped`, since the leftovers count every path of the list as read (HYPR's
    /// `fidoUser` beside `machineUserName`).
    pub alternatives: Vec<Vec<(InPath, bool)>>,
    /// Objects whose unread keys go to `unmapped`, in the order written.
    pub leftovers: Vec<Leftover>,
    /// Session cache store.
    pub cache_store: Option<CacheUse>,
    /// Session cache load.
    pub cache_load: Option<CacheUse>,
}

/// One `leftovers` object of a route.
#[derive(Debug)]
pub struct Leftover {
    /// Where the object is in the event.
    pub path: InPath,
    /// Its keys that the route reads (they are not leftovers).
    pub read: KeySet,
    /// Whether a later leftover path lies under this one, so the read keys must stay in the
    /// event for it; otherwise they are dropped, not put back (the event is not used again).
    pub keep_read: bool,
    /// Its keys that lead to a later leftover path (they stay in the event for it).
    pub containers: KeySet,
    /// The keys the route reads of the leftover levels listed before this one that hold it: a
    /// leftover of this level under one of these names goes to `unmapped` under its full path,
    /// since the outer level has the name too (in the event's fields, not in `unmapped`).
    pub outer_read: KeySet,
}

/// A few keys (those a route reads of one object), checked by [`same_key`]: for a handful
/// of short keys a scan that compares lengths first beats a search tree or a hash. Most keys
/// asked about are not in the set: a bit per key length (modulo 64) turns those away first.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<String>,
    lengths: u64,
}

impl KeySet {
    /// The set of `keys` (repeats dropped).
    pub fn new(keys: impl IntoIterator<Item = String>) -> KeySet {
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort();
        keys.dedup();
        let lengths = keys.iter().fold(0, |m, k| m | length_bit(k));
        KeySet { keys, lengths }
    }

    /// True when `key` is one of them.
    pub fn contains(&self, key: &str) -> bool {
        self.lengths & length_bit(key) != 0 && self.keys.iter().any(|k| same_key(k, key))
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The bit of [`KeySet::lengths`] for `key`.
fn length_bit(key: &str) -> u64 {
    1 << (key.len() % 64)
}

/// `activity_id` rule.
#[derive(Debug)]
pub enum Activity {
    /// Fixed id.
    Fixed(i64),
    /// Computed.
    Spec(Box<Spec>),
}

/// A session cache use.
#[derive(Debug)]
pub struct CacheUse {
    /// Key.
    pub key: Spec,
    /// OCSF top-level fields.
    pub fields: Vec<String>,
    /// Mappings on a miss.
    pub on_miss: Vec<Mapping>,
}

/// A regex extraction.
#[derive(Debug)]
pub struct Extract {
    /// Text source.
    pub from: InPath,
    /// Regex.
    pub regex: Regex,
    /// Every match.
    pub all: bool,
}

/// A list builder.
#[derive(Debug)]
pub struct List {
    /// Output array.
    pub to: OutPath,
    /// Source array or text.
    pub from: InPath,
    /// Text segment separator.
    pub split: Option<Regex>,
    /// Segment filter with captures.
    pub matches: Option<Regex>,
    /// Every match in a segment makes an item, not only the first.
    pub all: bool,
    /// Most items.
    pub limit: Option<usize>,
    /// Declared total.
    pub count: Option<InPath>,
    /// Vendor truncation flag.
    pub truncated: Option<InPath>,
    /// Where to write the truncation verdict.
    pub truncated_to: Option<OutPath>,
    /// Item fields.
    pub item: Vec<Mapping>,
}

/// A field mapping.
#[derive(Debug)]
pub struct Mapping {
    /// Output path.
    pub to: OutPath,
    /// Value (its `when` guards the mapping).
    pub spec: Spec,
    /// Missing → dead letter.
    pub required: bool,
}

/// A value spec.
#[derive(Debug)]
pub struct Spec {
    /// Where the value comes from.
    pub source: Source,
    /// Conversions in order.
    pub converts: Vec<Convert>,
    /// Lookup.
    pub lookup: Option<(Arc<Table>, LookupMode)>,
    /// Array reduction.
    pub aggregate: Option<Aggregate>,
    /// Value when absent.
    pub default: Option<Value>,
    /// Object: keys that must be present.
    pub require: Vec<String>,
    /// Guard (inside objects and items).
    pub when: Option<Cond>,
}

/// Value sources.
#[derive(Debug)]
pub enum Source {
    /// Body paths.
    From(Vec<InPath>),
    /// The current list item (path inside it).
    Item(InPath),
    /// Headers.
    Header(Vec<HeaderName>),
    /// Named capture.
    Capture(String),
    /// Gateway context.
    Context(ContextField),
    /// Constant.
    Const(Value),
    /// Template pieces.
    Template(Vec<Piece>),
    /// Object of specs.
    Object(Vec<(String, Spec)>),
}

/// Gateway values.
#[derive(Debug, Clone, Copy)]
pub enum ContextField {
    /// Receive time, epoch ms.
    ReceivedAtMs,
    /// The event id (dedup key).
    EventUid,
    /// Tenant.
    Tenant,
    /// Source name.
    Source,
}

/// A template piece.
#[derive(Debug)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// Body path.
    Path(InPath),
    /// Capture.
    Capture(String),
}

/// A conversion.
#[derive(Debug)]
pub enum Convert {
    /// Number or numeric string, epoch ms.
    EpochMs,
    /// Epoch seconds → ms.
    EpochS,
    /// RFC 3339 → ms (sub-ms digits truncated).
    Rfc3339Ms,
    /// `YYYY-MM-DD HH:MM:SS[ UTC]` → ms.
    DatetimeUtcMs,
    /// Valid IP address (else absent).
    Ip,
    /// Valid MAC address, lower-cased with colons (else absent).
    Mac,
    /// Valid OCSF `email_t` (else absent).
    Email(Regex),
    /// Lower-case.
    Lowercase,
    /// Upper-case.
    Uppercase,
    /// Strip trailing dots (a sentence's full stop, a fully qualified name's root dot) and
    /// surrounding space.
    TrimDot,
    /// Any scalar → string.
    Text,
    /// What may be an id: a string with more than blanks as it is, an integer as its text;
    /// anything else (a list, an object, `true`, a float) is no id.
    Id,
    /// Integer (from number or string).
    Int,
    /// Parse a JSON string.
    Json,
    /// A bracketed list of quoted strings, JSON's or Go's `%q` (`src/parse/quoted_list.rs`).
    QuotedList,
    /// Number > 0 → true.
    Positive,
}

/// A lookup table.
#[derive(Debug)]
pub struct Table {
    /// Entries.
    pub entries: HashMap<String, Value>,
    /// `"*"`: any other key.
    pub other: Option<Value>,
}

/// How a lookup matches.
#[derive(Debug, Clone, Copy)]
pub enum LookupMode {
    /// Whole value.
    Exact,
    /// First lower-cased word of the text found in the table.
    FirstWord,
}

/// Array reductions.
#[derive(Debug, Clone, Copy)]
pub enum Aggregate {
    /// Largest number.
    Max,
    /// Smallest number.
    Min,
    /// First element.
    First,
    /// Every element that converts, as an array (absent when none does).
    Each,
}

/// A compiled condition.
#[derive(Debug)]
pub enum Cond {
    /// One test.
    Test {
        /// What is tested.
        subject: Subject,
        /// The test.
        test: Test,
        /// Text tests ignore case (operands pre-lowered).
        case_insensitive: bool,
    },
    /// All hold.
    All(Vec<Cond>),
    /// Any holds.
    Any(Vec<Cond>),
    /// Does not hold.
    Not(Box<Cond>),
}

/// Condition subjects.
#[derive(Debug)]
pub enum Subject {
    /// Body paths.
    Field(Vec<InPath>),
    /// Capture.
    Capture(String),
    /// Header.
    Header(HeaderName),
    /// Output so far.
    Out(OutPath),
}

/// Condition tests.
#[derive(Debug)]
pub enum Test {
    /// Equal.
    Equals(String),
    /// One of.
    In(Vec<String>),
    /// Substring.
    Contains(String),
    /// Prefix.
    Prefix(String),
    /// Suffix.
    Suffix(String),
    /// Regex.
    Regex(Regex),
    /// Presence.
    Exists(bool),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_set_finds_its_keys_and_only_those() {
        let long = "k".repeat(70); // length 70: the same bit as length 6
        let set = KeySet::new(["id".to_owned(), "event".to_owned(), long.clone()]);
        for k in ["id", "event", long.as_str()] {
            assert!(set.contains(k), "{k}");
        }
        for k in ["", "i", "ids", "evenT", "events", "kkkkkk", &"k".repeat(69)] {
            assert!(!set.contains(k), "{k}");
        }
        assert!(KeySet::new([]).is_empty() && !KeySet::new([]).contains(""));
    }
}
