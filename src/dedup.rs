//! Stage 6, dedup: drop what a vendor's retry already delivered.
//!
//! Input: the request's events, each with an [`EventKey`]. Output: a [`Dedup`] outcome per
//! event. Keys are scoped by source. Reserve, then commit: a key is *reserved* when its event
//! enters the pipeline, *committed* only once the event is durable, and *released* when
//! delivery failed, so the vendor's retry is accepted rather than swallowed.
//!
//! The in-process store is bounded in entries; when full, the entry that expires soonest is
//! evicted first (a committed entry past its window is dropped on the way).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::parse::EventKey;

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
}

#[derive(Debug, Clone, Copy)]
enum State {
    Reserved,
    Committed,
}

#[derive(Debug)]
struct Entry {
    state: State,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// (expiry, key) in expiry order, for eviction and expiry sweeps.
    by_expiry: BTreeSet<(Instant, String)>,
}

/// The in-process dedup store.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_entries: usize,
    /// How long a reservation holds when its request never finishes (a crash mid-request).
    reservation_ttl: Duration,
}

impl MemoryStore {
    /// A store holding at most `max_entries` keys.
    pub fn new(max_entries: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max_entries,
            reservation_ttl: Duration::from_secs(120),
        }
    }

    fn scoped(source: &str, key: &EventKey) -> String {
        format!("{source}\u{1f}{}", key.id)
    }

    /// Reserves `key` for delivery unless it is in flight or seen.
    pub fn reserve(&self, source: &str, key: &EventKey) -> Result<Dedup, DedupError> {
        if key.window.is_none() {
            return Ok(Dedup::Exempt);
        }
        let now = Instant::now();
        let scoped = Self::scoped(source, key);
        let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
        if let Some(entry) = inner.entries.get(&scoped) {
            if entry.expires > now {
                return Ok(match entry.state {
                    State::Reserved => Dedup::InFlight,
                    State::Committed => Dedup::Seen,
                });
            }
        }
        let expires = now + self.reservation_ttl;
        inner.insert(scoped, State::Reserved, expires, self.max_entries, now);
        Ok(Dedup::New)
    }

    /// Marks `key` delivered: repeats within its window are now [`Dedup::Seen`].
    pub fn commit(&self, source: &str, key: &EventKey) -> Result<(), DedupError> {
        let Some(window) = key.window else {
            return Ok(());
        };
        let now = Instant::now();
        let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
        inner.insert(
            Self::scoped(source, key),
            State::Committed,
            now + window,
            self.max_entries,
            now,
        );
        Ok(())
    }

    /// Forgets a reservation whose delivery failed, so the vendor's retry is accepted.
    pub fn release(&self, source: &str, key: &EventKey) -> Result<(), DedupError> {
        if key.window.is_none() {
            return Ok(());
        }
        let scoped = Self::scoped(source, key);
        let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
        if let Some(entry) = inner.entries.get(&scoped) {
            if matches!(entry.state, State::Reserved) {
                let expires = entry.expires;
                inner.entries.remove(&scoped);
                inner.by_expiry.remove(&(expires, scoped));
            }
        }
        Ok(())
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn insert(
        &mut self,
        key: String,
        state: State,
        expires: Instant,
        max_entries: usize,
        now: Instant,
    ) {
        if let Some(old) = self.entries.remove(&key) {
            self.by_expiry.remove(&(old.expires, key.clone()));
        }
        // Drop expired entries, then the soonest-expiring ones while over the cap.
        while let Some((first_expiry, _)) = self.by_expiry.first() {
            if *first_expiry > now && self.entries.len() < max_entries {
                break;
            }
            if let Some((_, evicted)) = self.by_expiry.pop_first() {
                self.entries.remove(&evicted);
            }
        }
        self.by_expiry.insert((expires, key.clone()));
        self.entries.insert(key, Entry { state, expires });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> EventKey {
        EventKey {
            id: id.to_owned(),
            window: Some(Duration::from_secs(3600)),
        }
    }

    #[test]
    fn reserve_then_commit_makes_repeats_seen() {
        let s = MemoryStore::new(10);
        assert_eq!(s.reserve("a", &key("1")).unwrap(), Dedup::New);
        assert_eq!(s.reserve("a", &key("1")).unwrap(), Dedup::InFlight);
        s.commit("a", &key("1")).unwrap();
        assert_eq!(s.reserve("a", &key("1")).unwrap(), Dedup::Seen);
    }

    #[test]
    fn release_lets_the_retry_through() {
        let s = MemoryStore::new(10);
        assert_eq!(s.reserve("a", &key("1")).unwrap(), Dedup::New);
        s.release("a", &key("1")).unwrap();
        assert_eq!(s.reserve("a", &key("1")).unwrap(), Dedup::New);
    }

    #[test]
    fn keys_are_scoped_by_source() {
        let s = MemoryStore::new(10);
        s.reserve("a", &key("1")).unwrap();
        s.commit("a", &key("1")).unwrap();
        assert_eq!(s.reserve("b", &key("1")).unwrap(), Dedup::New);
    }

    #[test]
    fn exempt_keys_are_never_held() {
        let s = MemoryStore::new(10);
        let k = EventKey {
            id: "x".into(),
            window: None,
        };
        assert_eq!(s.reserve("a", &k).unwrap(), Dedup::Exempt);
        s.commit("a", &k).unwrap();
        assert_eq!(s.reserve("a", &k).unwrap(), Dedup::Exempt);
        assert!(s.is_empty());
    }

    #[test]
    fn stays_within_the_entry_cap() {
        let s = MemoryStore::new(3);
        for i in 0..10 {
            s.reserve("a", &key(&i.to_string())).unwrap();
            s.commit("a", &key(&i.to_string())).unwrap();
        }
        assert!(s.len() <= 3, "{}", s.len());
        // The newest is still remembered.
        assert_eq!(s.reserve("a", &key("9")).unwrap(), Dedup::Seen);
    }
}
