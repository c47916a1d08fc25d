//! The in-process dedup store: bounded, with an optional journal so a restart remembers.
//!
//! Input: scoped keys (`source` + id). Output: [`Dedup`] outcomes. Each key is held as its
//! [`Fingerprint`] (12 bytes) with its state and expiry packed in 4 more, not as text (tens
//! of bytes, twice: map and expiry index): a full store of the default million ids holds
//! 52 MB of heap (`cargo bench --bench micro` prints it; 77 MB with 128-bit fingerprints and
//! millisecond expiries, 92 MB with a `BTreeSet` as the expiry index, 166 MB with a `u128`
//! key and an `Instant` per entry). Expiries are whole seconds, rounded up: an id may count
//! as seen up to a second past its window, never less than its window. Bounded in entries:
//! when full, expired entries go first, then the entry whose expiry is soonest (a
//! reservation, or the oldest delivered id). Committed keys are queued for the journal, which
//! its own thread writes a millisecond behind, without fsync (`journal.rs`): a process crash
//! or a power loss forgets the last few ids, so a vendor's retry of those would be published
//! again. Never blocks on I/O while holding the key map.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::expiry_index::ExpiryIndex;
use super::journal::Journal;
use super::key_map::KeyMap;
use super::{Dedup, DedupError};

/// A scoped key's identity in the store: the first 96 bits of its SHA-256, as three 32-bit
/// words, so that a map slot (fingerprint and a 4-byte entry) is 16 bytes with no padding.
/// Two different keys share one only by a SHA-256 collision on 96 bits: among a million ids
/// the chance is about 10^-17 (a vendor cannot choose ids that silence another event's).
/// Journaled as 24 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u32; 3]);

impl Fingerprint {
    /// The fingerprint of a scoped key.
    pub fn of(scoped: &str) -> Fingerprint {
        Fingerprint::of_digest(Sha256::digest(scoped.as_bytes()))
    }

    /// The fingerprint of `source`'s key `id`: the same as of their scoped text
    /// (`"{source}\u{1f}{id}"`, [`super::DedupStore`]'s form), without building it.
    pub fn scoped(source: &str, id: &str) -> Fingerprint {
        let digest = Sha256::new()
            .chain_update(source.as_bytes())
            .chain_update([SCOPE_SEPARATOR])
            .chain_update(id.as_bytes())
            .finalize();
        Fingerprint::of_digest(digest)
    }

    fn of_digest(digest: impl AsRef<[u8]>) -> Fingerprint {
        let head = digest
            .as_ref()
            .first_chunk::<12>()
            .copied()
            .unwrap_or_default();
        Fingerprint::from_bytes(head)
    }

    fn from_bytes(b: [u8; 12]) -> Fingerprint {
        let word = |at: usize| {
            let mut w = [0u8; 4];
            if let Some(part) = b.get(at..at + 4) {
                w.copy_from_slice(part);
            }
            u32::from_be_bytes(w)
        };
        Fingerprint([word(0), word(4), word(8)])
    }

    /// A journal entry: 24 hex digits as written by this version; 32 as written by versions
    /// that held 128 bits (their first 96 are this fingerprint); or, from a journal written
    /// before fingerprints, the scoped key's text.
    fn from_journal(entry: &str) -> Fingerprint {
        if (entry.len() == 24 || entry.len() == 32) && entry.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let mut bytes = [0u8; 12];
            if hex::decode_to_slice(entry.get(..24).unwrap_or_default(), &mut bytes).is_ok() {
                return Fingerprint::from_bytes(bytes);
            }
        }
        Fingerprint::of(entry)
    }

    /// The low 32 bits (the key map's shard index).
    pub(super) fn low_bits(self) -> u32 {
        self.0[2]
    }

    /// The journal's text: 24 lowercase hex digits, written into a fixed buffer.
    fn to_hex(self) -> Hex {
        let mut bytes = [0u8; 12];
        for (chunk, word) in bytes.chunks_exact_mut(4).zip(self.0) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        let mut text = [0u8; 24];
        // 12 bytes always fit 24 digits.
        let _ = hex::encode_to_slice(bytes, &mut text);
        Hex(text)
    }
}

/// The byte between a source's name and an event id in a scoped key.
pub const SCOPE_SEPARATOR: u8 = 0x1f;

