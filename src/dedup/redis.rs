//! The Redis dedup store, shared by several hookgate instances.
//!
//! Input: scoped keys. Output: [`Dedup`] outcomes. Reserve = `SET key <token> NX PX
//! <reservation ttl>`, the token (`r…`) unique to the reserving request; when that fails, `GET`
//! tells seen (`c`) from in flight (anything else). Commit = `SET key c PX <window>`. Release
//! deletes a key only while it holds the releasing request's own token (a Lua script, so a
//! commit in between, or another request's reservation made after this one lapsed, is never
//! undone). Fails with [`DedupError::Redis`] (→ 503, the vendor retries). Never logs the URL
//! (it may hold a password).
//!
//! A call that failed may still have reached Redis: its keys are settled later, releases and
//! commits alike, by the store's [`Settler`] (`settle.rs`).
//!
//! Redis unreachable at startup does not stop the gateway: it serves, answering 503 to what
//! needs the store and reporting not ready, while a task connects once a second until Redis
//! answers (in Kubernetes, a pod that exits instead would restart with a growing backoff).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::OnceCell;

use super::settle::{Settler, Work};
use super::{Dedup, DedupError};

/// Longest a Redis call may take before the request gets 503.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const COMMITTED: &str = "c";
/// Release every `KEYS[i]` that still holds `ARGV[i]` (the token of the request that
/// reserved it); returns how many it deleted.
const RELEASE: &str = "local n = 0 \
    for i, key in ipairs(KEYS) do \
        if redis.call('GET', key) == ARGV[i] then n = n + redis.call('DEL', key) end \
    end \
    return n";

/// One request's mark on the keys it reserves: `r`, this store's random nonce and a count,
/// so no two reservations carry the same value and a release takes only its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

/// Redis-backed dedup.
pub struct RedisStore {
    /// Set once the first connection is made; the manager reconnects by itself after that.
    conn: Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    reservation_ttl: Duration,
    release: Script,
    /// Random per store: tokens of other instances (and of this one before a restart) differ.
    nonce: u64,
    /// Tokens issued so far.
    issued: AtomicU64,
    /// Settles the calls that failed.
    settler: Settler,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub(super) async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, DedupError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        // The client's own response timeout is the same bound, and usually fires first: a
        // stalled Redis is `dedup_timeout` either way, not a Redis that answered an error.
        Ok(Err(e)) if e.is_timeout() => Err(DedupError::Timeout),
        Ok(r) => r.map_err(DedupError::Redis),
        Err(_) => Err(DedupError::Timeout),
    }
}

/// [`bounded`], tried once more when the connection turned out dead (Redis restarted since it
/// was last used: a broken pipe, a reset), on the new connection the manager makes. Without
/// it the first request after a restart of Redis was refused (503) and its failure started
/// the fail-fast refusals of the next ones, though Redis was back. A timeout is not retried.
async fn bounded_once_more_if_dropped<T, Fut>(
    mut call: impl FnMut() -> Fut,
) -> Result<T, DedupError>
where
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match bounded(call()).await {
        Err(DedupError::Redis(e)) if e.is_connection_dropped() => {
            tracing::debug!(error = %e, "Redis connection found dropped; trying once more");
            bounded(call()).await
        }
        other => other,
    }
}

/// How the connection comes back after Redis went away. The crate's defaults hand a factor of
/// 100 to its backoff as a multiplier, so after a restart of Redis of a second or two the
/// next attempt came a minute or more later, every request meanwhile a 503: retries here are
/// a second apart at most, each connect and each answer bounded.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_factor(2)
        .set_max_delay(1_000)
        .set_number_of_retries(5)
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(CALL_TIMEOUT)
}

/// How long the startup task waits between attempts while Redis is unreachable.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

async fn connect_once(client: redis::Client) -> Result<ConnectionManager, DedupError> {
    bounded(ConnectionManager::new_with_config(client, manager_config())).await
}

