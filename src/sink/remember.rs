//! At startup: the ids of the last events made durable, committed into dedup.
//!
//! Input: the spool (spool mode) or the JSON-lines file (the embedded default), and the
//! dedup store. Output: how many ids were committed. A crash can come after a request's
//! events were synced and before their ids were committed or journaled (the journal is
//! written a millisecond behind the commits); the vendor, never answered, retries, and
//! without this the retry is published a second time. A spool envelope carries its uid's
//! dedup window (0 for an event never deduplicated, which is left alone); a JSON line does
//! not, so its window is the one its parser's route gives its `raw_data`. Only the last
//! records are read ([`REMEMBERED_RECORDS`], [`REMEMBERED_TAIL_BYTES`]): older ones were
//! journaled long before any crash.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use http::HeaderMap;

use super::envelope::Envelope;
use crate::dedup::DedupStore;
use crate::parse::doc::Doc;
use crate::parse::EventKey;
use crate::route::Routes;
use crate::spool::{Spool, SpoolError};

/// How many of the spool's last records have their ids committed at startup: far more than
/// a millisecond of intake at any rate measured (≈ 40 requests), few enough to read in well
/// under a second.
pub const REMEMBERED_RECORDS: u64 = 4096;

/// Commits the ids of the spool's last [`REMEMBERED_RECORDS`] records into `dedup`; returns
/// how many. A record that is not an envelope is skipped; the first commit that fails (Redis
/// not reachable yet) ends the look, logged once: the cost is at most a duplicate, as before.
pub async fn spooled_ids(spool: &Spool, dedup: &DedupStore) -> Result<u64, SpoolError> {
    let mut reader = spool.tail_reader(REMEMBERED_RECORDS);
    let mut remembered = 0u64;
    loop {
        let records = reader.read(512, 4 * 1024 * 1024)?;
        if records.is_empty() {
            return Ok(remembered);
        }
        for (_, payload) in records {
            let Ok(envelope) = Envelope::decode(&payload) else {
                continue;
            };
            if envelope.window_s == 0 {
                continue;
            }
            let key = EventKey {
                id: envelope.uid,
                window: Some(Duration::from_secs(u64::from(envelope.window_s))),
            };
            if let Err(e) = dedup.commit(&envelope.source, &key).await {
                tracing::warn!(error = %crate::telemetry::causes(&e), remembered, "cannot remember the spool's last ids at startup; a retry of a request a crash left unanswered may be published again");
                return Ok(remembered);
            }
            remembered += 1;
        }
    }
}

/// How much of the JSON-lines file's end is read at startup: thousands of events, far more
/// than a millisecond of intake, and read in well under a second.
pub const REMEMBERED_TAIL_BYTES: u64 = 4 * 1024 * 1024;

/// [`spooled_ids`] for the JSON-lines file at `path`: the ids of the events in its last
/// [`REMEMBERED_TAIL_BYTES`], each under its source with the window its parser's route gives
/// its `raw_data` (a route that never deduplicates, a dead letter, a line that is not an
/// event of a configured source: left alone). A missing file is nothing to remember.
pub async fn jsonl_ids(path: &Path, routes: &Routes, dedup: &DedupStore) -> std::io::Result<u64> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let start = file.metadata()?.len().saturating_sub(REMEMBERED_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    // Read from the middle of the file, the first line is cut: it starts after a newline.
    let whole_lines = match start {
        0 => tail.as_slice(),
        _ => match tail.iter().position(|&b| b == b'\n') {
            Some(at) => tail.get(at + 1..).unwrap_or_default(),
            None => return Ok(0),
        },
    };
    let no_headers = HeaderMap::new();
    let mut remembered = 0u64;
    for line in whole_lines.split(|&b| b == b'\n') {
        // A torn last line (the crash), a dead letter: not an event to remember.
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let text = |pointer: &str| event.pointer(pointer).and_then(serde_json::Value::as_str);
        let (Some(uid), Some(source), Some(raw)) = (
            text("/metadata/uid"),
            text("/unmapped/hookgate/source"),
            text("/raw_data"),
        ) else {
            continue;
        };
        let Some(parser) = routes
            .sources()
            .find(|s| s.name == source)
            .map(|s| &s.parser)
        else {
            continue;
        };
        let Ok(doc) = Doc::parse(raw) else {
            continue;
        };
        let Some(window) = parser.key_and_route(&doc, 0, &no_headers).0.window else {
            continue;
        };
        let key = EventKey {
            id: uid.to_owned(),
            window: Some(window),
        };
        if let Err(e) = dedup.commit(source, &key).await {
            tracing::warn!(error = %crate::telemetry::causes(&e), remembered, "cannot remember the events file's last ids at startup; a retry of a request a crash left unanswered may be published again");
            return Ok(remembered);
        }
        remembered += 1;
    }
    Ok(remembered)
}
