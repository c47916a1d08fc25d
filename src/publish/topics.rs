//! Topic routing: a topic name or a template over the event.
//!
//! Input: `kafka.topic` / `kafka.dead_letter_topic` text. Output: [`TopicTemplate`], which
//! renders a valid Kafka topic name for any envelope. Fails at config load (never per event)
//! with a message naming the bad part.

use crate::sink::envelope::{Envelope, Kind};

/// Kafka's limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Source,
    Vendor,
    ClassUid,
    Class,
}

/// A parsed topic template: literals and `{source}`, `{vendor}`, `{class_uid}`, `{class}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    parts: Vec<Part>,
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Makes a value safe inside a topic name: lowercase, anything else becomes `_`.
fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if valid_char(c) {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl TopicTemplate {
    /// Parses `text`; the error says what is wrong, for a config problem.
    pub fn parse(text: &str) -> Result<TopicTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let Some(end) = after.find('}') else {
                    return Err(format!("{text:?} has an unclosed '{{'"));
                };
                let name = after.get(..end).unwrap_or_default();
                parts.push(match name {
                    "source" => Part::Source,
                    "vendor" => Part::Vendor,
                    "class_uid" => Part::ClassUid,
                    "class" => Part::Class,
                    other => {
                        return Err(format!(
                            "unknown field {{{other}}}; use {{source}}, {{vendor}}, {{class_uid}} or {{class}}"
                        ))
                    }
                });
                rest = after.get(end + 1..).unwrap_or_default();
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = rest.get(..end).unwrap_or_default();
                if let Some(bad) = literal.chars().find(|c| !valid_char(*c)) {
                    return Err(format!(
                        "{text:?} contains {bad:?}; topic names use letters, digits, '.', '_' and '-'"
                    ));
                }
                parts.push(Part::Literal(literal.to_owned()));
                rest = rest.get(end..).unwrap_or_default();
            }
        }
        if parts.is_empty() {
            return Err("must not be empty".into());
        }
        if text.len() > MAX_TOPIC_LEN {
            return Err(format!("is longer than {MAX_TOPIC_LEN} characters"));
        }
        Ok(TopicTemplate { parts })
    }

    /// True when the name depends on the event's class (`{class}`, `{class_uid}`): a dead
    /// letter has none.
    pub fn uses_class(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Class | Part::ClassUid))
    }

    /// The topic name when it does not depend on the event.
    pub fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(name)] => Some(name),
            _ => None,
        }
    }

    /// The topic for `envelope`.
    pub fn render(&self, envelope: &Envelope) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Source => out.push_str(&clean(&envelope.source)),
                Part::Vendor => out.push_str(&clean(&envelope.vendor)),
                Part::ClassUid => match &envelope.kind {
                    Kind::Event { class_uid, .. } => out.push_str(&class_uid.to_string()),
                    Kind::DeadLetter { .. } => out.push_str("dead_letter"),
                },
                Part::Class => match &envelope.kind {
                    Kind::Event { class_name, .. } => out.push_str(&clean(class_name)),
                    Kind::DeadLetter { .. } => out.push_str("dead_letter"),
                },
            }
        }
        out.truncate(MAX_TOPIC_LEN);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event() -> Envelope {
        Envelope {
            kind: Kind::Event {
                class_uid: 6003,
                class_name: "API Activity".into(),
            },
            source: "hw-prod".into(),
            vendor: "Hyprwatch".into(),
            request_id: "r".into(),
            uid: "u".into(),
            body: Bytes::new(),
            window_s: 0,
        }
    }

    #[test]
    fn templates_render_per_event() {
        let t = TopicTemplate::parse("ocsf.{vendor}.{class}.{class_uid}").unwrap();
        assert_eq!(t.render(&event()), "ocsf.hyprwatch.api_activity.6003");
        assert_eq!(t.fixed(), None);
        assert_eq!(
            TopicTemplate::parse("events").unwrap().fixed(),
            Some("events")
        );
    }

    #[test]
    fn bad_templates_are_rejected_with_the_reason() {
        assert!(TopicTemplate::parse("ocsf.{tenant}")
            .unwrap_err()
            .contains("tenant"));
        assert!(TopicTemplate::parse("ocsf.{vendor")
            .unwrap_err()
            .contains("unclosed"));
        assert!(TopicTemplate::parse("a b").unwrap_err().contains("' '"));
        assert!(TopicTemplate::parse("").is_err());
    }
}
