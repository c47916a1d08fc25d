//! `[[source.auth]]`: how a source proves a request came from its vendor.
//!
//! A source lists one or more schemes; **every** listed scheme must pass (for example an IP
//! allowlist AND a signature). Every scheme takes a list of secrets so a vendor's key rotation
//! never rejects a delivery: keep the old and the new secret until the rotation is done, then
//! remove the old one and send SIGHUP.

use serde::Deserialize;

use crate::config::secret::Secret;
use crate::config::{Problem, TrustConfig};

/// One authentication scheme of a source, chosen by `kind`. With several credential schemes
/// (all but `none` and `ip_allow`), every 401 of the source carries the same challenge (the
/// first of `basic`, `bearer` in `Authorization`, `oauth` listed), whichever check failed.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No authentication at all. Must be chosen explicitly; hookgate warns at startup.
    /// Prefer `path_token` with an IP allowlist for vendors that sign nothing.
    None,
    /// HMAC-SHA256 of the raw body, hex-encoded, in a header (Hyprwatch).
    Hmac {
        /// Header carrying the signature. Default `X-Hyprwatch-Signature`.
        #[serde(default = "default_hmac_header")]
        header: String,
        /// Text before the hex digest in the header. Default `sha256=`.
        #[serde(default = "default_hmac_prefix")]
        prefix: String,
        /// Accepted keys, used as their UTF-8 bytes as-is (a `whsec_` prefix is part of the
        /// key, unlike Svix). At least one. Example: `["${HYPRWATCH_SECRET}"]`.
        secrets: Vec<Secret>,
        /// Oldest an event's signed send time (the parser's `[id] sent_at`, Hyprwatch's
        /// `timestamp`) may be, in seconds. Hyprwatch signs no timestamp header, so without
        /// this a request captured on its way (a proxy's log) can be sent again once the
        /// dedup window has passed, and is published again. With it, an event older than this,
        /// more than an hour ahead of the gateway's clock, or without a readable send time
        /// is refused (401: `event_too_old`, `event_time_ahead`, `event_time_missing`); its id is
        /// deduplicated for at least this plus an hour, so every replay younger than the limit
        /// is a duplicate (a `[dedup] window_s` shorter than that is refused). 21600 (6 h: the
        /// vendor's retries span 2 h 36 m, plus clock skew) is
        /// the vendor notes' advice. Refuses events older than that, so not for a sender that
        /// delivers late (a backlog after a long outage at the vendor: refused, retried, then
        /// given up). Default: absent (not checked). Example: `21600`.
        #[serde(default)]
        max_age_s: Option<u64>,
    },
    /// Svix / Standard Webhooks signature (Hoop.dev): `svix-id`, `svix-timestamp`,
    /// `svix-signature` headers (or the `webhook-*` names), HMAC-SHA256 over
    /// `id.timestamp.body`.
    Svix {
        /// Endpoint signing secrets as shown by Svix: `whsec_` followed by base64 (the prefix
        /// and the `=` padding may be left out, as Svix's libraries allow). At least one; list
        /// the old and the new one while rotating. Example: `["${HOOP_SVIX_SECRET}"]`.
        secrets: Vec<Secret>,
        /// How far `svix-timestamp` may be from hookgate's clock, in seconds, in either
        /// direction. Default 300 (Svix's own default). A request outside the window → 401.
        #[serde(default = "default_svix_tolerance_s")]
        tolerance_s: u64,
    },
    /// HTTP Basic (`Authorization: Basic base64(user:password)`): HYPR BASIC, ConnectSecure
    /// username/password. A 401 carries `WWW-Authenticate: Basic realm="hookgate"`.
    Basic {
        /// Accepted username/password pairs; at least one. Example:
        /// `[{ username = "hypr", password = "${HYPR_BASIC_PASSWORD}" }]`.
        credentials: Vec<BasicCredential>,
    },
    /// An API key in a header (HYPR API_KEY: `Authorization: Bearer <key>`). A leading
    /// `Bearer ` (any case) in the header value is optional and stripped before comparing.
    Bearer {
        /// Header carrying the key. Default `Authorization`. Example: `"X-Api-Key"`.
        #[serde(default = "default_bearer_header")]
        header: String,
        /// Accepted API keys (bearer tokens); at least one. Example: `["${HYPR_API_KEY}"]`.
        tokens: Vec<Secret>,
    },
    /// A static header name and value chosen by the operator (ConnectSecure's
    /// "Authentication Header Key/Value"). The value is compared exactly.
    Header {
        /// Header name. Required. Example: `"X-Hookgate-Key"`.
        name: String,
        /// Accepted values; at least one. Example: `["${CONNECTSECURE_HEADER_VALUE}"]`.
        values: Vec<Secret>,
    },
    /// OAuth2 client credentials with hookgate as the authorization server (HYPR
    /// OAUTH_CLIENT_CREDENTIALS): the vendor gets a token at `[trust] token_path` and sends
    /// `Authorization: Bearer <token>`. Needs `[trust] token_signing_keys`.
    Oauth {
        /// Clients allowed to obtain tokens for this source; at least one. `client_id` must be
        /// unique across all sources. Example:
        /// `[{ client_id = "hypr-prod", client_secret = "${HYPR_CLIENT_SECRET}" }]`.
        clients: Vec<OauthClient>,
    },
    /// An unguessable last path segment: the vendor posts to `<path>/<token>` (Hyperproof,
    /// HYPR with NONE). Compared in constant time; never logged.
    PathToken {
        /// Accepted tokens; at least one; each at least 128 bits: 32+ hex digits or 22+
        /// characters of `A-Z a-z 0-9 - _`. Generate with `openssl rand -hex 16`.
        /// Example: `["${HYPERPROOF_PATH_TOKEN}"]`.
        tokens: Vec<Secret>,
    },
    /// Source-address allowlist: the client address (see `[trust] trusted_proxies`) must be
    /// in one of the entries, else 403.
    IpAllow {
        /// IPv4/IPv6 addresses, CIDRs and preset names (`hyperproof-us`, `hyperproof-eu`,
        /// `hyperproof-gov`, `hyperproof` = all three). A preset can be extended by listing
        /// more entries, or replaced by listing addresses only. IPv4 clients match IPv4
        /// entries also on a dual-stack listener, and an IPv4-mapped entry
        /// (`::ffff:203.0.113.7`, as such a listener's logs print the client) means its IPv4
        /// address. Example: `["hyperproof-us", "203.0.113.0/24"]`.
        allow: Vec<String>,
    },
}

