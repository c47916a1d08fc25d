//! Stage 6, dedup: drop what a vendor's retry already delivered.
//!
//! Input: the request's events, each with an [`EventKey`]. Output: a [`Dedup`] outcome per
//! event. Keys are scoped by source. Reserve, then commit: a key is *reserved* when its event
//! enters the pipeline, *committed* only once the event is durable, and *released* when
//! delivery failed, so the vendor's retry is accepted rather than swallowed. Two requests
//! carrying the same id at once: the second sees [`Dedup::InFlight`] and waits, bounded, for the
//! first to end ([`check_waiting`]: then a duplicate, or new again if that delivery failed;
//! past the wait 409 + `Retry-After`), so the event is published once.
//!
//! Window: the parser's window for the event (sized to its vendor), or `[dedup] window_s` for
//! every event when the operator sets it.
//! Stores ([`DedupStore`]): in process (bounded, journaled; see `dedup/memory.rs` for the
//! eviction rule) or Redis (several instances; `dedup/redis.rs`). Fails with [`DedupError`].

mod expiry_index;
mod fail_fast;
pub mod journal;
mod key_map;
pub mod memory;
pub mod redis;
mod settle;

use std::path::Path;
use std::time::Duration;

use crate::config::{DedupBackend, DedupConfig};
use crate::health::recent_failure::RecentFailure;
use crate::parse::EventKey;
use crate::split::RawEvent;

pub use self::memory::{Fingerprint, MemoryStore};
pub use self::redis::RedisStore;

/// What dedup decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    /// Never seen (or its window passed): reserved for this request.
    New,
    /// Another request is delivering the same event right now.
    InFlight,
    /// Already delivered within the window.
    Seen,
    /// The parser says this event is never deduplicated.
    Exempt,
}

/// Why the dedup store failed.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Gateway's fault: the store's lock was poisoned by a panic elsewhere.
    #[error("dedup store is unavailable")]
    Unavailable,
    /// Downstream fault: a call to Redis failed moments ago, so this request was refused
    /// without trying it (`dedup/fail_fast.rs`).
    #[error("dedup store (Redis) is failing; refused without waiting for it")]
    RedisDown,
    /// Downstream fault: Redis refused or failed.
    #[error("dedup store (Redis) failed")]
    Redis(#[source] ::redis::RedisError),
    /// Downstream fault: Redis did not answer in time.
    #[error("dedup store (Redis) timed out")]
    Timeout,
    /// Downstream fault: Redis has not been reachable since startup.
    #[error("dedup store (Redis) not connected yet")]
    NotConnected,
    /// Operator's fault: the journal file cannot be opened.
    #[error("cannot open dedup journal {path}")]
    Journal {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DedupError {
    /// Bounded label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DedupError::Unavailable => "dedup_unavailable",
            DedupError::RedisDown => "dedup_redis_down",
            DedupError::Redis(_) | DedupError::NotConnected => "dedup_redis",
            DedupError::Timeout => "dedup_timeout",
            DedupError::Journal { .. } => "dedup_journal",
        }
    }
}

/// Whose reservations these are: with Redis, a token no other request's reservation carries
/// ([`redis::Token`]), so a release never takes another request's; the in-process store
/// needs none.
#[derive(Debug, Clone)]
pub struct Holder(Option<redis::Token>);

/// Where keys live.
#[derive(Debug)]
pub enum Backend {
    /// In this process.
    Memory(MemoryStore),
    /// In Redis.
    Redis(RedisStore),
}

/// The dedup store with the operator's window.
#[derive(Debug)]
pub struct DedupStore {
    backend: Backend,
    window: Option<Duration>,
    /// How long a request waits for another request's delivery of the same event
    /// ([`check_waiting`]; `[dedup] in_flight_wait_ms`).
    in_flight_wait: Duration,
    /// The last reservation's outcome (Redis unreachable), for readiness.
    health: RecentFailure,
    /// With Redis: refuses requests at once while its calls fail.
    fail_fast: fail_fast::FailFast,
}

impl DedupStore {
    /// The Redis connection and key prefix, when the ids are kept in Redis.
    pub fn redis(
        &self,
    ) -> Option<(
        std::sync::Arc<tokio::sync::OnceCell<::redis::aio::ConnectionManager>>,
        &str,
    )> {
        match &self.backend {
            Backend::Redis(store) => Some((store.connection(), store.prefix())),
            Backend::Memory(_) => None,
        }
    }

