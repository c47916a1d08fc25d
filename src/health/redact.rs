//! What of a stored event the status may show: `raw_data` and secret-named fields never.

use bytes::Bytes;
use serde_json::Value;

/// A stored event as the status shows it: `raw_data` removed, fields named like secrets
/// replaced, strings over 512 characters cut.
pub fn redact(event: &Bytes) -> Value {
    let mut value: Value =
        serde_json::from_slice(event).unwrap_or_else(|_| Value::String("[unreadable]".into()));
    scrub(&mut value);
    if let Value::Object(map) = &mut value {
        if map.contains_key("raw_data") {
            map.insert("raw_data".into(), Value::String("[redacted]".into()));
        }
    }
    value
}

fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if crate::telemetry::names_a_secret(key) {
                    *v = Value::String("[redacted]".into());
                } else {
                    scrub(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::String(s) if s.len() > 512 => {
            let cut = (0..=512)
                .rev()
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(0);
            s.truncate(cut);
            s.push('…');
        }
        _ => {}
    }
}
