//! Paged KV cache: fixed blocks, reference counts, a hash-chained prefix cache and LRU eviction.
//!
//! As in vLLM's V1 block pool: a block whose tokens are all computed gets a hash chained on its
//! parent's, and stays findable by that hash after its request frees it, until a new allocation
//! evicts it. Free blocks form one queue: allocation takes from the front (least recently freed),
//! freeing appends at the back, and a request's blocks are freed last-first so its tail goes before
//! its shared prefix.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Index of a block.
pub type BlockId = u32;

const NIL: u32 = u32::MAX;

/// Keys are already well-mixed 64-bit hashes; hashing them again would only cost time.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FastMap = HashMap<u64, BlockId, BuildHasherDefault<IdentityHasher>>;

/// The block pool of one engine.
#[derive(Debug, Clone)]
pub struct BlockPool {
    block_size: u32,
    ref_cnt: Vec<u32>,
    /// Content hash of a full, computed block (`None` while being filled or after eviction).
    hash: Vec<Option<u64>>,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    num_free: u32,
    cached: FastMap,
    evictions: u64,
}

impl BlockPool {
    /// `num_blocks` blocks of `block_size` tokens, all free.
    pub fn new(num_blocks: u32, block_size: u32) -> Self {
        let n = num_blocks as usize;
        let mut p = BlockPool {
            block_size: block_size.max(1),
            ref_cnt: vec![0; n],
            hash: vec![None; n],
            prev: vec![NIL; n],
            next: vec![NIL; n],
            head: NIL,
            tail: NIL,
            num_free: 0,
            cached: FastMap::default(),
            evictions: 0,
        };
        for b in 0..num_blocks {
            p.push_back(b);
        }
        p
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Total blocks.
    pub fn num_blocks(&self) -> u32 {
        self.ref_cnt.len() as u32
    }

    /// Blocks with no owner (cached or not).
    pub fn num_free(&self) -> u32 {
        self.num_free
    }

    /// Blocks with at least one owner.
    pub fn num_used(&self) -> u32 {
        self.num_blocks() - self.num_free
    }

    /// Blocks findable by hash (in use or free).
    pub fn num_cached(&self) -> usize {
        self.cached.len()
    }

    /// Cached blocks evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Share of blocks in use, 0..=1: `vllm:kv_cache_usage_perc`.
    pub fn usage(&self) -> f64 {
        if self.ref_cnt.is_empty() {
            return 0.0;
        }
        f64::from(self.num_used()) / f64::from(self.num_blocks())
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_size)
    }

    fn push_back(&mut self, b: BlockId) {
        let i = b as usize;
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        if self.tail == NIL {
            self.head = b;
        } else {
            self.next[self.tail as usize] = b;
        }
        self.tail = b;
        self.num_free += 1;
    }

    fn unlink(&mut self, b: BlockId) {
        let i = b as usize;
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
        self.num_free -= 1;
    }

