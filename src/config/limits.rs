//! `[limits]`: the caps every request is held to. Per-source overrides live in `[[source]]`
//! (body size) and in `[limits.source_rate]` (request rate).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[limits]`: bounds on what one request may cost, and on how many may run at once. A SIGHUP
/// reload keeps the requests in flight and the rate buckets counted under limits it leaves
/// unchanged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted as sent on the wire, in bytes. Default 1 MiB (1048576),
    /// enough for a Hyprwatch `query.completed` with hundreds of rows. Larger → 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Largest body after `Content-Encoding: gzip`/`deflate` decoding, in bytes. Default 8 MiB.
    /// A body that inflates past this (a decompression bomb) → 413, and decoding stops there.
    /// Compressed bodies inflate within a shared budget of 64 MiB, each holding twice this
    /// much of it (what its buffer may grow to) until its signature is checked (more wait
    /// their turn), so bodies that fail their signature take about 64 MiB together however
    /// many arrive at once (freed memory the allocator keeps for reuse aside).
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: u64,
    /// Most events one request may carry (JSON array elements or NDJSON lines). Default 1000;
    /// at least 1. More → 413.
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Most requests processed at once across every source (reading bodies, verifying,
    /// writing). Default 256. One more is shed at once with 503 and `Retry-After` instead of
    /// queuing, so memory stays bounded: this many bodies of `max_body_bytes` as read, plus the
    /// inflate budget (see `max_decompressed_bytes`), plus for authenticated requests their
    /// decoded bodies and normalized events (which escape and copy text: a few times the body).
    /// Resident memory runs to about twice those bytes at worst (the allocator's pages, read
    /// buffers): 256 forged gzip bodies of 1 MiB at once peaked at 583–646 MB. Size a
    /// container's memory limit for that (the Kubernetes manifest's is 1 GiB), or lower this.
    /// Example: `512`.
    #[serde(default = "default_max_in_flight_requests")]
    pub max_in_flight_requests: usize,
    /// Seconds a shed (503) or rate-limited (429) sender is told to wait in `Retry-After`
    /// when the limiter has no better estimate. Default 5.
    #[serde(default = "default_shed_retry_after_secs")]
    pub shed_retry_after_secs: u64,
    /// Request rate every source gets, each in its own bucket. Absent (default): sources are not
    /// rate-limited. Example: `per_source = { requests_per_second = 50, burst = 200 }`.
    /// Over the rate → 429 with `Retry-After`.
    #[serde(default)]
    pub per_source: Option<RateConfig>,
    /// Rate for one named source, replacing `per_source` for it. Keys are source names.
    /// Default: none. Example: `[limits.source_rate.hyprwatch-prod]` with
    /// `requests_per_second = 5` and `burst = 20`.
    #[serde(default)]
    pub source_rate: BTreeMap<String, RateConfig>,
    /// Request rate for one client address, across all sources and the token endpoint. The
    /// address is the TCP peer, or behind a `[trust] trusted_proxies` load balancer the client
    /// it names; behind a load balancer that is not listed there every request shares its
    /// address, so then leave this unset. Absent (default): addresses are not rate-limited.
    /// Example: `per_address = { requests_per_second = 20, burst = 100 }`. Over the rate → 429.
    #[serde(default)]
    pub per_address: Option<RateConfig>,
    /// Most requests one client address may have in flight at once (the address as for
    /// `per_address`). Default: half of `max_in_flight_requests` (at least 1), so that one
    /// address (say, a flood of forged requests to a signature source, whose bodies must be
    /// read before they can be refused, sent slowly) can never hold every slot and starve the
    /// other senders. One more → 429 with `Retry-After`. Behind a load balancer not listed in
    /// `[trust] trusted_proxies` every request has its address: set this to
    /// `max_in_flight_requests` there. Example: `64`.
    #[serde(default)]
    pub max_in_flight_per_address: Option<usize>,
    /// Most client addresses whose rate state is remembered. Default 100000 (a few MB). When
    /// full, idle addresses are forgotten first; if all are active the table is reset, so
    /// memory never grows past this (a reset briefly lets every address start afresh).
    #[serde(default = "default_max_tracked_addresses")]
    pub max_tracked_addresses: usize,
}

