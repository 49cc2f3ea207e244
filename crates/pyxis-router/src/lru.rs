//! Bounded, approximately-LRU maps: two generations, the older dropped whole when the newer fills.
//!
//! Cheaper than a linked-list LRU (no per-entry pointers, no allocation once both tables have grown) and
//! close enough for a cache *estimate*: an entry touched within the last `capacity / 2` insertions is
//! always kept, one untouched for `capacity` insertions is always gone.

use std::collections::HashMap;
use std::hash::Hash;

use crate::hash::Keyed;

/// A bounded map with generational eviction.
#[derive(Debug, Clone)]
pub(crate) struct GenMap<K, V> {
    new: HashMap<K, V, Keyed>,
    old: HashMap<K, V, Keyed>,
    half: usize,
}

impl<K: Hash + Eq + Copy, V: Copy> GenMap<K, V> {
    /// At most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize, key: Keyed) -> Self {
        GenMap {
            new: HashMap::with_hasher(key),
            old: HashMap::with_hasher(key),
            half: (capacity / 2).max(1),
        }
    }

    /// Changes the bound; an over-full table is aged at the next insertion.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.half = (capacity / 2).max(1);
    }

    /// The value, looking in the newer generation first.
    #[inline]
    pub(crate) fn get(&self, k: &K) -> Option<V> {
        self.new.get(k).or_else(|| self.old.get(k)).copied()
    }

    #[inline]
    pub(crate) fn contains(&self, k: &K) -> bool {
        self.new.contains_key(k) || self.old.contains_key(k)
    }

    /// Inserts or refreshes `k` in the newer generation.
    pub(crate) fn insert(&mut self, k: K, v: V) {
        if self.new.len() >= self.half && !self.new.contains_key(&k) {
            // Reuse the old table's allocation for the next generation.
            std::mem::swap(&mut self.new, &mut self.old);
            self.new.clear();
        }
        self.new.insert(k, v);
    }

    /// Entries held (an entry in both generations counts twice).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.new.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_recent_entries_survive() {
        let mut m: GenMap<u64, u32> = GenMap::new(100, Keyed(9));
        for i in 0..1000u64 {
            m.insert(i, i as u32);
            // Touching 0 keeps it through every generation change.
            if i % 10 == 0 {
                m.insert(0, 0);
            }
            assert!(m.len() <= 101, "{}", m.len());
        }
        assert!(m.contains(&0));
        assert!(m.contains(&999) && m.contains(&950));
        assert!(!m.contains(&500), "untouched for capacity insertions: gone");
        assert_eq!(m.get(&998), Some(998));
    }

    #[test]
    fn resize() {
        let mut m: GenMap<u64, u32> = GenMap::new(10, Keyed(1));
        for i in 0..8u64 {
            m.insert(i, 1);
        }
        m.set_capacity(2);
        m.insert(100, 1);
        m.insert(101, 1);
        assert!(m.len() <= 3);
        assert!(m.contains(&100) && m.contains(&101) && !m.contains(&0));
    }
}
