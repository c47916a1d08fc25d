//! The memory store's expiry index: which key's window ends soonest, for expiry sweeps and for
//! eviction when the store is full.
//!
//! A delivered id expires at `now + window`, and a store sees only a few windows (one per
//! parser, or the `[dedup] window_s` override), so its committed ids arrive already in expiry
//! order within each window: one first-in first-out queue per window keeps them sorted with no
//! tree. Each queued id costs its 16 bytes in 4,096-entry chunks (a `BTreeSet` of 24-byte
//! pairs took ≈ 39 bytes per id, its leaves half full under appends in order). Reservations,
//! few and with one lifetime but released out of order, stay in a `BTreeSet`.
//!
//! The queues are lazy: an id removed from the store (re-committed, or reserved again once
//! expired) leaves its old place behind, and the store checks each place it pops against the
//! key map ([`Popped`]); stale places cost their 16 bytes until their expiry reaches the front.

use std::collections::{BTreeSet, VecDeque};

use super::memory::{Fingerprint, Tick};

/// Entries per queue chunk: 64 KiB, so a queue grows without ever copying what it holds.
const CHUNK: usize = 4096;

/// A place popped from the index: `key` was indexed to expire at `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped {
    /// When the place says the key expires.
    pub expires: Tick,
    /// The key.
    pub key: Fingerprint,
    /// True when it came from a committed queue (the store must check that the key map still
    /// holds this expiry: the place may be stale); false for a reservation (always current).
    pub lazy: bool,
}

/// Expiry order over a store's reservations and committed ids.
#[derive(Debug, Default)]
pub struct ExpiryIndex {
    /// Reservations, in expiry order.
    reserved: BTreeSet<(Tick, Fingerprint)>,
    /// One queue per window (named by its length in milliseconds), each in expiry order.
    committed: Vec<(u64, Fifo)>,
}

impl ExpiryIndex {
    /// Indexes a reservation expiring at `expires`.
    pub fn reserve(&mut self, key: Fingerprint, expires: Tick) {
        self.reserved.insert((expires, key));
    }

    /// Forgets a reservation (released, or replaced by its commit).
    pub fn unreserve(&mut self, key: Fingerprint, expires: Tick) {
        self.reserved.remove(&(expires, key));
    }

    /// Indexes a committed id whose window (named by its length in milliseconds) ends at
    /// `expires`. Returns the tick it is indexed to expire at: `expires`, or the last tick
    /// queued for that window if a request that read the clock earlier committed later (a
    /// lock wait, rounded up to a tick: at most about a second later; never earlier, so no
    /// id expires early). The store keeps the returned tick.
    pub fn commit(&mut self, key: Fingerprint, window: u64, expires: Tick) -> Tick {
        let at = match self.committed.iter().position(|(w, _)| *w == window) {
            Some(at) => at,
            None => {
                self.committed.push((window, Fifo::default()));
                self.committed.len() - 1
            }
        };
        match self.committed.get_mut(at) {
            Some((_, queue)) => {
                let expires = queue.back().map_or(expires, |(last, _)| expires.max(last));
                queue.push((expires, key));
                expires
            }
            None => expires,
        }
    }

    /// The soonest expiry indexed, without taking it out.
    pub fn first(&self) -> Option<Tick> {
        self.soonest().map(|(tick, _)| tick)
    }

    /// Takes out the place whose expiry is soonest.
    pub fn pop_first(&mut self) -> Option<Popped> {
        match self.soonest()?.1 {
            Holder::Reserved => self.reserved.pop_first().map(|(expires, key)| Popped {
                expires,
                key,
                lazy: false,
            }),
            Holder::Queue(at) => {
                let (expires, key) = self.committed.get_mut(at)?.1.pop()?;
                Some(Popped {
                    expires,
                    key,
                    lazy: true,
                })
            }
        }
    }

    /// The soonest expiry and what holds it; on a tie, the reservations.
    fn soonest(&self) -> Option<(Tick, Holder)> {
        let reserved = self
            .reserved
            .first()
            .map(|(tick, _)| (*tick, Holder::Reserved));
        let queued = self
            .committed
            .iter()
            .enumerate()
            .filter_map(|(at, (_, q))| q.front().map(|(tick, _)| (tick, Holder::Queue(at))))
            .min_by_key(|(tick, _)| *tick);
        match (reserved, queued) {
            (Some(r), Some(q)) if q.0 < r.0 => Some(q),
            (Some(r), _) => Some(r),
            (None, q) => q,
        }
    }

    /// Places held, stale ones included.
    #[cfg(test)]
    pub fn places(&self) -> usize {
        self.reserved.len() + self.committed.iter().map(|(_, q)| q.len).sum::<usize>()
    }
}

/// Where the soonest place is.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// The reservations' set.
    Reserved,
    /// The committed queue at this position.
    Queue(usize),
}

/// A first-in first-out queue of (expiry, key) in fixed chunks: memory follows what it holds,
/// with none of a `VecDeque`'s doubling (up to twice the entries' size, and a full copy of
/// them as it grows).
#[derive(Debug, Default)]
struct Fifo {
    chunks: VecDeque<Vec<(Tick, Fingerprint)>>,
    /// Entries of the first chunk already popped.
    head: usize,
    /// Entries held.
    len: usize,
}

