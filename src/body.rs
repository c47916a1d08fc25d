//! Stage 3, body: read the request body within its byte and time caps, decode
//! `Content-Encoding`, and keep the exact bytes.
//!
//! Input: the unread body and the request head. Output: the body as [`Bytes`] (decoded).
//! Fails with [`BodyError`]: 413 over a cap, 408 too slow, 415 unsupported media, 400 broken
//! encoding. Never buffers more than the cap plus one frame; never inflates past the
//! decompressed cap; never logs body bytes.

use std::io::Read;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body_util::BodyExt;

/// The caps one read is held to.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Wire bytes.
    pub max_body_bytes: u64,
    /// Bytes after decoding.
    pub max_decompressed_bytes: u64,
    /// Time for the whole body.
    pub read_timeout: Duration,
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Sender's fault: the body is larger than the cap.
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// Sender's fault: the body inflates past the decompressed cap.
    #[error("decompressed request body is larger than {limit} bytes")]
    DecompressedTooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// Sender's fault: the body did not arrive within the read timeout.
    #[error("request body was not received within {timeout:?}")]
    Timeout {
        /// The timeout.
        timeout: Duration,
    },
    /// Sender's fault: a `Content-Encoding` other than identity, gzip or deflate.
    #[error("unsupported content encoding {encoding:?}; use gzip, deflate or none")]
    UnsupportedEncoding {
        /// The header value (truncated).
        encoding: String,
    },
    /// Sender's fault: a `Transfer-Encoding` coding other than `chunked` (HTTP/1.1 would
    /// hand its bytes on undecoded; RFC 9112 §6.1: 501).
    #[error("unsupported transfer coding {coding:?}; send chunked or Content-Length")]
    UnsupportedTransferCoding {
        /// The coding (truncated).
        coding: String,
    },
    /// Sender's fault: a `Content-Type` that is not JSON.
    #[error("unsupported content type {content_type:?}; send application/json")]
    UnsupportedMediaType {
        /// The header value (truncated).
        content_type: String,
    },
    /// Sender's fault: the compressed stream is corrupt.
    #[error("request body is not valid {encoding} data")]
    CorruptEncoding {
        /// gzip or deflate.
        encoding: &'static str,
        /// The bytes as sent were kept as a dead letter before this refusal (set by the
        /// pipeline, which knows whether they are authenticated): the sender's retries cannot
        /// fix them, so the answer tells a Svix sender to stop.
        kept: bool,
    },
    /// Sender's fault: the connection failed while the body was being read.
    #[error("request body could not be read")]
    Incomplete(#[source] hyper::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// Refuses a transfer coding other than `chunked`: hyper takes the chunks off and would hand
/// on bytes still in, say, gzip (a `Content-Encoding` is what this gateway decodes).
pub fn transfer_codings(headers: &HeaderMap) -> Result<(), BodyError> {
    for value in headers.get_all(http::header::TRANSFER_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let unknown = text
            .split(',')
            .map(str::trim)
            .find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("chunked"));
        if let Some(coding) = unknown {
            return Err(BodyError::UnsupportedTransferCoding {
                coding: truncate(coding),
            });
        }
    }
    Ok(())
}

/// Checks the head before reading: media type, encoding and a declared length over the cap.
/// Runs before authentication so a refused request costs no body read. A request declaring
/// an empty body has no media to refuse, whatever its `Content-Type` says: it goes on to the
/// parser, for which it may be the vendor's health call (Hyperproof's daily heartbeat, whose
/// shape is undocumented and whose failure marks the connection unhealthy). `ended` is the
/// transport's word that no body follows (HTTP/1.1 without `Content-Length` or
/// `Transfer-Encoding`, as a GET or HEAD comes; HTTP/2 ending the stream with the head).
pub fn check_head(headers: &HeaderMap, ended: bool, limits: &BodyLimits) -> Result<(), BodyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Only a body that is surely empty: with `Transfer-Encoding` beside it, hyper reads the
    // chunks and the `Content-Length: 0` means nothing.
    let surely_empty =
        ended || (declared == Some(0) && !headers.contains_key(http::header::TRANSFER_ENCODING));
    let content_type = field_text(headers, &http::header::CONTENT_TYPE).filter(|_| !surely_empty);
    if let Some(text) = content_type {
        let media = text.split(';').next().unwrap_or_default().trim();
        // Several Content-Type lines are not one media type (it is a singleton field, RFC 9110
        // §8.3), whichever comes first.
        let repeated = headers
            .get_all(http::header::CONTENT_TYPE)
            .iter()
            .nth(1)
            .is_some();
        let json_like = matches!(
            media,
            "" | "application/json"
                | "application/x-ndjson"
                | "application/jsonl"
                | "application/json-seq"
                | "text/plain"
        ) || (media.starts_with("application/") && media.ends_with("+json"));
        if repeated || !json_like {
            return Err(BodyError::UnsupportedMediaType {
                content_type: truncate(&text),
            });
        }
    }
    transfer_codings(headers)?;
    encoding(headers)?;
    match declared {
        Some(n) if n > limits.max_body_bytes => Err(BodyError::TooLarge {
            limit: limits.max_body_bytes,
        }),
        _ => Ok(()),
    }
}