/// A fingerprint's 24 hex digits, without a heap allocation.
#[derive(Debug, Clone, Copy)]
struct Hex([u8; 24]);

impl AsRef<str> for Hex {
    fn as_ref(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reserved,
    Committed,
}

/// A point on the store's own clock: whole seconds since the store was made. Four bytes,
/// where an `Instant` takes sixteen; at most [`MAX_TICK`] (68 years). Windows are hours and
/// reservations minutes, so a second is fine enough: expiries round up, never early.
pub type Tick = u32;

/// The window under which ids replayed from the journal are indexed: their windows are not
/// journaled, only their expiries, which replay sorts.
const REPLAYED: u64 = u64::MAX;

/// The latest tick an entry can hold (one bit of its word is the state).
const MAX_TICK: Tick = Tick::MAX >> 1;

/// An entry's state and expiry in one word: the expiry tick shifted left once, the low bit
/// set when committed. Four bytes per entry instead of twenty-four.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry(u32);

impl Entry {
    fn new(state: State, expires: Tick) -> Entry {
        let committed = u32::from(state == State::Committed);
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
    /// Shared with the journal's compaction thread, which copies the live keys itself.
    inner: Arc<Mutex<Inner>>,
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
            inner: Arc::new(Mutex::new(Inner::default())),
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
        if let Ok(mut inner) = store.inner.lock() {
            // Sorted by expiry, so one queue holds them all; a key journaled twice keeps its
            // latest expiry.
            let mut replayed: Vec<(Tick, Fingerprint, SystemTime)> = journal
                .entries()
                .into_iter()
                .filter_map(|(key, expires_at)| {
                    let left = expires_at.duration_since(wall).ok()?;
                    Some((
                        later(now, left),
                        Fingerprint::from_journal(&key),
                        expires_at,
                    ))
                })
                .collect();
            replayed.sort_by_key(|(expires, _, _)| *expires);
            for (expires, key, _) in &replayed {
                inner.commit(*key, REPLAYED, *expires, max_entries, tick(now));
                loaded += 1;
            }
            // Rewritten with the expiries as journaled, not from the rounded-up ticks: a
            // restart must not move them later (by up to a second each time).
            let live = replayed.iter().filter_map(|(expires, key, at)| {
                let held = inner.entries.get(key)?;
                (held.state() == State::Committed && held.expires() == *expires)
                    .then(|| (key.to_hex(), *at))
            });
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
        self.reserve_fingerprint(Fingerprint::of(key))
    }

    /// [`MemoryStore::reserve`] for a key already fingerprinted.
    pub fn reserve_fingerprint(&self, key: Fingerprint) -> Result<Dedup, DedupError> {
        let now = self.now();
        let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
        let held = inner.entries.get(&key).copied();
        if let Some(entry) = held {
            if entry.expires() > tick(now) {
                return Ok(match entry.state() {
                    State::Reserved => Dedup::InFlight,
                    State::Committed => Dedup::Seen,
                });
            }
        }
        let expires = later(now, self.reservation_ttl);
        inner.reserve(key, held.is_some(), expires, self.max_entries, tick(now));
        Ok(Dedup::New)
    }

    /// Marks `key` delivered for `window`.
    pub fn commit(&self, key: &str, window: Duration) -> Result<(), DedupError> {
        self.commit_many(&[(Fingerprint::of(key), window)])
    }

    /// Marks each `(key, window)` delivered: one lock, and their journal lines queued at once.
    pub fn commit_many(&self, keys: &[(Fingerprint, Duration)]) -> Result<(), DedupError> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let compact = {
            let mut inner = self.inner.lock().map_err(|_| DedupError::Unavailable)?;
            for (key, window) in keys {
                let expires = later(now, *window);
                inner.commit(
                    *key,
                    window_key(*window),
                    expires,
                    self.max_entries,
                    tick(now),
                );
            }
            self.journal
                .as_ref()
                .is_some_and(|j| j.needs_compaction(self.max_entries))
        };
        if let Some(journal) = &self.journal {
            let wall = SystemTime::now();
            let entries = keys
                .iter()
                .map(|(key, window)| (key.to_hex(), wall.checked_add(*window).unwrap_or(wall)));
            if let Err(e) = journal.append_many(entries) {
                tracing::error!(error = %e, "cannot journal a dedup key; a restart may forget it");
            }
            if compact {
                self.compact_in_background(journal);
            }
        }
        Ok(())
    }