impl Fifo {
    fn push(&mut self, item: (Tick, Fingerprint)) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(item);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    fn front(&self) -> Option<(Tick, Fingerprint)> {
        self.chunks.front()?.get(self.head).copied()
    }

    fn back(&self) -> Option<(Tick, Fingerprint)> {
        self.chunks.back()?.last().copied()
    }

    fn pop(&mut self) -> Option<(Tick, Fingerprint)> {
        let item = self.front()?;
        self.head += 1;
        self.len -= 1;
        if self.len == 0 {
            // Empty: one chunk kept, emptied, so a queue that drains and refills does not
            // allocate each time.
            self.chunks.truncate(1);
            if let Some(chunk) = self.chunks.front_mut() {
                chunk.clear();
            }
            self.head = 0;
        } else if self.head >= CHUNK {
            // Only the last chunk can be partly filled, so a drained one is full: it goes.
            self.chunks.pop_front();
            self.head = 0;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u32) -> Fingerprint {
        Fingerprint::of(&n.to_string())
    }

    #[test]
    fn a_fifo_spans_chunks_and_gives_back_their_memory() {
        let mut q = Fifo::default();
        let n = CHUNK * 2 + 10;
        for i in 0..n {
            q.push((i as Tick, fp(i as u32)));
        }
        assert_eq!(q.chunks.len(), 3);
        assert_eq!(q.back().map(|(t, _)| t), Some((n - 1) as Tick));
        for i in 0..CHUNK + 1 {
            assert_eq!(q.pop().map(|(t, _)| t), Some(i as Tick));
        }
        assert_eq!(q.chunks.len(), 2, "the first chunk freed once drained");
        for i in CHUNK + 1..n {
            assert_eq!(q.pop().map(|(t, _)| t), Some(i as Tick));
        }
        assert_eq!((q.pop(), q.len, q.chunks.len()), (None, 0, 1));
        // Alternating push and pop on a nearly empty queue reuses one chunk.
        for i in 0..10 {
            q.push((i, fp(i)));
            assert_eq!(q.pop().map(|(t, _)| t), Some(i));
        }
        assert_eq!(q.chunks.len(), 1);
        assert_eq!(q.len, 0);
    }

    #[test]
    fn a_fifo_drains_and_refills_across_chunk_boundaries() {
        let drain =
            |q: &mut Fifo| std::iter::from_fn(|| q.pop().map(|(t, _)| t)).collect::<Vec<_>>();
        let mut q = Fifo::default();
        // Exactly one chunk, drained on the boundary, then refilled.
        for i in 0..CHUNK as Tick {
            q.push((i, fp(i)));
        }
        assert_eq!(drain(&mut q), (0..CHUNK as Tick).collect::<Vec<_>>());
        assert_eq!(q.back(), None, "an empty queue has no last tick");
        q.push((7, fp(7)));
        assert_eq!(q.back().map(|(t, _)| t), Some(7));
        assert_eq!(drain(&mut q), vec![7]);
        // Part popped, then more than a chunk pushed behind: order kept.
        for i in 0..10 {
            q.push((i, fp(i)));
        }
        for i in 0..5 {
            assert_eq!(q.pop().map(|(t, _)| t), Some(i));
        }
        for i in 10..10 + CHUNK as Tick {
            q.push((i, fp(i)));
        }
        assert_eq!(q.back().map(|(t, _)| t), Some(9 + CHUNK as Tick));
        assert_eq!(drain(&mut q), (5..10 + CHUNK as Tick).collect::<Vec<_>>());
        assert_eq!((q.len, q.back()), (0, None));
    }

    #[test]
    fn the_soonest_expiry_comes_first_across_windows_and_reservations() {
        let mut index = ExpiryIndex::default();
        // Window 100 committed at 0 and 5; window 30 at 10; a reservation to 50.
        assert_eq!(index.commit(fp(1), 100, 100), 100);
        assert_eq!(index.commit(fp(2), 100, 105), 105);
        assert_eq!(index.commit(fp(3), 30, 40), 40);
        index.reserve(fp(4), 50);
        index.reserve(fp(5), 60);
        index.unreserve(fp(5), 60);
        assert_eq!(index.first(), Some(40));
        let order: Vec<(Tick, bool)> = std::iter::from_fn(|| index.pop_first())
            .map(|p| (p.expires, p.lazy))
            .collect();
        assert_eq!(
            order,
            vec![(40, true), (50, false), (100, true), (105, true)]
        );
        assert_eq!(index.first(), None);
        assert_eq!(index.places(), 0);
    }

    #[test]
    fn a_late_commit_never_expires_before_the_queue_behind_it() {
        let mut index = ExpiryIndex::default();
        assert_eq!(index.commit(fp(1), 100, 107), 107);
        // A request that read the clock at 5 but took the lock after: held to 107, not 105.
        assert_eq!(index.commit(fp(2), 100, 105), 107);
        assert_eq!(index.pop_first().map(|p| p.key), Some(fp(1)));
        assert_eq!(index.pop_first().map(|p| p.key), Some(fp(2)));
    }
}
