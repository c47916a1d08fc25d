//! One outgoing message, as every output sees it, and its spool payload encoding.
//!
//! Input: a request's [`Batch`]. Output: [`Envelope`]s (one per record) that carry what the
//! Kafka message needs: key, value, and the header fields. The spool stores [`Envelope::encode`]
//! bytes; [`Envelope::decode`] fails with [`EnvelopeError`] on bytes it did not write.
//!
//! Payload layout (after the spool's own framing and checksum): version byte `1`, kind byte
//! (`0` event, `1` dead letter), `class_uid` as u32 LE, then seven fields, each a u32 LE length
//! and its bytes: source, vendor, request id, uid, label (class name or reason code), reason
//! (empty for events), body (OCSF JSON or the dead letter's raw bytes); then the uid's dedup
//! window in seconds as u32 LE (`0`: not deduplicated). The window is a trailer: a payload
//! without it (written before it existed) reads as window `0`, and a reader that predates it
//! ignores it, so the version stays `1` and a spool survives an upgrade and a rollback.

use bytes::Bytes;

use super::{Batch, Record};

const VERSION: u8 = 1;

/// What kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A normalized OCSF event.
    Event {
        /// OCSF `class_uid`.
        class_uid: u32,
        /// OCSF `class_name`.
        class_name: String,
    },
    /// An event that could not be parsed or mapped.
    DeadLetter {
        /// Bounded reason code.
        reason_code: String,
        /// Human-readable reason.
        reason: String,
    },
}

/// One message on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Event or dead letter.
    pub kind: Kind,
    /// Source name.
    pub source: String,
    /// Vendor (parser) name.
    pub vendor: String,
    /// Request id.
    pub request_id: String,
    /// Dedup id: the Kafka message key.
    pub uid: String,
    /// The message value: OCSF JSON, or a dead letter's raw bytes.
    pub body: Bytes,
    /// How long `uid` is deduplicated, in seconds; 0 when it is not (or unknown). Read back
    /// at startup to remember the ids of the spool's last records (see `sink::remember`).
    pub window_s: u32,
}

/// Why spool bytes are not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Gateway fault: bytes passed the checksum but are not a payload this version wrote.
    #[error("spool payload is malformed")]
    Malformed,
}

/// Splits a request's batch into envelopes, in order.
pub fn from_batch(batch: Batch) -> Vec<Envelope> {
    batch
        .records
        .into_iter()
        .map(|record| match record {
            Record::Event(e) => Envelope {
                kind: Kind::Event {
                    class_uid: e.class_uid,
                    class_name: e.class_name.to_owned(),
                },
                source: batch.source.to_string(),
                vendor: batch.vendor.to_string(),
                request_id: batch.request_id.clone(),
                uid: e.uid,
                body: e.json,
                window_s: window_s(e.window),
            },
            Record::DeadLetter(d) => Envelope {
                kind: Kind::DeadLetter {
                    reason_code: d.reason_code.to_owned(),
                    reason: d.reason,
                },
                source: batch.source.to_string(),
                vendor: batch.vendor.to_string(),
                request_id: batch.request_id.clone(),
                uid: d.uid,
                body: d.raw,
                window_s: window_s(d.window),
            },
        })
        .collect()
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let head = self.0.get(..n).ok_or(EnvelopeError::Malformed)?;
        self.0 = self.0.get(n..).unwrap_or_default();
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let b: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| EnvelopeError::Malformed)?;
        Ok(u32::from_le_bytes(b))
    }
    fn field(&mut self) -> Result<&'a [u8], EnvelopeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Result<String, EnvelopeError> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| EnvelopeError::Malformed)
    }
}