/// One HTTP Basic username/password pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    /// Username (not secret, but never logged either). Must not contain `:`. Example: `"hypr"`.
    pub username: String,
    /// Password. Example: `"${HYPR_BASIC_PASSWORD}"`.
    pub password: Secret,
}

/// One OAuth2 client allowed to obtain tokens for a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OauthClient {
    /// Client id the vendor is configured with. Example: `"hypr-prod"`.
    pub client_id: String,
    /// Client secret. Example: `"${HYPR_CLIENT_SECRET}"`.
    pub client_secret: Secret,
}

impl AuthConfig {
    /// The scheme's `kind`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthConfig::None => "none",
            AuthConfig::Hmac { .. } => "hmac",
            AuthConfig::Svix { .. } => "svix",
            AuthConfig::Basic { .. } => "basic",
            AuthConfig::Bearer { .. } => "bearer",
            AuthConfig::Header { .. } => "header",
            AuthConfig::Oauth { .. } => "oauth",
            AuthConfig::PathToken { .. } => "path_token",
            AuthConfig::IpAllow { .. } => "ip_allow",
        }
    }

    /// What makes this scheme weak, one sentence each (never a secret's value): a secret
    /// shorter than [`WEAK_SECRET_CHARS`], where nothing else limits guessing by default
    /// (`[limits] per_address` is off); an allowlist entry that lets every address in.
    /// Startup logs each as a warning; none refuses the configuration (a vendor may issue a
    /// short secret).
    pub fn weaknesses(&self) -> Vec<String> {
        // The secrets an operator or vendor chose, each named for the message: counted, not
        // named by their usernames or client ids (never logged either).
        let chosen: Vec<(String, &Secret)> = match self {
            AuthConfig::None | AuthConfig::PathToken { .. } => Vec::new(),
            AuthConfig::Hmac { secrets, .. } => secrets
                .iter()
                .map(|s| ("an hmac secret".to_owned(), s))
                .collect(),
            AuthConfig::Bearer { tokens, .. } => tokens
                .iter()
                .map(|t| ("a bearer token".to_owned(), t))
                .collect(),
            AuthConfig::Header { name, values } => values
                .iter()
                .map(|v| (format!("a value of header {name:?}"), v))
                .collect(),
            AuthConfig::Basic { credentials } => credentials
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        format!("basic credential {}'s password", i + 1),
                        &c.password,
                    )
                })
                .collect(),
            AuthConfig::Oauth { clients } => clients
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("oauth client {}'s secret", i + 1), &c.client_secret))
                .collect(),
            // The key is the base64 after `whsec_`: its decoded bytes count.
            AuthConfig::Svix { secrets, .. } => {
                return secrets
                    .iter()
                    .filter_map(|s| crate::auth::svix::decode_secret(s.expose()))
                    .filter(|key| key.len() < WEAK_SECRET_CHARS)
                    .map(|key| {
                        format!(
                            "a svix secret's key is {} bytes long; Svix issues 24 or more",
                            key.len()
                        )
                    })
                    .collect();
            }
            AuthConfig::IpAllow { allow } => {
                return allow
                    .iter()
                    .filter(|entry| lets_everyone_in(entry))
                    .map(|entry| {
                        format!("ip_allow entry {entry:?} lets every address in: it checks nothing")
                    })
                    .collect();
            }
        };
        chosen
            .into_iter()
            .filter_map(|(what, secret)| {
                let n = secret.expose().chars().count();
                (n < WEAK_SECRET_CHARS).then(|| {
                    format!(
                        "{what} is {n} characters long; anyone who can reach the route can guess \
                         it (use at least {WEAK_SECRET_CHARS}, e.g. `openssl rand -hex 16`)"
                    )
                })
            })
            .collect()
    }
}

