//! At startup: the ids of the last events made durable, committed into dedup.
//!
//! Input: the spool (spool mode) or the JSON-lines file (the embedded default), and the
//! dedup store. Output: how many ids were committed. A crash can come after a request's
//! events were synced and before their ids were committed or journaled (the journal is
//! written a millisecond behind the commits); the vendor, never answered, retries, and
//! without this the retry is published a second time. A spool envelope carries its uid's
//! dedup window (0 for an event never deduplicated, which is left alone); a JSON line does
//! not, so its window is the one its parser's route gives its `raw_data`. Only the last
//! records are read ([`REMEMBERED_RECORDS`], [`jsonl_tail_bytes`]): older ones were
//! journaled long before any crash.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::envelope::{Envelope, Kind};
use super::{DeadLetter, Sink};
use crate::config::Config;
use crate::dedup::DedupStore;
use crate::parse::EventKey;
use crate::route::Routes;
use crate::split::{self, Split};
use crate::spool::{Spool, SpoolError};

/// How many of the spool's last records have their ids committed at startup: far more than
/// a millisecond of intake at any rate measured (≈ 40 requests), few enough to read in well
/// under a second.
pub const REMEMBERED_RECORDS: u64 = 4096;

/// The startup step: in spool mode the spool's last ids ([`spooled_ids`]), writing JSON lines
/// to a file those of its last lines ([`jsonl_ids`]); nothing to read otherwise (Kafka
/// directly, standard output). Logs what it remembered, or why it could not read.
pub async fn last_ids(config: &Config, sink: &Sink, routes: &Routes, dedup: &DedupStore) {
    let (read, what) = match (sink, config.events_file()) {
        (Sink::Spooled { spool, .. }, _) => (
            spooled_ids(spool, dedup)
                .await
                .map_err(|e| crate::telemetry::causes(&e).to_string()),
            "the spool's last records",
        ),
        (Sink::Direct(_), Some(events)) => {
            let mut files = vec![events];
            files.extend(config.sink.dead_letter_path.as_deref());
            let tail = jsonl_tail_bytes(config);
            (
                jsonl_ids(&files, tail, routes, dedup)
                    .await
                    .map_err(|e| e.to_string()),
                "the events file's last events",
            )
        }
        (Sink::Direct(_), None) => return,
    };
    match read {
        Ok(ids) => tracing::info!(ids, "ids of {what} remembered (a retry of a request a crash left unanswered is a duplicate)"),
        Err(error) => tracing::warn!(%error, "cannot read {what}; a retry of a request a crash left unanswered may be published again"),
    }
}

/// Commits `key` under `source`, counting it in `remembered`; false (logged) when the store
/// fails (Redis not reachable yet), which ends the look: the cost is at most a duplicate.
async fn commit(dedup: &DedupStore, source: &str, key: &EventKey, remembered: &mut u64) -> bool {
    if let Err(e) = dedup.commit(source, key).await {
        tracing::warn!(error = %crate::telemetry::causes(&e), remembered = *remembered, "cannot remember the last ids at startup; a retry of a request a crash left unanswered may be published again");
        return false;
    }
    *remembered += 1;
    true
}

/// Commits the ids of the spool's last [`REMEMBERED_RECORDS`] records into `dedup`; returns
/// how many. A record that is not an envelope is skipped; the first commit that fails ends
/// the look ([`commit`]).
pub async fn spooled_ids(spool: &Spool, dedup: &DedupStore) -> Result<u64, SpoolError> {
    let mut remembered = 0u64;
    // A segment forwarded and recycled just before the stop (a roll among the last records)
    // is no longer in the spool's list; its records were read at startup.
    for (_, payload) in spool.take_recycled() {
        if !remember_envelope(dedup, &Bytes::from(payload), &mut remembered).await {
            return Ok(remembered);
        }
    }
    let mut reader = spool.tail_reader(REMEMBERED_RECORDS);
    loop {
        let records = reader.read(512, 4 * 1024 * 1024)?;
        if records.is_empty() {
            return Ok(remembered);
        }
        for (_, payload) in records {
            if !remember_envelope(dedup, &payload, &mut remembered).await {
                return Ok(remembered);
            }
        }
    }
}

/// Commits the id of one spooled envelope (a record that is none is skipped); false when the
/// store failed ([`commit`]), which ends the look.
async fn remember_envelope(dedup: &DedupStore, payload: &Bytes, remembered: &mut u64) -> bool {
    let Ok(envelope) = Envelope::decode(payload) else {
        return true;
    };
    let key = if is_kept_body(&envelope) {
        // A body no event could be read from, remembered under its own key (as when it was
        // kept), so a retry of a request a crash cut is not kept again.
        DeadLetter::body_key(&envelope.uid)
    } else if envelope.window_s == 0 {
        return true;
    } else {
        EventKey {
            id: envelope.uid,
            window: Some(Duration::from_secs(u64::from(envelope.window_s))),
        }
    };
    commit(dedup, &envelope.source, &key, remembered).await
}

