//! Prompt-prefix block hashes and the keyed hasher of the router's tables.
//!
//! Block hashes are chained: block `i`'s hash covers every byte before its end, so equal hashes at index `i`
//! mean (up to 64-bit collisions) equal prompts up to there, which is what a prefix cache matches on.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Block size for [`prefix_blocks`] callers without a reason to choose: about 128 tokens of text.
pub const DEFAULT_BLOCK_BYTES: usize = 512;

const K0: u64 = 0x9e37_79b9_7f4a_7c15;
const K1: u64 = 0xc2b2_ae3d_27d4_eb4f;
const K2: u64 = 0x1656_67b1_9e37_79f9;
const K3: u64 = 0x27d4_eb2f_1656_67c5;
const CHAIN_SEED: u64 = 0x7079_7869_735f_7078; // "pyxis_px"

/// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[inline]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = b.len().min(8);
    w[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(w)
}

#[inline]
fn lane(h: u64, w: u64, k: u64) -> u64 {
    (h ^ w).wrapping_mul(k).rotate_left(29)
}

/// Hash of `bytes` continuing from `prev`. Four independent lanes keep the multiplier pipeline full, so a
/// 2k-token prompt hashes in well under a microsecond.
#[inline]
fn hash_bytes(prev: u64, bytes: &[u8]) -> u64 {
    let (mut a, mut b, mut c, mut d) = (prev ^ K0, prev ^ K1, prev ^ K2, prev ^ K3);
    let mut chunks = bytes.chunks_exact(32);
    for ch in &mut chunks {
        a = lane(a, word(&ch[0..8]), K0);
        b = lane(b, word(&ch[8..16]), K1);
        c = lane(c, word(&ch[16..24]), K2);
        d = lane(d, word(&ch[24..32]), K3);
    }
    for (i, w) in chunks.remainder().chunks(8).enumerate() {
        // Lanes keep their roles so "ab" + tail and "a" + "b" + tail never coincide by construction.
        match i {
            0 => a = lane(a, word(w), K0),
            1 => b = lane(b, word(w), K1),
            _ => c = lane(c, word(w), K2),
        }
    }
    let len = bytes.len() as u64;
    fmix64(fmix64(a ^ len) ^ fmix64(b).rotate_left(17) ^ fmix64(c).rotate_left(31) ^ fmix64(d).rotate_left(47))
}

/// Chained hashes of the prompt's whole `block_bytes`-sized blocks (a trailing partial block is left out:
/// it is rarely shared and engines do not cache it either). The router's approximate prefix index is keyed
/// by these. One allocation, the returned `Vec`; `block_bytes == 0` gives an empty one.
pub fn prefix_blocks(prompt: &[u8], block_bytes: usize) -> Vec<u64> {
    if block_bytes == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(prompt.len() / block_bytes);
    let mut h = CHAIN_SEED;
    for block in prompt.chunks_exact(block_bytes) {
        h = hash_bytes(h, block);
        out.push(h);
    }
    out
}

/// A hash of `s` under `seed`, for session ids (so the session table stores 8 bytes, not the string).
pub(crate) fn hash_str(seed: u64, s: &str) -> u64 {
    hash_bytes(seed, s.as_bytes())
}

/// Builds [`KeyedHasher`]s with a per-router secret key, so prompts crafted to collide in the tables'
/// buckets cannot be found offline (the block hashes themselves are unkeyed and public).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed(pub u64);

impl Keyed {
    /// A key from the standard library's per-process random state (the same source `HashMap` uses).
    pub(crate) fn random() -> Self {
        Keyed(RandomState::new().hash_one(CHAIN_SEED))
    }
}

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

/// Cheap keyed hasher: one finaliser per `u64` key, the lane hash for byte strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedHasher(u64);

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(self.0, bytes);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = fmix64(self.0 ^ v);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_chain_and_skip_the_partial_tail() {
        let a = b"system prompt shared by many requests, then the user's own question #1".repeat(10);
        let mut b = a.clone();
        let n = a.len();
        b[n - 5] = b'X';
        let (ha, hb) = (prefix_blocks(&a, 64), prefix_blocks(&b, 64));
        assert_eq!(ha.len(), n / 64);
        // The change sits in the partial tail or the last block: every earlier block agrees.
        let differ = ha.iter().zip(&hb).filter(|(x, y)| x != y).count();
        assert!(differ <= 1, "{differ}");
        let mut c = a.clone();
        c[3] = b'!';
        let hc = prefix_blocks(&c, 64);
        assert!(
            ha.iter().zip(&hc).all(|(x, y)| x != y),
            "a change early moves every later block"
        );
        assert!(prefix_blocks(&a, 0).is_empty());
        assert!(prefix_blocks(b"short", 64).is_empty());
    }

    #[test]
    fn equal_blocks_at_other_positions_hash_apart() {
        let p = [7u8; 1024];
        let h = prefix_blocks(&p, 128);
        let mut d = h.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), h.len());
    }

    #[test]
    fn odd_block_sizes_use_every_byte() {
        for bs in [1usize, 7, 9, 33, 45, 100] {
            let p: Vec<u8> = (0..bs * 3).map(|i| i as u8).collect();
            let mut q = p.clone();
            q[bs - 1] ^= 1;
            assert_ne!(prefix_blocks(&p, bs)[0], prefix_blocks(&q, bs)[0], "block size {bs}");
        }
    }

    #[test]
    fn keyed_hashes_depend_on_the_key() {
        assert_ne!(Keyed(1).hash_one(5u64), Keyed(2).hash_one(5u64));
        assert_ne!(hash_str(1, "s"), hash_str(2, "s"));
        assert_eq!(hash_str(3, "s"), hash_str(3, "s"));
    }
}
