//! The vendor event as read: a JSON tree whose strings borrow the request body, and whose
//! objects are vectors of members in the order sent.
//!
//! Input: one event's JSON text (borrowed from the body). Output: [`Doc`], which split,
//! routing, the id rule, conditions, mappings, leftovers and the content hash read. Building
//! a `serde_json::Value` for each event cost one `String` per key and value and one
//! `BTreeMap` insert per member, most of them never read again. Here a string without
//! escapes is a slice of the body, and an object keeps its members in the order sent: a
//! vendor object has a few dozen members at most, and a lookup compares lengths before bytes.
//!
//! It behaves as `serde_json::Value` does where that shows: a repeated key keeps its last
//! value, numbers are `serde_json::Number`, members are written in code point order of their
//! keys, and [`Doc::write_json`] writes exactly the bytes serde_json writes for the same
//! `Value` (the canonical text the content hash covers). What the gateway writes out is still
//! a `serde_json::Value` ([`Doc::to_value`], [`Doc::into_value`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::normalize::json_text;

/// One JSON value of a vendor event.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as serde_json reads it.
    Number(Number),
    /// A string: borrowed from the body unless it had escapes.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Doc<'a>>),
    /// An object.
    Object(Members<'a>),
}

/// The members of an object, in the order sent (a repeated key more than once: the last
/// one counts).
#[derive(Debug, Clone, Default)]
pub struct Members<'a>(Vec<(Cow<'a, str>, Doc<'a>)>);

/// Equal as `serde_json` maps are: the same keys with the same (last) values.
impl PartialEq for Members<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.sorted(), other.sorted());
        a.len() == b.len()
            && a.iter()
                .zip(&b)
                .all(|((ka, va), (kb, vb))| ka == kb && va == vb)
    }
}

