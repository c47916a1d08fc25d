//! Svix / Standard Webhooks signatures (Hoop.dev delivers through Svix).
//!
//! Input: the `svix-id`, `svix-timestamp`, `svix-signature` headers (or, when `svix-id` is
//! absent, the Standard Webhooks names `webhook-*`) and the exact raw body. Output: accepted,
//! or an [`AuthError`]. The signed content is `id.timestamp.body`; the key is the base64 part
//! of a `whsec_` secret; the header may list several space-separated `v1,<base64>` entries.
//! A malformed entry (unknown version, not base64, wrong length) is simply no match: it never
//! errors and never costs more than the entry itself. Comparisons are constant-time.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::AuthError;
use crate::config::Secret;

/// A compiled Svix scheme.
pub struct SvixVerifier {
    keys: Vec<Hmac<Sha256>>,
    tolerance_s: u64,
}

impl std::fmt::Debug for SvixVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvixVerifier")
            .field("keys", &self.keys.len())
            .field("tolerance_s", &self.tolerance_s)
            .finish()
    }
}

/// The headers Svix / Standard Webhooks signing uses, in both families.
pub const HEADERS: [&str; 6] = [
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Of [`HEADERS`], those that carry no secret (a parser reads the id and the time).
pub const ID_AND_TIME_HEADERS: [&str; 4] = [
    "svix-id",
    "svix-timestamp",
    "webhook-id",
    "webhook-timestamp",
];

/// Base64 with or without its `=` padding, as the official Svix and Standard Webhooks
/// libraries read secrets.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes a `whsec_<base64>` secret (the prefix and the padding are optional) into key bytes.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    SECRET_BASE64.decode(b64).ok().filter(|k| !k.is_empty())
}

impl SvixVerifier {
    /// Builds the verifier; `None` when a secret is not base64 (config validation reports it).
    pub fn new(secrets: &[Secret], tolerance_s: u64) -> Option<SvixVerifier> {
        let mut keys = Vec::with_capacity(secrets.len());
        for secret in secrets {
            let key = decode_secret(secret.expose())?;
            keys.push(Hmac::<Sha256>::new_from_slice(&key).ok()?);
        }
        Some(SvixVerifier { keys, tolerance_s })
    }

