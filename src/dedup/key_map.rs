//! The memory store's map from key fingerprint to entry, split into shards so that growing it
//! never stalls a request.
//!
//! One `HashMap` doubles its table when it fills: every entry is moved while the store's lock
//! is held. Near the default cap that is a 900,000-entry move and a fresh 80 MB table to fault
//! in: measured in a 10-minute soak at 5,000 requests/s, every request stalled for 160–340 ms
//! at the 458,752nd and 917,504th id (with 503s from the in-flight cap). Split by the
//! fingerprint's low bits into `SHARDS` maps, each grows on its own, a 64th of the work at a
//! time, and since shard sizes differ by a few hundred the growths are spread over thousands
//! of inserts. Lookups cost one mask more.

use std::collections::HashMap;

use super::memory::Fingerprint;

/// A map from fingerprint to `V`, sharded.
#[derive(Debug)]
pub struct KeyMap<V> {
    shards: Vec<HashMap<Fingerprint, V>>,
    len: usize,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            shards: (0..Self::SHARDS).map(|_| HashMap::new()).collect(),
            len: 0,
        }
    }
}

impl<V> KeyMap<V> {
    /// Number of shards: a power of two.
    pub const SHARDS: usize = 64;

    fn shard(&self, key: &Fingerprint) -> Option<&HashMap<Fingerprint, V>> {
        self.shards.get(key.low_bits() as usize % Self::SHARDS)
    }

    fn shard_mut(&mut self, key: &Fingerprint) -> Option<&mut HashMap<Fingerprint, V>> {
        self.shards.get_mut(key.low_bits() as usize % Self::SHARDS)
    }

    /// The value under `key`.
    pub fn get(&self, key: &Fingerprint) -> Option<&V> {
        self.shard(key)?.get(key)
    }

    /// The value under `key`, to change in place.
    pub fn get_mut(&mut self, key: &Fingerprint) -> Option<&mut V> {
        self.shard_mut(key)?.get_mut(key)
    }

    /// Puts `value` under `key`, returning the value it replaced.
    pub fn insert(&mut self, key: Fingerprint, value: V) -> Option<V> {
        let old = self.shard_mut(&key)?.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Takes the value under `key` out.
    pub fn remove(&mut self, key: &Fingerprint) -> Option<V> {
        let old = self.shard_mut(key)?.remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every entry, in no particular order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (&Fingerprint, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// The entries of shard `index` (`0..SHARDS`; none past it).
    pub fn shard_iter(&self, index: usize) -> impl Iterator<Item = (&Fingerprint, &V)> {
        self.shards.get(index).into_iter().flat_map(|s| s.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_behaves_like_one_map() {
        let mut map = KeyMap::default();
        let keys: Vec<Fingerprint> = (0..1000).map(|i| Fingerprint::of(&i.to_string())).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.insert(*k, i), None);
        }
        assert_eq!(map.insert(keys[3], 33), Some(3));
        assert_eq!(map.len(), 1000);
        assert_eq!(map.get(&keys[3]), Some(&33));
        assert_eq!(map.remove(&keys[3]), Some(33));
        assert_eq!(map.remove(&keys[3]), None);
        assert_eq!(map.get(&keys[3]), None);
        assert_eq!(map.len(), 999);
        assert_eq!(map.iter().count(), 999);
        let by_shard: usize = (0..KeyMap::<usize>::SHARDS)
            .map(|i| map.shard_iter(i).count())
            .sum();
        assert_eq!(by_shard, 999);
        // The keys spread over every shard.
        assert!(map.shards.iter().all(|s| !s.is_empty()));
    }
}
