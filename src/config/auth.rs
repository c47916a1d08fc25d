//! `[[source.auth]]`: how a source proves a request came from its vendor.
//!
//! A source lists one or more schemes; **every** listed scheme must pass (for example an IP
//! allowlist AND a signature). Every scheme takes a list of secrets so a vendor's key rotation
//! never rejects a delivery: keep the old and the new secret until the rotation is done.

use serde::Deserialize;

use crate::config::secret::Secret;

/// One authentication scheme of a source, chosen by `kind`.
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
    },
}

fn default_hmac_header() -> String {
    "X-Hyprwatch-Signature".to_owned()
}
fn default_hmac_prefix() -> String {
    "sha256=".to_owned()
}
