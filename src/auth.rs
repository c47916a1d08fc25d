//! Stage 4, auth: decide whether a request truly comes from its source's vendor.
//!
//! Input: the routed request head (before the body) and then the raw body bytes. Output:
//! [`Authenticated`]. Fails with [`AuthError`] (401, or 403 for a refused address); the answer
//! never says which check failed, the log line and metric label ([`AuthError::code`]) do.
//! Every scheme a source lists must pass. Checks that need no body run in
//! [`check_before_body`] so a refused request costs no body read; signatures are checked in
//! [`verify`] over the exact raw bytes, before any JSON parsing. All secret comparisons are
//! constant-time. Never logs secrets, tokens, signatures or path tokens.

pub mod client_addr;
pub mod credentials;
pub mod freshness;
pub mod hmac;
pub mod ip_allow;
pub mod oauth;
pub mod svix;
pub mod token_endpoint;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use self::client_addr::TrustedProxies;
use self::credentials::{BasicVerifier, BearerVerifier, HeaderVerifier, PathTokenVerifier};
use self::oauth::{Issuer, OauthVerifier, TokenKeys};
use crate::config::{AuthConfig, Config};

/// The compiled trust rules of one source: every scheme must pass.
#[derive(Debug)]
pub struct Verifier {
    schemes: Vec<Scheme>,
    /// With several credential checks, every 401 carries this one challenge (the first
    /// scheme's that has one), so the answer does not tell which check failed; `None` with
    /// one check, whose own failure picks the challenge.
    masked_challenge: Option<Option<&'static str>>,
    /// The headers the credential checks read (each credential must come once).
    credential_headers: Vec<HeaderName>,
    /// An `hmac` check's `max_age_s`: the oldest an event's signed send time may be.
    max_event_age: Option<std::time::Duration>,
}

#[derive(Debug)]
enum Scheme {
    None,
    Hmac(hmac::HmacVerifier),
    Svix(svix::SvixVerifier),
    Basic(BasicVerifier),
    Bearer(BearerVerifier),
    Header(HeaderVerifier),
    Oauth(OauthVerifier),
    PathToken(PathTokenVerifier),
    IpAllow(ip_allow::IpAllow),
}

impl Scheme {
    /// True for the checks of a credential (a secret the sender proves), as opposed to the
    /// sender's address or an explicit `none`.
    fn checks_credential(&self) -> bool {
        !matches!(self, Scheme::None | Scheme::IpAllow(_))
    }

    /// The `WWW-Authenticate` challenge that invites this scheme's credential, if any.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Scheme::Basic(_) => Some(credentials::BASIC_CHALLENGE),
            Scheme::Bearer(b) => b.challenge(),
            Scheme::Oauth(_) => Some(oauth::CHALLENGE),
            _ => None,
        }
    }

    /// The headers whose value this scheme checks.
    fn credential_headers(&self) -> Vec<HeaderName> {
        match self {
            Scheme::Basic(_) | Scheme::Oauth(_) => vec![http::header::AUTHORIZATION],
            Scheme::Bearer(b) => vec![b.header().clone()],
            Scheme::Header(h) => vec![h.header().clone()],
            Scheme::Hmac(h) => vec![h.header().clone()],
            Scheme::Svix(_) => svix::HEADERS
                .iter()
                .map(|n| HeaderName::from_static(n))
                .collect(),
            Scheme::None | Scheme::PathToken(_) | Scheme::IpAllow(_) => Vec::new(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Scheme::None => "none",
            Scheme::Hmac(_) => "hmac",
            Scheme::Svix(_) => "svix",
            Scheme::Basic(_) => "basic",
            Scheme::Bearer(_) => "bearer",
            Scheme::Header(_) => "header",
            Scheme::Oauth(_) => "oauth",
            Scheme::PathToken(_) => "path_token",
            Scheme::IpAllow(_) => "ip_allow",
        }
    }
}

/// What the request proved, carried with its events.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The source's main scheme (the first one that is not `ip_allow`), e.g. `svix`
    /// (recorded in event metadata).
    pub scheme: &'static str,
}

