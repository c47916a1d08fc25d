//! OAuth2 access tokens that hookgate issues (client credentials) and later accepts.
//!
//! Stateless: a token is `hgt1.<payload>.<mac>`, both base64url, where the payload is
//! `source \n client_id \n expiry` and the MAC is HMAC-SHA256 under a `[trust]
//! token_signing_keys` key. Any instance with the same keys accepts it, also after a restart.
//! A token is bound to its source, expires, and dies when its client is removed from the
//! config. Verification is constant-time (`Mac::verify_slice`) and bounded: an oversized
//! token is refused before any MAC is computed. Never logs a token or a client secret.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::credentials::{strip_bearer, DigestSet};
use super::AuthError;
use crate::config::Secret;

/// Token format marker and MAC domain separator.
const VERSION: &str = "hgt1";
/// No legitimate token is longer: source names and client ids are short.
const MAX_TOKEN_BYTES: usize = 1024;

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signing keys: the first signs, all verify. `Debug` prints only the count.
pub struct TokenKeys {
    keys: Vec<Hmac<Sha256>>,
    lifetime_s: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenKeys({} keys, lifetime {} s)",
            self.keys.len(),
            self.lifetime_s
        )
    }
}

/// What a valid token says.
#[derive(Debug, PartialEq, Eq)]
pub struct Claims {
    /// Source the token was issued for.
    pub source: String,
    /// Client that obtained it.
    pub client_id: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

impl TokenKeys {
    /// Compiles the keys; `None` when there are none.
    pub fn new(secrets: &[Secret], lifetime_s: u64) -> Option<TokenKeys> {
        let keys: Vec<_> = secrets
            .iter()
            .filter_map(|s| Hmac::<Sha256>::new_from_slice(s.expose().as_bytes()).ok())
            .collect();
        (!keys.is_empty()).then_some(TokenKeys { keys, lifetime_s })
    }

    /// Token lifetime in seconds.
    pub fn lifetime_s(&self) -> u64 {
        self.lifetime_s
    }

    /// Issues a token for `client_id` on `source`, valid from `now` for the lifetime.
    pub fn issue(&self, source: &str, client_id: &str, now: u64) -> Option<String> {
        let payload = format!("{source}\n{client_id}\n{}", now + self.lifetime_s);
        let head = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.keys.first()?.clone();
        mac.update(head.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Some(format!("{head}.{tag}"))
    }

    /// Verifies the MAC and decodes the claims; expiry is the caller's check.
    pub fn decode(&self, token: &[u8]) -> Option<Claims> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let token = std::str::from_utf8(token).ok()?;
        let (head, tag) = token.rsplit_once('.')?;
        let (version, payload) = head.split_once('.')?;
        if version != VERSION {
            return None;
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut valid = false;
        for key in &self.keys {
            let mut mac = key.clone();
            mac.update(head.as_bytes());
            valid |= mac.verify_slice(&tag).is_ok();
        }
        if !valid {
            return None;
        }
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let mut fields = payload.splitn(3, '\n');
        let source = fields.next()?.to_owned();
        let client_id = fields.next()?.to_owned();
        let expires_at = fields.next()?.parse().ok()?;
        Some(Claims {
            source,
            client_id,
            expires_at,
        })
    }
}

/// A source's `kind = "oauth"` scheme: accepts `Authorization: Bearer <token>` issued for it.
#[derive(Debug)]
pub struct OauthVerifier {
    keys: Arc<TokenKeys>,
    source: String,
    client_ids: Vec<String>,
}

/// 401 challenge for a missing token (RFC 6750 §3).
pub const CHALLENGE: &str = "Bearer realm=\"hookgate\"";
/// 401 challenge for a token that is not valid (RFC 6750 §3.1).
pub const CHALLENGE_INVALID: &str = "Bearer realm=\"hookgate\", error=\"invalid_token\"";

impl OauthVerifier {
    /// A verifier for `source` accepting tokens of `client_ids`.
    pub fn new(keys: Arc<TokenKeys>, source: &str, client_ids: Vec<String>) -> OauthVerifier {
        OauthVerifier {
            keys,
            source: source.to_owned(),
            client_ids,
        }
    }