/// The field's lines joined by `, ` as one value (RFC 9110 §5.3), lower-cased and trimmed;
/// `None` without any. A repeated field is read whole, never by its first line.
fn field_text(headers: &HeaderMap, name: &http::header::HeaderName) -> Option<String> {
    let text = |v: &http::HeaderValue| v.to_str().unwrap_or_default().trim().to_ascii_lowercase();
    let mut lines = headers.get_all(name).iter();
    let mut joined = text(lines.next()?);
    for line in lines {
        joined.push_str(", ");
        joined.push_str(&text(line));
    }
    Some(joined)
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, BodyError> {
    let Some(text) = field_text(headers, &http::header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    // A list (`gzip, br`, or the same over two lines) is stacked codings: not one we read.
    match text.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        _ => Err(BodyError::UnsupportedEncoding {
            encoding: truncate(&text),
        }),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// A body read whole as sent, not yet decoded. Its decoded bytes are what signatures are
/// checked against (vendors sign the decoded JSON).
#[derive(Debug)]
pub struct Wire {
    bytes: Bytes,
    encoding: Encoding,
}

impl Wire {
    /// The bytes as sent (before any `Content-Encoding` is undone).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The body, per its `Content-Encoding`, within the inflate cap.
    fn decode(&self, limits: &BodyLimits) -> Result<Bytes, BodyError> {
        decode(self.bytes.clone(), self.encoding, limits)
    }

    /// [`decode`](Self::decode) for the request path: inflating (up to the inflate cap, before
    /// any signature over the result can be checked) runs on a blocking thread, so a few
    /// small compressed bodies cannot hold the runtime's workers, and every other request and
    /// the health probes with them. A compressed body first waits for its share of the inflate
    /// budget ([`INFLATE_BUDGET_MIB`]), which the returned [`Inflating`] holds until the caller
    /// drops it once the signature over the result is checked.
    pub async fn decode_off_runtime(
        &self,
        limits: &BodyLimits,
    ) -> Result<(Bytes, Inflating), BodyError> {
        self.decode_within(limits, &INFLATING).await
    }

    /// [`decode_off_runtime`](Self::decode_off_runtime) within `budget` (MiB permits).
    async fn decode_within(
        &self,
        limits: &BodyLimits,
        budget: &'static tokio::sync::Semaphore,
    ) -> Result<(Bytes, Inflating), BodyError> {
        if self.encoding == Encoding::Identity || self.bytes.is_empty() {
            return self.decode(limits).map(|b| (b, Inflating { _held: None }));
        }
        // Twice the cap: the buffer inflated into grows by doubling, and the step that
        // passes the cap copies into one twice its size.
        let share = limits
            .max_decompressed_bytes
            .saturating_mul(2)
            .div_ceil(1024 * 1024)
            .clamp(1, u64::from(INFLATE_BUDGET_MIB)) as u32;
        // The semaphore is never closed, so acquiring only waits.
        let held = budget.acquire_many(share).await.ok();
        let (bytes, encoding, caps) = (self.bytes.clone(), self.encoding, *limits);
        // The share goes with the inflating: a request dropped while it waits (its sender
        // hung up) must not return the share while its thread still inflates.
        let inflated = tokio::task::spawn_blocking(move || (decode(bytes, encoding, &caps), held));
        let (decoded, held) = match inflated.await {
            Ok(done) => done,
            // The blocking pool is gone (shutdown): decode here instead, within the budget.
            Err(_) => {
                let held = budget.acquire_many(share).await.ok();
                (self.decode(limits), held)
            }
        };
        decoded.map(|b| (b, Inflating { _held: held }))
    }
}

/// The memory, in MiB, that bodies being inflated and then verified may take at once. Each
/// compressed request holds twice its inflate cap (`[limits] max_decompressed_bytes`; at
/// most the whole budget), what its buffer may grow to, from before it inflates until its
/// signature is checked, so bodies that inflate to the cap and fail their signature cost at
/// most this much together, however many arrive at once (the 8 MiB default: four at a time).
/// Before, 64 bombs of 8 KiB from one client took 737 MB at once.
pub const INFLATE_BUDGET_MIB: u32 = 64;

static INFLATING: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(INFLATE_BUDGET_MIB as usize);

/// A request's share of the inflate budget; dropping it returns the share.
#[derive(Debug)]
pub struct Inflating {
    _held: Option<tokio::sync::SemaphorePermit<'static>>,
}

/// Reads the whole body within the size cap and the read timeout, without decoding it, so a
/// body that does not decode can still be kept as sent.
pub async fn read_wire(
    body: hyper::body::Incoming,
    headers: &HeaderMap,
    limits: &BodyLimits,
) -> Result<Wire, BodyError> {
    let encoding = encoding(headers)?;
    let bytes = collect(body, limits).await?;
    Ok(Wire { bytes, encoding })
}

/// [`read_wire`] and decode, for a sender that may label a plain body with a `Content-Encoding` it did not
/// apply: a body that does not decode is taken as sent. HYPR's console suggests a
/// `Content-Encoding: gzip` header parameter for its token request, which EventBridge adds to
/// whatever body it sends without compressing it. Only for the token endpoint's small form,
/// which its credentials authenticate, never its bytes.
pub async fn read_maybe_mislabelled(
    body: hyper::body::Incoming,
    headers: &HeaderMap,
    limits: &BodyLimits,
) -> Result<Bytes, BodyError> {
    let wire = read_wire(body, headers, limits).await?;
    match wire.decode(limits) {
        Err(BodyError::CorruptEncoding { .. }) => Ok(wire.bytes),
        other => other,
    }
}

/// The body bytes as sent, within the size cap and the read timeout.
async fn collect(body: hyper::body::Incoming, limits: &BodyLimits) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(
        limits.read_timeout,
        collect_capped(body, limits.max_body_bytes),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(BodyError::Timeout {
            timeout: limits.read_timeout,
        }),
    }
}

/// The body bytes as sent → the body, per its `Content-Encoding`.
fn decode(wire: Bytes, encoding: Encoding, limits: &BodyLimits) -> Result<Bytes, BodyError> {
    // No bytes: nothing to decode. A sender whose requests all carry a configured
    // `Content-Encoding` header (HYPR's console suggests `gzip` for its body-less token
    // request) sends it on empty bodies too.
    if wire.is_empty() {
        return Ok(wire);
    }
    match encoding {
        Encoding::Identity => Ok(wire),
        // Every member of the stream (RFC 1952 allows several, e.g. files compressed apart
        // and joined); bytes after the last that are not a member are refused.
        Encoding::Gzip => inflate(
            flate2::bufread::MultiGzDecoder::new(wire.as_ref()),
            |d| d.get_ref().len(),
            "gzip",
            limits.max_decompressed_bytes,
        ),
        Encoding::Deflate => {
            // HTTP's "deflate" is zlib-wrapped; some senders send raw deflate. Try both.
            inflate(
                flate2::bufread::ZlibDecoder::new(wire.as_ref()),
                |d| d.get_ref().len(),
                "deflate",
                limits.max_decompressed_bytes,
            )
            .or_else(|err| match err {
                BodyError::CorruptEncoding { .. } => inflate(
                    flate2::bufread::DeflateDecoder::new(wire.as_ref()),
                    |d| d.get_ref().len(),
                    "deflate",
                    limits.max_decompressed_bytes,
                ),
                other => Err(other),
            })
        }
    }
}

async fn collect_capped(mut body: hyper::body::Incoming, max: u64) -> Result<Bytes, BodyError> {
    // Issue #7: a small body usually arrives as one frame, which hyper hands over as a slice
    // of its read buffer. That frame is kept as it is (no copy); only a body of several
    // frames is gathered into one buffer.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Incomplete)?;
        if let Ok(data) = frame.into_data() {
            len = len.saturating_add(data.len() as u64);
            if len > max {
                return Err(BodyError::TooLarge { limit: max });
            }
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                None => buf.extend_from_slice(&data),
                Some(earlier) => {
                    buf.reserve(earlier.len() + data.len());
                    buf.extend_from_slice(&earlier);
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Decodes at most `max` bytes; one byte more means the body is over the cap. `unread` tells
/// how many input bytes the decoder left after its stream ended: any is a corrupt body (data
/// after the end would otherwise be dropped unseen).
fn inflate<D: Read>(
    mut decoder: D,
    unread: impl Fn(&D) -> usize,
    name: &'static str,
    max: u64,
) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    // Bounded: `take` stops the decoder one byte past the cap, whatever the stream claims.
    let read = (&mut decoder)
        .take(max.saturating_add(1))
        .read_to_end(&mut out);
    match read {
        Ok(n) if n as u64 > max => Err(BodyError::DecompressedTooLarge { limit: max }),
        Ok(_) if unread(&decoder) > 0 => Err(BodyError::CorruptEncoding {
            encoding: name,
            kept: false,
        }),
        Ok(_) => Ok(Bytes::from(out)),
        Err(_) => Err(BodyError::CorruptEncoding {
            encoding: name,
            kept: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn limits(max_decompressed_bytes: u64) -> BodyLimits {
        BodyLimits {
            max_body_bytes: 1 << 30,
            max_decompressed_bytes,
            read_timeout: Duration::from_secs(1),
        }
    }

    fn decoded(wire: Vec<u8>, encoding: Encoding, max: u64) -> Result<Bytes, BodyError> {
        decode(Bytes::from(wire), encoding, &limits(max))
    }

    /// Bodies inflating to the cap take a share of the budget each until the caller drops its
    /// [`Inflating`]: past the budget the next one waits, and goes on once a share is back.
    #[tokio::test]
    async fn compressed_bodies_wait_for_their_share_of_the_inflate_budget() {
        static BUDGET: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);
        let wire = Wire {
            bytes: Bytes::from(gzip(b"{}")),
            encoding: Encoding::Gzip,
        };
        let caps = limits(8 * 1024 * 1024);
        let first = wire.decode_within(&caps, &BUDGET).await.unwrap();
        let second = wire.decode_within(&caps, &BUDGET).await.unwrap();
        assert_eq!(&first.0[..], b"{}");
        assert_eq!(BUDGET.available_permits(), 0);
        let third = wire.decode_within(&caps, &BUDGET);
        tokio::pin!(third);
        let waited = tokio::time::timeout(Duration::from_millis(100), &mut third).await;
        assert!(waited.is_err(), "inflated past the budget");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("still waiting with a share free")
            .unwrap();
        drop((second, third));
        assert_eq!(BUDGET.available_permits(), 32);
        // A plain body takes no share.
        let plain = Wire {
            bytes: Bytes::from_static(b"{}"),
            encoding: Encoding::Identity,
        };
        let _held = plain.decode_within(&caps, &BUDGET).await.unwrap();
        assert_eq!(BUDGET.available_permits(), 32);
    }

    /// A request dropped while its body inflates (its sender hung up) keeps its share until
    /// the blocking thread is done: the budget bounds what is inflating, not who waits.
    #[tokio::test]
    async fn a_dropped_request_holds_its_share_until_its_inflating_ends() {
        static BUDGET: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(64);
        let wire = Wire {
            bytes: Bytes::from(gzip(&vec![b' '; 8 * 1024 * 1024])),
            encoding: Encoding::Gzip,
        };
        let caps = limits(8 * 1024 * 1024);
        let abandoned =
            tokio::time::timeout(Duration::from_micros(1), wire.decode_within(&caps, &BUDGET))
                .await;
        assert!(abandoned.is_err(), "inflated 8 MiB at once");
        assert_eq!(BUDGET.available_permits(), 48, "the share came back early");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while BUDGET.available_permits() < 64 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the share never came back"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn inflates_gzip_within_cap() {
        let out = decoded(gzip(b"{\"a\":1}"), Encoding::Gzip, 100).unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
    }

    #[test]
    fn inflates_every_member_of_a_gzip_stream() {
        // Two members joined (RFC 1952 2.2), as `cat a.gz b.gz` makes: both events, not one.
        let mut wire = gzip(b"{\"id\":1}\n");
        wire.extend(gzip(b"{\"id\":2}\n"));
        let out = decoded(wire, Encoding::Gzip, 100).unwrap();
        assert_eq!(&out[..], b"{\"id\":1}\n{\"id\":2}\n");
    }

    #[test]
    fn refuses_bytes_after_the_compressed_stream() {
        let mut wire = gzip(b"{}");
        wire.extend_from_slice(b"trailing");
        let err = decoded(wire, Encoding::Gzip, 100).unwrap_err();
        assert!(matches!(err, BodyError::CorruptEncoding { .. }), "{err:?}");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(b"{}").unwrap();
        let mut wire = zlib.finish().unwrap();
        assert_eq!(
            &decoded(wire.clone(), Encoding::Deflate, 100).unwrap()[..],
            b"{}"
        );
        wire.extend_from_slice(b"{\"more\":1}");
        let err = decoded(wire, Encoding::Deflate, 100).unwrap_err();
        assert!(matches!(err, BodyError::CorruptEncoding { .. }), "{err:?}");
        // Raw deflate (no zlib wrapper) is still read.
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(b"{}").unwrap();
        assert_eq!(
            &decoded(raw.finish().unwrap(), Encoding::Deflate, 100).unwrap()[..],
            b"{}"
        );
    }

    #[test]
    fn stops_a_decompression_bomb_at_the_cap() {
        let z = gzip(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(z.len() < 20_000);
        let err = decoded(z, Encoding::Gzip, 1024 * 1024).unwrap_err();
        assert!(matches!(err, BodyError::DecompressedTooLarge { limit } if limit == 1024 * 1024));
    }

    #[test]
    fn rejects_corrupt_gzip() {
        let err = decoded(b"not gzip".to_vec(), Encoding::Gzip, 100).unwrap_err();
        assert!(matches!(err, BodyError::CorruptEncoding { .. }));
    }

    /// A transfer coding hyper does not take off (anything but `chunked`) is refused, not
    /// passed on as if the bytes were the body (outside re-check: `gzip, chunked` was read
    /// as JSON, `foo, chunked` accepted).
    #[test]
    fn refuses_a_transfer_coding_other_than_chunked() {
        let limits = limits(10);
        for coding in ["gzip, chunked", "foo, chunked", "deflate,chunked"] {
            let mut h = HeaderMap::new();
            h.insert(http::header::TRANSFER_ENCODING, coding.parse().unwrap());
            let err = check_head(&h, false, &limits).unwrap_err();
            assert!(
                matches!(err, BodyError::UnsupportedTransferCoding { .. }),
                "{coding}: {err:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(http::header::TRANSFER_ENCODING, "Chunked".parse().unwrap());
        assert!(check_head(&h, false, &limits).is_ok());
    }

    #[test]
    fn rejects_unknown_encoding_and_media_type() {
        let limits = BodyLimits {
            max_body_bytes: 10,
            max_decompressed_bytes: 10,
            read_timeout: Duration::from_secs(1),
        };
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(matches!(
            check_head(&h, false, &limits),
            Err(BodyError::UnsupportedEncoding { .. })
        ));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            "application/xml".parse().unwrap(),
        );
        assert!(matches!(
            check_head(&h, false, &limits),
            Err(BodyError::UnsupportedMediaType { .. })
        ));
        // A field over two lines is read whole: stacked codings, two media types.
        for (name, lines) in [
            (http::header::CONTENT_ENCODING, ["gzip", "br"]),
            (http::header::CONTENT_ENCODING, ["identity", "gzip"]),
            (
                http::header::CONTENT_TYPE,
                ["application/json", "application/xml"],
            ),
            (
                http::header::CONTENT_TYPE,
                ["application/json; charset=utf-8", "text/plain"],
            ),
        ] {
            let mut two = HeaderMap::new();
            for line in lines {
                two.append(name.clone(), line.parse().unwrap());
            }
            assert!(
                matches!(
                    check_head(&two, false, &limits),
                    Err(BodyError::UnsupportedEncoding { .. }
                        | BodyError::UnsupportedMediaType { .. })
                ),
                "{name}: {lines:?}"
            );
        }
        // Nor does a request the transport says has no body (a GET, a POST without length).
        assert!(check_head(&h, true, &limits).is_ok());
        // An empty body has no media type to refuse; a chunked one claiming 0 is not empty.
        h.insert(http::header::CONTENT_LENGTH, "0".parse().unwrap());
        assert!(check_head(&h, false, &limits).is_ok());
        h.insert(http::header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        assert!(matches!(
            check_head(&h, false, &limits),
            Err(BodyError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn rejects_declared_length_over_cap() {
        let limits = BodyLimits {
            max_body_bytes: 10,
            max_decompressed_bytes: 10,
            read_timeout: Duration::from_secs(1),
        };
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_LENGTH, "11".parse().unwrap());
        assert!(matches!(
            check_head(&h, false, &limits),
            Err(BodyError::TooLarge { limit: 10 })
        ));
    }
}