    /// The block cached under `hash`, if any.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<BlockId> {
        self.cached.get(&hash).copied()
    }

    /// Length of the run of leading `hashes` that are cached.
    pub fn count_hits(&self, hashes: &[u64]) -> usize {
        hashes.iter().take_while(|h| self.cached.contains_key(h)).count()
    }

    /// Of the leading `hits` hashes, how many sit in free blocks (taking them shrinks the free pool).
    pub fn free_among_hits(&self, hashes: &[u64]) -> u32 {
        hashes
            .iter()
            .filter_map(|h| self.lookup(*h))
            .filter(|b| self.ref_cnt[*b as usize] == 0)
            .count() as u32
    }

    /// Takes a reference on the cached block of each hash (all must be cached) and appends them.
    pub fn take_hits(&mut self, hashes: &[u64], out: &mut Vec<BlockId>) {
        for h in hashes {
            if let Some(b) = self.lookup(*h) {
                if self.ref_cnt[b as usize] == 0 {
                    self.unlink(b);
                }
                self.ref_cnt[b as usize] += 1;
                out.push(b);
            }
        }
    }

    /// Allocates `n` fresh blocks onto `out`, evicting the least recently freed cached blocks;
    /// returns false (allocating nothing) when fewer than `n` are free.
    pub fn allocate(&mut self, n: u32, out: &mut Vec<BlockId>) -> bool {
        if n > self.num_free {
            return false;
        }
        for _ in 0..n {
            let b = self.head;
            self.unlink(b);
            if let Some(h) = self.hash[b as usize].take() {
                // Only drop the map entry if it still points here (a twin may have replaced it).
                if self.cached.get(&h) == Some(&b) {
                    self.cached.remove(&h);
                }
                self.evictions += 1;
            }
            self.ref_cnt[b as usize] = 1;
            out.push(b);
        }
        true
    }

    /// Marks a full, computed block as findable under `hash`. If another block already holds the
    /// same content, the first one stays the cached copy (vLLM keeps the existing entry).
    pub fn cache(&mut self, b: BlockId, hash: u64) {
        if self.hash[b as usize].is_some() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.cached.entry(hash) {
            e.insert(b);
            self.hash[b as usize] = Some(hash);
        }
    }

    /// Drops one reference on each block, last first; blocks with no owner join the free queue and
    /// keep their hash (still findable until evicted).
    pub fn free(&mut self, blocks: &[BlockId]) {
        for b in blocks.iter().rev() {
            let i = *b as usize;
            debug_assert!(self.ref_cnt[i] > 0, "double free of block {b}");
            if self.ref_cnt[i] == 0 {
                continue;
            }
            self.ref_cnt[i] -= 1;
            if self.ref_cnt[i] == 0 {
                self.push_back(*b);
            }
        }
    }

    /// Owners of block `b` (for invariant checks).
    pub fn ref_count(&self, b: BlockId) -> u32 {
        self.ref_cnt[b as usize]
    }

    /// Checks the free queue against the reference counts (tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut n = 0u32;
        let mut cur = self.head;
        let mut prev = NIL;
        while cur != NIL {
            if self.ref_cnt[cur as usize] != 0 {
                return Err(format!("block {cur} is free but has owners"));
            }
            if self.prev[cur as usize] != prev {
                return Err(format!("broken back link at {cur}"));
            }
            n += 1;
            if n > self.num_blocks() {
                return Err("cycle in free queue".into());
            }
            prev = cur;
            cur = self.next[cur as usize];
        }
        if n != self.num_free {
            return Err(format!("free queue has {n} blocks, counter says {}", self.num_free));
        }
        let zero = self.ref_cnt.iter().filter(|r| **r == 0).count() as u32;
        if zero != n {
            return Err(format!("{zero} blocks without owner, {n} in the free queue"));
        }
        for (h, b) in &self.cached {
            if self.hash[*b as usize] != Some(*h) {
                return Err(format!("cache entry {h:x} points at block {b} with another hash"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_blocks_survive_free_until_evicted_lru() {
        let mut p = BlockPool::new(4, 16);
        let mut a = Vec::new();
        assert!(p.allocate(2, &mut a));
        p.cache(a[0], 100);
        p.cache(a[1], 101);
        p.free(&a);
        assert_eq!(p.num_free(), 4);
        assert_eq!(p.count_hits(&[100, 101, 102]), 2);
        // Two fresh allocations use the never-cached blocks first.
        let mut b = Vec::new();
        assert!(p.allocate(2, &mut b));
        assert_eq!(p.count_hits(&[100, 101]), 2);
        // The third evicts the tail block of the freed request first (freed last-first).
        assert!(p.allocate(1, &mut b));
        assert_eq!(p.count_hits(&[100]), 1);
        assert_eq!(p.count_hits(&[101]), 0);
        assert_eq!(p.evictions(), 1);
        assert!(!p.allocate(2, &mut b));
        p.check_invariants().expect("invariants");
    }

    #[test]
    fn hits_are_shared_and_ref_counted() {
        let mut p = BlockPool::new(8, 4);
        let mut a = Vec::new();
        assert!(p.allocate(1, &mut a));
        p.cache(a[0], 7);
        let mut b = Vec::new();
        p.take_hits(&[7], &mut b);
        assert_eq!(b, a);
        assert_eq!(p.ref_count(a[0]), 2);
        p.free(&a);
        assert_eq!(p.num_free(), 7);
        p.free(&b);
        assert_eq!(p.num_free(), 8);
        assert_eq!(p.free_among_hits(&[7]), 1);
        p.check_invariants().expect("invariants");
    }
}
