//! Reading the spool back in order, for the forwarder.
//!
//! Input: the shared segment list. Output: `(sequence, payload)` pairs after the last one
//! returned, never past a segment's fsynced length. A record that fails its checksum inside
//! the synced range means the disk changed under us: it is logged and the rest of that
//! segment is skipped. Never reads a record twice in one process (the position only moves on).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;

use super::format::{self, Decoded};
use super::{Inner, SpoolError, MAX_RECORD_BYTES, RECORD_HEADER_BYTES};

/// A cursor over the spool's durable records.
#[derive(Debug)]
pub struct SpoolReader {
    inner: Arc<Inner>,
    /// `first_seq` of the segment being read, once chosen.
    segment: Option<u64>,
    /// Byte offset in that segment.
    offset: u64,
    /// Last sequence returned (or acknowledged before this reader started).
    after: u64,
    /// Whether acknowledged records are skipped (the forwarder's reader) or read too (the
    /// startup's look at the spool's last records, [`SpoolReader::after`]).
    past_acked: bool,
}

struct Position {
    path: std::path::PathBuf,
    durable_len: u64,
    next: Option<u64>,
}

impl SpoolReader {
    pub(super) fn new(inner: Arc<Inner>) -> SpoolReader {
        SpoolReader {
            inner,
            segment: None,
            offset: 0,
            after: 0,
            past_acked: true,
        }
    }

    /// A cursor at the records after `seq`, acknowledged or not (as far as their segments
    /// are still on disk).
    pub(super) fn after(inner: Arc<Inner>, seq: u64) -> SpoolReader {
        SpoolReader {
            after: seq,
            past_acked: false,
            ..SpoolReader::new(inner)
        }
    }

    /// Where the segment under the cursor is, choosing one if needed.
    fn position(&mut self) -> Result<Option<Position>, SpoolError> {
        let shared = self.inner.lock()?;
        if self.past_acked {
            self.after = self.after.max(shared.acked_seq);
        }
        let index = match self.segment {
            Some(first) => shared.segments.iter().position(|s| s.first_seq == first),
            None => None,
        };
        let index = match index {
            Some(i) => i,
            None => {
                // Start (or restart after a trim) at the oldest segment still holding news.
                let Some(i) = shared
                    .segments
                    .iter()
                    .position(|s| s.last_seq > self.after || s.durable_len == 0)
                else {
                    return Ok(None);
                };
                self.offset = 0;
                i
            }
        };
        let Some(seg) = shared.segments.get(index) else {
            return Ok(None);
        };
        self.segment = Some(seg.first_seq);
        Ok(Some(Position {
            path: seg.path.clone(),
            durable_len: seg.durable_len,
            next: shared.segments.get(index + 1).map(|s| s.first_seq),
        }))
    }

    /// Up to `max_records` records (and about `max_bytes` of payload) after the last returned.
    /// Empty when nothing new is durable. Each chunk is read once, without zero-filling the
    /// buffer first, and the payloads are slices of it (no copy per record).
    pub fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes)>, SpoolError> {
        let mut out = Vec::new();
        let mut out_bytes = 0usize;
        // Read in chunks of about `max_bytes`; a record larger than a chunk gets one read of
        // the largest possible record.
        let mut big = false;
        loop {
            let Some(pos) = self.position()? else {
                return Ok(out);
            };
            if self.offset >= pos.durable_len {
                match pos.next {
                    Some(next) => {
                        self.segment = Some(next);
                        self.offset = 0;
                        continue;
                    }
                    None => return Ok(out),
                }
            }
            let remaining = pos.durable_len - self.offset;
            let chunk = if big {
                RECORD_HEADER_BYTES + MAX_RECORD_BYTES
            } else {
                max_bytes.max(64 * 1024)
            };
            let want = (chunk as u64).min(remaining);
            let truncated = want < remaining;
            let mut buf = Vec::with_capacity(want as usize);
            let mut file = File::open(&pos.path).map_err(SpoolError::io("open segment to read"))?;
            file.seek(SeekFrom::Start(self.offset))
                .and_then(|_| file.take(want).read_to_end(&mut buf))
                .map_err(SpoolError::io("read segment"))?;
            if (buf.len() as u64) < want {
                return Err(SpoolError::io("read segment")(std::io::Error::from(
                    std::io::ErrorKind::UnexpectedEof,
                )));
            }
            let chunk = Bytes::from(buf);
            let mut rest: &[u8] = &chunk;
            let mut decoded_any = false;
            loop {
                if out.len() >= max_records || (out_bytes >= max_bytes && !out.is_empty()) {
                    return Ok(out);
                }
                match format::decode(rest) {
                    Decoded::Record { seq, payload, len } => {
                        self.offset += len as u64;
                        decoded_any = true;
                        if seq > self.after {
                            self.after = seq;
                            out_bytes += payload.len();
                            out.push((seq, chunk.slice_ref(payload)));
                        }
                        rest = rest.get(len..).unwrap_or_default();
                    }
                    Decoded::End => break,
                    Decoded::Invalid if truncated && !big => {
                        // The chunk ends inside a record: the next pass reads from its start,
                        // with the largest chunk when not even one record fitted.
                        big = !decoded_any;
                        break;
                    }
                    Decoded::Invalid => {
                        tracing::error!(segment = %pos.path.display(), offset = self.offset, "spool record fails its checksum inside the synced range; skipping the rest of the segment");
                        self.offset = pos.durable_len;
                        break;
                    }
                }
            }
            if decoded_any {
                big = false;
            }
        }
    }
}
