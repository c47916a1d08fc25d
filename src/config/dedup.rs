//! `[dedup]`: how repeated events are recognized.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// Where dedup keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupBackend {
    /// In this process (bounded; journaled to disk, so a restart remembers, whenever there
    /// is a journal: see `journal_path`).
    Memory,
    /// In Redis, shared by every instance behind one load balancer.
    Redis,
}

/// `[dedup]`: the duplicate window and its store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// `"memory"` or `"redis"`. Default `"memory"`.
    #[serde(default = "default_backend")]
    pub backend: DedupBackend,
    /// How long a delivered event id counts as a duplicate, in seconds, for every source. Default:
    /// unset, so each parser's own window applies, sized to its vendor (ConnectSecure 1 h:
    /// identical alerts such as a daily "Probe Went Down" recur and must not be swallowed;
    /// Hyprwatch 3 h; Hyperproof 24 h; HYPR 25 h; Hoop 30 h). Set (ten years at most), it replaces them all;
    /// events a parser never deduplicates stay exempt. Example: `7200`.
    #[serde(default)]
    pub window_s: Option<u64>,
    /// How long an id stays reserved while its request is being delivered, in seconds. A
    /// crash mid-request frees the id after this; with Redis, the reservations of a call that
    /// failed (Redis stalled or gone) are released once Redis answers, tried for this long
    /// (a failed commit for an hour). Default 120; at most 86400 (a day).
    #[serde(default = "default_reservation_ttl_s")]
    pub reservation_ttl_s: u64,
    /// A request carrying an event that another request is delivering right now (the
    /// vendor's retry after its own timeout, while the first attempt is still in flight)
    /// waits up to this long, in milliseconds, for that delivery to end: then it is answered
    /// 200 as a duplicate, or, if the delivery failed, delivers the event itself. Past the
    /// wait it gets 409 with `Retry-After`. Default 2000; 0 answers 409 at once.
    #[serde(default = "default_in_flight_wait_ms")]
    pub in_flight_wait_ms: u64,
    /// Memory backend: most ids held. When full, the id whose window ends soonest is dropped
    /// first (an event older than that could then be published again). Default 1000000
    /// (about 52 MB when full: each id is a 12-byte fingerprint and 4 bytes of state and
    /// expiry in a hash table, and a 16-byte place in the expiry index).
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Memory backend: file where delivered ids are journaled so a restart remembers them.
    /// Default: `dedup.journal` in `[spool] dir` when the spool is used; with the embedded
    /// default writing to a file, `<[sink] path>.dedup-journal` beside it; otherwise (events
    /// to standard output, or straight to Kafka) none, and ids are forgotten on restart; the
    /// startup log says which. Example: `"/var/lib/hookgate/dedup.journal"`.
    #[serde(default)]
    pub journal_path: Option<PathBuf>,
    /// Redis backend: connection URL (a secret: it may hold a password). Required for
    /// `backend = "redis"`. Example: `"${HOOKGATE_REDIS_URL}"` = `redis://:pw@redis:6379/0`.
    /// Plain TCP only: this build has no TLS for Redis (`rediss://` is refused by `check`).
    /// One Redis (a primary, or behind a proxy that is not cluster-aware): not Redis Cluster,
    /// whose keys of one request may sit on several nodes.
    /// A Redis that does not answer at startup does not stop the gateway: it answers 503 and
    /// reports not ready until the connection is made (retried every second). The ids are
    /// only as durable as that Redis: give it persistence (`appendonly yes`) and
    /// `maxmemory-policy noeviction` (every hookgate key has a TTL, so a `volatile-*` policy
    /// evicts them too); a Redis restarted empty forgets every id, and a vendor's retry after
    /// that is published again.
    #[serde(default)]
    pub redis_url: Option<Secret>,
    /// Redis backend: prefix of every key. Default `"hookgate:dedup:"`. The parsers' session
    /// caches (Hoop's open → close) are kept under `<prefix>session:` in the same Redis, so
    /// every replica and a restarted one find them.
    #[serde(default = "default_redis_prefix")]
    pub redis_prefix: String,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            backend: default_backend(),
            window_s: None,
            reservation_ttl_s: default_reservation_ttl_s(),
            in_flight_wait_ms: default_in_flight_wait_ms(),
            max_entries: default_max_entries(),
            journal_path: None,
            redis_url: None,
            redis_prefix: default_redis_prefix(),
        }
    }
}

fn default_backend() -> DedupBackend {
    DedupBackend::Memory
}
fn default_reservation_ttl_s() -> u64 {
    120
}
fn default_in_flight_wait_ms() -> u64 {
    2000
}
fn default_max_entries() -> usize {
    1_000_000
}
fn default_redis_prefix() -> String {
    "hookgate:dedup:".to_owned()
}