impl Envelope {
    /// Spool payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body.len());
        out.push(VERSION);
        let (kind, class_uid, label, reason) = match &self.kind {
            Kind::Event {
                class_uid,
                class_name,
            } => (0u8, *class_uid, class_name.as_str(), ""),
            Kind::DeadLetter {
                reason_code,
                reason,
            } => (1u8, 0, reason_code.as_str(), reason.as_str()),
        };
        out.push(kind);
        out.extend_from_slice(&class_uid.to_le_bytes());
        for field in [
            self.source.as_bytes(),
            self.vendor.as_bytes(),
            self.request_id.as_bytes(),
            self.uid.as_bytes(),
            label.as_bytes(),
            reason.as_bytes(),
            &self.body,
        ] {
            put(&mut out, field);
        }
        out.extend_from_slice(&self.window_s.to_le_bytes());
        out
    }

    /// Reads spool payload bytes back; the body is a slice of `bytes`, not a copy.
    pub fn decode(bytes: &Bytes) -> Result<Envelope, EnvelopeError> {
        let mut c = Cursor(bytes);
        if c.take(1)? != [VERSION] {
            return Err(EnvelopeError::Malformed);
        }
        let kind = c.take(1)?;
        let class_uid = c.u32()?;
        let source = c.text()?;
        let vendor = c.text()?;
        let request_id = c.text()?;
        let uid = c.text()?;
        let label = c.text()?;
        let reason = c.text()?;
        let body = bytes.slice_ref(c.field()?);
        // The trailer, when the payload has one (see the module note).
        let window_s = if c.0.is_empty() { 0 } else { c.u32()? };
        let kind = match kind {
            [0] => Kind::Event {
                class_uid,
                class_name: label,
            },
            [1] => Kind::DeadLetter {
                reason_code: label,
                reason,
            },
            _ => return Err(EnvelopeError::Malformed),
        };
        Ok(Envelope {
            kind,
            source,
            vendor,
            request_id,
            uid,
            body,
            window_s,
        })
    }
}

/// A dedup window as the envelope carries it: whole seconds, 0 for none.
fn window_s(window: Option<std::time::Duration>) -> u32 {
    window.map_or(0, |w| u32::try_from(w.as_secs()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_survive_the_spool_encoding() {
        for kind in [
            Kind::Event {
                class_uid: 6003,
                class_name: "API Activity".into(),
            },
            Kind::DeadLetter {
                reason_code: "no_mapping".into(),
                reason: "field x missing".into(),
            },
        ] {
            let e = Envelope {
                kind,
                source: "hw".into(),
                vendor: "hyprwatch".into(),
                request_id: "r1".into(),
                uid: "evt_1".into(),
                body: Bytes::from_static(b"{\"a\":1}"),
                window_s: 90_000,
            };
            assert_eq!(Envelope::decode(&Bytes::from(e.encode())).unwrap(), e);
        }
    }

    /// A payload written before the window trailer existed reads with window 0, and the
    /// reader before it (which stopped after the body) still finds every field where it was.
    #[test]
    fn payloads_without_the_window_trailer_still_read() {
        let e = Envelope {
            kind: Kind::Event {
                class_uid: 3002,
                class_name: "Authentication".into(),
            },
            source: "s".into(),
            vendor: "v".into(),
            request_id: "r".into(),
            uid: "u".into(),
            body: Bytes::from_static(b"{}"),
            window_s: 3600,
        };
        let bytes = e.encode();
        let (old, trailer) = bytes.split_at(bytes.len() - 4);
        assert_eq!(trailer, 3600u32.to_le_bytes());
        let read = Envelope::decode(&Bytes::copy_from_slice(old)).unwrap();
        assert_eq!(read, Envelope { window_s: 0, ..e });
    }

    #[test]
    fn truncated_payloads_are_malformed() {
        let e = Envelope {
            kind: Kind::Event {
                class_uid: 0,
                class_name: "Base Event".into(),
            },
            source: "s".into(),
            vendor: "v".into(),
            request_id: "r".into(),
            uid: "u".into(),
            body: Bytes::from_static(b"{}"),
            window_s: 7,
        };
        let bytes = e.encode();
        // Every prefix but the one that ends with the body (a payload from before the window
        // trailer, read with window 0) is refused.
        for n in (0..bytes.len()).filter(|n| *n != bytes.len() - 4) {
            let prefix = Bytes::copy_from_slice(&bytes[..n]);
            assert!(Envelope::decode(&prefix).is_err(), "prefix {n} decoded");
        }
    }
}