    /// Verifies against the current clock.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.verify_at(headers, body, now)
    }

    /// Verifies as if the clock read `now` (Unix seconds).
    pub fn verify_at(&self, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), AuthError> {
        let family = if headers.contains_key("svix-id") {
            ["svix-id", "svix-timestamp", "svix-signature"]
        } else {
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        };
        let [id, timestamp, signatures] = family.map(|name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        });
        let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
            return Err(AuthError::MissingSignature);
        };
        let sent: u64 = timestamp
            .parse()
            .map_err(|_| AuthError::MalformedSignature)?;
        if sent.abs_diff(now) > self.tolerance_s {
            return Err(AuthError::TimestampOutOfTolerance);
        }
        let expected: Vec<[u8; 32]> = self
            .keys
            .iter()
            .map(|key| {
                let mut mac = key.clone();
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.finalize().into_bytes().into()
            })
            .collect();
        let mut matched = false;
        for entry in signatures.split(' ') {
            let Some(given) = entry
                .strip_prefix("v1,")
                .and_then(|b64| decode_signature(b64.trim()))
            else {
                continue;
            };
            for want in &expected {
                matched |= bool::from(given.as_slice().ct_eq(want.as_slice()));
            }
        }
        if matched {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// Decodes one base64 signature; `None` unless it is exactly 32 bytes.
fn decode_signature(b64: &str) -> Option<[u8; 32]> {
    // 32 bytes are 44 base64 characters; anything else cannot match, so skip decoding it.
    if b64.len() != 44 {
        return None;
    }
    let mut out = [0u8; 33];
    match STANDARD.decode_slice(b64, &mut out) {
        Ok(32) => out.get(..32).and_then(|s| s.try_into().ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: u64 = 1_700_000_000;

    fn sign(secret: &str, id: &str, ts: u64, body: &[u8]) -> String {
        let key = decode_secret(secret).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn headers(prefix: &str, id: &str, ts: u64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::HeaderName::from_bytes(format!("{prefix}-id").as_bytes()).unwrap(),
            id.parse().unwrap(),
        );
        h.insert(
            http::HeaderName::from_bytes(format!("{prefix}-timestamp").as_bytes()).unwrap(),
            ts.to_string().parse().unwrap(),
        );
        h.insert(
            http::HeaderName::from_bytes(format!("{prefix}-signature").as_bytes()).unwrap(),
            sig.parse().unwrap(),
        );
        h
    }

    fn verifier() -> SvixVerifier {
        SvixVerifier::new(&[Secret::new(SECRET)], 300).unwrap()
    }

    #[test]
    fn accepts_svix_and_standard_webhooks_header_names() {
        let sig = sign(SECRET, "msg_1", NOW, b"{}");
        for prefix in ["svix", "webhook"] {
            let h = headers(prefix, "msg_1", NOW, &sig);
            assert!(verifier().verify_at(&h, b"{}", NOW).is_ok(), "{prefix}");
        }
    }

    #[test]
    fn skips_malformed_entries_before_a_valid_one() {
        let sig = sign(SECRET, "msg_1", NOW, b"{}");
        let list = format!("v1,!!!notbase64 v2,abc v1,AAAA {sig}");
        let h = headers("svix", "msg_1", NOW, &list);
        assert!(verifier().verify_at(&h, b"{}", NOW).is_ok());
    }

    #[test]
    fn only_malformed_entries_are_a_bad_signature() {
        let h = headers("svix", "msg_1", NOW, "v1,!!!notbase64 v1");
        assert!(matches!(
            verifier().verify_at(&h, b"{}", NOW),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn rejects_timestamp_outside_tolerance_both_ways() {
        for ts in [NOW - 360, NOW + 360] {
            let h = headers("svix", "m", ts, &sign(SECRET, "m", ts, b"{}"));
            assert!(matches!(
                verifier().verify_at(&h, b"{}", NOW),
                Err(AuthError::TimestampOutOfTolerance)
            ));
        }
    }

    #[test]
    fn rejects_tampered_id() {
        let h = headers("svix", "msg_2", NOW, &sign(SECRET, "msg_1", NOW, b"{}"));
        assert!(verifier().verify_at(&h, b"{}", NOW).is_err());
    }

    #[test]
    fn rejects_missing_headers_and_non_numeric_timestamp() {
        assert!(matches!(
            verifier().verify_at(&HeaderMap::new(), b"{}", NOW),
            Err(AuthError::MissingSignature)
        ));
        let mut h = headers("svix", "m", NOW, &sign(SECRET, "m", NOW, b"{}"));
        h.insert("svix-timestamp", "yesterday".parse().unwrap());
        assert!(matches!(
            verifier().verify_at(&h, b"{}", NOW),
            Err(AuthError::MalformedSignature)
        ));
    }

    #[test]
    fn accepts_any_of_several_secrets() {
        let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let v = SvixVerifier::new(&[Secret::new(SECRET), Secret::new(other)], 300).unwrap();
        let h = headers("svix", "m", NOW, &sign(other, "m", NOW, b"{}"));
        assert!(v.verify_at(&h, b"{}", NOW).is_ok());
    }

    #[test]
    fn a_secret_is_read_with_or_without_its_prefix_and_padding() {
        let key = [7u8; 32];
        let padded = STANDARD.encode(key);
        assert!(padded.ends_with('='));
        let bare = padded.trim_end_matches('=');
        for secret in [
            format!("whsec_{padded}"),
            format!("whsec_{bare}"),
            padded.clone(),
            bare.to_owned(),
        ] {
            assert_eq!(
                decode_secret(&secret).as_deref(),
                Some(&key[..]),
                "{secret}"
            );
        }
        assert_eq!(decode_secret("whsec_not base64!"), None);
        assert_eq!(decode_secret("whsec_"), None);
    }
}
