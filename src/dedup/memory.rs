//! The in-process dedup store: bounded, with an optional journal so a restart remembers.
//!
//! Input: scoped keys (`source` + id). Output: [`Dedup`] outcomes. Each key is held as its
//! [`Fingerprint`] (16 bytes) with its state and expiry packed in 8 more, not as text (tens
//! of bytes, twice: map and expiry index): a full store of the default million ids holds
//! 77 MB of heap (`cargo bench --bench micro` prints it; 92 MB with a `BTreeSet` as the expiry
//! index, 166 MB with a `u128` key and an `Instant` per entry). Bounded in entries: when full, expired entries go first, then the
//! entry whose expiry is soonest (a reservation, or the oldest delivered id). Committed keys
//! are appended to the journal (one `write`, no fsync: it survives a process crash; after a
//! power loss a few ids may be forgotten, so a vendor's retry of those would be published
//! again). Never blocks on I/O while holding the key map.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::expiry_index::ExpiryIndex;
use super::journal::Journal;
use super::key_map::KeyMap;
use super::{Dedup, DedupError};

/// A scoped key's identity in the store: the first 128 bits of its SHA-256, as two 64-bit
/// halves (high, low) so that it packs in 8-byte alignment beside an 8-byte entry (a `u128`
/// would pad every map slot to 48 bytes). Two different keys share one only by a SHA-256
/// collision on 128 bits (a vendor cannot choose ids that silence another event's).
/// Journaled as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u64; 2]);

impl Fingerprint {
    /// The fingerprint of a scoped key.
    pub fn of(scoped: &str) -> Fingerprint {
        let digest = Sha256::digest(scoped.as_bytes());
        let head = digest.first_chunk::<16>().copied().unwrap_or_default();
        Fingerprint::from_u128(u128::from_be_bytes(head))
    }

    fn from_u128(n: u128) -> Fingerprint {
        Fingerprint([(n >> 64) as u64, n as u64])
    }

    /// A journal entry: 32 hex digits as written by this version, or (a journal written
    /// before fingerprints) the scoped key's text.
    fn from_journal(entry: &str) -> Fingerprint {
        if entry.len() == 32 && entry.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(n) = u128::from_str_radix(entry, 16) {
                return Fingerprint::from_u128(n);
            }
        }
        Fingerprint::of(entry)
    }

    /// The low 64 bits (the key map's shard index).
    pub(super) fn low_bits(self) -> u64 {
        self.0[1]
    }

    fn to_hex(self) -> String {
        format!("{:016x}{:016x}", self.0[0], self.0[1])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reserved,
    Committed,
}

/// A point on the store's own clock: milliseconds since the store was made. Eight bytes,
/// where an `Instant` takes sixteen; at most [`MAX_TICK`] (2^63 - 1 ms, far beyond any window).
pub type Tick = u64;

/// The window under which ids replayed from the journal are indexed: their windows are not
/// journaled, only their expiries, which replay sorts.
const REPLAYED: Tick = Tick::MAX;

/// The latest tick an entry can hold (one bit of its word is the state).
const MAX_TICK: Tick = u64::MAX >> 1;

/// An entry's state and expiry in one word: the expiry tick shifted left once, the low bit
/// set when committed. Eight bytes per entry instead of twenty-four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry(u64);

impl Entry {
    fn new(state: State, expires: Tick) -> Entry {
        let committed = u64::from(state == State::Committed);
        Entry((expires.min(MAX_TICK) << 1) | committed)
    }

    fn state(self) -> State {
        if self.0 & 1 == 1 {
            State::Committed
        } else {
            State::Reserved
        }
    }

    fn expires(self) -> Tick {
        self.0 >> 1
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: KeyMap<Entry>,
    /// Expiry order, for eviction and expiry sweeps.
    by_expiry: ExpiryIndex,
}

/// The in-process dedup store.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Tick 0 of the store's clock.
    epoch: Instant,
    max_entries: usize,
    /// How long a reservation holds when its request never finishes (a crash mid-request).
    reservation_ttl: Duration,
    journal: Option<Arc<Journal>>,
}

