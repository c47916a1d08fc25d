//! Field paths, resolved once at load: vendor paths to read (`detail.data.id`,
//! `detail.eventTags.0`, `body[type=FactSet].facts[title=Connection].value`) and OCSF paths
//! to write (`device.os.name`, `observables[]`).
//!
//! Input: path text. Output: [`InPath`] / [`OutPath`]. Reading never fails (absent = `None`);
//! writing creates intermediate objects and never panics on a shape clash (the write is
//! skipped instead).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::doc::Doc;
use super::fields::{Field, Fields, Found};

/// One step of a vendor path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Object key (also an array index when numeric and the value is an array).
    Key(String, Option<usize>),
    /// First array element whose `field` equals `value`.
    Find {
        key: String,
        field: String,
        value: String,
    },
}

/// A compiled vendor (input) path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPath {
    steps: Vec<Step>,
    text: String,
}

impl InPath {
    /// Parses `a.b.0.c` or `a[k=v].b`; the empty string is the root.
    pub fn parse(text: &str) -> Result<InPath, String> {
        let mut steps = Vec::new();
        if !text.is_empty() {
            for part in split_dots(text) {
                if part.is_empty() {
                    return Err(format!("path {text:?} has an empty segment"));
                }
                if let Some((key, rest)) = part.split_once('[') {
                    let inner = rest
                        .strip_suffix(']')
                        .ok_or_else(|| format!("path {text:?}: unclosed '['"))?;
                    let (field, value) = inner
                        .split_once('=')
                        .ok_or_else(|| format!("path {text:?}: filter must be [field=value]"))?;
                    steps.push(Step::Find {
                        key: key.to_owned(),
                        field: field.to_owned(),
                        value: value.to_owned(),
                    });
                } else {
                    steps.push(Step::Key(part.to_owned(), part.parse().ok()));
                }
            }
        }
        Ok(InPath {
            steps,
            text: text.to_owned(),
        })
    }

    /// True when a step is an array index (`a.0.b`).
    pub fn has_index(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Key(_, Some(_))))
    }

    /// The path as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the path goes below the event's top level.
    pub fn is_nested(&self) -> bool {
        self.steps.len() > 1
    }

    /// The first key (for leftover computation).
    pub fn head(&self) -> Option<&str> {
        match self.steps.first() {
            Some(Step::Key(k, _)) | Some(Step::Find { key: k, .. }) => Some(k),
            None => None,
        }
    }

    /// True when `self` is `prefix` followed by one more key or more.
    pub fn child_key_under(&self, prefix: &InPath) -> Option<&str> {
        if self.steps.len() <= prefix.steps.len() || !self.steps.starts_with(&prefix.steps) {
            return None;
        }
        match self.steps.get(prefix.steps.len()) {
            Some(Step::Key(k, _)) | Some(Step::Find { key: k, .. }) => Some(k),
            None => None,
        }
    }

    /// The last key (name under `unmapped`).
    pub fn last_key(&self) -> &str {
        match self.steps.last() {
            Some(Step::Key(k, _)) | Some(Step::Find { key: k, .. }) => k,
            None => "",
        }
    }

    /// The value at this path in `root`.
    pub fn get<'v, 'a>(&self, root: &'v Doc<'a>) -> Option<&'v Doc<'a>> {
        let mut cur = root;
        for step in &self.steps {
            cur = match step {
                Step::Key(key, index) => match cur {
                    Doc::Object(members) => members.get(key)?,
                    Doc::Array(items) => items.get((*index)?)?,
                    _ => return None,
                },
                Step::Find { key, field, value } => {
                    let items = cur.get(key)?.as_array()?;
                    items.iter().find(|item| {
                        item.get(field).and_then(Doc::as_str) == Some(value.as_str())
                    })?
                }
            };
        }
        Some(cur)
    }

    /// The value at this path in `root`, mutable (only key and index steps; a filter step
    /// yields `None`).
    pub fn get_mut<'v, 'a>(&self, root: &'v mut Doc<'a>) -> Option<&'v mut Doc<'a>> {
        let mut cur = root;
        for step in &self.steps {
            cur = match step {
                Step::Key(key, index) => match cur {
                    Doc::Object(members) => members.get_mut(key)?,
                    Doc::Array(items) => items.get_mut((*index)?)?,
                    _ => return None,
                },
                Step::Find { .. } => return None,
            };
        }
        Some(cur)
    }
}

