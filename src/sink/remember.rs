//! At startup in spool mode: the ids of the spool's last records, committed into dedup.
//!
//! Input: the spool and the dedup store. Output: how many ids were committed. A crash can
//! come after a request's records were synced and before its ids were committed or journaled
//! (the journal is written a millisecond behind the commits); the vendor, never answered,
//! retries, and without this the retry is published a second time. Each envelope carries its
//! uid's dedup window (0 for an event never deduplicated, which is left alone). Only the last
//! [`REMEMBERED_RECORDS`] are read: older ones were journaled long before any crash.

use std::time::Duration;

use super::envelope::Envelope;
use crate::dedup::DedupStore;
use crate::parse::EventKey;
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