/// Why a request was not trusted. 401 unless [`AuthError::is_forbidden`] (403).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Sender's fault: a signature header (HMAC, or a Svix id/timestamp/signature) is absent.
    #[error("signature header missing")]
    MissingSignature,
    /// Sender's fault: the signature header or Svix timestamp is not of the expected form.
    #[error("signature header malformed")]
    MalformedSignature,
    /// Sender's fault (or an attacker's): no configured secret produces this signature.
    #[error("signature does not match")]
    BadSignature,
    /// Sender's fault (clock skew) or a replay: the Svix timestamp is outside the tolerance.
    #[error("signature timestamp outside tolerance")]
    TimestampOutOfTolerance,
    /// Sender's fault: no (readable) `Authorization: Basic` header.
    #[error("basic credentials missing")]
    BasicMissing,
    /// Sender's fault (or an attacker's): unknown username or wrong password.
    #[error("basic credentials do not match")]
    BasicMismatch,
    /// Sender's fault: the API key header is absent.
    #[error("api key missing")]
    ApiKeyMissing {
        /// `WWW-Authenticate` value when the key travels in `Authorization`.
        challenge: Option<&'static str>,
    },
    /// Sender's fault (or an attacker's): the API key is not a configured one.
    #[error("api key does not match")]
    ApiKeyMismatch {
        /// `WWW-Authenticate` value when the key travels in `Authorization`.
        challenge: Option<&'static str>,
    },
    /// Sender's fault: the static auth header is absent.
    #[error("auth header missing")]
    HeaderMissing,
    /// Sender's fault (or an attacker's): the static auth header has another value.
    #[error("auth header does not match")]
    HeaderMismatch,
    /// Sender's fault: no bearer access token.
    #[error("access token missing")]
    TokenMissing,
    /// Sender's fault (or an attacker's): the token is not one hookgate issued, or its
    /// client was removed from the config.
    #[error("access token invalid")]
    TokenInvalid,
    /// Sender's fault: the token expired; the client should fetch a new one.
    #[error("access token expired")]
    TokenExpired,
    /// Sender's fault (or an attacker's): the token was issued for another source.
    #[error("access token issued for another source")]
    TokenWrongSource,
    /// Sender's fault (or an attacker's): the secret path segment is wrong.
    #[error("path token does not match")]
    PathTokenMismatch,
    /// Sender's fault (or an attacker's): a header a credential check reads came more than
    /// once. One copy is not picked: a proxy in front that picked the other would see other
    /// credentials than the gateway checked.
    #[error("credential header sent more than once")]
    CredentialRepeated {
        /// `WWW-Authenticate` value of the source's first credential check that has one.
        challenge: Option<&'static str>,
    },
    /// A replay, or a delivery later than the vendor ever retries: an event's signed send time
    /// is older than the source's `max_age_s` (see [`freshness`]).
    #[error("event sent longer ago than the source allows")]
    EventTooOld,
    /// The sender's clock far ahead, or a replay being prepared: an event's signed send time
    /// is more than [`freshness::AHEAD`] in the future.
    #[error("event send time ahead of the gateway's clock")]
    EventTimeAhead,
    /// Sender's fault: with `max_age_s`, an event has no readable send time.
    #[error("event send time missing or unreadable")]
    EventTimeMissing,
    /// Sender's address is not in the source's allowlist (→ 403).
    #[error("source address not allowed")]
    AddressNotAllowed,
    /// A credential check failed on a source with several: logged and counted as `failed`,
    /// answered with the source's one challenge (see [`Verifier`]).
    #[error("{failed}")]
    Masked {
        /// The check that failed.
        failed: Box<AuthError>,
        /// `WWW-Authenticate` value of every 401 of the source.
        challenge: Option<&'static str>,
    },
}