    /// A store over `backend`; `window` replaces every parser's window when set. A request
    /// finding its event in flight does not wait (see [`DedupStore::waiting`]).
    pub fn new(backend: Backend, window: Option<Duration>) -> DedupStore {
        DedupStore {
            backend,
            window,
            in_flight_wait: Duration::ZERO,
            health: RecentFailure::new(),
            fail_fast: fail_fast::FailFast::default(),
        }
    }

    /// This store, with requests waiting up to `wait` for another request's delivery of
    /// the same event.
    pub fn waiting(self, wait: Duration) -> DedupStore {
        DedupStore {
            in_flight_wait: wait,
            ..self
        }
    }

    /// False for a while after a reservation failed (Redis unreachable or slow) with none
    /// succeeding since, and while Redis has not been reached since startup: every request is
    /// refused then, so the instance is not ready.
    pub fn is_ready(&self) -> bool {
        let connected = match &self.backend {
            Backend::Redis(r) => r.is_connected(),
            Backend::Memory(_) => true,
        };
        connected && self.health.is_healthy()
    }

    /// Builds the configured store. `default_journal` is the memory store's journal unless
    /// `journal_path` names one; without either, the memory store forgets on restart.
    pub async fn build(
        config: &DedupConfig,
        default_journal: Option<&Path>,
    ) -> Result<DedupStore, DedupError> {
        let ttl = Duration::from_secs(config.reservation_ttl_s);
        let backend = match config.backend {
            DedupBackend::Redis => {
                let url = config
                    .redis_url
                    .as_ref()
                    .map(|s| s.expose())
                    .unwrap_or_default();
                Backend::Redis(RedisStore::connect(url, config.redis_prefix.clone(), ttl).await?)
            }
            DedupBackend::Memory => {
                let path = config
                    .journal_path
                    .clone()
                    .or_else(|| default_journal.map(Path::to_path_buf));
                match &path {
                    Some(path) => tracing::info!(journal = %path.display(), "dedup ids are journaled; a restart remembers them"),
                    None => tracing::warn!("dedup ids are kept in memory only: a restart forgets them, and a vendor's retry after it is published again (set [dedup] journal_path)"),
                }
                match path {
                    Some(path) => {
                        let journal = journal::Journal::open(path.clone()).map_err(|source| {
                            DedupError::Journal {
                                path: path.display().to_string(),
                                source,
                            }
                        })?;
                        Backend::Memory(MemoryStore::with_journal(config.max_entries, ttl, journal))
                    }
                    None => Backend::Memory(MemoryStore::new(config.max_entries, ttl)),
                }
            }
        };
        Ok(
            DedupStore::new(backend, config.window_s.map(Duration::from_secs))
                .waiting(Duration::from_millis(config.in_flight_wait_ms)),
        )
    }

    /// The key as Redis holds it: source, [`memory::SCOPE_SEPARATOR`], id. The memory store
    /// hashes the same bytes without building the text ([`Fingerprint::scoped`]).
    fn scoped(source: &str, key: &EventKey) -> String {
        format!("{source}{}{}", char::from(memory::SCOPE_SEPARATOR), key.id)
    }

    /// A holder for one request's reservations.
    pub fn holder(&self) -> Holder {
        match &self.backend {
            Backend::Redis(r) => Holder(Some(r.token())),
            Backend::Memory(_) => Holder(None),
        }
    }

    /// The window for `key`, or `None` when it is exempt.
    fn window(&self, key: &EventKey) -> Option<Duration> {
        key.window.map(|w| self.window.unwrap_or(w))
    }

    /// Reserves `key` for `holder`'s delivery unless it is in flight or seen.
    pub async fn reserve(
        &self,
        source: &str,
        key: &EventKey,
        holder: &Holder,
    ) -> Result<Dedup, DedupError> {
        if self.window(key).is_none() {
            return Ok(Dedup::Exempt);
        }
        match (&self.backend, &holder.0) {
            (Backend::Memory(m), _) => m.reserve_fingerprint(Fingerprint::scoped(source, &key.id)),
            (Backend::Redis(r), Some(token)) => r.reserve(&Self::scoped(source, key), token).await,
            (Backend::Redis(_), None) => Err(DedupError::Unavailable),
        }
    }

