//! Credential checks that need no body: HTTP Basic, API key (bearer), static header, secret
//! path token.
//!
//! Input: request headers (or the route's last path segment). Output: accepted, or an
//! [`AuthError`]. Every accepted value is held as its SHA-256 digest and the presented value
//! is digested the same way, so each comparison is a constant-time 32-byte compare whose
//! time reveals neither the value nor its length; every configured value is always tried, so
//! timing does not reveal which one matched. Never logs a presented or configured value.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::AuthError;
use crate::config::auth::BasicCredential;
use crate::config::Secret;

/// `WWW-Authenticate` challenge of the Basic scheme.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"hookgate\"";

/// Accepted values, digested. `Debug` prints only how many there are.
pub struct DigestSet(Vec<[u8; 32]>);

impl std::fmt::Debug for DigestSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DigestSet({} values)", self.0.len())
    }
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

impl DigestSet {
    /// Digests every secret.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> DigestSet {
        DigestSet(values.into_iter().map(|v| digest(&[v])).collect())
    }

    /// True when `presented` is one of the values (constant time per value, all tried).
    pub fn contains(&self, presented: &[u8]) -> bool {
        let given = digest(&[presented]);
        let mut matched = false;
        for want in &self.0 {
            matched |= bool::from(given.as_slice().ct_eq(want.as_slice()));
        }
        matched
    }
}

/// HTTP Basic: any configured username/password pair.
#[derive(Debug)]
pub struct BasicVerifier {
    /// Digests of `username:password` (the username cannot contain `:`).
    pairs: DigestSet,
}

impl BasicVerifier {
    /// Compiles the pairs.
    pub fn new(credentials: &[BasicCredential]) -> BasicVerifier {
        let joined: Vec<Vec<u8>> = credentials
            .iter()
            .map(|c| format!("{}:{}", c.username, c.password.expose()).into_bytes())
            .collect();
        BasicVerifier {
            pairs: DigestSet::new(joined.iter().map(Vec::as_slice)),
        }
    }

    /// Checks `Authorization: Basic base64(user:password)`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let decoded = basic_credentials(headers).ok_or(AuthError::BasicMissing)?;
        if self.pairs.contains(&decoded) {
            Ok(())
        } else {
            Err(AuthError::BasicMismatch)
        }
    }
}

/// The decoded `user:password` bytes of an `Authorization: Basic` header, if there is one.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    STANDARD.decode(b64.trim()).ok()
}

/// An API key in a header, with an optional `Bearer ` prefix.
#[derive(Debug)]
pub struct BearerVerifier {
    header: HeaderName,
    keys: DigestSet,
}

impl BearerVerifier {
    /// Compiles the scheme; `None` when the header name is invalid.
    pub fn new(header: &str, keys: &[Secret]) -> Option<BearerVerifier> {
        Some(BearerVerifier {
            header: HeaderName::from_bytes(header.as_bytes()).ok()?,
            keys: DigestSet::new(keys.iter().map(|k| k.expose().as_bytes())),
        })
    }

    /// The header carrying the key.
    pub(super) fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The challenge for a 401: `Bearer` only when the key travels in `Authorization`.
    pub(super) fn challenge(&self) -> Option<&'static str> {
        (self.header == http::header::AUTHORIZATION).then_some("Bearer realm=\"hookgate\"")
    }

    /// Checks the header holds one of the keys.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let challenge = self.challenge();
        let value = headers
            .get(&self.header)
            .map(|v| v.as_bytes())
            .ok_or(AuthError::ApiKeyMissing { challenge })?;
        let key = strip_bearer(value);
        if self.keys.contains(key) {
            Ok(())
        } else {
            Err(AuthError::ApiKeyMismatch { challenge })
        }
    }
}

/// `value` without a leading `Bearer ` (any case) and surrounding spaces.
pub fn strip_bearer(value: &[u8]) -> &[u8] {
    let trimmed = value.trim_ascii();
    match (trimmed.get(..7), trimmed.get(7..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
        _ => trimmed,
    }
}

/// A static header name with accepted values (ConnectSecure).
#[derive(Debug)]
pub struct HeaderVerifier {
    name: HeaderName,
    values: DigestSet,
}

impl HeaderVerifier {
    /// Compiles the scheme; `None` when the header name is invalid.
    pub fn new(name: &str, values: &[Secret]) -> Option<HeaderVerifier> {
        Some(HeaderVerifier {
            name: HeaderName::from_bytes(name.as_bytes()).ok()?,
            values: DigestSet::new(values.iter().map(|v| v.expose().as_bytes())),
        })
    }

    /// The header carrying the value.
    pub(super) fn header(&self) -> &HeaderName {
        &self.name
    }

    /// Checks the header holds one of the values exactly.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = headers.get(&self.name).ok_or(AuthError::HeaderMissing)?;
        if self.values.contains(value.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::HeaderMismatch)
        }
    }
}