/// A token-bucket rate: a steady rate plus a burst allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained requests per second. At least 1. Example: `50`.
    pub requests_per_second: u32,
    /// Requests allowed back to back before the rate applies. Default: equal to
    /// `requests_per_second`. Example: `200`.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: default_max_body_bytes(),
            max_decompressed_bytes: default_max_decompressed_bytes(),
            max_events_per_request: default_max_events_per_request(),
            max_in_flight_requests: default_max_in_flight_requests(),
            shed_retry_after_secs: default_shed_retry_after_secs(),
            per_source: None,
            source_rate: BTreeMap::new(),
            per_address: None,
            max_in_flight_per_address: None,
            max_tracked_addresses: default_max_tracked_addresses(),
        }
    }
}

impl LimitsConfig {
    /// `max_in_flight_per_address`, or its default: half the global cap, at least 1.
    pub fn in_flight_per_address(&self) -> usize {
        self.max_in_flight_per_address
            .unwrap_or(self.max_in_flight_requests / 2)
            .max(1)
    }

    /// Problems with the rate and concurrency settings, as (key, message). `sources` are the
    /// configured source names, so an override for a source that does not exist is reported.
    pub fn problems(&self, sources: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.max_in_flight_requests == 0 {
            out.push((
                "limits.max_in_flight_requests".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        if self.max_in_flight_per_address == Some(0) {
            out.push((
                "limits.max_in_flight_per_address".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        if self.max_tracked_addresses == 0 {
            out.push((
                "limits.max_tracked_addresses".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        let mut rates: Vec<(String, &RateConfig)> = Vec::new();
        if let Some(r) = &self.per_source {
            rates.push(("limits.per_source".to_owned(), r));
        }
        if let Some(r) = &self.per_address {
            rates.push(("limits.per_address".to_owned(), r));
        }
        for (name, r) in &self.source_rate {
            if !sources.contains(&name.as_str()) {
                out.push((
                    format!("limits.source_rate.{name}"),
                    "names no configured [[source]]".to_owned(),
                ));
            }
            rates.push((format!("limits.source_rate.{name}"), r));
        }
        for (key, r) in rates {
            if r.requests_per_second == 0 {
                out.push((
                    format!("{key}.requests_per_second"),
                    "must be at least 1".to_owned(),
                ));
            }
            if r.burst == Some(0) {
                out.push((format!("{key}.burst"), "must be at least 1".to_owned()));
            }
        }
        out
    }
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_max_decompressed_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_max_events_per_request() -> usize {
    1000
}
// 256 bodies of `max_body_bytes` as read, plus the shared 64 MiB inflate budget, bound request
// buffers; typical webhooks are a few KB, so this is far above normal vendor concurrency.
fn default_max_in_flight_requests() -> usize {
    256
}
fn default_shed_retry_after_secs() -> u64 {
    5
}
fn default_max_tracked_addresses() -> usize {
    100_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> LimitsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_limit_only_concurrency() {
        let l = limits("");
        assert_eq!(l.max_in_flight_requests, 256);
        assert!(l.per_source.is_none() && l.per_address.is_none());
        assert!(l.problems(&[]).is_empty());
    }

    #[test]
    fn reports_zero_rates_and_unknown_source_overrides_by_key() {
        let l = limits(
            "max_in_flight_requests = 0\nmax_in_flight_per_address = 0\n\
             per_address = { requests_per_second = 0, burst = 0 }\n\
             [source_rate.ghost]\nrequests_per_second = 5\n",
        );
        let keys: Vec<String> = l.problems(&["hw"]).into_iter().map(|(k, _)| k).collect();
        for key in [
            "limits.max_in_flight_requests",
            "limits.max_in_flight_per_address",
            "limits.per_address.requests_per_second",
            "limits.per_address.burst",
            "limits.source_rate.ghost",
        ] {
            assert!(keys.iter().any(|k| k == key), "missing {key} in {keys:?}");
        }
    }

    #[test]
    fn rejects_unknown_rate_keys() {
        assert!(toml::from_str::<LimitsConfig>("per_source = { rps = 1 }").is_err());
    }
}