/// True for a CIDR entry with a zero-length prefix (`0.0.0.0/0`, `::/0`): every address.
pub fn lets_everyone_in(entry: &str) -> bool {
    entry
        .trim()
        .rsplit_once('/')
        .is_some_and(|(_, prefix)| prefix.trim().parse::<u8>() == Ok(0))
}

/// Shortest secret the operator is not warned about (128 bits as 16 random bytes; a chosen
/// password that short is weaker still).
pub const WEAK_SECRET_CHARS: usize = 16;

fn default_hmac_header() -> String {
    "X-Hyprwatch-Signature".to_owned()
}
fn default_hmac_prefix() -> String {
    "sha256=".to_owned()
}
/// Svix's documented default tolerance: five minutes.
fn default_svix_tolerance_s() -> u64 {
    300
}
fn default_bearer_header() -> String {
    "Authorization".to_owned()
}

/// The request header a scheme reads its credential from, lower-cased (`None`: no header).
fn credential_header(scheme: &AuthConfig) -> Option<String> {
    match scheme {
        AuthConfig::Basic { .. } | AuthConfig::Oauth { .. } => Some("authorization".to_owned()),
        AuthConfig::Bearer { header, .. } => Some(header.to_ascii_lowercase()),
        AuthConfig::Header { name, .. } => Some(name.to_ascii_lowercase()),
        _ => None,
    }
}

/// Schemes of one source that read their credential from the same header: every scheme must
/// pass and one header holds one value, so no request could. Keys are the schemes' indexes.
pub fn shared_header_problems(schemes: &[AuthConfig]) -> Vec<Problem> {
    let mut out = Vec::new();
    for (j, scheme) in schemes.iter().enumerate() {
        let Some(header) = credential_header(scheme) else {
            continue;
        };
        let earlier = schemes
            .iter()
            .take(j)
            .position(|s| credential_header(s).as_deref() == Some(header.as_str()));
        if let Some(i) = earlier {
            out.push(Problem {
                key: format!("[{j}]"),
                message: format!(
                    "reads the {header:?} header, as auth[{i}] does; every scheme must pass and one header carries one credential, so no request could"
                ),
            });
        }
    }
    out
}