impl RedisStore {
    /// A store for `url`. Fails only when the URL is not a Redis URL; when Redis does not
    /// answer, the store is returned unconnected and a task keeps connecting (see the module
    /// documentation).
    pub async fn connect(
        url: &str,
        prefix: String,
        reservation_ttl: Duration,
    ) -> Result<RedisStore, DedupError> {
        let client = redis::Client::open(url).map_err(DedupError::Redis)?;
        let conn = Arc::new(OnceCell::new());
        match connect_once(client.clone()).await {
            Ok(manager) => {
                let _ = conn.set(manager);
            }
            Err(e) => {
                // The manager retries within the bound, so its error is the timeout: one plain
                // connection attempt tells why (a refusal, an unknown host, a wrong password).
                let why = match bounded(client.get_multiplexed_async_connection()).await {
                    Err(probe) => probe,
                    Ok(_) => e,
                };
                tracing::warn!(
                    error = %crate::telemetry::causes(&why),
                    reason = why.code(),
                    "Redis dedup store unreachable at startup; answering 503 and not ready \
                     until it connects (retried every second)"
                );
                // Holds the cell weakly, so a store that is dropped (a stop, a test) does not
                // leave a task connecting for nothing.
                let cell = Arc::downgrade(&conn);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(CONNECT_RETRY).await;
                        if cell.strong_count() == 0 {
                            return;
                        }
                        if let Ok(manager) = connect_once(client.clone()).await {
                            if let Some(cell) = cell.upgrade() {
                                let _ = cell.set(manager);
                                tracing::info!("Redis dedup store connected");
                            }
                            return;
                        }
                    }
                });
            }
        }
        let release = Script::new(RELEASE);
        Ok(RedisStore {
            settler: Settler::start(Arc::clone(&conn), release.clone(), reservation_ttl),
            conn,
            prefix,
            reservation_ttl,
            release,
            nonce: uuid::Uuid::new_v4().as_u64_pair().0,
            issued: AtomicU64::new(0),
        })
    }

    /// A token for one request's reservations.
    pub fn token(&self) -> Token {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        Token(format!("r{:016x}{n:x}", self.nonce))
    }

    /// The connection, made now or later: for other keys kept beside the dedup ids (the
    /// shared session cache).
    pub fn connection(&self) -> Arc<OnceCell<ConnectionManager>> {
        Arc::clone(&self.conn)
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the first connection has been made.
    pub fn is_connected(&self) -> bool {
        self.conn.initialized()
    }

    /// A handle on the connection, or [`DedupError::NotConnected`] before the first one.
    fn conn(&self) -> Result<ConnectionManager, DedupError> {
        self.conn.get().cloned().ok_or(DedupError::NotConnected)
    }

    fn key(&self, scoped: &str) -> String {
        format!("{}{}", self.prefix, scoped)
    }

    /// `keys` reserved under `token`, to be settled unless the call clears them.
    fn unsettled(&self, keys: &[String], token: &Token) -> Unsettled<'_> {
        Unsettled {
            settler: &self.settler,
            pairs: keys
                .iter()
                .map(|k| (self.key(k), token.0.clone()))
                .collect(),
        }
    }

    /// Reserves `key` for `token`'s request unless it is in flight or seen.
    pub async fn reserve(&self, key: &str, token: &Token) -> Result<Dedup, DedupError> {
        self.reserve_many(&[key.to_owned()], token)
            .await
            .map(|outcomes| outcomes.first().copied().unwrap_or(Dedup::InFlight))
    }

    /// [`reserve`](Self::reserve) for a request's keys in two round trips at most (every
    /// `SET NX` in one pipeline, then one `GET` each for those already there), not two per key:
    /// a batch of a thousand events on a Redis a millisecond away took seconds one by one.
    /// A failure may leave reservations behind; they are released later (`settle.rs`).
    pub async fn reserve_many(
        &self,
        keys: &[String],
        token: &Token,
    ) -> Result<Vec<Dedup>, DedupError> {
        let conn = self.conn()?;
        let ttl = self.reservation_ttl.as_millis() as u64;
        // Whatever this call may have reserved is released by the settler if the call ends
        // early: an error, or its request dropped (the sender hung up) while Redis stalled,
        // whose queued `SET NX` would otherwise hold every retry off until the TTL.
        let mut unsettled = self.unsettled(keys, token);
        let mut sets = redis::pipe();
        for key in keys {
            sets.cmd("SET")
                .arg(self.key(key))
                .arg(&token.0)
                .arg("NX")
                .arg("PX")
                .arg(ttl);
        }
        let mut tries = 0;
        let set: Vec<Option<String>> = bounded_once_more_if_dropped(|| {
            tries += 1;
            let (sets, mut conn) = (&sets, conn.clone());
            async move { sets.query_async(&mut conn).await }
        })
        .await?;
        // The first try's `SET NX`s may have run before its connection dropped.
        let retried = tries > 1;
        // From here only the keys this call set are its own (after a retry, any may be: the
        // settler's release touches only a key still holding this call's token).
        if !retried {
            let mut mine = set.iter();
            unsettled
                .pairs
                .retain(|_| mine.next().is_some_and(Option::is_some));
        }
        let taken: Vec<&String> = keys
            .iter()
            .zip(&set)
            .filter(|(_, s)| s.is_none())
            .map(|(k, _)| k)
            .collect();
        let mut states = Vec::new();
        if !taken.is_empty() {
            let mut gets = redis::pipe();
            for key in &taken {
                gets.cmd("GET").arg(self.key(key));
            }
            states = bounded_once_more_if_dropped(|| {
                let (gets, mut conn) = (&gets, conn.clone());
                async move { gets.query_async::<Vec<Option<String>>>(&mut conn).await }
            })
            .await?;
        }
        // Answered: the reservations are the request's to settle now.
        unsettled.pairs.clear();
        let mut states = states.into_iter();
        // After a retry, the keys this call holds: a key twice in one batch is held once (its
        // repeat is found taken, and the request counts it a duplicate of itself).
        let mut held: Vec<&String> = Vec::new();
        Ok(keys
            .iter()
            .zip(&set)
            .map(|(key, s)| match s {
                Some(_) => {
                    if retried {
                        held.push(key);
                    }
                    Dedup::New
                }
                // A reservation (another request's token, or an earlier version's `r`), or
                // a key that expired between the two calls: the sender retries.
                None => match states.next().flatten().as_deref() {
                    Some(COMMITTED) => Dedup::Seen,
                    // This request's own: set by a first try whose answer was lost with its
                    // connection, then found taken by the second.
                    Some(t) if retried && t == token.0 && !held.contains(&key) => {
                        held.push(key);
                        Dedup::New
                    }
                    _ => Dedup::InFlight,
                },
            })
            .collect())
    }

    /// Marks every `(key, window)` delivered, in one pipeline. On failure the commit is
    /// settled later (`settle.rs`), so the keys do not stay reserved until their TTL and then
    /// let a retry publish the events again.
    pub async fn commit_many(&self, keys: &[(String, Duration)]) -> Result<(), DedupError> {
        let keys: Vec<(String, Duration)> = keys.iter().map(|(k, w)| (self.key(k), *w)).collect();
        let tried = match self.conn() {
            Ok(conn) => commit_prefixed(conn, &keys).await,
            Err(e) => Err(e),
        };
        if tried.is_err() {
            self.settler.later(Work::Commit(keys));
        }
        tried
    }

    /// Marks `key` delivered for `window` (see [`commit_many`](Self::commit_many)).
    pub async fn commit(&self, key: &str, window: Duration) -> Result<(), DedupError> {
        self.commit_many(&[(key.to_owned(), window)]).await
    }

    /// Deletes each of `keys` that still holds `token`, in one round trip; on failure, or
    /// when the call is dropped before it returns, settled later (`settle.rs`).
    pub async fn release_many(&self, keys: &[String], token: &Token) -> Result<(), DedupError> {
        let mut unsettled = self.unsettled(keys, token);
        let conn = self.conn()?;
        release_pairs(&self.release, conn, &unsettled.pairs).await?;
        unsettled.pairs.clear();
        Ok(())
    }
}

