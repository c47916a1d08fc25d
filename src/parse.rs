//! Stage 7, parse: load the vendor parser definitions and apply one to an event.
//!
//! Input: a [`crate::split::RawEvent`] that dedup let through. Output: [`ParsedEvent`].
//! Fails per event with [`ParseError`]; the pipeline sends such an event to the dead-letter
//! path with its raw bytes, never drops it. Definitions are loaded and compiled once at
//! startup ([`Catalog::load`]); nothing on the hot path re-reads them.
//!
//! FOUNDATION CUT (issue #4 replaces the body of this module with the data-driven engine):
//! every built-in parser takes the event id from the body field `id` (or a content hash) and
//! passes the whole event on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::normalize::EventContext;

/// Names of the built-in parsers.
const BUILT_IN: &[&str] = &["hyprwatch", "hyperproof", "hoop", "hypr", "connectsecure"];

/// Every loaded parser, by name.
#[derive(Debug, Default)]
pub struct Catalog {
    parsers: HashMap<String, Arc<Parser>>,
}

/// One vendor's compiled parser.
#[derive(Debug)]
pub struct Parser {
    name: String,
}

/// The dedup identity of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    /// The vendor's event id, or a content hash (`sha256:<hex>`) when it sends none.
    pub id: String,
    /// How long a repeat counts as a duplicate; `None` = never deduplicated.
    pub window: Option<Duration>,
}

/// A parsed event, ready for normalization.
#[derive(Debug)]
pub struct ParsedEvent {
    /// The vendor event as JSON.
    pub event: Value,
    /// The dedup identity (becomes `metadata.uid` and the Kafka key).
    pub key: EventKey,
}

/// Why a parser could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Operator's fault: a definition file could not be read.
    #[error("cannot read parser definition {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Vendor's fault: the event has no shape the parser can map.
    #[error("event cannot be mapped by parser {parser}: {reason}")]
    Unmappable {
        /// Parser name.
        parser: String,
        /// Why.
        reason: &'static str,
    },
}

impl ParseError {
    /// Bounded label for logs, metrics and dead-letter records.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Read { .. } => "definition_unreadable",
            ParseError::Unmappable { .. } => "unmappable",
        }
    }
}

impl Catalog {
    /// Loads the built-in parsers, then any in `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Catalog, ParseError> {
        let mut parsers = HashMap::new();
        for name in BUILT_IN {
            parsers.insert(
                (*name).to_owned(),
                Arc::new(Parser {
                    name: (*name).to_owned(),
                }),
            );
        }
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| ParseError::Read {
                path: dir.display().to_string(),
                source,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        parsers.insert(
                            stem.to_owned(),
                            Arc::new(Parser {
                                name: stem.to_owned(),
                            }),
                        );
                    }
                }
            }
        }
        Ok(Catalog { parsers })
    }

    /// The parser called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Parser>> {
        self.parsers.get(name).cloned()
    }

    /// Every parser name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.parsers.keys().cloned().collect();
        names.sort();
        names
    }
}

impl Parser {
    /// The parser's name (= vendor id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the vendor is known to send not-quite-JSON that a lenient repair can read.
    pub fn lenient_json(&self) -> bool {
        self.name == "connectsecure"
    }

    /// True when a request body (`None` = empty) is the vendor's health call, answered 2xx
    /// without producing an event.
    pub fn is_heartbeat(&self, body: Option<&Value>) -> bool {
        match (self.name.as_str(), body) {
            ("hyperproof", None) => true,
            ("hyperproof", Some(Value::Object(map))) => {
                !(map.contains_key("description")
                    || map.contains_key("method")
                    || map.contains_key("contextPath"))
            }
            _ => false,
        }
    }

    /// The dedup identity of `event`: the body's `id` when it is a string, else a content hash.
    pub fn event_key(&self, event: &Value, headers: &HeaderMap) -> EventKey {
        let _ = headers;
        let id = match event.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => {
                let mut hasher = Sha256::new();
                hasher.update(self.name.as_bytes());
                hasher.update(b"\n");
                hasher.update(event.to_string().as_bytes());
                format!("sha256:{}", hex::encode(hasher.finalize()))
            }
        };
        EventKey {
            id,
            window: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

/// Applies `parser` to one event.
pub fn apply(
    parser: &Parser,
    event: Value,
    key: EventKey,
    ctx: &EventContext<'_>,
) -> Result<ParsedEvent, ParseError> {
    let _ = ctx;
    if !event.is_object() {
        return Err(ParseError::Unmappable {
            parser: parser.name.clone(),
            reason: "event is not a JSON object",
        });
    }
    Ok(ParsedEvent { event, key })
}
