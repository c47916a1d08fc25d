//! The session cache kept in Redis too, when the dedup store is Redis: so a Hoop
//! `session.close` finds the user of its `session.open` whichever replica took the open, and
//! after a restart.
//!
//! Input: entries the local cache stores (written behind, in order, by one task) and keys the
//! local cache misses (read before the event is parsed, within [`FETCH_TIMEOUT`]). Output: the
//! entry's JSON text, or nothing. Best effort, never on the durability path: Redis being slow
//! or down makes a miss (the event is still published, flagged `user_unresolved`), never a
//! refusal. Keys are `<dedup redis_prefix>session:<source>\n<session id>`, each with the
//! cache's TTL.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, OnceCell};

/// Longest wait for one entry: a request never waits on Redis longer than this for a cache.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(250);
/// Writes queued for Redis at most; past it a write is dropped (told in the debug log;
/// the entry stays in this instance's cache).
const QUEUED_WRITES: usize = 10_000;

/// One write: the full key, the entry's JSON text, its TTL.
type Write = (String, Box<[u8]>, Duration);

/// The Redis side of the session caches.
pub struct SharedSessions {
    conn: Arc<OnceCell<ConnectionManager>>,
    prefix: String,
    writes: mpsc::Sender<Write>,
}

impl std::fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSessions")
            .field("prefix", &self.prefix)
            .field("connected", &self.conn.initialized())
            .finish_non_exhaustive()
    }
}

impl SharedSessions {
    /// Shares through the dedup store's connection (`conn`, connected now or later), keys
    /// under `<prefix>session:`. Starts the writer task; it ends when this is dropped.
    pub fn start(conn: Arc<OnceCell<ConnectionManager>>, prefix: &str) -> Arc<SharedSessions> {
        let (writes, queue) = mpsc::channel(QUEUED_WRITES);
        tokio::spawn(write_behind(Arc::clone(&conn), queue));
        Arc::new(SharedSessions {
            conn,
            prefix: format!("{prefix}session:"),
            writes,
        })
    }

    /// Queues `text` under `key` for `ttl`; never waits.
    pub fn put(&self, key: &str, text: &[u8], ttl: Duration) {
        let write = (format!("{}{key}", self.prefix), Box::from(text), ttl);
        if self.writes.try_send(write).is_err() {
            tracing::debug!("session cache write to Redis dropped (queue full or closed)");
        }
    }

    /// The entry under `key`, if Redis has it and answers within [`FETCH_TIMEOUT`].
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut conn = self.conn.get()?.clone();
        let key = format!("{}{key}", self.prefix);
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let read = get.query_async::<Option<Vec<u8>>>(&mut conn);
        match tokio::time::timeout(FETCH_TIMEOUT, read).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "session cache read from Redis failed; a miss");
                None
            }
            Err(_) => {
                tracing::debug!("session cache read from Redis timed out; a miss");
                None
            }
        }
    }
}

/// Writes queued entries in order until every sender is gone.
async fn write_behind(conn: Arc<OnceCell<ConnectionManager>>, mut queue: mpsc::Receiver<Write>) {
    while let Some((key, text, ttl)) = queue.recv().await {
        let Some(conn) = conn.get() else {
            continue; // Redis not reached yet: this entry stays local
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let written = redis::cmd("SET")
            .arg(&key)
            .arg(&*text)
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut conn.clone())
            .await;
        if let Err(e) = written {
            tracing::debug!(error = %e, "session cache write to Redis failed; kept locally only");
        }
    }
}