impl<'a> Doc<'a> {
    /// Parses JSON text, borrowing its strings.
    pub fn parse(text: &'a str) -> serde_json::Result<Doc<'a>> {
        serde_json::from_str(text)
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }

    /// True for an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Doc::Object(_))
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one or the text `true` / `false` (any case, as `as_i64` reads
    /// a number sent as text).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            Doc::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Doc::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Doc<'a>]> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The member `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Doc<'a>> {
        match self {
            Doc::Object(members) => members.get(key),
            _ => None,
        }
    }

    /// Neither `null` nor the empty string.
    pub fn present(&self) -> bool {
        !matches!(self, Doc::Null) && self.as_str() != Some("")
    }

    /// Text of a scalar (strings unquoted); `None` for arrays, objects and `null`.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Doc::String(s) => Some(Cow::Borrowed(s)),
            Doc::Number(n) => Some(Cow::Owned(n.to_string())),
            Doc::Bool(true) => Some(Cow::Borrowed("true")),
            Doc::Bool(false) => Some(Cow::Borrowed("false")),
            _ => None,
        }
    }

    /// An integer: a number (a fraction truncated) or a string holding one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Doc::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Doc::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A copy as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.as_ref().to_owned()),
            Doc::Array(items) => Value::Array(items.iter().map(Doc::to_value).collect()),
            // The map is built in bulk (one sort), not by one search per member; of a
            // repeated key the last value stays.
            Doc::Object(members) => Value::Object(
                members
                    .0
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// This value as a `serde_json::Value` (an owned string is moved, not copied).
    pub fn into_value(self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(b),
            Doc::Number(n) => Value::Number(n),
            Doc::String(s) => Value::String(s.into_owned()),
            Doc::Array(items) => Value::Array(items.into_iter().map(Doc::into_value).collect()),
            Doc::Object(members) => Value::Object(
                members
                    .0
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }

    /// Appends compact JSON: members in key order, serde_json's exact bytes for the same
    /// `Value` (so for an event, its canonical text).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Doc::Null => out.extend_from_slice(b"null"),
            Doc::Bool(true) => out.extend_from_slice(b"true"),
            Doc::Bool(false) => out.extend_from_slice(b"false"),
            // itoa / ryu through serde_json; writing into a Vec cannot fail.
            Doc::Number(n) => {
                let _ = serde_json::to_writer(&mut *out, n);
            }
            Doc::String(s) => json_text::write_str(out, s),
            Doc::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Doc::Object(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.sorted().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_text::write_str(out, k);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// [`Doc::write_json`] as a `String`.
    pub fn json_text(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl<'a> Members<'a> {
    /// The value of `key` (its last occurrence).
    pub fn get(&self, key: &str) -> Option<&Doc<'a>> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v)
    }

    /// The value of `key` (its last occurrence), mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Doc<'a>> {
        self.0
            .iter_mut()
            .rev()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v)
    }

    /// How many members (a repeated key counted each time).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The members in key order, each key once with its last value.
    fn sorted(&self) -> Vec<(&str, &Doc<'a>)> {
        let mut all: Vec<(&str, &Doc<'a>)> = self.0.iter().map(|(k, v)| (k.as_ref(), v)).collect();
        if all.is_sorted_by(|a, b| a.0 < b.0) {
            return all;
        }
        // Stable: of a repeated key the last stays last, and replaces the earlier below.
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut unique: Vec<(&str, &Doc<'a>)> = Vec::with_capacity(all.len());
        for member in all {
            match unique.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => unique.push(member),
            }
        }
        unique
    }

    /// Takes every member out, in the order sent, leaving the object empty.
    pub fn take(&mut self) -> Vec<(Cow<'a, str>, Doc<'a>)> {
        std::mem::take(&mut self.0)
    }

    /// Appends members (after [`Members::take`], what is to stay).
    pub fn put_back(&mut self, members: impl IntoIterator<Item = (Cow<'a, str>, Doc<'a>)>) {
        self.0.extend(members);
    }
}

/// `a == b` for object keys, cheapest test first: most keys differ in length, and of those of
/// one length most differ in their last byte (`user_name` / `user_uid`), so the full
/// comparison (a `memcmp` call) runs mostly for the key that matches.
pub fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().last() == b.as_bytes().last() && a == b
}

/// An owned copy of a `serde_json::Value` (a repaired body; tests).
impl From<Value> for Doc<'static> {
    fn from(v: Value) -> Doc<'static> {
        match v {
            Value::Null => Doc::Null,
            Value::Bool(b) => Doc::Bool(b),
            Value::Number(n) => Doc::Number(n),
            Value::String(s) => Doc::String(Cow::Owned(s)),
            Value::Array(items) => Doc::Array(items.into_iter().map(Doc::from).collect()),
            // serde_json's map is already sorted with unique keys.
            Value::Object(map) => Doc::Object(Members(
                map.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Doc::from(v)))
                    .collect(),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc<'de>, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Doc<'de>, E> {
        // As serde_json's `Value`: a float JSON cannot hold becomes null.
        Ok(Number::from_f64(n).map_or(Doc::Null, Doc::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        Doc::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Doc::Object(Members(entries)))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(Key)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of value, escapes, non-ASCII, repeated keys, nesting, unsorted keys, and
    /// numbers serde_json reads as unsigned, signed and float.
    const CASES: &[&str] = &[
        r#"{"b":1,"a":"x","c":[true,false,null,{"z":1,"y":2}]}"#,
        r#"{"id":"a\"b\\c\nd\u00e9\ud83d\ude00","é":"ü","a b":"  ","":0}"#,
        r#"{"k":1,"k":2,"j":{"k":[1],"k":"last"},"k":3}"#,
        r#"{"n":[0,-1,18446744073709551615,-9223372036854775808,1.5,1e300,-0.0,2.50,1E2]}"#,
        r#"[{"a":{"b":{"c":{"d":[[[]]]}}}},"s",1,{}]"#,
        r#"{"Z":1,"a":1,"_":1,"0":1,"~":1,"é":1,"中":1,"🙂":1}"#,
        r#"  {"s" : "tab\there" , "t":"\/"}  "#,
    ];

    /// `doc`, read from `text`, is `oracle` (serde_json's reading of it): as a copy, moved
    /// out, and written back as serde_json writes it.
    fn assert_same(text: &str, doc: &Doc<'_>, oracle: &Value) {
        assert_eq!(doc.to_value(), *oracle, "{text}");
        assert_eq!(doc.clone().into_value(), *oracle, "{text}");
        assert_eq!(
            doc.json_text(),
            serde_json::to_string(oracle).unwrap(),
            "{text}"
        );
    }

    #[test]
    fn reads_what_serde_json_reads_and_writes_its_exact_bytes() {
        for case in CASES {
            let oracle: Value = serde_json::from_str(case).unwrap();
            let doc = Doc::parse(case).unwrap();
            assert_same(case, &doc, &oracle);
            assert_eq!(Doc::from(oracle.clone()), doc, "{case}");
        }
    }

    #[test]
    fn strings_without_escapes_borrow_the_text() {
        let text = r#"{"plain":"abc","esc":"a\nb","nested":{"k":"v"}}"#;
        let doc = Doc::parse(text).unwrap();
        let Doc::Object(members) = &doc else {
            panic!("not an object")
        };
        for (key, value) in members.0.iter() {
            assert!(matches!(key, Cow::Borrowed(_)), "{key}");
            if let Doc::String(s) = value {
                assert_eq!(matches!(s, Cow::Borrowed(_)), &**key == "plain", "{key}");
            }
        }
        assert!(matches!(
            doc.get("nested").and_then(|n| n.get("k")),
            Some(Doc::String(Cow::Borrowed("v")))
        ));
    }

    #[test]
    fn members_are_found_sorted_and_the_last_repeat_wins() {
        let doc = Doc::parse(r#"{"b":1,"a":2,"b":3,"c":{"x":null}}"#).unwrap();
        let Doc::Object(members) = &doc else {
            panic!("not an object")
        };
        let keys: Vec<&str> = members.sorted().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(doc.get("b"), Some(&Doc::Number(3.into())));
        assert_eq!(doc.get("missing"), None);
        assert_eq!(doc.get("c").and_then(|c| c.get("x")), Some(&Doc::Null));
        assert_eq!(Doc::Number(7.into()).get("a"), None);
    }

    #[test]
    fn scalars_read_as_text_integers_and_presence() {
        let doc = Doc::parse(r#"{"s":" 42 ","f":3.9,"t":true,"e":"","n":null,"a":[1]}"#).unwrap();
        let at = |k: &str| doc.get(k).unwrap();
        assert_eq!(at("s").as_i64(), Some(42));
        assert_eq!(at("f").as_i64(), Some(3));
        assert_eq!(at("f").text().as_deref(), Some("3.9"));
        assert_eq!(at("t").text().as_deref(), Some("true"));
        assert_eq!(at("a").text(), None);
        assert!(!at("e").present() && !at("n").present() && at("a").present());
        assert_eq!(at("a").as_array().map(<[Doc]>::len), Some(1));
    }

    #[test]
    fn taken_members_can_be_put_back() {
        let mut doc = Doc::parse(r#"{"c":3,"a":1,"b":2}"#).unwrap();
        let Doc::Object(members) = &mut doc else {
            panic!("not an object")
        };
        let all = members.take();
        assert!(members.is_empty());
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["c", "a", "b"]);
        members.put_back(all.into_iter().filter(|(k, _)| k != "b"));
        assert_eq!(members.len(), 2);
        assert_eq!(doc.json_text(), r#"{"a":1,"c":3}"#);
    }

    /// A small deterministic generator (xorshift), so the differential test needs no crate.
    struct Gen(u64);

    impl Gen {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn pick<'x>(&mut self, from: &[&'x str]) -> &'x str {
            from.get(self.below(from.len() as u64) as usize)
                .copied()
                .unwrap_or_default()
        }

        /// JSON text of a random value: repeated keys, escapes, odd whitespace, every kind
        /// of number.
        fn value(&mut self, depth: u32, out: &mut String) {
            const KEYS: &[&str] = &[
                "id", "a", "b", "ab", "ba", "é", r"k\n", r#"x\"y"#, "", "data",
            ];
            const STRINGS: &[&str] = &[
                "",
                "plain",
                r#"quote\"d"#,
                r"back\\slash",
                r"nl\nnl",
                r"\u00e9t\u00e9",
                r"\ud83d\ude00",
                r"\/",
                r"tab\t",
                r"ctl\u0001",
                "naïve 中文",
            ];
            const NUMBERS: &[&str] = &[
                "0",
                "-1",
                "42",
                "18446744073709551615",
                "-9223372036854775808",
                "1.5",
                "-0.0",
                "1e3",
                "2.5E-3",
                "1e400",
                "123456789012345678901234567890",
            ];
            const SPACE: &[&str] = &["", " ", "\n", "\t ", "\r\n"];
            match if depth == 0 {
                self.below(4)
            } else {
                self.below(6)
            } {
                0 => out.push_str(self.pick(&["null", "true", "false"])),
                1 | 2 => out.push_str(self.pick(NUMBERS)),
                3 => {
                    out.push('"');
                    out.push_str(self.pick(STRINGS));
                    out.push('"');
                }
                4 => {
                    out.push('[');
                    for i in 0..self.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(self.pick(SPACE));
                        self.value(depth - 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..self.below(7) {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(self.pick(SPACE));
                        out.push('"');
                        out.push_str(self.pick(KEYS));
                        out.push_str("\":");
                        out.push_str(self.pick(SPACE));
                        self.value(depth - 1, out);
                    }
                    out.push('}');
                }
            }
        }
    }

    #[test]
    fn random_documents_read_and_write_as_serde_json_reads_and_writes_them() {
        let mut gen = Gen(0x9e37_79b9_7f4a_7c15);
        let (mut objects, mut refused) = (0, 0);
        for _ in 0..5_000 {
            let mut text = String::new();
            gen.value(4, &mut text);
            // Both refuse the same texts (a number out of range: `1e400`).
            let (oracle, doc) = match (serde_json::from_str::<Value>(&text), Doc::parse(&text)) {
                (Ok(oracle), Ok(doc)) => (oracle, doc),
                (Err(_), Err(_)) => {
                    refused += 1;
                    continue;
                }
                (oracle, doc) => panic!("{text}: serde_json {oracle:?}, Doc {doc:?}"),
            };
            assert_same(&text, &doc, &oracle);
            if let Value::Object(map) = &oracle {
                objects += 1;
                for (k, v) in map {
                    assert_eq!(
                        doc.get(k).map(Doc::to_value).as_ref(),
                        Some(v),
                        "{text} {k}"
                    );
                }
            }
        }
        assert!(
            objects > 500,
            "the generator must produce objects: {objects}"
        );
        assert!(refused > 0 && refused < 2_500, "refused {refused}");
    }

    #[test]
    fn same_key_is_string_equality() {
        let keys = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "user_name",
            "user_uid",
            "usxr_name",
            "é",
            "e",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(same_key(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn malformed_text_is_an_error_not_a_panic() {
        for bad in ["", "{", r#"{"a":}"#, "[1,]", r#"{"a":"\x"}"#, "nul"] {
            assert!(Doc::parse(bad).is_err(), "{bad}");
        }
    }
}
