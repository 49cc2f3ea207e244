//! Deterministic output: which token comes at each position, and where a request stops by itself.

use serde::{Deserialize, Serialize};

use crate::rng::{hash_combine, mix64};
use crate::tokenizer::{FIRST_WORD, PUNCT, WORDS};

/// When a request that does not set `ignore_eos` stops before `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopPolicy {
    /// Never emits EOS: every request runs to `max_tokens` (what a random-weight model does).
    Never,
    /// Emits EOS after a length drawn per request, log-uniform in `min..=max` and fixed by the
    /// prompt and seed (so requests with `max_tokens <= min` always get exactly `max_tokens`).
    Natural {
        /// Shortest natural answer, tokens.
        min: u32,
        /// Longest natural answer, tokens.
        max: u32,
    },
}

impl Default for StopPolicy {
    /// Chat answers of 64..=512 tokens, a typical ShareGPT-like spread.
    fn default() -> Self {
        StopPolicy::Natural { min: 64, max: 512 }
    }
}

/// Key that fixes a request's whole output: the engine seed, the request seed, the adapter, and
/// the prompt (as a model at temperature 0, the same prompt gives the same answer).
pub fn request_key(engine_seed: u64, request_seed: Option<u64>, lora: Option<&str>, prompt: &[u32]) -> u64 {
    let mut h = mix64(engine_seed ^ 0x243f_6a88_85a3_08d3);
    h = hash_combine(h, request_seed.map_or(0x13198a2e, |s| mix64(s).wrapping_add(1)));
    if let Some(l) = lora {
        h = hash_combine(h, crate::rng::hash_str(l));
    }
    let mut p = 0u64;
    for t in prompt {
        p = crate::rng::fx_step(p, u64::from(*t));
    }
    hash_combine(h, mix64(p ^ prompt.len() as u64))
}

/// Output token at position `index` (0-based) for the request keyed `key`. Words follow a skewed
/// (Zipf-like) distribution; a comma or full stop follows some words.
#[inline]
pub fn token_at(key: u64, index: u32) -> u32 {
    let h = mix64(key ^ (u64::from(index) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    if index > 0 && h.is_multiple_of(13) {
        return FIRST_WORD + (WORDS.len() + (h >> 40) as usize % PUNCT.len()) as u32;
    }
    let u = ((h >> 11) as f64) * (1.0 / (1u64 << 53) as f64);
    let i = ((u * u) * WORDS.len() as f64) as usize;
    FIRST_WORD + i.min(WORDS.len() - 1) as u32
}

/// How many tokens the request emits before EOS under `policy` (None: it never stops by itself).
pub fn natural_len(key: u64, policy: StopPolicy) -> Option<u32> {
    match policy {
        StopPolicy::Never => None,
        StopPolicy::Natural { min, max } => {
            let (lo, hi) = (f64::from(min.max(1)), f64::from(max.max(min).max(1)));
            let u = ((mix64(key ^ 0xa409_3822_299f_31d0) >> 11) as f64) * (1.0 / (1u64 << 53) as f64);
            Some((lo * (hi / lo).powf(u)).round().clamp(lo, hi) as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{Tokenizer, render_token};

    #[test]
    fn output_is_a_function_of_key_and_position() {
        let k1 = request_key(1, None, None, &[1, 2, 3]);
        let k2 = request_key(1, None, None, &[1, 2, 4]);
        let k3 = request_key(2, None, None, &[1, 2, 3]);
        let k4 = request_key(1, None, Some("lora-a"), &[1, 2, 3]);
        let out = |k| (0..32).map(|i| token_at(k, i)).collect::<Vec<_>>();
        assert_eq!(out(k1), out(request_key(1, None, None, &[1, 2, 3])));
        assert_ne!(out(k1), out(k2));
        assert_ne!(out(k1), out(k3));
        assert_ne!(out(k1), out(k4));
        let text: String = out(k1)
            .iter()
            .enumerate()
            .map(|(i, t)| render_token(*t, i == 0))
            .collect();
        assert_eq!(Tokenizer::new(2048).encode(&text), out(k1));
    }

    #[test]
    fn natural_lengths_stay_in_range() {
        let p = StopPolicy::Natural { min: 64, max: 512 };
        let mut seen = std::collections::HashSet::new();
        for k in 0..2000u64 {
            let n = natural_len(mix64(k), p).expect("natural");
            assert!((64..=512).contains(&n));
            seen.insert(n / 64);
        }
        assert!(seen.len() >= 7, "spread over the range");
        assert_eq!(natural_len(5, StopPolicy::Never), None);
    }
}