    /// Writes the journal's queued lines now (a clean stop).
    pub fn flush_journal(&self) {
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.flush() {
                tracing::error!(error = %e, "cannot journal dedup keys; a restart may forget them");
            }
        }
    }

    /// Starts a thread that snapshots the live keys and rewrites the journal with them, so
    /// the committing request waits for neither the copy (≈ 47 ms at a million ids) nor a
    /// file of up to `2 * max_entries` lines.
    fn compact_in_background(&self, journal: &Arc<Journal>) {
        if !journal.begin_compaction() {
            return;
        }
        // Began before the copy: a key committed from now on is kept aside.
        let for_thread = Arc::clone(journal);
        let (inner, epoch) = (Arc::clone(&self.inner), self.epoch);
        let spawned = std::thread::Builder::new()
            .name("dedup-compact".to_owned())
            .spawn(move || {
                let live = committed(&inner, epoch)
                    .into_iter()
                    .map(|(k, t)| (k.to_hex(), t));
                if let Err(e) = for_thread.finish_compaction(live) {
                    tracing::warn!(error = %e, "cannot compact the dedup journal");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the dedup journal compaction");
            journal.cancel_compaction();
        }
    }

    /// Forgets a reservation whose delivery failed, so the vendor's retry is accepted.
    pub fn release(&self, key: &str) -> Result<(), DedupError> {
        self.release_fingerprint(Fingerprint::of(key))
    }

    /// [`MemoryStore::release`] for a key already fingerprinted.
    pub fn release_fingerprint(&self, key: Fingerprint) -> Result<(), DedupError> {
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

    /// The store's clock now: the time since it was made.
    fn now(&self) -> Duration {
        self.epoch.elapsed()
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

impl Drop for MemoryStore {
    /// Writes the journal's queued lines: a compaction thread may still hold the journal, so
    /// its own drop (which also writes them) can come later than the store's.
    fn drop(&mut self) {
        self.flush_journal();
    }
}

/// The tick of the clock reading `now`: its whole seconds. An entry has expired once this
/// reaches its expiry tick.
fn tick(now: Duration) -> Tick {
    Tick::try_from(now.as_secs())
        .unwrap_or(Tick::MAX)
        .min(MAX_TICK)
}

/// The tick at which something `after` past the clock reading `now` expires: a part of a
/// second counts as a whole one, so with [`tick`] rounding down an entry never expires early.
/// Capped at [`MAX_TICK`], so the map's entry and the expiry index always hold the same tick.
fn later(now: Duration, after: Duration) -> Tick {
    let secs = now.saturating_add(after).as_nanos().div_ceil(1_000_000_000);
    Tick::try_from(secs).unwrap_or(Tick::MAX).min(MAX_TICK)
}

/// A window's name in the expiry index: its length in milliseconds (rounded up).
fn window_key(window: Duration) -> u64 {
    u64::try_from(window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Time left from the clock reading `now` until `expires`.
fn left(expires: Tick, now: Duration) -> Duration {
    Duration::from_secs(u64::from(expires)).saturating_sub(now)
}

impl Inner {
    /// Holds a reservation of `key` until `expires`.
    /// `held`: the map has an (expired) entry for `key`, to forget first; the caller has just
    /// looked, so a new key costs no second lookup.
    fn reserve(
        &mut self,
        key: Fingerprint,
        held: bool,
        expires: Tick,
        max_entries: usize,
        now: Tick,
    ) {
        // The map's word cannot hold more; index what it holds.
        let expires = expires.min(MAX_TICK);
        if held {
            self.forget(key);
        }
        self.make_room(max_entries, now);
        self.by_expiry.reserve(key, expires);
        self.entries
            .insert(key, Entry::new(State::Reserved, expires));
    }

    /// Holds `key` as delivered until `expires`, the end of a window named `window` (see
    /// [`window_key`], or [`REPLAYED`]).
    fn commit(
        &mut self,
        key: Fingerprint,
        window: u64,
        expires: Tick,
        max_entries: usize,
        now: Tick,
    ) {
        // The usual case: the request's own reservation, turned into the commit where it sits
        // (one lookup, and the map does not grow, so there is no room to make).
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.state() == State::Reserved {
                self.by_expiry.unreserve(key, entry.expires());
            }
            let expires = self.by_expiry.commit(key, window, expires.min(MAX_TICK));
            *entry = Entry::new(State::Committed, expires);
            return;
        }
        self.make_room(max_entries, now);
        let expires = self.by_expiry.commit(key, window, expires.min(MAX_TICK));
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
            // A reservation's place is always current; checked all the same, so that a place
            // can never take out an entry other than the one it was made for.
            let state = if place.lazy {
                State::Committed
            } else {
                State::Reserved
            };
            let current = self
                .entries
                .get(&place.key)
                .is_some_and(|e| e.state() == state && e.expires() == place.expires);
            if current {
                self.entries.remove(&place.key);
            }
        }
    }
}

/// The committed keys still in their window, with their wall-clock expiry (32 bytes each:
/// the text is formatted by the compaction thread, not under the store's lock). Copied one
/// shard per lock hold: at a million ids one hold for the whole copy took 47 ms in a
/// single-threaded run, every request waiting (a 10-minute soak at 5,000 requests/s saw
/// ≈ 250 ms and 503s at its compaction). A key committed meanwhile is in the journal's
/// kept-aside lines; one evicted meanwhile may still be copied, which replay bounds by the
/// cap. The expiry written is the tick held, so up to a second past the journaled one: a
/// compaction (one per `2 * max_entries` commits) may hold an id that much longer.
fn committed(inner: &Mutex<Inner>, epoch: Instant) -> Vec<(Fingerprint, SystemTime)> {
    let now = epoch.elapsed();
    let wall = SystemTime::now();
    let mut out = Vec::with_capacity(inner.lock().map(|i| i.entries.len()).unwrap_or(0));
    for shard in 0..KeyMap::<Entry>::SHARDS {
        let Ok(inner) = inner.lock() else {
            return out;
        };
        out.extend(
            inner
                .entries
                .shard_iter(shard)
                .filter(|(_, e)| e.state() == State::Committed && e.expires() > tick(now))
                .map(|(k, e)| (*k, wall + left(e.expires(), now))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves the store's clock on by `by`, as if that much time had passed.
    fn advance(store: &mut MemoryStore, by: Duration) {
        store.epoch = store
            .epoch
            .checked_sub(by)
            .expect("uptime longer than the step");
    }

    #[test]
    fn an_entry_keeps_its_state_and_expiry_in_one_word() {
        assert_eq!(std::mem::size_of::<Entry>(), 4);
        // A map slot and a place in the expiry index are 16 bytes each, with no padding.
        assert_eq!(std::mem::size_of::<(Fingerprint, Entry)>(), 16);
        assert_eq!(std::mem::size_of::<(Tick, Fingerprint)>(), 16);
        for (state, expires) in [
            (State::Reserved, 0),
            (State::Committed, 0),
            (State::Reserved, 86_400),
            (State::Committed, MAX_TICK - 5),
        ] {
            let e = Entry::new(state, expires);
            assert_eq!((e.state(), e.expires()), (state, expires));
        }
        // Past the representable range it saturates instead of wrapping to an early expiry.
        assert_eq!(Entry::new(State::Committed, Tick::MAX).expires(), MAX_TICK);
    }

    #[test]
    fn ticks_round_up_so_nothing_expires_early() {
        let at = |ms: u64| Duration::from_millis(ms);
        assert_eq!(later(at(10_000), at(5)), 11);
        assert_eq!(later(at(10_500), Duration::from_secs(1)), 12);
        assert_eq!(later(at(10_000), Duration::ZERO), 10);
        assert_eq!(later(Duration::ZERO, Duration::MAX), MAX_TICK);
        assert_eq!(later(Duration::from_secs(1 << 40), at(1)), MAX_TICK);
        // Committed at 10.9 s for 1 s: alive at 11.9 s (tick 11), expired from 12 s.
        let expires = later(at(10_900), Duration::from_secs(1));
        assert!(expires > tick(at(11_900)));
        assert!(expires <= tick(at(12_000)));
        assert_eq!(left(15, at(10_000)), Duration::from_secs(5));
        assert_eq!(left(11, at(10_500)), at(500));
        assert_eq!(left(10, at(15_000)), Duration::ZERO);
    }

    #[test]
    fn the_expiry_index_matches_the_map_even_for_endless_windows() {
        let store = MemoryStore::new(10, Duration::from_secs(60));
        assert_eq!(store.reserve("s\nendless").ok(), Some(Dedup::New));
        // Committed twice, with two different windows that both end past the clock's last
        // tick: the second replaces the first in the map; the first's place stays, stale.
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
        let mut store = MemoryStore::new(3, Duration::from_secs(120));
        let held = |store: &MemoryStore, k: &str| {
            let inner = store.inner.lock().unwrap();
            inner.entries.get(&Fingerprint::of(k)).map(|e| e.state())
        };
        for (k, window) in [("long1", 7200), ("long2", 7200), ("short", 3600)] {
            store.reserve(k).unwrap();
            store.commit(k, Duration::from_secs(window)).unwrap();
        }
        // Committed last, but its window ends first: the next id takes its place.
        assert_eq!(store.reserve("new").ok(), Some(Dedup::New));
        assert_eq!(held(&store, "short"), None);
        store.release("new").unwrap();
        // Ten seconds on, long1 is committed again: its first place (≈ 7,200 s) is now
        // stale, its entry ends ten seconds later.
        advance(&mut store, Duration::from_secs(10));
        store.commit("long1", Duration::from_secs(7200)).unwrap();
        store.commit("x", Duration::from_secs(7200)).unwrap();
        assert_eq!(store.len(), 3);
        // Full: the stale place comes out first but frees nothing and must not drop long1;
        // long2, whose window ends soonest, makes the room.
        store.commit("y", Duration::from_secs(7200)).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(held(&store, "long2"), None);
        for k in ["long1", "x", "y"] {
            assert_eq!(held(&store, k), Some(State::Committed), "{k}");
        }
    }

    #[test]
    fn expired_ids_are_swept_from_every_window() {
        let mut store = MemoryStore::new(100, Duration::from_secs(120));
        for (i, window) in [1u64, 2, 1, 2, 3].iter().enumerate() {
            let k = format!("k{i}");
            store.reserve(&k).unwrap();
            store.commit(&k, Duration::from_secs(*window)).unwrap();
        }
        store.reserve("long").unwrap();
        store.commit("long", Duration::from_secs(60)).unwrap();
        advance(&mut store, Duration::from_secs(10));
        // The next insert sweeps every expired id, whichever queue holds it.
        assert_eq!(store.reserve("next").ok(), Some(Dedup::New));
        assert_eq!(store.len(), 2);
        assert_eq!(store.inner.lock().unwrap().by_expiry.places(), 2);
        assert_eq!(store.reserve("k0").ok(), Some(Dedup::New));
        assert_eq!(store.reserve("long").ok(), Some(Dedup::Seen));
        // A reservation expires too: its request never finished.
        advance(&mut store, Duration::from_secs(121));
        assert_eq!(store.reserve("next").ok(), Some(Dedup::New));
    }

    #[test]
    fn a_window_ends_on_time_to_the_second() {
        let mut store = MemoryStore::new(10, Duration::from_secs(120));
        advance(&mut store, Duration::from_millis(10_900));
        store.reserve("k").unwrap();
        store.commit("k", Duration::from_secs(1)).unwrap();
        // 11.4 s: still inside (the window ends at 11.9 s, held to 12 s).
        advance(&mut store, Duration::from_millis(500));
        assert_eq!(store.reserve("k").ok(), Some(Dedup::Seen));
        // 12.0 s: over.
        advance(&mut store, Duration::from_millis(600));
        assert_eq!(store.reserve("k").ok(), Some(Dedup::New));
    }

    #[test]
    fn the_map_holds_the_tick_the_index_keeps() {
        let fp = |k: &str| Fingerprint::of(k);
        let mut inner = Inner::default();
        inner.commit(fp("k1"), 10, 107, 2, 0);
        // Read the clock earlier, committed later: raised to the queue's last tick, in the
        // map as in the index.
        inner.commit(fp("k2"), 10, 105, 2, 0);
        assert_eq!(inner.entries.get(&fp("k2")).map(|e| e.expires()), Some(107));
        // Full: the first in the queue goes.
        inner.commit(fp("k3"), 10, 110, 2, 0);
        assert_eq!(inner.entries.len(), 2);
        assert!(inner.entries.get(&fp("k1")).is_none());
        // At tick 108 k2 has expired and is swept.
        inner.reserve(fp("k4"), false, 300, 10, 108);
        assert!(inner.entries.get(&fp("k2")).is_none());
        assert_eq!(inner.entries.len(), 2);
    }

    #[test]
    fn a_commit_turns_the_reservation_into_the_commit_in_place() {
        let fp = |k: &str| Fingerprint::of(k);
        let mut inner = Inner::default();
        let k = fp("k");
        inner.reserve(k, false, 50, 10, 0);
        assert_eq!(inner.by_expiry.places(), 1);
        inner.commit(k, 100_000, 200, 10, 0);
        assert_eq!(inner.entries.len(), 1);
        let held = inner.entries.get(&k).copied().unwrap();
        assert_eq!((held.state(), held.expires()), (State::Committed, 200));
        assert_eq!(
            inner.by_expiry.places(),
            1,
            "the reservation's place is gone, the commit's is there"
        );
        // A key held but expired is forgotten before it is reserved again: one entry, one
        // place, the new reservation's.
        let j = fp("j");
        inner.commit(j, 1_000, 5, 10, 0);
        inner.reserve(j, true, 40, 10, 4);
        let held = inner.entries.get(&j).copied().unwrap();
        assert_eq!((held.state(), held.expires()), (State::Reserved, 40));
        assert_eq!(inner.entries.len(), 2);
        assert_eq!(
            inner.by_expiry.places(),
            3,
            "k's commit, j's stale commit, j's reservation"
        );
    }

    #[test]
    fn twin_places_of_one_key_make_room_once() {
        let mut store = MemoryStore::new(2, Duration::from_secs(120));
        // Committed twice in the same second: two identical places in one queue.
        store.commit("k", Duration::from_secs(100)).unwrap();
        store.commit("k", Duration::from_secs(100)).unwrap();
        advance(&mut store, Duration::from_secs(1));
        store.commit("a", Duration::from_secs(100)).unwrap();
        advance(&mut store, Duration::from_secs(1));
        // Full: k's first place takes k out; its twin then frees nothing, and "a" goes next.
        store.commit("b", Duration::from_secs(100)).unwrap();
        assert_eq!(store.len(), 2);
        store.commit("c", Duration::from_secs(100)).unwrap();
        assert_eq!(store.len(), 2);
        let inner = store.inner.lock().unwrap();
        let held: Vec<bool> = ["k", "a", "b", "c"]
            .iter()
            .map(|k| inner.entries.get(&Fingerprint::of(k)).is_some())
            .collect();
        assert_eq!(held, [false, false, true, true]);
    }

    #[test]
    fn an_expiry_past_the_last_tick_is_indexed_as_the_map_holds_it() {
        let mut inner = Inner::default();
        let k = Fingerprint::of("k");
        inner.reserve(k, false, Tick::MAX, 10, 0);
        inner.forget(k);
        assert_eq!(
            inner.by_expiry.places(),
            0,
            "the reservation was found and taken out"
        );
        inner.commit(k, 1, Tick::MAX, 10, 0);
        assert_eq!(inner.by_expiry.first(), Some(MAX_TICK));
    }

    #[test]
    fn a_fingerprint_round_trips_through_its_journal_text() {
        let fp = Fingerprint::of("source\nevt-1");
        let hex = fp.to_hex();
        assert_eq!(hex.as_ref().len(), 24);
        assert_eq!(Fingerprint::from_journal(hex.as_ref()), fp);
        // The text is the first 12 bytes of the SHA-256; a journal of 128-bit fingerprints
        // (32 digits, as written before) replays to the same ids.
        let digest = hex::encode(Sha256::digest(b"source\nevt-1"));
        assert_eq!(hex.as_ref(), &digest[..24]);
        assert_eq!(Fingerprint::from_journal(&digest[..32]), fp);
    }

    #[test]
    fn a_scoped_fingerprint_is_that_of_the_scoped_text_journals_hold() {
        // Journals written by earlier versions hold fingerprints of "{source}\u{1f}{id}".
        for (source, id) in [("hw", "evt-1"), ("", ""), ("src", "ünï\u{1f}code")] {
            assert_eq!(
                Fingerprint::scoped(source, id),
                Fingerprint::of(&format!("{source}\u{1f}{id}")),
                "{source:?} {id:?}"
            );
        }
        assert_ne!(
            Fingerprint::scoped("ab", "c"),
            Fingerprint::scoped("a", "bc")
        );
    }
}