/// A dead letter holding a whole body no event could be read from: its id is its bytes' hash.
fn is_kept_body(envelope: &Envelope) -> bool {
    matches!(envelope.kind, Kind::DeadLetter { .. })
        && hex::encode(Sha256::digest(&envelope.body)) == envelope.uid
}

/// How much of a JSON-lines file's end is read at startup: what the writer's last batch can
/// hold (its size cap, overshot by one request's lines), whatever the events' size. A
/// request's lines are at most ≈ 13 bytes a byte of its largest body (`raw_data` escaped, up
/// to 6 bytes a control byte, and once more where a parser copies the text) plus the OCSF
/// fields of its events; the largest body is the larger of the inflate cap and every body
/// cap. At the defaults ≈ 114 MiB, read once at startup (≈ 1 s); a smaller file is read whole.
fn jsonl_tail_bytes(config: &Config) -> u64 {
    let limits = &config.limits;
    let largest_body = config
        .sources
        .iter()
        .filter_map(|s| s.max_body_bytes)
        .chain([limits.max_body_bytes, limits.max_decompressed_bytes])
        .max()
        .unwrap_or_default();
    let batch = u64::try_from(super::jsonl::BATCH_MAX_BYTES).unwrap_or(u64::MAX);
    let events = u64::try_from(limits.max_events_per_request).unwrap_or(u64::MAX);
    batch
        .saturating_add(largest_body.saturating_mul(13))
        .saturating_add(events.saturating_mul(2048))
}

/// [`spooled_ids`] for the JSON-lines files at `paths` (the events, and the dead letters when
/// they have their own): the ids in their last `tail_bytes`, each under its source.
/// - An event: its `metadata.uid`, with the window its parser gives its `raw_data`, read
///   exactly as the request path reads a body (a vendor's not-quite-JSON repaired; a route
///   that never deduplicates, such as Hyperproof's API messages, left alone).
/// - A body kept as a dead letter because no event could be read from it (its uid is the
///   SHA-256 of its bytes): remembered as the request path does, so its retries are not kept
///   again. An event its parser could not map: as a published event.
///
/// A line that is neither (torn by the crash, of a source no longer configured) is skipped;
/// a missing file is nothing to remember.
pub async fn jsonl_ids(
    paths: &[&Path],
    tail_bytes: u64,
    routes: &Routes,
    dedup: &DedupStore,
) -> std::io::Result<u64> {
    let no_headers = HeaderMap::new();
    let mut remembered = 0u64;
    for path in paths {
        let tail = read_tail(path, tail_bytes)?;
        for line in tail.split(|&b| b == b'\n') {
            let Some((source, key)) = line_key(line, routes, &no_headers) else {
                continue;
            };
            if !commit(dedup, &source, &key, &mut remembered).await {
                return Ok(remembered);
            }
        }
    }
    Ok(remembered)
}

/// The whole lines in the last `tail_bytes` of `path` (nothing when it does not exist).
fn read_tail(path: &Path, tail_bytes: u64) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let start = file.metadata()?.len().saturating_sub(tail_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    // Read from the middle of the file, the first line is cut: it starts after a newline.
    if start > 0 {
        let cut = tail
            .iter()
            .position(|&b| b == b'\n')
            .map_or(tail.len(), |at| at + 1);
        tail.drain(..cut);
    }
    Ok(tail)
}

/// The source and dedup key a JSON line of the sink stands for (see [`jsonl_ids`]).
fn line_key(line: &[u8], routes: &Routes, headers: &HeaderMap) -> Option<(String, EventKey)> {
    let line: serde_json::Value = serde_json::from_slice(line).ok()?;
    let text = |pointer: &str| line.pointer(pointer).and_then(serde_json::Value::as_str);
    let (uid, source, raw) = if line.get("dead_letter").is_some() {
        let raw = match text("/raw_data_base64") {
            Some(b64) => STANDARD.decode(b64).ok()?,
            None => text("/raw_data")?.as_bytes().to_vec(),
        };
        let (uid, source) = (text("/uid")?, text("/source")?);
        // A body no event could be read from: its id is its bytes' hash.
        if hex::encode(Sha256::digest(&raw)) == uid {
            return Some((source.to_owned(), DeadLetter::body_key(uid)));
        }
        // An event its parser could not map: its id, as a published event's.
        (uid, source, Bytes::from(raw))
    } else {
        let raw = Bytes::copy_from_slice(text("/raw_data")?.as_bytes());
        (
            text("/metadata/uid")?,
            text("/unmapped/hookgate/source")?,
            raw,
        )
    };
    let parser = &routes.sources().find(|s| s.name == source)?.parser;
    let Ok(Split::Events(events)) = split::events(&raw, parser, headers, usize::MAX) else {
        return None;
    };
    let window = events.first()?.key.window?;
    let key = EventKey {
        id: uid.to_owned(),
        window: Some(window),
    };
    Some((source.to_owned(), key))
}
