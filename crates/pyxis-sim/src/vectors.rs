//! Deterministic embedding vectors: a hashed bag of token unigrams and bigrams, unit length.
//!
//! Same tokens and model, same vector on any machine; texts sharing words get a positive cosine,
//! so similarity search over simulated vectors behaves plausibly. The model name seeds the
//! hashes, so two models disagree; the engine seed does not, so replicas agree.

use pyxis_sim_core::rng::{hash_combine, hash_str, mix64};
use pyxis_sim_core::tokenizer::BOS;

/// Bigrams count half as much as words: order matters a little, vocabulary a lot.
const BIGRAM_WEIGHT: f64 = 0.5;
const BIGRAM_TAG: u64 = 0xb16a_4a11_5eed_0002;
const EMPTY_TAG: u64 = 0xe4f7_7e47_0000_0003;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Vector length by model name, as the common embedding models have it: 1024 for `*large*`,
/// 768 for nomic-embed-text and `*-base*` (bge-base, e5-base), otherwise 384 (MiniLM,
/// bge-small). The first name that says something wins.
pub(crate) fn embedding_dim<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    for n in names {
        let n = n.to_ascii_lowercase();
        if n.contains("large") {
            return 1024;
        }
        if n.contains("nomic") || n.contains("-base") {
            return 768;
        }
        if n.contains("small") || n.contains("minilm") {
            return 384;
        }
    }
    384
}

/// Whether a name looks like an embedding model (what Ollama's `/api/show` would call an
/// `embedding` capability).
pub(crate) fn is_embedding_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["embed", "bge-", "nomic", "minilm", "e5-", "gte-"]
        .iter()
        .any(|k| n.contains(k))
}

/// Sorted keys → (key, count) runs.
fn runs(mut keys: Vec<u64>) -> Vec<(u64, u32)> {
    keys.sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::new();
    for k in keys {
        match out.last_mut() {
            Some((last, n)) if *last == k => *n += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Adds `w` times the pseudo-random direction of `key` (components uniform in [-1, 1), four per
/// hash) to `acc`.
fn add_direction(acc: &mut [f64], key: u64, w: f64) {
    for (j, chunk) in acc.chunks_mut(4).enumerate() {
        let r = mix64(key ^ (j as u64).wrapping_mul(GOLDEN));
        for (k, a) in chunk.iter_mut().enumerate() {
            let bits = (r >> (16 * k)) & 0xffff;
            *a += w * (bits as f64 / 32_768.0 - 1.0);
        }
    }
}

/// Scales to unit length (a zero vector stays zero).
pub(crate) fn normalize(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// The unit vector of `dim` components for `tokens` under `model`. BOS is ignored, so a text
/// and its `/tokenize` ids embed alike.
pub(crate) fn embed(tokens: &[u32], model: &str, dim: usize) -> Vec<f64> {
    let seed = hash_str(model);
    let words: Vec<u64> = tokens.iter().filter(|t| **t != BOS).map(|t| u64::from(*t)).collect();
    let unigrams = runs(words.iter().map(|w| hash_combine(seed, *w)).collect());
    let bigrams = runs(
        words
            .windows(2)
            .map(|p| hash_combine(hash_combine(seed ^ BIGRAM_TAG, p[0]), p[1]))
            .collect(),
    );
    let mut acc = vec![0.0; dim];
    if unigrams.is_empty() {
        add_direction(&mut acc, hash_combine(seed, EMPTY_TAG), 1.0);
    }
    // Sublinear term frequency, as in TF-IDF: a repeated word counts, but not linearly.
    let tf = |n: u32| 1.0 + f64::from(n).ln();
    for (k, n) in unigrams {
        add_direction(&mut acc, k, tf(n));
    }
    for (k, n) in bigrams {
        add_direction(&mut acc, k, BIGRAM_WEIGHT * tf(n));
    }
    normalize(&acc)
}

/// The first `d` components, renormalised (Matryoshka-style shortening, as OpenAI's
/// `dimensions` and Ollama's do).
pub(crate) fn shorten(v: &[f64], d: usize) -> Vec<f64> {
    normalize(&v[..d.min(v.len())])
}

/// Standard base64 (RFC 4648, padded) of the little-endian f32 bytes, as OpenAI's
/// `encoding_format: "base64"`.
pub(crate) fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes, ALPHABET)
}

fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], c.get(1).copied().unwrap_or(0), c.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in cases {
            assert_eq!(base64(i.as_bytes(), A), o);
        }
        // 1.0f32 is 00 00 80 3f little-endian.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    #[test]
    fn vectors_are_unit_deterministic_and_model_specific() {
        let a = embed(&[BOS, 100, 200, 300], "m", 384);
        assert_eq!(a.len(), 384);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-12);
        assert_eq!(a, embed(&[100, 200, 300], "m", 384), "BOS does not count");
        assert_ne!(a, embed(&[100, 200, 300], "other", 384));
        let empty = embed(&[BOS], "m", 7);
        assert!((cos(&empty, &empty) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn shared_words_raise_similarity_and_order_matters_a_little() {
        let a = embed(&[10, 11, 12, 13, 14, 15], "m", 768);
        let near = embed(&[10, 11, 12, 13, 14, 99], "m", 768);
        let far = embed(&[50, 51, 52, 53, 54, 55], "m", 768);
        let swapped = embed(&[15, 14, 13, 12, 11, 10], "m", 768);
        assert!(cos(&a, &near) > 0.5, "{}", cos(&a, &near));
        assert!(cos(&a, &far).abs() < 0.2, "{}", cos(&a, &far));
        let s = cos(&a, &swapped);
        assert!(s > 0.5 && s < 0.99, "{s}");
    }

    #[test]
    fn shorten_is_a_renormalised_prefix() {
        let a = embed(&[10, 11, 12], "m", 384);
        let s = shorten(&a, 64);
        assert_eq!(s.len(), 64);
        let scale = s[0] / a[0];
        assert!(s.iter().zip(&a).all(|(x, y)| (x - y * scale).abs() < 1e-12));
        assert!((cos(&s, &s) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn dimensions_follow_the_name() {
        assert_eq!(embedding_dim(["nomic-embed-text"]), 768);
        assert_eq!(embedding_dim(["BAAI/bge-base-en-v1.5"]), 768);
        assert_eq!(embedding_dim(["mxbai-embed-large"]), 1024);
        assert_eq!(embedding_dim(["all-minilm", "nomic"]), 384);
        assert_eq!(embedding_dim(["llama-3-8b", "qwen2.5-0.5b"]), 384);
        assert!(is_embedding_name("nomic-embed-text:latest"));
        assert!(!is_embedding_name("llama3:8b"));
    }
}