impl MemoryStore {
    /// A store holding at most `max_entries` keys, without a journal.
    pub fn new(max_entries: usize, reservation_ttl: Duration) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            epoch: Instant::now(),
            max_entries,
            reservation_ttl,
            journal: None,
        }
    }

    /// A store that replays `journal` (committed keys still in their window) and appends to it.
    pub fn with_journal(
        max_entries: usize,
        reservation_ttl: Duration,
        journal: Journal,
    ) -> MemoryStore {
        let mut store = MemoryStore::new(max_entries, reservation_ttl);
        let now = store.now();
        let wall = SystemTime::now();
        let mut loaded = 0usize;
        if let Ok(inner) = store.inner.get_mut() {
            // Sorted by expiry, so one queue holds them all; a key journaled twice keeps its
            // latest expiry.
            let mut replayed: Vec<(Tick, Fingerprint)> = journal
                .entries()
                .into_iter()
                .filter_map(|(key, expires_at)| {
                    let left = expires_at.duration_since(wall).ok()?;
                    Some((later(now, left), Fingerprint::from_journal(&key)))
                })
                .collect();
            replayed.sort_by_key(|(expires, _)| *expires);
            for (expires, key) in replayed {
                inner.commit(key, REPLAYED, expires, max_entries, now);
                loaded += 1;
            }
            let live = inner
                .entries
                .iter()
                .filter(|(_, e)| e.state() == State::Committed)
                .map(|(k, e)| (k.to_hex(), wall + left(e.expires(), now)));
            if let Err(e) = journal.rewrite(live) {
                tracing::warn!(error = %e, "cannot compact the dedup journal");
            }
        }
        tracing::info!(loaded, "dedup journal replayed");
        store.journal = Some(Arc::new(journal));
        store
    }

    /// Reserves `key` unless it is in flight or seen.
    pub fn reserve(&self, key: &str) -> Result<Dedup, DedupError> {
        let key = Fingerprint::of(key);
        let now = self.now();
        let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
        if let Some(entry) = inner.entries.get(&key) {
            if entry.expires() > now {
                return Ok(match entry.state() {
                    State::Reserved => Dedup::InFlight,
                    State::Committed => Dedup::Seen,
                });
            }
        }
        let expires = later(now, self.reservation_ttl);
        inner.reserve(key, expires, self.max_entries, now);
        Ok(Dedup::New)
    }

    /// Marks `key` delivered for `window`.
    pub fn commit(&self, key: &str, window: Duration) -> Result<(), DedupError> {
        self.commit_many(&[(key.to_owned(), window)])
    }

    /// Marks each `(key, window)` delivered: one lock, one journal write for all of them.
    pub fn commit_many(&self, keys: &[(String, Duration)]) -> Result<(), DedupError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<(Fingerprint, Duration)> = keys
            .iter()
            .map(|(key, window)| (Fingerprint::of(key), *window))
            .collect();
        let now = self.now();
        let compact = {
            let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
            for (key, window) in &keys {
                let expires = later(now, *window);
                inner.commit(*key, millis(*window), expires, self.max_entries, now);
            }
            self.journal
                .as_ref()
                .is_some_and(|j| j.needs_compaction(self.max_entries))
        };
        if let Some(journal) = &self.journal {
            let wall = SystemTime::now();
            let entries = keys
                .iter()
                .map(|(key, window)| (key.to_hex(), wall + *window));
            if let Err(e) = journal.append_many(entries) {
                tracing::error!(error = %e, "cannot journal a dedup key; a restart may forget it");
            }
            if compact {
                self.compact_in_background(journal);
            }
        }
        Ok(())
    }

    /// Snapshots the live keys and hands them to a thread that rewrites the journal, so the
    /// committing request does not wait for a file of up to `2 * max_entries` lines.
    fn compact_in_background(&self, journal: &Arc<Journal>) {
        if !journal.begin_compaction() {
            return;
        }
        // Taken after `begin_compaction`: a key committed from now on is kept aside.
        let live = self.committed();
        let for_thread = Arc::clone(journal);
        let spawned = std::thread::Builder::new()
            .name("dedup-compact".to_owned())
            .spawn(move || {
                let live = live.into_iter().map(|(k, t)| (k.to_hex(), t));
                if let Err(e) = for_thread.finish_compaction(live) {
                    tracing::warn!(error = %e, "cannot compact the dedup journal");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the dedup journal compaction");
            journal.cancel_compaction();
        }
    }

    /// The committed keys still in their window, with their wall-clock expiry (16 + 16 bytes
    /// each: the text is formatted by the compaction thread, not under the store's lock).
    /// Copied one shard per lock hold: at a million ids one hold for the whole copy took 47 ms
    /// in a single-threaded run, every request waiting (a 10-minute soak at 5,000 requests/s
    /// saw ≈ 250 ms and 503s at its compaction). A key committed meanwhile is in the journal's
    /// kept-aside lines; one evicted meanwhile may still be copied, which replay bounds by the
    /// cap.
    fn committed(&self) -> Vec<(Fingerprint, SystemTime)> {
        let now = self.now();
        let wall = SystemTime::now();
        let mut out = Vec::with_capacity(self.len());
        for shard in 0..KeyMap::<Entry>::SHARDS {
            let Ok(inner) = self.inner.lock() else {
                return out;
            };
            out.extend(
                inner
                    .entries
                    .shard_iter(shard)
                    .filter(|(_, e)| e.state() == State::Committed && e.expires() > now)
                    .map(|(k, e)| (*k, wall + left(e.expires(), now))),
            );
        }
        out
    }

    /// Forgets a reservation whose delivery failed, so the vendor's retry is accepted.
    pub fn release(&self, key: &str) -> Result<(), DedupError> {
        let key = Fingerprint::of(key);
        let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
        if inner
            .entries
            .get(&key)
            .is_some_and(|e| e.state() == State::Reserved)
        {
            inner.forget(key);
        }
        Ok(())
    }

    /// True while a journal compaction runs in the background.
    pub fn compacting(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.is_compacting())
    }

    /// The store's clock now.
    fn now(&self) -> Tick {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
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

/// The tick `after` past `now`; a part of a millisecond counts as a whole one, so an
/// entry never expires early. Capped at [`MAX_TICK`], so the map's entry and the expiry index
/// always hold the same tick.
fn later(now: Tick, after: Duration) -> Tick {
    let ms = after.as_nanos().div_ceil(1_000_000);
    now.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX))
        .min(MAX_TICK)
}