/// Every problem with one scheme; keys are relative to the scheme (`secrets`, `header`, ...).
pub fn problems(scheme: &AuthConfig, trust: &TrustConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |key: &str, message: String| {
        out.push(Problem {
            key: key.to_owned(),
            message,
        })
    };
    let empty = |list: &[Secret]| list.is_empty() || list.iter().any(|s| s.expose().is_empty());
    let bad_header = |name: &str| http::HeaderName::from_bytes(name.as_bytes()).is_err();
    match scheme {
        AuthConfig::None => {}
        AuthConfig::Hmac {
            header,
            secrets,
            max_age_s,
            ..
        } => {
            if empty(secrets) {
                add("secrets", "needs at least one non-empty secret".into());
            }
            if *max_age_s == Some(0) {
                add(
                    "max_age_s",
                    "must be at least 1 (leave it out to not check)".into(),
                );
            }
            if bad_header(header) {
                add("header", format!("{header:?} is not a valid header name"));
            }
        }
        AuthConfig::Svix {
            secrets,
            tolerance_s,
        } => {
            if empty(secrets) {
                add("secrets", "needs at least one non-empty secret".into());
            }
            if secrets
                .iter()
                .any(|s| crate::auth::svix::decode_secret(s.expose()).is_none())
            {
                add(
                    "secrets",
                    "every Svix secret must be base64 (after an optional whsec_), as Svix shows it"
                        .into(),
                );
            }
            if *tolerance_s == 0 {
                add("tolerance_s", "must be at least 1 second".into());
            }
        }
        AuthConfig::Basic { credentials } => {
            if credentials.is_empty() {
                add("credentials", "needs at least one username/password".into());
            }
            for c in credentials {
                if c.username.is_empty() || c.username.contains(':') {
                    add(
                        "credentials",
                        "every username must be non-empty and contain no ':'".into(),
                    );
                }
                if c.password.expose().is_empty() {
                    add("credentials", "every password must be non-empty".into());
                }
            }
        }
        AuthConfig::Bearer { header, tokens } => {
            if empty(tokens) {
                add("tokens", "needs at least one non-empty API key".into());
            }
            if bad_header(header) {
                add("header", format!("{header:?} is not a valid header name"));
            }
        }
        AuthConfig::Header { name, values } => {
            if empty(values) {
                add("values", "needs at least one non-empty value".into());
            }
            if values
                .iter()
                .any(|v| http::HeaderValue::from_str(v.expose()).is_err())
            {
                add(
                    "values",
                    "a value holds characters no header can carry".into(),
                );
            }
            if bad_header(name) {
                add("name", format!("{name:?} is not a valid header name"));
            }
        }
        AuthConfig::Oauth { clients } => {
            if clients.is_empty() {
                add("clients", "needs at least one client".into());
            }
            if clients
                .iter()
                .any(|c| c.client_id.is_empty() || c.client_secret.expose().is_empty())
            {
                add(
                    "clients",
                    "every client needs a non-empty client_id and client_secret".into(),
                );
            }
            if trust.token_signing_keys.is_empty() {
                add(
                    "kind",
                    "\"oauth\" needs trust.token_signing_keys (hookgate signs the tokens it issues)"
                        .into(),
                );
            }
        }
        AuthConfig::PathToken { tokens } => {
            if tokens.is_empty() {
                add("tokens", "needs at least one token".into());
            }
            if tokens
                .iter()
                .any(|t| !crate::auth::credentials::path_token_is_strong(t.expose()))
            {
                add(
                    "tokens",
                    "every token needs 128 bits: 32+ hex digits or 22+ characters of A-Z a-z 0-9 - _ (openssl rand -hex 16)".into(),
                );
            }
        }
        AuthConfig::IpAllow { allow } => {
            if allow.is_empty() {
                add("allow", "needs at least one address, CIDR or preset".into());
            }
            if let Err(entry) = crate::auth::ip_allow::parse_list(allow) {
                add(
                    "allow",
                    format!("{entry:?} is not an IP address, CIDR or preset (hyperproof, hyperproof-us, hyperproof-eu, hyperproof-gov)"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schemes(toml_list: &str) -> Vec<AuthConfig> {
        #[derive(Deserialize)]
        struct Wrap {
            auth: Vec<AuthConfig>,
        }
        toml::from_str::<Wrap>(&format!("auth = {toml_list}"))
            .unwrap()
            .auth
    }

    #[test]
    fn short_secrets_and_open_allowlists_are_weak_and_no_value_is_quoted() {
        let weak = schemes(
            r#"[{ kind = "basic", credentials = [{ username = "user-name-x", password = "pw-short" }] },
                { kind = "bearer", tokens = ["tok-short"] },
                { kind = "header", name = "X-Key", values = ["val-short"] },
                { kind = "oauth", clients = [{ client_id = "client-id-x", client_secret = "sec-short" }] },
                { kind = "hmac", secrets = ["hmac-short"] },
                { kind = "svix", secrets = ["whsec_c2hvcnQ="] },
                { kind = "ip_allow", allow = ["10.0.0.0/8", "0.0.0.0/0", " ::/0 "] }]"#,
        );
        let said: Vec<Vec<String>> = weak.iter().map(AuthConfig::weaknesses).collect();
        let counts: Vec<usize> = said.iter().map(Vec::len).collect();
        assert_eq!(counts, [1, 1, 1, 1, 1, 1, 2], "{said:?}");
        let all = said.concat().join("\n");
        for secret in [
            "user-name-x",
            "client-id-x",
            "pw-short",
            "tok-short",
            "val-short",
            "sec-short",
            "hmac-short",
            "c2hvcnQ",
        ] {
            assert!(!all.contains(secret), "{secret} quoted in {all}");
        }
        assert!(all.contains("5 bytes long"), "{all}");
        let strong = schemes(
            r#"[{ kind = "basic", credentials = [{ username = "u", password = "0123456789abcdef" }] },
                { kind = "bearer", tokens = ["0123456789abcdef"] },
                { kind = "svix", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] },
                { kind = "ip_allow", allow = ["10.0.0.0/8", "::1/128", "hyperproof-us"] },
                { kind = "path_token", tokens = ["0123456789abcdef0123456789abcdef"] },
                { kind = "none" }]"#,
        );
        for scheme in &strong {
            assert!(scheme.weaknesses().is_empty(), "{:?}", scheme.weaknesses());
        }
    }
}