/// A secret last path segment.
#[derive(Debug)]
pub struct PathTokenVerifier {
    tokens: DigestSet,
}

/// True when `token` carries at least 128 bits: 32+ hex digits, or 22+ characters of the
/// URL-safe base64 alphabet.
pub fn path_token_is_strong(token: &str) -> bool {
    let url_safe = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let hex_only = token.bytes().all(|b| b.is_ascii_hexdigit());
    url_safe && ((hex_only && token.len() >= 32) || (!hex_only && token.len() >= 22))
}

impl PathTokenVerifier {
    /// Compiles the accepted tokens.
    pub fn new(tokens: &[Secret]) -> PathTokenVerifier {
        PathTokenVerifier {
            tokens: DigestSet::new(tokens.iter().map(|t| t.expose().as_bytes())),
        }
    }

    /// Checks the route's last segment.
    pub fn check(&self, presented: Option<&str>) -> Result<(), AuthError> {
        match presented {
            Some(t) if self.tokens.contains(t.as_bytes()) => Ok(()),
            _ => Err(AuthError::PathTokenMismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        h.insert("authorization", v.parse().unwrap());
        h
    }

    fn creds(pairs: &[(&str, &str)]) -> Vec<BasicCredential> {
        pairs
            .iter()
            .map(|(u, p)| BasicCredential {
                username: u.to_string(),
                password: Secret::new(*p),
            })
            .collect()
    }

    #[test]
    fn basic_accepts_any_configured_pair() {
        let v = BasicVerifier::new(&creds(&[("hypr", "old"), ("hypr", "new")]));
        assert!(v.check(&basic("hypr", "old")).is_ok());
        assert!(v.check(&basic("hypr", "new")).is_ok());
        assert!(matches!(
            v.check(&basic("hypr", "neww")),
            Err(AuthError::BasicMismatch)
        ));
        assert!(matches!(
            v.check(&basic("other", "new")),
            Err(AuthError::BasicMismatch)
        ));
    }

    #[test]
    fn basic_without_header_or_with_bad_base64_is_missing() {
        let v = BasicVerifier::new(&creds(&[("u", "p")]));
        assert!(matches!(
            v.check(&HeaderMap::new()),
            Err(AuthError::BasicMissing)
        ));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic !!!".parse().unwrap());
        assert!(matches!(v.check(&h), Err(AuthError::BasicMissing)));
    }

    #[test]
    fn bearer_prefix_is_optional() {
        let v = BearerVerifier::new("Authorization", &[Secret::new("k1")]).unwrap();
        for value in ["Bearer k1", "bearer k1", "k1"] {
            let mut h = HeaderMap::new();
            h.insert("authorization", value.parse().unwrap());
            assert!(v.check(&h).is_ok(), "{value}");
        }
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer k2".parse().unwrap());
        assert!(matches!(
            v.check(&h),
            Err(AuthError::ApiKeyMismatch { challenge: Some(_) })
        ));
    }

    #[test]
    fn api_key_in_custom_header_has_no_challenge() {
        let v = BearerVerifier::new("X-Api-Key", &[Secret::new("k1")]).unwrap();
        assert!(matches!(
            v.check(&HeaderMap::new()),
            Err(AuthError::ApiKeyMissing { challenge: None })
        ));
    }

    #[test]
    fn static_header_compares_exactly() {
        let v = HeaderVerifier::new("X-CS-Key", &[Secret::new("v1")]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-cs-key", "v1".parse().unwrap());
        assert!(v.check(&h).is_ok());
        h.insert("x-cs-key", "V1".parse().unwrap());
        assert!(matches!(v.check(&h), Err(AuthError::HeaderMismatch)));
        assert!(matches!(
            v.check(&HeaderMap::new()),
            Err(AuthError::HeaderMissing)
        ));
    }

    #[test]
    fn path_token_strength_rule() {
        assert!(path_token_is_strong("0123456789abcdef0123456789abcdef"));
        assert!(!path_token_is_strong("0123456789abcdef0123456789abcde"));
        assert!(path_token_is_strong("Zk3_x-91QpLmN0aBcDeFgH"));
        assert!(!path_token_is_strong("short-token"));
        assert!(!path_token_is_strong("has/slash0123456789abcdefghijk"));
    }

    #[test]
    fn path_token_must_match() {
        let v = PathTokenVerifier::new(&[Secret::new("0123456789abcdef0123456789abcdef")]);
        assert!(v.check(Some("0123456789abcdef0123456789abcdef")).is_ok());
        assert!(matches!(
            v.check(Some("0123456789abcdef0123456789abcdee")),
            Err(AuthError::PathTokenMismatch)
        ));
        assert!(matches!(v.check(None), Err(AuthError::PathTokenMismatch)));
    }
}
