//! Writes `serde_json` values and parser-built [`Fields`] as compact JSON text with every
//! string (key or value) escaped by the SIMD kernel of `json-escape-simd`. Same bytes as
//! `serde_json::to_writer` (tested below); numbers are still written by serde_json.

use serde_json::{Map, Value};

use crate::parse::fields::{Field, Fields};

/// Appends `text` as a JSON string, quotes included.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    json_escape_simd::escape_into(text, out);
}

/// Appends `value` as compact JSON.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // itoa / ryu through serde_json; writing into a Vec cannot fail.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            write_members(out, map);
            out.push(b'}');
        }
    }
}

/// Appends the `"key":value` pairs of `map`, comma-separated, without braces.
pub fn write_members(out: &mut Vec<u8>, map: &Map<String, Value>) {
    write_pairs(out, map.iter().map(|(k, v)| (k.as_str(), v)), write_value);
}

/// Appends `"key":value` pairs, comma-separated, without braces, each value by `write`.
fn write_pairs<'v, V: 'v>(
    out: &mut Vec<u8>,
    pairs: impl Iterator<Item = (&'v str, &'v V)>,
    write: impl Fn(&mut Vec<u8>, &V),
) {
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write(out, v);
    }
}

/// Appends a parser-built field as compact JSON.
pub fn write_field(out: &mut Vec<u8>, field: &Field<'_>) {
    match field {
        Field::Value(v) => write_value(out, v),
        Field::Text(s) => write_str(out, s),
        Field::Object(fields) => {
            out.push(b'{');
            write_fields(out, fields);
            out.push(b'}');
        }
    }
}

/// Appends the `"key":value` pairs of `fields`, comma-separated, without braces.
pub fn write_fields(out: &mut Vec<u8>, fields: &Fields<'_>) {
    write_pairs(out, fields.iter(), write_field);
}

/// A member the gateway adds to an object the parser may also have built.
pub struct Added<'a> {
    /// Its key.
    pub key: &'a str,
    /// True when a value the parser mapped under this key stays (the gateway's is a default).
    pub parser_wins: bool,
    /// Writes the gateway's value, given the parser's value under the key, if any.
    pub write: &'a dyn Fn(&mut Vec<u8>, Option<&Field<'_>>),
}

/// Writes `map` (a parser-built object) with `added` merged in, as one object in key order,
/// each key once: the same bytes as inserting `added` into the map first and writing it,
/// without copying a key or value into the map. `added` must be sorted by key.
pub fn write_merged(out: &mut Vec<u8>, map: &Fields<'_>, added: &[Added<'_>]) {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
    };
    let mut pending = added.iter().peekable();
    out.push(b'{');
    for (k, v) in map.iter() {
        while let Some(a) = pending.next_if(|a| a.key < k) {
            key(out, a.key);
            (a.write)(out, None);
        }
        key(out, k);
        match pending.next_if(|a| a.key == k) {
            Some(a) if !a.parser_wins => (a.write)(out, Some(v)),
            _ => write_field(out, v),
        }
    }
    for a in pending {
        key(out, a.key);
        (a.write)(out, None);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_objects_are_the_map_with_the_members_inserted() {
        let text =
            |s: &'static str| move |out: &mut Vec<u8>, _: Option<&Field<'_>>| write_str(out, s);
        let (a, m, z) = (text("A"), text("M"), text("Z"));
        let added = [
            Added {
                key: "a",
                parser_wins: false,
                write: &a,
            },
            Added {
                key: "m",
                parser_wins: true,
                write: &m,
            },
            Added {
                key: "z",
                parser_wins: false,
                write: &z,
            },
        ];
        for parser in [
            serde_json::json!({}),
            serde_json::json!({"a": 1, "m": 2, "z": 3}),
            serde_json::json!({"0": 0, "b": [1], "m": {"k": "v"}, "zz": null}),
            serde_json::json!({"m": 2}),
        ] {
            let Value::Object(map) = parser else {
                panic!("not an object")
            };
            let mut oracle = map.clone();
            oracle.insert("a".into(), "A".into());
            oracle.entry("m").or_insert_with(|| "M".into());
            oracle.insert("z".into(), "Z".into());
            let mut out = Vec::new();
            write_merged(&mut out, &Fields::from_map(map.clone()), &added);
            assert_eq!(out, serde_json::to_vec(&oracle).unwrap(), "{map:?}");
        }
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "{\n  \"id\": \"a\\\\b\",\r\n\t\"x\": \"\u{1}\u{1f}\u{7f}/\"\n}".into(),
            "é ü 中文 🙂 \u{2028}\u{fffd}".into(),
        ];
        // Every ASCII byte at every offset of a 32-byte block, and long runs around it.
        for byte in 0u8..0x80 {
            for offset in 0..33 {
                let mut s = "a".repeat(offset);
                s.push(char::from(byte));
                s.push_str(&"b".repeat(40));
                cases.push(s);
            }
        }
        for case in &cases {
            let mut out = Vec::new();
            write_str(&mut out, case);
            assert_eq!(out, serde_json::to_vec(case).unwrap(), "{case:?}");
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let value: Value = serde_json::from_str(
            r#"{"a":[1,-2,3.5,1e300,true,false,null,"x\ny\u0001\"\\/"],"b":{"c":{},"d":[]},
                "é\t":"中文 🙂 \u2028","n":18446744073709551615,"f":-0.0,"z":[[{}]]}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        write_value(&mut out, &value);
        assert_eq!(out, serde_json::to_vec(&value).unwrap());
    }
}
