//! The Redis dedup store, shared by several hookgate instances.
//!
//! Input: scoped keys. Output: [`Dedup`] outcomes. Reserve = `SET key r NX PX <reservation
//! ttl>`; when that fails, `GET` tells in flight (`r`) from seen (`c`). Commit = `SET key c PX
//! <window>`. Release deletes the key only while it is still a reservation (a Lua script, so
//! a commit by another request in between is never undone). Fails with
//! [`DedupError::Redis`] (→ 503, the vendor retries). Never logs the URL (it may hold a
//! password).
//!
//! Redis unreachable at startup does not stop the gateway: it serves, answering 503 to what
//! needs the store and reporting not ready, while a task connects once a second until Redis
//! answers (in Kubernetes, a pod that exits instead would restart with a growing backoff).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::OnceCell;

use super::{Dedup, DedupError};

/// Longest a Redis call may take before the request gets 503.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const RESERVED: &str = "r";
const COMMITTED: &str = "c";

/// Redis-backed dedup.
pub struct RedisStore {
    /// Set once the first connection is made; the manager reconnects by itself after that.
    conn: Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    reservation_ttl: Duration,
    release: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, DedupError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r.map_err(DedupError::Redis),
        Err(_) => Err(DedupError::Timeout),
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
        Ok(RedisStore {
            conn,
            prefix,
            reservation_ttl,
            release: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            ),
        })
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

    /// Reserves `key` unless it is in flight or seen.
    pub async fn reserve(&self, key: &str) -> Result<Dedup, DedupError> {
        let key = self.key(key);
        let mut conn = self.conn()?;
        let set: Option<String> = bounded(
            redis::cmd("SET")
                .arg(&key)
                .arg(RESERVED)
                .arg("NX")
                .arg("PX")
                .arg(self.reservation_ttl.as_millis() as u64)
                .query_async(&mut conn),
        )
        .await?;
        if set.is_some() {
            return Ok(Dedup::New);
        }
        let state: Option<String> =
            bounded(redis::cmd("GET").arg(&key).query_async(&mut conn)).await?;
        Ok(match state.as_deref() {
            Some(COMMITTED) => Dedup::Seen,
            // A reservation, or a key that expired between the two calls: the sender retries.
            _ => Dedup::InFlight,
        })
    }

    /// [`reserve`](Self::reserve) for a request's keys in two round trips at most (every
    /// `SET NX` in one pipeline, then one `GET` each for those already there), not two per key:
    /// a batch of a thousand events on a Redis a millisecond away took seconds one by one.
    pub async fn reserve_many(&self, keys: &[String]) -> Result<Vec<Dedup>, DedupError> {
        let mut conn = self.conn()?;
        let ttl = self.reservation_ttl.as_millis() as u64;
        let mut sets = redis::pipe();
        for key in keys {
            sets.cmd("SET")
                .arg(self.key(key))
                .arg(RESERVED)
                .arg("NX")
                .arg("PX")
                .arg(ttl);
        }
        let set: Vec<Option<String>> = bounded(sets.query_async(&mut conn)).await?;
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
            states = bounded(gets.query_async::<Vec<Option<String>>>(&mut conn)).await?;
        }
        let mut states = states.into_iter();
        Ok(set
            .iter()
            .map(|s| match s {
                Some(_) => Dedup::New,
                None => match states.next().flatten().as_deref() {
                    Some(COMMITTED) => Dedup::Seen,
                    _ => Dedup::InFlight,
                },
            })
            .collect())
    }

    /// Marks every `(key, window)` delivered, in one pipeline.
    pub async fn commit_many(&self, keys: &[(String, Duration)]) -> Result<(), DedupError> {
        let mut conn = self.conn()?;
        let mut sets = redis::pipe();
        for (key, window) in keys {
            sets.cmd("SET")
                .arg(self.key(key))
                .arg(COMMITTED)
                .arg("PX")
                .arg(window.as_millis() as u64)
                .ignore();
        }
        bounded(sets.query_async::<()>(&mut conn)).await
    }

    /// Marks `key` delivered for `window`.
    pub async fn commit(&self, key: &str, window: Duration) -> Result<(), DedupError> {
        let mut conn = self.conn()?;
        bounded(
            redis::cmd("SET")
                .arg(self.key(key))
                .arg(COMMITTED)
                .arg("PX")
                .arg(window.as_millis() as u64)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// Deletes `key` if it is still only reserved.
    pub async fn release(&self, key: &str) -> Result<(), DedupError> {
        let mut conn = self.conn()?;
        bounded(
            self.release
                .key(self.key(key))
                .arg(RESERVED)
                .invoke_async::<i64>(&mut conn),
        )
        .await
        .map(|_| ())
    }
}
