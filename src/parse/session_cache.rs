//! A bounded, time-limited memory of values between events of one parser (Hoop: the user and
//! connection of `session.open`, needed by `session.close`, which carries neither).
//!
//! Input: a key and the OCSF fields to remember. Output: those fields on a later lookup, or
//! nothing once expired or evicted. Bounded in entries (oldest insertion evicted first) and
//! age. A poisoned lock behaves as a miss: the event is still published, flagged unresolved.
//! Fields are held as their compact JSON text and the key once (shared by the map and the
//! eviction queue): an entry costs a few hundred bytes, not a tree of `Value`s.
//!
//! The entries outlive the parser that holds them: a reloaded parser [`adopt`](SessionCache::adopt)s
//! the running one's. With a Redis dedup store they are also kept there ([`shared`]), so other
//! replicas and a restarted process find them: stores are written behind, and a key the
//! events of a request will look up is read from Redis before they are parsed
//! (`parse::recall_sessions`) when this process misses it.

pub mod shared;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde_json::{Map, Value};

use self::shared::SharedSessions;

/// The cache.
#[derive(Debug)]
pub struct SessionCache {
    ttl: Duration,
    max_entries: usize,
    /// The entries, swapped only by [`SessionCache::adopt`].
    inner: ArcSwap<Mutex<Inner>>,
    /// Redis, when the entries are shared.
    shared: ArcSwapOption<SharedSessions>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Arc<str>, (Instant, Box<[u8]>)>,
    order: VecDeque<(Instant, Arc<str>)>,
}

impl SessionCache {
    /// An empty cache.
    pub fn new(ttl: Duration, max_entries: usize) -> SessionCache {
        SessionCache {
            ttl,
            max_entries: max_entries.max(1),
            inner: ArcSwap::from_pointee(Mutex::new(Inner::default())),
            shared: ArcSwapOption::empty(),
        }
    }

    /// Takes over `running`'s entries and sharing (a reload: the new parser's cache would
    /// start empty, and every open session would lose its user).
    pub fn adopt(&self, running: &SessionCache) {
        self.inner.store(running.inner.load_full());
        self.shared.store(running.shared.load_full());
    }

    /// Keeps entries in Redis too from now on (see the module note).
    pub fn share(&self, shared: Arc<SharedSessions>) {
        self.shared.store(Some(shared));
    }

    /// Redis, when the entries are shared.
    pub fn shared(&self) -> Option<Arc<SharedSessions>> {
        self.shared.load_full()
    }

    /// Remembers `fields` under `key` (replacing an older entry), in Redis too when shared.
    pub fn store(&self, key: String, fields: Map<String, Value>) {
        self.store_at(key, fields, Instant::now());
    }

    /// Remembers an entry read from Redis (its JSON text), not written back.
    pub fn recalled(&self, key: String, text: Box<[u8]>) {
        self.keep(key, text, Instant::now());
    }

    fn store_at(&self, key: String, fields: Map<String, Value>, now: Instant) {
        // Serializing a map of JSON values cannot fail.
        let Ok(text) = serde_json::to_vec(&fields) else {
            return;
        };
        if let Some(shared) = &*self.shared.load() {
            shared.put(&key, &text, self.ttl);
        }
        self.keep(key, text.into_boxed_slice(), now);
    }

    fn keep(&self, key: String, text: Box<[u8]>, now: Instant) {
        let key: Arc<str> = Arc::from(key);
        let inner = self.inner.load();
        let Ok(mut inner) = inner.lock() else {
            return;
        };
        inner.order.push_back((now, Arc::clone(&key)));
        inner.entries.insert(key, (now, text));
        // A key stored again leaves a stale order record behind; compact before the records
        // outgrow the entries, so the order queue stays bounded too.
        if inner.order.len() > 2 * self.max_entries {
            let Inner { entries, order } = &mut *inner;
            order.retain(|(at, k)| entries.get(k).is_some_and(|(t, _)| t == at));
        }
        // Evict expired and over-cap entries, oldest first; stale order records (a key stored
        // again later) are skipped.
        while let Some((at, k)) = inner.order.front().cloned() {
            let over = inner.entries.len() > self.max_entries;
            let expired = now.duration_since(at) > self.ttl;
            if !over && !expired {
                break;
            }
            inner.order.pop_front();
            if inner.entries.get(&k).is_some_and(|(t, _)| *t == at) {
                inner.entries.remove(&k);
            }
        }
    }

    /// The fields remembered under `key`, if not expired.
    pub fn load(&self, key: &str) -> Option<Map<String, Value>> {
        self.load_at(key, Instant::now())
    }

    /// True when `key` is here and not expired.
    pub fn holds(&self, key: &str) -> bool {
        let now = Instant::now();
        let inner = self.inner.load();
        let Ok(inner) = inner.lock() else {
            return false;
        };
        inner
            .entries
            .get(key)
            .is_some_and(|(at, _)| now.duration_since(*at) <= self.ttl)
    }

    fn load_at(&self, key: &str, now: Instant) -> Option<Map<String, Value>> {
        let inner = self.inner.load();
        let inner = inner.lock().ok()?;
        let (at, text) = inner.entries.get(key)?;
        if now.duration_since(*at) > self.ttl {
            return None;
        }
        serde_json::from_slice(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn returns_stored_fields_until_ttl() {
        let c = SessionCache::new(Duration::from_secs(10), 10);
        let t0 = Instant::now();
        c.store_at("s1".into(), fields(json!({"user": {"name": "a"}})), t0);
        assert!(c.load_at("s1", t0 + Duration::from_secs(5)).is_some());
        assert!(c.load_at("s1", t0 + Duration::from_secs(11)).is_none());
        assert!(c.load_at("s2", t0).is_none());
    }

    #[test]
    fn a_cache_that_adopts_another_holds_its_entries_and_shares_them_from_then_on() {
        let running = SessionCache::new(Duration::from_secs(10), 10);
        running.store("s1".into(), fields(json!({"user": {"name": "a"}})));
        let reloaded = SessionCache::new(Duration::from_secs(10), 10);
        assert!(!reloaded.holds("s1"));
        reloaded.adopt(&running);
        assert!(reloaded.holds("s1"));
        assert_eq!(reloaded.load("s1").unwrap()["user"]["name"], "a");
        // Stores through either land in the one set of entries.
        reloaded.recalled("s2".into(), Box::from(&b"{\"user\":{\"name\":\"b\"}}"[..]));
        assert_eq!(running.load("s2").unwrap()["user"]["name"], "b");
    }

    #[test]
    fn storing_one_key_again_and_again_stays_bounded() {
        let c = SessionCache::new(Duration::from_secs(100), 4);
        let t0 = Instant::now();
        for i in 0..1000u64 {
            c.store_at("same".into(), Map::new(), t0 + Duration::from_millis(i));
        }
        let inner = c.inner.load();
        let inner = inner.lock().unwrap();
        assert!(
            inner.order.len() <= 8,
            "order grew to {}",
            inner.order.len()
        );
        assert_eq!(inner.entries.len(), 1);
    }

    #[test]
    fn evicts_oldest_beyond_max_entries() {
        let c = SessionCache::new(Duration::from_secs(100), 2);
        let t0 = Instant::now();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            c.store_at(
                (*k).into(),
                Map::new(),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert!(c.load_at("a", t0).is_none());
        assert!(c.load_at("b", t0).is_some());
        assert!(c.load_at("c", t0).is_some());
    }
}
