//! Model profiles: architecture numbers from each model's published `config.json`.

use serde::Serialize;

/// One model as the timing and memory model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    /// Profile key, e.g. `llama-3-8b`.
    pub name: &'static str,
    /// Hugging Face repository the numbers come from (also the `root` vLLM reports).
    pub hf_id: &'static str,
    /// Architecture family (`llama`, `qwen2`, `mistral`): Ollama's `details.family`.
    pub family: &'static str,
    /// Total parameters.
    pub params: f64,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden: u32,
    /// Attention (query) heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Vocabulary size (token ids are below it).
    pub vocab: u32,
    /// Context length vLLM serves by default (`max_position_embeddings`).
    pub max_model_len: u32,
    /// Bytes per weight and per KV element (BF16 = 2).
    pub dtype_bytes: f64,
}

impl ModelProfile {
    /// Bytes of weights read per forward pass.
    pub fn weight_bytes(&self) -> f64 {
        self.params * self.dtype_bytes
    }

    /// KV-cache bytes per token: K and V, every layer, every KV head.
    pub fn kv_bytes_per_token(&self) -> f64 {
        2.0 * f64::from(self.layers) * f64::from(self.kv_heads) * f64::from(self.head_dim) * self.dtype_bytes
    }

    /// Matmul FLOPs per token through the weights (2 per parameter: multiply and add).
    pub fn flops_per_token(&self) -> f64 {
        2.0 * self.params
    }

    /// Attention FLOPs per (query token, context token) pair: QKᵀ and AV, 2 FLOPs each per
    /// element, every layer and head.
    pub fn attn_flops_per_pair(&self) -> f64 {
        4.0 * f64::from(self.layers) * f64::from(self.heads) * f64::from(self.head_dim)
    }
}

const B: f64 = 1e9;

macro_rules! model {
    ($name:expr, $hf:expr, $fam:expr, $params:expr, $layers:expr, $hidden:expr, $heads:expr, $kv:expr, $hd:expr, $vocab:expr, $ctx:expr) => {
        ModelProfile {
            name: $name,
            hf_id: $hf,
            family: $fam,
            params: $params,
            layers: $layers,
            hidden: $hidden,
            heads: $heads,
            kv_heads: $kv,
            head_dim: $hd,
            vocab: $vocab,
            max_model_len: $ctx,
            dtype_bytes: 2.0,
        }
    };
}

static MODELS: &[ModelProfile] = &[
    // The random-weight model of shared/runtimes/make_tiny_model.py (0.82 M parameters; vLLM CPU
    // serves it in BF16 with --max-model-len 512).
    model!("tiny", "tiny-llama", "llama", 819_840.0, 2, 128, 2, 1, 64, 2048, 512),
    model!(
        "qwen2.5-0.5b",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "qwen2",
        0.494 * B,
        24,
        896,
        14,
        2,
        64,
        151_936,
        32_768
    ),
    model!(
        "llama-3.2-1b",
        "meta-llama/Llama-3.2-1B-Instruct",
        "llama",
        1.236 * B,
        16,
        2048,
        32,
        8,
        64,
        128_256,
        131_072
    ),
    model!(
        "llama-3.2-3b",
        "meta-llama/Llama-3.2-3B-Instruct",
        "llama",
        3.213 * B,
        28,
        3072,
        24,
        8,
        128,
        128_256,
        131_072
    ),
    model!(
        "mistral-7b",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "mistral",
        7.248 * B,
        32,
        4096,
        32,
        8,
        128,
        32_768,
        32_768
    ),
    model!(
        "qwen2.5-7b",
        "Qwen/Qwen2.5-7B-Instruct",
        "qwen2",
        7.616 * B,
        28,
        3584,
        28,
        4,
        128,
        152_064,
        32_768
    ),
    model!(
        "llama-3-8b",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "llama",
        8.030 * B,
        32,
        4096,
        32,
        8,
        128,
        128_256,
        8192
    ),
    model!(
        "llama-3.1-8b",
        "meta-llama/Llama-3.1-8B-Instruct",
        "llama",
        8.030 * B,
        32,
        4096,
        32,
        8,
        128,
        128_256,
        131_072
    ),
    model!(
        "qwen2.5-14b",
        "Qwen/Qwen2.5-14B-Instruct",
        "qwen2",
        14.770 * B,
        48,
        5120,
        40,
        8,
        128,
        152_064,
        32_768
    ),
    model!(
        "llama-3-70b",
        "meta-llama/Meta-Llama-3-70B-Instruct",
        "llama",
        70.554 * B,
        80,
        8192,
        64,
        8,
        128,
        128_256,
        8192
    ),
    model!(
        "llama-3.1-70b",
        "meta-llama/Llama-3.1-70B-Instruct",
        "llama",
        70.554 * B,
        80,
        8192,
        64,
        8,
        128,
        128_256,
        131_072
    ),
];

