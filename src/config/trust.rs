//! `[trust]`: gateway-wide trust settings: which load balancers may name the client address,
//! and hookgate's own OAuth2 token endpoint.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::secret::Secret;
use crate::config::{AuthConfig, Problem, SourceConfig};

/// `[trust]`: settings shared by every source's auth schemes. Defaults apply when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Addresses or CIDRs of load balancers / reverse proxies in front of hookgate. Only when
    /// the TCP peer is one of them is the `forwarded_header` read; the client is then the
    /// rightmost address in it that is not a trusted proxy. A trusted proxy's `X-Request-Id`
    /// (1–64 characters of `[A-Za-z0-9._:-]`) is also taken as the request's id; any other
    /// request gets an id of the gateway's own. IPv4-mapped entries (`::ffff:10.0.0.5`) mean
    /// their IPv4 address, as in `ip_allow`.
    /// Default: empty (headers are ignored; the client is the TCP peer).
    /// Example: `["10.0.0.0/8", "fd00::/8"]`.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies append the client address to: `"x-forwarded-for"` (AWS
    /// ALB, Google Cloud load balancers, ingress-nginx, HAProxy `option forwardfor`, Envoy) or
    /// `"forwarded"` (RFC 7239). Only that header is read: a proxy passes the other one on
    /// as the client sent it, so reading it would let a client name its own address. Default
    /// `"x-forwarded-for"`.
    #[serde(default)]
    pub forwarded_header: ForwardedHeader,
    /// Path of the OAuth2 token endpoint (RFC 6749 §4.4 client credentials; also
    /// ConnectSecure's "Authentication URL"). Default `/oauth/token`. Must not be a source
    /// path. Served only when `token_signing_keys` is set.
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Keys that sign access tokens, each at least 32 bytes. The first signs new tokens;
    /// every key verifies, so a key can rotate without invalidating live tokens. Instances
    /// sharing these keys accept each other's tokens, also across restarts. Default: none
    /// (no token endpoint; `kind = "oauth"` is then a config error).
    /// Example: `["${HOOKGATE_TOKEN_KEY}"]`.
    #[serde(default)]
    pub token_signing_keys: Vec<Secret>,
    /// Lifetime of an issued access token, in seconds. Default 900 (15 minutes); between 60
    /// and 86400. A client whose token expired gets 401 and fetches a new one.
    #[serde(default = "default_token_lifetime_s")]
    pub token_lifetime_s: u64,
}

/// `[trust] forwarded_header`: which header names the client behind a trusted proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1;proto=https, …` (RFC 7239).
    Forwarded,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            token_path: default_token_path(),
            token_signing_keys: Vec::new(),
            token_lifetime_s: default_token_lifetime_s(),
        }
    }
}

fn default_token_path() -> String {
    "/oauth/token".to_owned()
}
/// Short-lived on purpose: a leaked token is worth 15 minutes at most.
fn default_token_lifetime_s() -> u64 {
    900
}

/// Every problem with `[trust]`, and OAuth client ids shared by two sources; full keys.
pub fn problems(trust: &TrustConfig, sources: &[SourceConfig]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |key: &str, message: String| {
        let key = if key.starts_with("source[") {
            key.to_owned()
        } else {
            format!("trust.{key}")
        };
        out.push(Problem { key, message })
    };
    for entry in &trust.trusted_proxies {
        if crate::auth::ip_allow::parse_net(entry).is_none() {
            add(
                "trusted_proxies",
                format!("{entry:?} is not an IP address or CIDR"),
            );
        }
    }
    if !trust.token_path.starts_with('/') || trust.token_path.contains(['?', '#', ' ']) {
        add(
            "token_path",
            format!(
                "{:?} must start with '/' and contain no '?', '#' or spaces",
                trust.token_path
            ),
        );
    }
    if trust
        .token_signing_keys
        .iter()
        .any(|k| k.expose().len() < MIN_SIGNING_KEY_BYTES)
    {
        add(
            "token_signing_keys",
            format!(
                "every key needs at least {MIN_SIGNING_KEY_BYTES} bytes (openssl rand -hex 32)"
            ),
        );
    }
    if !(MIN_TOKEN_LIFETIME_S..=MAX_TOKEN_LIFETIME_S).contains(&trust.token_lifetime_s) {
        add(
            "token_lifetime_s",
            format!("must be between {MIN_TOKEN_LIFETIME_S} and {MAX_TOKEN_LIFETIME_S} seconds"),
        );
    }
    // A client id names the source its tokens are for, so it must be unique.
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for source in sources {
        for (j, scheme) in source.auth.iter().enumerate() {
            if let AuthConfig::Oauth { clients } = scheme {
                for c in clients {
                    match seen.insert(c.client_id.as_str(), source.name.as_str()) {
                        Some(other) if other != source.name => add(
                            &format!("source[{}].auth[{j}].clients", source.name),
                            format!(
                                "client_id {:?} is also used by source {other:?}; client ids must be unique",
                                c.client_id
                            ),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }
    out
}

/// 256 bits: an HMAC-SHA256 key shorter than its output only weakens it.
const MIN_SIGNING_KEY_BYTES: usize = 32;
const MIN_TOKEN_LIFETIME_S: u64 = 60;
/// A day: longer-lived tokens stop being "short-lived".
const MAX_TOKEN_LIFETIME_S: u64 = 86_400;