impl AuthError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingSignature => "signature_missing",
            AuthError::MalformedSignature => "signature_malformed",
            AuthError::BadSignature => "signature_mismatch",
            AuthError::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            AuthError::BasicMissing => "basic_missing",
            AuthError::BasicMismatch => "basic_mismatch",
            AuthError::ApiKeyMissing { .. } => "api_key_missing",
            AuthError::ApiKeyMismatch { .. } => "api_key_mismatch",
            AuthError::HeaderMissing => "header_missing",
            AuthError::HeaderMismatch => "header_mismatch",
            AuthError::TokenMissing => "token_missing",
            AuthError::TokenInvalid => "token_invalid",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenWrongSource => "token_wrong_source",
            AuthError::PathTokenMismatch => "path_token_mismatch",
            AuthError::CredentialRepeated { .. } => "credential_repeated",
            AuthError::AddressNotAllowed => "address_not_allowed",
            AuthError::EventTooOld => "event_too_old",
            AuthError::EventTimeAhead => "event_time_ahead",
            AuthError::EventTimeMissing => "event_time_missing",
            AuthError::Masked { failed, .. } => failed.code(),
        }
    }

    /// True when the answer is 403 (address refused) rather than 401.
    pub fn is_forbidden(&self) -> bool {
        match self {
            AuthError::AddressNotAllowed => true,
            AuthError::Masked { failed, .. } => failed.is_forbidden(),
            _ => false,
        }
    }

    /// `WWW-Authenticate` value for the 401 answer, where the scheme defines one.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            AuthError::BasicMissing | AuthError::BasicMismatch => {
                Some(credentials::BASIC_CHALLENGE)
            }
            AuthError::ApiKeyMissing { challenge } | AuthError::ApiKeyMismatch { challenge } => {
                *challenge
            }
            AuthError::TokenMissing => Some(oauth::CHALLENGE),
            AuthError::TokenInvalid | AuthError::TokenExpired | AuthError::TokenWrongSource => {
                Some(oauth::CHALLENGE_INVALID)
            }
            AuthError::Masked { challenge, .. } | AuthError::CredentialRepeated { challenge } => {
                *challenge
            }
            _ => None,
        }
    }
}

/// Why a source's auth config cannot be compiled (`Config::problems` reports the same
/// conditions with their keys; these are the last line of defence).
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// Operator's fault: a header name is not valid.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// Operator's fault: a Svix secret is not `whsec_` + base64.
    #[error("a svix secret is not base64 (after an optional whsec_)")]
    SvixSecret,
    /// Operator's fault: an allowlist or trusted-proxy entry is not an address, CIDR or preset.
    #[error("{0:?} is not an IP address, CIDR or preset name")]
    Address(String),
    /// Operator's fault: `kind = "oauth"` without `[trust] token_signing_keys`.
    #[error("kind = \"oauth\" needs [trust] token_signing_keys")]
    NoSigningKey,
}

/// Gateway-wide trust: trusted proxies and the token issuer. Rebuilt with the runtime.
#[derive(Debug)]
pub struct Trust {
    /// Proxies whose forwarding headers are believed.
    pub proxies: TrustedProxies,
    /// The token endpoint, when `[trust] token_signing_keys` is set.
    pub issuer: Option<Issuer>,
    /// `[trust] token_path`.
    pub token_path: String,
}

impl Trust {
    /// Compiles `[trust]` and collects every client that may obtain tokens: each `oauth`
    /// client, and each `basic` credential (ConnectSecure's "Authentication URL").
    pub fn build(config: &Config) -> Result<Trust, AuthConfigError> {
        let proxies =
            TrustedProxies::new(&config.trust.trusted_proxies, config.trust.forwarded_header)
                .map_err(AuthConfigError::Address)?;
        let keys = TokenKeys::new(
            &config.trust.token_signing_keys,
            config.trust.token_lifetime_s,
        );
        let issuer = keys.map(|keys| {
            let mut issuer = Issuer::new(Arc::new(keys));
            for source in &config.sources {
                for scheme in &source.auth {
                    match scheme {
                        AuthConfig::Oauth { clients } => {
                            for c in clients {
                                issuer.add_client(&source.name, &c.client_id, &c.client_secret);
                            }
                        }
                        AuthConfig::Basic { credentials } => {
                            for c in credentials {
                                issuer.add_client(&source.name, &c.username, &c.password);
                            }
                        }
                        _ => {}
                    }
                }
            }
            issuer
        });
        Ok(Trust {
            proxies,
            issuer,
            token_path: config.trust.token_path.clone(),
        })
    }

    /// The issuer when `path` is the token endpoint's path.
    pub fn token_endpoint(&self, path: &str) -> Option<&Issuer> {
        self.issuer.as_ref().filter(|_| path == self.token_path)
    }