/// The `(key, token)` reservations of a reserve or release call still unsettled: handed to
/// the settler when the call ends without clearing them (an error, or the call dropped with
/// its request).
struct Unsettled<'a> {
    settler: &'a Settler,
    pairs: Vec<(String, String)>,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if !self.pairs.is_empty() {
            self.settler
                .later(Work::Release(std::mem::take(&mut self.pairs)));
        }
    }
}

/// `SET key c PX window` for each of `keys` (prefixed), in one pipeline.
pub(super) async fn commit_prefixed(
    mut conn: ConnectionManager,
    keys: &[(String, Duration)],
) -> Result<(), DedupError> {
    let mut sets = redis::pipe();
    for (key, window) in keys {
        sets.cmd("SET")
            .arg(key)
            .arg(COMMITTED)
            .arg("PX")
            .arg(window.as_millis() as u64)
            .ignore();
    }
    bounded(sets.query_async::<()>(&mut conn)).await
}

/// Runs [`RELEASE`] over `(key, token)` pairs (keys prefixed): how many it deleted.
pub(super) async fn release_pairs(
    script: &Script,
    mut conn: ConnectionManager,
    pairs: &[(String, String)],
) -> Result<u64, DedupError> {
    let mut call = script.prepare_invoke();
    for (key, token) in pairs {
        call.key(key).arg(token);
    }
    bounded(call.invoke_async::<u64>(&mut conn)).await
}
