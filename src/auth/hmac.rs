//! HMAC-SHA256 over the raw body, hex in a header (Hyprwatch: `X-Hyprwatch-Signature: sha256=<hex>`).
//!
//! The key is the secret string's bytes as-is. Several secrets may be active (rotation).
//! The comparison is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Sha256;

use super::AuthError;
use crate::config::Secret;

/// A compiled HMAC scheme.
pub struct HmacVerifier {
    header: HeaderName,
    prefix: String,
    keys: Vec<Hmac<Sha256>>,
}

impl std::fmt::Debug for HmacVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacVerifier")
            .field("header", &self.header)
            .field("prefix", &self.prefix)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl HmacVerifier {
    /// Builds the verifier; `None` when the header name is invalid (config validation reports it).
    pub fn new(header: &str, prefix: &str, secrets: &[Secret]) -> Option<HmacVerifier> {
        let header = HeaderName::from_bytes(header.as_bytes()).ok()?;
        let keys = secrets
            .iter()
            .filter_map(|s| Hmac::<Sha256>::new_from_slice(s.expose().as_bytes()).ok())
            .collect();
        Some(HmacVerifier {
            header,
            prefix: prefix.to_owned(),
            keys,
        })
    }

    /// The header carrying the signature.
    pub(super) fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Accepts when the header holds `prefix + hex(HMAC(key, body))` for any configured key.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        let value = headers
            .get(&self.header)
            .ok_or(AuthError::MissingSignature)?;
        let text = value
            .to_str()
            .map_err(|_| AuthError::MalformedSignature)?
            .trim();
        let hex_part = text
            .strip_prefix(self.prefix.as_str())
            .ok_or(AuthError::MalformedSignature)?;
        // A SHA-256 MAC is 32 bytes = 64 hex digits; check the length before decoding.
        if hex_part.len() != 64 {
            return Err(AuthError::MalformedSignature);
        }
        let mut given = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut given).map_err(|_| AuthError::MalformedSignature)?;
        let mut matched = false;
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(body);
            // Every key is tried, so timing does not reveal which one matched.
            matched |= mac.verify_slice(&given).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn verifier(secrets: &[&str]) -> HmacVerifier {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        HmacVerifier::new("X-Hyprwatch-Signature", "sha256=", &secrets).unwrap()
    }

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-hyprwatch-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn accepts_signature_with_any_active_secret() {
        let v = verifier(&["whsec_old", "whsec_new"]);
        assert!(v.verify(&headers(&sign("whsec_new", b"{}")), b"{}").is_ok());
        assert!(v.verify(&headers(&sign("whsec_old", b"{}")), b"{}").is_ok());
    }

    #[test]
    fn accepts_uppercase_hex() {
        let v = verifier(&["k"]);
        let sig = sign("k", b"x");
        let upper = format!(
            "sha256={}",
            sig.trim_start_matches("sha256=").to_uppercase()
        );
        assert!(v.verify(&headers(&upper), b"x").is_ok());
    }

    #[test]
    fn rejects_wrong_secret() {
        let v = verifier(&["k"]);
        assert!(matches!(
            v.verify(&headers(&sign("other", b"x")), b"x"),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn rejects_tampered_body() {
        let v = verifier(&["k"]);
        assert!(matches!(
            v.verify(&headers(&sign("k", b"x")), b"y"),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn rejects_missing_header() {
        let v = verifier(&["k"]);
        assert!(matches!(
            v.verify(&HeaderMap::new(), b"x"),
            Err(AuthError::MissingSignature)
        ));
    }

    #[test]
    fn rejects_truncated_or_unprefixed_signature() {
        let v = verifier(&["k"]);
        let sig = sign("k", b"x");
        assert!(matches!(
            v.verify(&headers(&sig[..sig.len() - 2]), b"x"),
            Err(AuthError::MalformedSignature)
        ));
        assert!(matches!(
            v.verify(&headers(sig.trim_start_matches("sha256=")), b"x"),
            Err(AuthError::MalformedSignature)
        ));
    }
}