    /// True when `peer` is a trusted proxy (`[trust] trusted_proxies`).
    pub fn is_proxy(&self, peer: std::net::SocketAddr) -> bool {
        self.proxies.trusts(peer.ip())
    }

    /// The client address of a request (see [`TrustedProxies::client`]).
    pub fn client(&self, peer: std::net::SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.proxies.client(peer, headers)
    }
}

impl Verifier {
    /// The request headers that carry this source's secrets (credentials, signatures): what
    /// no parser may read. A Svix message's id and timestamp are not among them.
    pub fn secret_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.credential_headers
            .iter()
            .filter(|h| !svix::ID_AND_TIME_HEADERS.contains(&h.as_str()))
    }

    /// Compiles the schemes of source `source`.
    pub fn build(
        source: &str,
        configs: &[AuthConfig],
        trust: &Trust,
    ) -> Result<Verifier, AuthConfigError> {
        let mut schemes = Vec::with_capacity(configs.len());
        let max_event_age = configs.iter().find_map(|c| match c {
            AuthConfig::Hmac { max_age_s, .. } => max_age_s.map(std::time::Duration::from_secs),
            _ => None,
        });
        for config in configs {
            schemes.push(match config {
                AuthConfig::None => Scheme::None,
                AuthConfig::Hmac {
                    header,
                    prefix,
                    secrets,
                    ..
                } => Scheme::Hmac(
                    hmac::HmacVerifier::new(header, prefix, secrets)
                        .ok_or_else(|| AuthConfigError::HeaderName(header.clone()))?,
                ),
                AuthConfig::Svix {
                    secrets,
                    tolerance_s,
                } => Scheme::Svix(
                    svix::SvixVerifier::new(secrets, *tolerance_s)
                        .ok_or(AuthConfigError::SvixSecret)?,
                ),
                AuthConfig::Basic { credentials } => Scheme::Basic(BasicVerifier::new(credentials)),
                AuthConfig::Bearer { header, tokens } => Scheme::Bearer(
                    BearerVerifier::new(header, tokens)
                        .ok_or_else(|| AuthConfigError::HeaderName(header.clone()))?,
                ),
                AuthConfig::Header { name, values } => Scheme::Header(
                    HeaderVerifier::new(name, values)
                        .ok_or_else(|| AuthConfigError::HeaderName(name.clone()))?,
                ),
                AuthConfig::Oauth { clients } => {
                    let keys = trust
                        .issuer
                        .as_ref()
                        .map(|i| Arc::clone(&i.keys))
                        .ok_or(AuthConfigError::NoSigningKey)?;
                    let ids = clients.iter().map(|c| c.client_id.clone()).collect();
                    Scheme::Oauth(OauthVerifier::new(keys, source, ids))
                }
                AuthConfig::PathToken { tokens } => {
                    Scheme::PathToken(PathTokenVerifier::new(tokens))
                }
                AuthConfig::IpAllow { allow } => Scheme::IpAllow(
                    ip_allow::IpAllow::new(allow).map_err(AuthConfigError::Address)?,
                ),
            });
        }
        // Address checks first: a refused address gets 403 whatever else it sends.
        schemes.sort_by_key(|s| !matches!(s, Scheme::IpAllow(_)));
        let credentials = schemes.iter().filter(|s| s.checks_credential()).count();
        let masked_challenge =
            (credentials > 1).then(|| schemes.iter().find_map(Scheme::challenge));
        let mut credential_headers: Vec<HeaderName> = schemes
            .iter()
            .flat_map(Scheme::credential_headers)
            .collect();
        credential_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        credential_headers.dedup();
        Ok(Verifier {
            schemes,
            masked_challenge,
            credential_headers,
            max_event_age,
        })
    }

    /// The oldest an event's signed send time may be (an `hmac` check's `max_age_s`).
    pub fn max_event_age(&self) -> Option<std::time::Duration> {
        self.max_event_age
    }

    /// `e` as the requester sees it: on a source with several credential checks, a failed
    /// credential is answered alike whichever check it was (an address refusal stays 403).
    fn answer(&self, e: AuthError) -> AuthError {
        match self.masked_challenge {
            Some(challenge) if !e.is_forbidden() => AuthError::Masked {
                failed: Box::new(e),
                challenge,
            },
            _ => e,
        }
    }

    /// True when the route ends in a secret path token.
    pub fn takes_path_token(&self) -> bool {
        self.schemes
            .iter()
            .any(|s| matches!(s, Scheme::PathToken(_)))
    }

    /// True when the source explicitly accepts unauthenticated requests.
    pub fn is_open(&self) -> bool {
        self.schemes.iter().all(|s| matches!(s, Scheme::None))
    }

    /// Short name of the main scheme for event metadata.
    fn scheme_name(&self) -> &'static str {
        self.schemes
            .iter()
            .find(|s| !matches!(s, Scheme::IpAllow(_)))
            .or(self.schemes.first())
            .map_or("none", Scheme::name)
    }
}