    /// Checks the bearer token against the clock `now`.
    pub fn check_at(&self, headers: &HeaderMap, now: u64) -> Result<(), AuthError> {
        // RFC 6750 §2.1: `Authorization: Bearer <token>`; anything else carries no token.
        let token = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| {
                v.get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer "))
            })
            .map(strip_bearer)
            .ok_or(AuthError::TokenMissing)?;
        let claims = self.keys.decode(token).ok_or(AuthError::TokenInvalid)?;
        if claims.source != self.source {
            return Err(AuthError::TokenWrongSource);
        }
        if claims.expires_at <= now {
            return Err(AuthError::TokenExpired);
        }
        if !self.client_ids.contains(&claims.client_id) {
            // The client was removed from the config (rotated out): its tokens die with it.
            return Err(AuthError::TokenInvalid);
        }
        Ok(())
    }
}

/// One party that may obtain tokens: an `oauth` client, or a `basic` credential (the
/// ConnectSecure "Authentication URL" handshake).
#[derive(Debug)]
struct Client {
    client_id: String,
    secret: DigestSet,
    source: String,
}

/// The token endpoint's view of the config: keys and every client.
#[derive(Debug)]
pub struct Issuer {
    /// Signing keys.
    pub keys: Arc<TokenKeys>,
    clients: Vec<Client>,
}

impl Issuer {
    /// An issuer with no clients yet.
    pub fn new(keys: Arc<TokenKeys>) -> Issuer {
        Issuer {
            keys,
            clients: Vec::new(),
        }
    }

    /// Adds a client that obtains tokens for `source`.
    pub fn add_client(&mut self, source: &str, client_id: &str, secret: &Secret) {
        self.clients.push(Client {
            client_id: client_id.to_owned(),
            secret: DigestSet::new([secret.expose().as_bytes()]),
            source: source.to_owned(),
        });
    }

    /// The source whose client `client_id` has `secret`. Every client's secret is compared
    /// (constant time), so timing does not reveal which ids exist.
    pub fn authenticate(&self, client_id: &str, secret: &[u8]) -> Option<&str> {
        let mut found = None;
        for client in &self.clients {
            let secret_ok = client.secret.contains(secret);
            if secret_ok && client.client_id == client_id && found.is_none() {
                found = Some(client.source.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Arc<TokenKeys> {
        Arc::new(TokenKeys::new(&[Secret::new(secret)], 900).unwrap())
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        h
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_token_is_accepted_by_its_source() {
        let k = keys(KEY);
        let token = k.issue("hypr", "c1", 1000).unwrap();
        let v = OauthVerifier::new(k, "hypr", vec!["c1".into()]);
        assert!(v.check_at(&bearer(&token), 1001).is_ok());
    }

    #[test]
    fn token_for_another_source_is_refused() {
        let k = keys(KEY);
        let token = k.issue("other", "c1", 1000).unwrap();
        let v = OauthVerifier::new(k, "hypr", vec!["c1".into()]);
        assert!(matches!(
            v.check_at(&bearer(&token), 1001),
            Err(AuthError::TokenWrongSource)
        ));
    }

    #[test]
    fn expired_token_is_refused() {
        let k = keys(KEY);
        let token = k.issue("hypr", "c1", 1000).unwrap();
        let v = OauthVerifier::new(k, "hypr", vec!["c1".into()]);
        assert!(matches!(
            v.check_at(&bearer(&token), 1900),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn token_signed_with_another_key_or_edited_is_invalid() {
        let token = keys("another-key-another-key-another-k").issue("hypr", "c1", 1000);
        let v = OauthVerifier::new(keys(KEY), "hypr", vec!["c1".into()]);
        assert!(matches!(
            v.check_at(&bearer(&token.unwrap()), 1001),
            Err(AuthError::TokenInvalid)
        ));
        let mut good = keys(KEY).issue("hypr", "c1", 1000).unwrap();
        good.insert(6, 'x');
        assert!(matches!(
            v.check_at(&bearer(&good), 1001),
            Err(AuthError::TokenInvalid)
        ));
    }

    #[test]
    fn token_of_removed_client_is_invalid() {
        let k = keys(KEY);
        let token = k.issue("hypr", "old", 1000).unwrap();
        let v = OauthVerifier::new(k, "hypr", vec!["new".into()]);
        assert!(matches!(
            v.check_at(&bearer(&token), 1001),
            Err(AuthError::TokenInvalid)
        ));
    }

    #[test]
    fn missing_token_is_reported() {
        let v = OauthVerifier::new(keys(KEY), "hypr", vec![]);
        assert!(matches!(
            v.check_at(&HeaderMap::new(), 1),
            Err(AuthError::TokenMissing)
        ));
    }

    #[test]
    fn issuer_finds_the_source_of_a_client() {
        let mut issuer = Issuer::new(keys(KEY));
        issuer.add_client("a", "id-a", &Secret::new("sa"));
        issuer.add_client("b", "id-b", &Secret::new("sb"));
        assert_eq!(issuer.authenticate("id-b", b"sb"), Some("b"));
        assert_eq!(issuer.authenticate("id-b", b"sa"), None);
        assert_eq!(issuer.authenticate("id-c", b"sb"), None);
    }
}