    /// With Redis, the outcome of reserving every event's key, asked in one pipeline (an
    /// exempt key answered [`Dedup::Exempt`] without asking); `None` for the in-process store,
    /// whose reservations are taken one by one.
    async fn reserve_all_at_once(
        &self,
        source: &str,
        events: &[RawEvent<'_>],
        holder: &Holder,
    ) -> Result<Option<Vec<Dedup>>, DedupError> {
        let (Backend::Redis(r), Some(token)) = (&self.backend, &holder.0) else {
            return Ok(None);
        };
        let asked: Vec<String> = events
            .iter()
            .filter(|e| self.window(&e.key).is_some())
            .map(|e| Self::scoped(source, &e.key))
            .collect();
        let mut answers = if asked.is_empty() {
            Vec::new()
        } else {
            r.reserve_many(&asked, token).await?
        }
        .into_iter();
        Ok(Some(
            events
                .iter()
                .map(|e| match self.window(&e.key) {
                    None => Dedup::Exempt,
                    Some(_) => answers.next().unwrap_or(Dedup::InFlight),
                })
                .collect(),
        ))
    }

    /// Marks `key` delivered: repeats within its window are now [`Dedup::Seen`].
    pub async fn commit(&self, source: &str, key: &EventKey) -> Result<(), DedupError> {
        let Some(window) = self.window(key) else {
            return Ok(());
        };
        match &self.backend {
            Backend::Memory(m) => m.commit_many(&[(Fingerprint::scoped(source, &key.id), window)]),
            Backend::Redis(r) => r.commit(&Self::scoped(source, key), window).await,
        }
    }

    /// Forgets `holder`'s reservation whose delivery failed, so the vendor's retry is accepted.
    pub async fn release(
        &self,
        source: &str,
        key: &EventKey,
        holder: &Holder,
    ) -> Result<(), DedupError> {
        release_keys(self, source, holder, std::iter::once(key)).await
    }

    /// Writes what the memory store's journal still queues (a clean stop). Redis: nothing.
    pub fn flush(&self) {
        if let Backend::Memory(m) = &self.backend {
            m.flush_journal();
        }
    }
}

/// What dedup decided for one request's events (`'b`: the body they borrow from).
#[derive(Debug)]
pub enum Reservation<'b> {
    /// Every new event's key is reserved for this request.
    Held {
        /// Whose reservations they are (release them with it).
        holder: Holder,
        /// Events to deliver (new, or exempt from dedup), in request order.
        fresh: Vec<RawEvent<'b>>,
        /// Their keys: commit them once the events are durable, release them on failure.
        keys: Vec<EventKey>,
        /// Events already delivered, or repeated within this request: answered 2xx, not
        /// published again.
        duplicates: usize,
    },
    /// Another request is delivering one of these events right now; nothing is held. The
    /// events come back as they were, to be checked again ([`check_waiting`]).
    InFlight(Vec<RawEvent<'b>>),
}

/// Longest pause between two checks while waiting for another request's delivery.
const MOST_PAUSE: Duration = Duration::from_millis(50);

/// [`check`], waiting up to the store's wait while another request delivers one of these events (a
/// vendor's retry sent while its first attempt is still in flight): checked again after
/// 1 ms, 2, 4 … up to 50 ms apart, until that delivery is committed (a duplicate now) or
/// released (new again). Polling serves both stores alike; the wait is rare and short.
pub async fn check_waiting<'b>(
    store: &DedupStore,
    source: &str,
    mut events: Vec<RawEvent<'b>>,
) -> Result<Reservation<'b>, DedupError> {
    // Set on the first find in flight: a request that finds none reads no clock here.
    let mut deadline = None;
    let mut pause = Duration::from_millis(1);
    loop {
        let back = match check(store, source, events).await? {
            Reservation::InFlight(back) => back,
            decided => return Ok(decided),
        };
        let now = tokio::time::Instant::now();
        if now + pause > *deadline.get_or_insert(now + store.in_flight_wait) {
            return Ok(Reservation::InFlight(back));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MOST_PAUSE);
        events = back;
    }
}