/// Splits on dots outside `[...]` (filter values may contain dots).
fn split_dots(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                parts.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

/// One step of an OCSF path.
#[derive(Debug, Clone)]
struct OutStep {
    key: String,
    append: bool,
}

/// A compiled OCSF (output) path.
#[derive(Debug, Clone)]
pub struct OutPath {
    steps: Vec<OutStep>,
    text: String,
}

impl OutPath {
    /// Parses `a.b.c`; `name[]` appends a new element to the array `name`.
    pub fn parse(text: &str) -> Result<OutPath, String> {
        let mut steps = Vec::new();
        for part in text.split('.') {
            let (key, append) = match part.strip_suffix("[]") {
                Some(k) => (k, true),
                None => (part, false),
            };
            if key.is_empty() || key.contains(['[', ']']) {
                return Err(format!("output path {text:?} has a bad segment {part:?}"));
            }
            steps.push(OutStep {
                key: key.to_owned(),
                append,
            });
        }
        Ok(OutPath {
            steps,
            text: text.to_owned(),
        })
    }

    /// The path as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The attribute names along the path (`[]` left off).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.key.as_str())
    }

    /// The top-level OCSF attribute written.
    pub fn top(&self) -> &str {
        self.steps
            .first()
            .map(|s| s.key.as_str())
            .unwrap_or_default()
    }

    /// Writes `value` into the event's fields (replacing, or appending for `[]`); the keys
    /// are borrowed from this path.
    pub fn set<'k>(&'k self, root: &mut Fields<'k>, value: Field<'k>) {
        set_in_fields(root, &self.steps, value);
    }

    /// Writes `value` into a `serde_json` object (a list item being built).
    pub fn set_in_map(&self, root: &mut Map<String, Value>, value: Value) {
        set_in(root, &self.steps, value);
    }

    /// Reads the value written so far.
    pub fn get<'v>(&self, root: &'v Fields<'_>) -> Option<Found<'v>> {
        root.lookup(self.steps.iter().map(|s| s.key.as_str()))
    }
}

/// [`OutPath::set`]: objects of the tree down to the last step, or to a leaf value, inside
/// which the path goes on as in a `serde_json` object.
fn set_in_fields<'k>(fields: &mut Fields<'k>, steps: &'k [OutStep], value: Field<'k>) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    if rest.is_empty() && !step.append {
        fields.insert(Cow::Borrowed(&step.key), value);
        return;
    }
    let slot = fields.get_or_insert_with(Cow::Borrowed(&step.key), || {
        if step.append {
            Field::Value(Value::Array(Vec::new()))
        } else {
            Field::Object(Fields::new())
        }
    });
    let Some(slot) = slot else {
        return;
    };
    match slot {
        Field::Object(inner) if !step.append => set_in_fields(inner, rest, value),
        // Below a string: a slot of the other kind, left as it is.
        Field::Object(_) | Field::Text(_) => {}
        Field::Value(v) => set_below(v, step, rest, value.into_value()),
    }
}

/// [`OutPath::set_in_map`].
fn set_in(map: &mut Map<String, Value>, steps: &[OutStep], value: Value) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    if rest.is_empty() && !step.append {
        // One search: a key set twice is rare, so its text is copied whether or not it exists.
        map.insert(step.key.clone(), value);
        return;
    }
    // The slot this step leads to: an existing one found in one search, a new one created and
    // reached in a second (the key text copied only then).
    if let Some(slot) = map.get_mut(&step.key) {
        set_below(slot, step, rest, value);
        return;
    }
    let empty = if step.append {
        Value::Array(Vec::new())
    } else {
        Value::Object(Map::new())
    };
    let slot = map.entry(step.key.clone()).or_insert(empty);
    set_below(slot, step, rest, value);
}