/// Request facts the checks may use. Its `Debug` shows no header value or path token.
pub struct Head<'a> {
    /// Headers as received.
    pub headers: &'a HeaderMap,
    /// TCP peer.
    pub peer: std::net::SocketAddr,
    /// Client address: the peer, or what a trusted proxy says (see [`Trust::client`]).
    pub client: IpAddr,
    /// Secret path segment, when the route has one (never logged).
    pub path_token: Option<&'a str>,
}

impl std::fmt::Debug for Head<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("peer", &self.peer)
            .field("client", &self.client)
            .field("path_token", &self.path_token.map(|_| "***"))
            .finish()
    }
}

/// A request head that passed [`check_before_body`]: what [`verify`] takes, so the checks
/// without a body cannot be left out of the trip.
#[derive(Debug)]
pub struct HeadChecked<'a>(Head<'a>);

/// Checks that need no body (address allowlist, path token, Basic, API key, static header,
/// access token), in that order; stops at the first failure. After the address checks and
/// before any other, every header a credential check reads must come at most once.
pub fn check_before_body<'a>(
    verifier: &Verifier,
    head: Head<'a>,
) -> Result<HeadChecked<'a>, AuthError> {
    let now = oauth::now_s();
    let addresses = verifier
        .schemes
        .partition_point(|s| matches!(s, Scheme::IpAllow(_)));
    let (address_checks, others) = verifier.schemes.split_at(addresses);
    for scheme in address_checks {
        if let Scheme::IpAllow(a) = scheme {
            a.check(head.client).map_err(|e| verifier.answer(e))?;
        }
    }
    let repeated = verifier
        .credential_headers
        .iter()
        .any(|name| head.headers.get_all(name).iter().nth(1).is_some());
    if repeated {
        let challenge = verifier.schemes.iter().find_map(Scheme::challenge);
        return Err(verifier.answer(AuthError::CredentialRepeated { challenge }));
    }
    for scheme in others {
        let checked = match scheme {
            Scheme::PathToken(p) => p.check(head.path_token),
            Scheme::Basic(b) => b.check(head.headers),
            Scheme::Bearer(b) => b.check(head.headers),
            Scheme::Header(h) => h.check(head.headers),
            Scheme::Oauth(o) => o.check_at(head.headers, now),
            // Addresses were checked above; signatures need the body.
            Scheme::IpAllow(_) | Scheme::None | Scheme::Hmac(_) | Scheme::Svix(_) => Ok(()),
        };
        checked.map_err(|e| verifier.answer(e))?;
    }
    Ok(HeadChecked(head))
}

/// Checks over the exact raw body (HMAC, Svix), of a head [`check_before_body`] passed.
pub fn verify(
    verifier: &Verifier,
    head: &HeadChecked<'_>,
    raw: &[u8],
) -> Result<Authenticated, AuthError> {
    let head = &head.0;
    for scheme in &verifier.schemes {
        let verified = match scheme {
            Scheme::Hmac(h) => h.verify(head.headers, raw),
            Scheme::Svix(s) => s.verify(head.headers, raw),
            _ => Ok(()),
        };
        verified.map_err(|e| verifier.answer(e))?;
    }
    Ok(Authenticated {
        scheme: verifier.scheme_name(),
    })
}

#[cfg(test)]
mod tests;