/// A window in whole milliseconds (rounded up, as [`later`] does), the expiry index's name for it.
fn millis(window: Duration) -> Tick {
    u64::try_from(window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Time left from `now` until `expires`.
fn left(expires: Tick, now: Tick) -> Duration {
    Duration::from_millis(expires.saturating_sub(now))
}

impl Inner {
    /// Holds a reservation of `key` until `expires`.
    fn reserve(&mut self, key: Fingerprint, expires: Tick, max_entries: usize, now: Tick) {
        self.forget(key);
        self.make_room(max_entries, now);
        self.by_expiry.reserve(key, expires);
        self.entries
            .insert(key, Entry::new(State::Reserved, expires));
    }

    /// Holds `key` as delivered until `expires`, the end of a `window` of that many
    /// milliseconds (or [`REPLAYED`]).
    fn commit(
        &mut self,
        key: Fingerprint,
        window: Tick,
        expires: Tick,
        max_entries: usize,
        now: Tick,
    ) {
        self.forget(key);
        self.make_room(max_entries, now);
        let expires = self.by_expiry.commit(key, window, expires);
        self.entries
            .insert(key, Entry::new(State::Committed, expires));
    }

    /// Takes `key` out of the map, and its reservation out of the index (a committed place is
    /// left to go stale).
    fn forget(&mut self, key: Fingerprint) {
        if let Some(old) = self.entries.remove(&key) {
            if old.state() == State::Reserved {
                self.by_expiry.unreserve(key, old.expires());
            }
        }
    }

    /// Drops expired entries, then the soonest-expiring ones while the map is at its cap.
    fn make_room(&mut self, max_entries: usize, now: Tick) {
        while let Some(first) = self.by_expiry.first() {
            if first > now && self.entries.len() < max_entries {
                break;
            }
            let Some(place) = self.by_expiry.pop_first() else {
                break;
            };
            let current = !place.lazy
                || self
                    .entries
                    .get(&place.key)
                    .is_some_and(|e| e.state() == State::Committed && e.expires() == place.expires);
            if current {
                self.entries.remove(&place.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_its_state_and_expiry_in_one_word() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
        // A map slot is key + entry with no padding; a u128 key made it 48 bytes.
        assert_eq!(std::mem::size_of::<(Fingerprint, Entry)>(), 24);
        for (state, expires) in [
            (State::Reserved, 0),
            (State::Committed, 0),
            (State::Reserved, 86_400_000),
            (State::Committed, (1 << 62) + 5),
        ] {
            let e = Entry::new(state, expires);
            assert_eq!((e.state(), e.expires()), (state, expires));
        }
        // Past the representable range it saturates instead of wrapping to an early expiry.
        assert_eq!(Entry::new(State::Committed, u64::MAX).expires(), MAX_TICK);
    }

    #[test]
    fn ticks_round_up_so_nothing_expires_early() {
        assert_eq!(later(10, Duration::from_millis(5)), 15);
        assert_eq!(later(10, Duration::from_micros(1)), 11);
        assert_eq!(later(10, Duration::ZERO), 10);
        assert_eq!(later(MAX_TICK - 1, Duration::from_secs(1)), MAX_TICK);
        assert_eq!(later(0, Duration::MAX), MAX_TICK);
        assert_eq!(left(15, 10), Duration::from_millis(5));
        assert_eq!(left(10, 15), Duration::ZERO);
    }

    #[test]
    fn the_expiry_index_matches_the_map_even_for_endless_windows() {
        let store = MemoryStore::new(10, Duration::from_secs(60));
        assert_eq!(store.reserve("s\nendless").ok(), Some(Dedup::New));
        // Committed twice, with two different windows that both end past the clock's last
        // tick: the second replaces the first in both the map and the index.
        store.commit("s\nendless", Duration::MAX).ok();
        store
            .commit("s\nendless", Duration::from_millis(u64::MAX - 10))
            .ok();
        assert_eq!(store.reserve("s\nendless").ok(), Some(Dedup::Seen));
        assert_eq!(store.reserve("s\nshort").ok(), Some(Dedup::New));
        store.release("s\nshort").ok();
        let inner = store.inner.lock().unwrap();
        assert_eq!(inner.entries.len(), 1);
        // The first commit's place is stale; the reservation of "short" is gone.
        assert_eq!(inner.by_expiry.places(), 2);
    }

    #[test]
    fn a_full_store_evicts_the_soonest_expiry_whatever_its_window() {
        let store = MemoryStore::new(3, Duration::from_secs(120));
        let held = |k: &str| {
            store
                .inner
                .lock()
                .unwrap()
                .entries
                .get(&Fingerprint::of(k))
                .copied()
        };
        for (k, window) in [("long1", 7200), ("long2", 7200), ("short", 3600)] {
            store.reserve(k).unwrap();
            store.commit(k, Duration::from_secs(window)).unwrap();
        }
        // Committed last, but its window ends first: the next id takes its place.
        assert_eq!(store.reserve("new").ok(), Some(Dedup::New));
        assert_eq!(held("short"), None);
        assert!(held("long1").is_some() && held("long2").is_some());
        // A re-commit leaves a stale place behind; popping it must not drop the live entry
        // (here its expiry is later) nor count as room made.
        std::thread::sleep(Duration::from_millis(3));
        store.commit("long1", Duration::from_secs(7200)).unwrap();
        assert_eq!(store.len(), 3);
        for k in ["a", "b", "c"] {
            assert_eq!(store.reserve(k).ok(), Some(Dedup::New));
            assert!(store.len() <= 3);
        }
        // Reservations ended soonest and went first; then long2, then long1's stale place
        // (skipped) and its live one, in expiry order.
        assert_eq!(held("new"), None);
        assert_eq!(store.len(), 3);
        let live = held("long1").map(|e| e.state());
        assert!(live.is_none() || live == Some(State::Committed));
    }

    #[test]
    fn expired_ids_are_swept_from_every_window() {
        let store = MemoryStore::new(100, Duration::from_secs(120));
        for (i, window) in [1u64, 2, 1, 2, 3].iter().enumerate() {
            let k = format!("k{i}");
            store.reserve(&k).unwrap();
            store.commit(&k, Duration::from_millis(*window)).unwrap();
        }
        store.reserve("long").unwrap();
        store.commit("long", Duration::from_secs(60)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        // The next insert sweeps every expired id, whichever queue holds it.
        assert_eq!(store.reserve("next").ok(), Some(Dedup::New));
        assert_eq!(store.len(), 2);
        assert_eq!(store.inner.lock().unwrap().by_expiry.places(), 2);
        assert_eq!(store.reserve("k0").ok(), Some(Dedup::New));
        assert_eq!(store.reserve("long").ok(), Some(Dedup::Seen));
    }

    #[test]
    fn a_fingerprint_round_trips_through_its_journal_text() {
        let fp = Fingerprint::of("source\nevt-1");
        let hex = fp.to_hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(Fingerprint::from_journal(&hex), fp);
        // The text is the first 16 bytes of the SHA-256, as before the split into halves.
        let digest = hex::encode(Sha256::digest(b"source\nevt-1"));
        assert_eq!(hex, digest[..32]);
    }
}