/// Sets `value` at `rest` under `slot`, the value `step` led to (appended to it when `step`
/// appends). A slot of the other kind is left as it is.
fn set_below(slot: &mut Value, step: &OutStep, rest: &[OutStep], value: Value) {
    match slot {
        Value::Array(items) if step.append => {
            if rest.is_empty() {
                items.push(value);
            } else {
                let mut inner = Map::new();
                set_in(&mut inner, rest, value);
                items.push(Value::Object(inner));
            }
        }
        Value::Object(inner) if !step.append => set_in(inner, rest, value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_keys_indexes_and_filters() {
        let v = Doc::from(
            json!({"a": {"b": [1, {"c": "x"}]}, "body": [{"type": "T", "v": 1}, {"type": "F.S", "v": 2}]}),
        );
        assert_eq!(
            InPath::parse("a.b.1.c").unwrap().get(&v),
            Some(&Doc::from(json!("x")))
        );
        assert_eq!(
            InPath::parse("body[type=F.S].v").unwrap().get(&v),
            Some(&Doc::from(json!(2)))
        );
        assert_eq!(InPath::parse("a.zz").unwrap().get(&v), None);
        assert_eq!(InPath::parse("").unwrap().get(&v), Some(&v));
    }

    #[test]
    fn writes_nested_and_appends() {
        let paths: Vec<OutPath> = ["device.os.name", "labels[]", "labels[]"]
            .iter()
            .map(|p| OutPath::parse(p).unwrap())
            .collect();
        let mut m = Fields::new();
        paths[0].set(&mut m, Field::Value(json!("linux")));
        paths[1].set(&mut m, Field::Text("a"));
        paths[2].set(&mut m, Field::Value(json!("b")));
        assert_eq!(
            m.to_value(),
            json!({"device": {"os": {"name": "linux"}}, "labels": ["a", "b"]})
        );
    }

    /// The event's fields and a list item's `serde_json` object take the same writes to the
    /// same result: replacing, appending, going on inside a leaf object, and skipping a write
    /// whose path runs into a value of the other kind.
    #[test]
    fn fields_and_maps_take_writes_alike() {
        let writes = [
            ("user.name", json!("ann")),
            ("user.name", json!("bob")),
            ("user", json!({"uid": "u1", "groups": []})),
            ("user.email_addr", json!("b@example.com")),
            ("user.groups[]", json!({"name": "g"})),
            ("user.uid.deeper", json!(1)),
            ("observables[]", json!({"name": "ip"})),
            ("observables[].value", json!("10.0.0.1")),
            ("observables.name", json!("clash")),
            ("labels[]", json!("a")),
            ("labels", json!("flat")),
            ("labels[]", json!("b")),
            ("a.b.c.d", json!(null)),
            ("a.b", json!([1])),
            ("a.b.c", json!(2)),
            ("metadata.product.version", json!("9.3")),
            ("metadata.product[]", json!("clash")),
        ];
        let paths: Vec<(OutPath, Value)> = writes
            .iter()
            .map(|(p, v)| (OutPath::parse(p).unwrap(), v.clone()))
            .collect();
        let mut fields = Fields::new();
        let mut map = Map::new();
        for (i, (path, value)) in paths.iter().enumerate() {
            // Strings as a copy from the body would write them: borrowed.
            match value.as_str() {
                Some(s) => path.set(&mut fields, Field::Text(s)),
                None => path.set(&mut fields, Field::Value(value.clone())),
            }
            path.set_in_map(&mut map, value.clone());
            let (got, want) = (fields.to_value(), Value::Object(map.clone()));
            assert_eq!(got, want, "after write {i} ({})", path.text());
            // Reading back: a leaf as it is, an object the paths built as an object.
            if !path.text().contains("[]") {
                let pointer = format!("/{}", path.text().replace('.', "/"));
                let read = match path.get(&fields) {
                    Some(Found::Value(v)) => Some(v.clone()),
                    Some(Found::Text(s)) => Some(json!(s)),
                    Some(Found::Object) => {
                        want.pointer(&pointer).filter(|v| v.is_object()).cloned()
                    }
                    None => None,
                };
                assert_eq!(read.as_ref(), want.pointer(&pointer), "read back {i}");
            }
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        assert!(InPath::parse("a..b").is_err());
        assert!(InPath::parse("a[b").is_err());
        assert!(OutPath::parse("a.[]").is_err());
    }
}
