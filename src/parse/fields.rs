//! The OCSF fields a route maps for one event (and the vendor fields it keeps in `unmapped`),
//! held until `normalize` writes them out.
//!
//! A tree of objects, each a vector of members kept sorted by key: the order they are
//! written in, the same as a `serde_json::Map`'s. Keys are borrowed from the parser definition
//! (output paths, `unmapped` paths) or from the event (leftover keys), so setting a field
//! copies no key into a `String` and allocates no B-tree node. A string copied from the event
//! as it is stays borrowed from the body ([`Field::Text`]); other leaf values are
//! `serde_json::Value`s, and a path that goes on below a leaf object or list (a constant object,
//! a session-cache value, the items of an `observables[]` list) continues inside that `Value`.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::doc::Doc;

/// One object of the tree: members sorted by key, each key once.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fields<'k> {
    members: Vec<(Cow<'k, str>, Field<'k>)>,
}

/// A member's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'k> {
    /// A leaf: whatever a value spec produced.
    Value(Value),
    /// A leaf string, borrowed from the event's body (copied there as it is, no escapes).
    Text(&'k str),
    /// An object built by output paths (`user.name` makes `user` one).
    Object(Fields<'k>),
}

/// What a path found: a leaf value, or an object built by output paths (present, no text).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Found<'v> {
    /// A leaf value, or a value inside one.
    Value(&'v Value),
    /// A leaf string borrowed from the body.
    Text(&'v str),
    /// An object of the tree.
    Object,
}

impl<'k> Fields<'k> {
    /// No members.
    pub fn new() -> Fields<'k> {
        Fields::default()
    }

    /// No members, with room for `n` (an object filled member by member grows five or six
    /// times on the way to twenty-odd members otherwise).
    pub fn with_capacity(n: usize) -> Fields<'k> {
        Fields {
            members: Vec::with_capacity(n),
        }
    }

    /// Turns a `serde_json` object into one (keys moved, not copied).
    pub fn from_map(map: Map<String, Value>) -> Fields<'k> {
        Fields {
            members: map
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Field::Value(v)))
                .collect(),
        }
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`).
    pub fn find(&self, key: &str) -> Result<usize, usize> {
        self.members
            .binary_search_by(|(k, _)| key_order(k.as_bytes(), key.as_bytes()))
    }

    /// The member under `key`.
    pub fn get(&self, key: &str) -> Option<&Field<'k>> {
        let at = self.find(key).ok()?;
        self.members.get(at).map(|(_, f)| f)
    }

    /// The leaf value under `key` (`None` for an object of the tree).
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.get(key).and_then(Field::as_value)
    }

    /// True when there is a member under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Puts `field` under `key` at `at`, where [`Fields::find`] said `Err(at)`.
    pub fn insert_at(&mut self, at: usize, key: Cow<'k, str>, field: Field<'k>) {
        debug_assert_eq!(self.find(&key), Err(at));
        self.members.insert(at, (key, field));
    }

    /// Puts `field` under `key`, replacing (and returning) what was there.
    pub fn insert(&mut self, key: Cow<'k, str>, field: Field<'k>) -> Option<Field<'k>> {
        match self.find(&key) {
            Ok(at) => self
                .members
                .get_mut(at)
                .map(|(_, slot)| std::mem::replace(slot, field)),
            Err(at) => {
                self.members.insert(at, (key, field));
                None
            }
        }
    }

    /// The member under `key`, made by `make` when there is none (always `Some`).
    pub fn get_or_insert_with(
        &mut self,
        key: Cow<'k, str>,
        make: impl FnOnce() -> Field<'k>,
    ) -> Option<&mut Field<'k>> {
        let at = match self.find(&key) {
            Ok(at) => at,
            Err(at) => {
                self.members.insert(at, (key, make()));
                at
            }
        };
        self.members.get_mut(at).map(|(_, f)| f)
    }

    /// Takes the member under `key` out.
    pub fn remove(&mut self, key: &str) -> Option<Field<'k>> {
        let at = self.find(key).ok()?;
        Some(self.members.remove(at).1)
    }

    /// Members in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Field<'k>)> {
        self.members.iter().map(|(k, f)| (k.as_ref(), f))
    }

    /// Members in key order, by value.
    pub fn into_members(self) -> impl Iterator<Item = (Cow<'k, str>, Field<'k>)> {
        self.members.into_iter()
    }

    /// The tree as a `serde_json` object (tests, the session cache).
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.members
                .iter()
                .map(|(k, f)| (k.to_string(), f.to_value()))
                .collect(),
        )
    }

    /// What the path of `keys` leads to.
    pub fn lookup<'s>(&self, mut keys: impl Iterator<Item = &'s str>) -> Option<Found<'_>> {
        let mut fields = self;
        while let Some(key) = keys.next() {
            match fields.get(key)? {
                Field::Object(inner) => fields = inner,
                Field::Text(s) => return keys.next().is_none().then_some(Found::Text(s)),
                Field::Value(v) => {
                    let mut cur = v;
                    for k in keys {
                        cur = cur.get(k)?;
                    }
                    return Some(Found::Value(cur));
                }
            }
        }
        Some(Found::Object)
    }
}

impl<'k> Field<'k> {
    /// A value of the event: a string without escapes stays borrowed from the body.
    pub fn of_doc(doc: &Doc<'k>) -> Field<'k> {
        match doc {
            Doc::String(Cow::Borrowed(s)) => Field::Text(s),
            other => Field::Value(other.to_value()),
        }
    }

    /// [`Field::of_doc`] of a value moved out of the event.
    pub fn from_doc(doc: Doc<'k>) -> Field<'k> {
        match doc {
            Doc::String(Cow::Borrowed(s)) => Field::Text(s),
            other => Field::Value(other.into_value()),
        }
    }

    /// The leaf `serde_json` value (`None` for an object of the tree or a borrowed string,
    /// which are no number, the only thing read this way).
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            Field::Value(v) => Some(v),
            Field::Text(_) | Field::Object(_) => None,
        }
    }

    /// As a `serde_json` value.
    pub fn to_value(&self) -> Value {
        match self {
            Field::Value(v) => v.clone(),
            Field::Text(s) => Value::String((*s).to_owned()),
            Field::Object(f) => f.to_value(),
        }
    }

    /// As a `serde_json` value, moved.
    pub fn into_value(self) -> Value {
        match self {
            Field::Value(v) => v,
            other => other.to_value(),
        }
    }
}

/// `a.cmp(b)`, the first bytes compared inline: most OCSF keys of one object differ there
/// (`activity_id`, `metadata`, `severity`, `time` …), so most probes of a search end without
/// a `memcmp` call.
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_order_is_byte_order() {
        let keys = [
            "",
            "a",
            "b",
            "ab",
            "abc",
            "abd",
            "activity_id",
            "time",
            "é",
            "z\u{0}",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(
                    key_order(a.as_bytes(), b.as_bytes()),
                    a.cmp(b),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn members_stay_sorted_and_each_key_is_kept_once() {
        let mut f = Fields::new();
        for (k, v) in [("m", 1), ("b", 2), ("z", 3), ("b", 4), ("a", 5)] {
            f.insert(Cow::Borrowed(k), Field::Value(json!(v)));
        }
        let keys: Vec<&str> = f.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "m", "z"]);
        assert_eq!(f.value("b"), Some(&json!(4)));
        assert_eq!(f.remove("m"), Some(Field::Value(json!(1))));
        assert!(!f.contains_key("m"));
        f.get_or_insert_with(Cow::Owned("a".into()), || Field::Value(json!(9)));
        assert_eq!(f.to_value(), json!({"a": 5, "b": 4, "z": 3}));
    }

    #[test]
    fn a_lookup_goes_on_inside_a_leaf_value() {
        let mut inner = Fields::new();
        inner.insert(Cow::Borrowed("obj"), Field::Value(json!({"k": {"x": "y"}})));
        let mut f = Fields::new();
        f.insert(Cow::Borrowed("user"), Field::Object(inner));
        let path = |p: &'static str| f.lookup(p.split('.'));
        assert_eq!(path("user"), Some(Found::Object));
        assert_eq!(path("user.obj.k.x"), Some(Found::Value(&json!("y"))));
        assert_eq!(path("user.obj.q"), None);
        assert_eq!(path("nobody"), None);
        assert_eq!(
            Fields::from_map(json!({"b": 1, "a": 2}).as_object().unwrap().clone()).to_value(),
            json!({"a": 2, "b": 1})
        );
    }
}
