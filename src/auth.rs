//! Stage 4, auth: decide whether a request truly comes from its source's vendor.
//!
//! Input: the routed request head (before the body) and then the raw body bytes. Output:
//! [`Authenticated`]. Fails with [`AuthError`] (401/403); the answer never says which check
//! failed, the log line and metric label do. Checks that need no body run in
//! [`check_before_body`] so a refused request costs no body read. Signatures are checked over
//! the exact raw bytes, before any JSON parsing. Never logs secrets, tokens or signatures.

pub mod hmac;

use http::HeaderMap;

use crate::config::AuthConfig;

/// The compiled trust rules of one source: every scheme must pass.
#[derive(Debug)]
pub struct Verifier {
    schemes: Vec<Scheme>,
}

#[derive(Debug)]
enum Scheme {
    None,
    Hmac(hmac::HmacVerifier),
}

/// What the request proved, carried with its events.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Name of the scheme(s) that passed, e.g. `hmac` (recorded in event metadata).
    pub scheme: &'static str,
}

/// Why a request was not trusted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Sender's fault: the signature header is absent.
    #[error("signature header missing")]
    MissingSignature,
    /// Sender's fault: the signature header is not of the expected form.
    #[error("signature header malformed")]
    MalformedSignature,
    /// Sender's fault (or an attacker's): no configured secret produces this signature.
    #[error("signature does not match")]
    BadSignature,
}

impl AuthError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingSignature => "signature_missing",
            AuthError::MalformedSignature => "signature_malformed",
            AuthError::BadSignature => "signature_mismatch",
        }
    }

    /// True when the answer is 403 (address refused) rather than 401.
    pub fn is_forbidden(&self) -> bool {
        false
    }

    /// `WWW-Authenticate` value for the 401 answer, where the scheme defines one.
    pub fn challenge(&self) -> Option<&'static str> {
        None
    }
}

/// Why a source's auth config cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// Operator's fault: a header name is not valid.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
}

impl Verifier {
    /// Compiles a source's schemes.
    pub fn build(configs: &[AuthConfig]) -> Result<Verifier, AuthConfigError> {
        let mut schemes = Vec::with_capacity(configs.len());
        for config in configs {
            schemes.push(match config {
                AuthConfig::None => Scheme::None,
                AuthConfig::Hmac {
                    header,
                    prefix,
                    secrets,
                } => Scheme::Hmac(
                    hmac::HmacVerifier::new(header, prefix, secrets)
                        .ok_or_else(|| AuthConfigError::HeaderName(header.clone()))?,
                ),
            });
        }
        Ok(Verifier { schemes })
    }

    /// True when the route ends in a secret path token.
    pub fn takes_path_token(&self) -> bool {
        false
    }

    /// True when the source explicitly accepts unauthenticated requests.
    pub fn is_open(&self) -> bool {
        self.schemes.iter().all(|s| matches!(s, Scheme::None))
    }

    /// Short name of the schemes for event metadata.
    fn scheme_name(&self) -> &'static str {
        match self.schemes.first() {
            Some(Scheme::Hmac(_)) => "hmac",
            Some(Scheme::None) | None => "none",
        }
    }
}

/// Request facts the checks before the body may use.
#[derive(Debug)]
pub struct Head<'a> {
    /// Headers as received.
    pub headers: &'a HeaderMap,
    /// TCP peer.
    pub peer: std::net::SocketAddr,
    /// Secret path segment, when the route has one.
    pub path_token: Option<&'a str>,
}

/// Checks that need no body (address allowlist, Basic, bearer, static header, path token).
pub fn check_before_body(verifier: &Verifier, head: &Head<'_>) -> Result<(), AuthError> {
    let _ = (verifier, head);
    Ok(())
}

/// Checks over the exact raw body (HMAC, Svix). Runs after [`check_before_body`].
pub fn verify(
    verifier: &Verifier,
    head: &Head<'_>,
    raw: &[u8],
) -> Result<Authenticated, AuthError> {
    for scheme in &verifier.schemes {
        match scheme {
            Scheme::None => {}
            Scheme::Hmac(h) => h.verify(head.headers, raw)?,
        }
    }
    Ok(Authenticated {
        scheme: verifier.scheme_name(),
    })
}