/// All model profiles.
pub fn model_profiles() -> &'static [ModelProfile] {
    MODELS
}

/// Profile keys, in declaration order.
pub fn model_names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

/// Looks a profile up by key or Hugging Face id, ignoring case (`Meta-Llama-3-8B-Instruct` finds
/// `llama-3-8b`).
pub fn find_model(name: &str) -> Option<&'static ModelProfile> {
    let n = name.trim().to_ascii_lowercase();
    MODELS
        .iter()
        .find(|m| m.name == n || m.hf_id.to_ascii_lowercase() == n)
        .or_else(|| {
            let tail = n.rsplit('/').next().unwrap_or(&n);
            MODELS.iter().find(|m| {
                let hf_tail = m.hf_id.rsplit('/').next().unwrap_or(m.hf_id).to_ascii_lowercase();
                hf_tail == tail
            })
        })
}

/// The profile nearest in parameter count (by ratio, so 13B is nearer 14.8B than 8B), never `tiny`
/// unless asked for something under 10 M parameters.
pub fn nearest_model(parameters: u64) -> &'static ModelProfile {
    let p = (parameters.max(1)) as f64;
    let mut best = &MODELS[0];
    let mut best_d = f64::INFINITY;
    for m in MODELS {
        let d = (m.params / p).ln().abs();
        // Prefer the shorter-context twin on ties (declared first).
        if d < best_d - 1e-12 {
            best = m;
            best_d = d;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_sizes_match_published_figures() {
        let m = find_model("llama-3-8b").expect("profile");
        // 128 KiB per token is the figure vLLM logs for Llama-3-8B in BF16.
        assert_eq!(m.kv_bytes_per_token(), 131_072.0);
        assert!((m.weight_bytes() / 1e9 - 16.06).abs() < 0.01);
        let t = find_model("tiny").expect("tiny");
        // 512 B/token: 1 GiB of KV = 2,097,152 tokens, as vLLM CPU reports (cache_config_info).
        assert_eq!(t.kv_bytes_per_token(), 512.0);
    }

    #[test]
    fn lookup_and_nearest() {
        assert_eq!(
            find_model("Meta-Llama-3-8B-Instruct").map(|m| m.name),
            Some("llama-3-8b")
        );
        assert_eq!(
            find_model("meta-llama/Llama-3.1-70B-Instruct").map(|m| m.name),
            Some("llama-3.1-70b")
        );
        assert!(find_model("gpt-4").is_none());
        assert_eq!(nearest_model(8_000_000_000).name, "llama-3-8b");
        assert_eq!(nearest_model(13_000_000_000).name, "qwen2.5-14b");
        assert_eq!(nearest_model(70_000_000_000).name, "llama-3-70b");
        assert_eq!(nearest_model(500_000).name, "tiny");
        assert_eq!(nearest_model(1_100_000_000).name, "llama-3.2-1b");
    }
}
