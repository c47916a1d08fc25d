//! Which attribute paths the OCSF 1.8.0 classes hookgate emits define.
//!
//! Input: a class uid and the keys of an output path (`device.os.name`). Output: what the
//! path names ([`Attr`]) or why it names nothing (`Err`: the first unknown key, and where).
//! The table is `ocsf_paths.txt`, generated from the official schema by
//! `scripts/ocsf-paths.py`. Parser loading resolves every output path of every route here, so
//! a typo in a parser is refused when it loads (`hookgate check`), not found later as events
//! the schema refuses.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The generated table (format: `scripts/ocsf-paths.py`).
const TABLE: &str = include_str!("ocsf_paths.txt");

/// What an attribute path leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// A scalar (or an array of scalars): nothing below it.
    Scalar,
    /// An object (or an array of them) of this OCSF object type.
    Object(&'static str),
    /// An object of type `object` (`unmapped`): any keys below.
    Any,
}

/// Attribute name → what it holds.
type Attributes = HashMap<&'static str, Attr>;

#[derive(Debug, Default)]
struct Schema {
    classes: HashMap<u32, Attributes>,
    objects: HashMap<&'static str, Attributes>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = Schema::default();
        for line in TABLE.lines().filter(|l| !l.starts_with('#')) {
            let mut words = line.split_whitespace();
            let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let attributes: Attributes = words
                .map(|w| match w.split_once('=') {
                    Some((attr, "object")) => (attr, Attr::Any),
                    Some((attr, object)) => (attr, Attr::Object(object)),
                    None => (w, Attr::Scalar),
                })
                .collect();
            match (kind, name.parse::<u32>()) {
                ("class", Ok(uid)) => {
                    schema.classes.insert(uid, attributes);
                }
                _ => {
                    schema.objects.insert(name, attributes);
                }
            }
        }
        schema
    })
}

/// Resolves `keys` from `start` (the class `uid` itself when `None`, else inside an object of
/// that type): what they name, or which key is not an attribute there.
pub fn resolve<'k>(
    uid: u32,
    start: Option<&'static str>,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<Attr, String> {
    let schema = schema();
    let mut here = match start {
        None => Attr::Object(""),
        Some(object) => Attr::Object(object),
    };
    let mut path = String::new();
    for key in keys {
        let attributes = match here {
            Attr::Any => return Ok(Attr::Any),
            Attr::Scalar => {
                return Err(format!("`{path}` holds a value, so it has no `{key}`"));
            }
            Attr::Object("") => schema.classes.get(&uid),
            Attr::Object(object) => schema.objects.get(object),
        };
        let Some(found) = attributes.and_then(|a| a.get(key)) else {
            let within = match here {
                Attr::Object("") => format!("class {uid}"),
                Attr::Object(object) => format!("`{path}` (object {object})"),
                Attr::Scalar | Attr::Any => String::new(),
            };
            return Err(format!("`{key}` is not an OCSF attribute of {within}"));
        };
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        here = *found;
    }
    Ok(match here {
        Attr::Object("") => Attr::Any,
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_through_objects_and_a_typo_is_named() {
        assert_eq!(
            resolve(5001, None, ["device", "os", "name"]),
            Ok(Attr::Scalar)
        );
        assert_eq!(
            resolve(3002, None, ["observables"]),
            Ok(Attr::Object("observable"))
        );
        assert_eq!(
            resolve(3002, Some("observable"), ["type_id"]),
            Ok(Attr::Scalar)
        );
        assert_eq!(resolve(3002, None, ["unmapped", "x", "y"]), Ok(Attr::Any));
        let typo = resolve(5001, None, ["servce", "name"]).unwrap_err();
        assert!(typo.contains("`servce`") && typo.contains("5001"), "{typo}");
        let deeper = resolve(3002, None, ["user", "nmae"]).unwrap_err();
        assert!(
            deeper.contains("`nmae`") && deeper.contains("`user`"),
            "{deeper}"
        );
        let below = resolve(3002, None, ["message", "text"]).unwrap_err();
        assert!(below.contains("`message` holds a value"), "{below}");
    }

    #[test]
    fn every_class_hookgate_emits_is_in_the_table() {
        for class in super::super::ocsf::CLASSES {
            assert!(
                schema().classes.contains_key(&class.uid),
                "class {} missing: run scripts/ocsf-paths.py",
                class.uid
            );
        }
    }
}