/// Stage 6: reserves every event's key, scoped by `source`.
pub async fn check<'b>(
    store: &DedupStore,
    source: &str,
    events: Vec<RawEvent<'b>>,
) -> Result<Reservation<'b>, DedupError> {
    let redis = matches!(store.backend, Backend::Redis(_));
    if redis && !store.fail_fast.may_try() {
        store.health.record(false);
        return Err(DedupError::RedisDown);
    }
    let failed = |e: DedupError| {
        store.health.record(false);
        if redis {
            store.fail_fast.failed();
        }
        e
    };
    let mut outcomes: Vec<Dedup> = Vec::with_capacity(events.len());
    let holder = store.holder();
    // Redis: every key asked in one pipeline; the answers are then taken as the loop below
    // takes each call's (an error there ends the look with nothing known reserved: the store
    // releases what the call may have reserved once Redis answers).
    let mut asked = store
        .reserve_all_at_once(source, &events, &holder)
        .await
        .map_err(failed)?
        .map(Vec::into_iter);
    for event in &events {
        let answer = match asked.as_mut() {
            Some(answers) => Ok(answers.next().unwrap_or(Dedup::InFlight)),
            None => store.reserve(source, &event.key, &holder).await,
        };
        let outcome = match answer {
            // Reserved by this very request: the same event twice in one batch (`reserved`
            // pairs the events with the outcomes so far).
            Ok(Dedup::InFlight) if reserved(&events, &outcomes).any(|k| *k == event.key) => {
                Dedup::Seen
            }
            Ok(outcome) => outcome,
            Err(e) => {
                let e = failed(e);
                release_all(store, source, &holder, reserved(&events, &outcomes)).await;
                return Err(e);
            }
        };
        outcomes.push(outcome);
    }
    store.health.record(true);
    if redis {
        store.fail_fast.worked();
    }
    if outcomes.contains(&Dedup::InFlight) {
        release_all(store, source, &holder, reserved(&events, &outcomes)).await;
        return Ok(Reservation::InFlight(events));
    }
    let mut fresh: Vec<RawEvent<'b>> = Vec::with_capacity(events.len());
    let mut duplicates = 0usize;
    for (event, outcome) in events.into_iter().zip(outcomes) {
        match outcome {
            Dedup::New | Dedup::Exempt => fresh.push(event),
            Dedup::Seen | Dedup::InFlight => duplicates += 1,
        }
    }
    let keys = fresh.iter().map(|e| e.key.clone()).collect();
    Ok(Reservation::Held {
        holder,
        fresh,
        keys,
        duplicates,
    })
}

/// The keys of `events` this request reserved (outcome [`Dedup::New`]), as far as there
/// are `outcomes`.
fn reserved<'e>(
    events: &'e [RawEvent<'_>],
    outcomes: &'e [Dedup],
) -> impl Iterator<Item = &'e EventKey> {
    events
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| **o == Dedup::New)
        .map(|(e, _)| &e.key)
}

/// Marks every key delivered; call only once the events are durable. The in-process store
/// takes its lock once and queues the whole request's journal lines at once.
pub async fn commit_all(
    store: &DedupStore,
    source: &str,
    keys: &[EventKey],
) -> Result<(), DedupError> {
    match &store.backend {
        Backend::Memory(m) => {
            let windowed: Vec<(Fingerprint, Duration)> = keys
                .iter()
                .filter_map(|key| Some((Fingerprint::scoped(source, &key.id), store.window(key)?)))
                .collect();
            m.commit_many(&windowed)
        }
        Backend::Redis(r) => {
            let windowed: Vec<(String, Duration)> = keys
                .iter()
                .filter_map(|key| Some((DedupStore::scoped(source, key), store.window(key)?)))
                .collect();
            if windowed.is_empty() {
                return Ok(());
            }
            r.commit_many(&windowed).await
        }
    }
}

/// Forgets `holder`'s reservations whose delivery failed, so the vendor's retry is accepted
/// (with Redis in one round trip). A failure here is logged; Redis is asked again once it
/// answers, and at worst the reservation lapses after its short TTL.
pub async fn release_all<'a>(
    store: &DedupStore,
    source: &str,
    holder: &Holder,
    keys: impl Iterator<Item = &'a EventKey>,
) {
    if let Err(e) = release_keys(store, source, holder, keys).await {
        tracing::error!(error = %crate::telemetry::causes(&e), "dedup release failed");
    }
}

async fn release_keys<'a>(
    store: &DedupStore,
    source: &str,
    holder: &Holder,
    keys: impl Iterator<Item = &'a EventKey>,
) -> Result<(), DedupError> {
    let mut keys = keys.filter(|key| store.window(key).is_some());
    match (&store.backend, &holder.0) {
        (Backend::Memory(m), _) => {
            keys.try_for_each(|key| m.release_fingerprint(Fingerprint::scoped(source, &key.id)))
        }
        (Backend::Redis(r), Some(token)) => {
            let scoped: Vec<String> = keys.map(|key| DedupStore::scoped(source, key)).collect();
            if scoped.is_empty() {
                return Ok(());
            }
            r.release_many(&scoped, token).await
        }
        (Backend::Redis(_), None) => Err(DedupError::Unavailable),
    }
}

#[cfg(test)]
mod tests;
