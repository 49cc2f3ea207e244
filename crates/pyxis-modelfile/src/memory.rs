//! Memory a model needs (weights, KV cache, overhead) and whether it fits a class of accelerator.

use crate::info::{ACCELERATORS, Fit, Format, GIB, InspectOptions, MemoryEstimate, ModelInfo, TP_COUNTS};

fn gib_to_bytes(gib: f64) -> u64 {
    if gib.is_finite() && gib > 0.0 {
        // Saturates for absurd values instead of wrapping.
        (gib * GIB) as u64
    } else {
        0
    }
}

fn overhead(weights_on_device: u64, opts: &InspectOptions) -> u64 {
    let fraction = if opts.overhead_fraction.is_finite() && opts.overhead_fraction > 0.0 {
        (weights_on_device as f64 * opts.overhead_fraction) as u64
    } else {
        0
    };
    gib_to_bytes(opts.overhead_fixed_gib).saturating_add(fraction)
}

/// The rule `overhead` applies, in words.
fn overhead_rule(opts: &InspectOptions) -> String {
    format!(
        "{} GiB + {}% of the weights, per device",
        opts.overhead_fixed_gib,
        opts.overhead_fraction * 100.0
    )
}

/// Why `count`-way tensor parallelism cannot run this model, if it cannot. vLLM needs the attention
/// heads to split evenly, and the KV heads to split evenly or be replicated evenly; llama.cpp splits
/// GGUF models by layers, which has no such rule.
fn tp_problem(info: &ModelInfo, count: u32) -> Option<String> {
    if count <= 1 || info.format == Format::Gguf {
        return None;
    }
    if let Some(h) = info.attention_heads
        && !h.is_multiple_of(count)
    {
        return Some(format!("{h} attention heads do not split over {count} devices"));
    }
    if info.kv_lora_rank.is_none()
        && let Some(k) = info.kv_heads
        && ((k >= count && !k.is_multiple_of(count)) || (k < count && !count.is_multiple_of(k)))
    {
        return Some(format!("{k} KV heads do not split over {count} devices"));
    }
    None
}

/// Whether the model fits on `count` devices of `memory_gib` each, at batch 1 and the full context
/// (`opts.context_tokens`, else the model's).
pub fn fit(info: &ModelInfo, accelerator: &str, memory_gib: f64, count: u32, opts: &InspectOptions) -> Fit {
    let count = count.max(1);
    let weights = info.weights_bytes.div_ceil(u64::from(count));
    let over = overhead(weights, opts);
    // vLLM keeps at least one KV head per device (replicating when there are fewer heads than
    // devices) and keeps the whole MLA latent on every device; llama.cpp's layer split divides it.
    let kv_ways = match (info.format, info.kv_lora_rank, info.kv_heads) {
        (Format::Gguf, _, _) => count,
        (_, Some(_), _) => 1,
        (_, None, Some(k)) => k.min(count),
        (_, None, None) => count,
    };
    let kv_token = info.kv_bytes_per_token.map(|k| k.div_ceil(u64::from(kv_ways.max(1))));
    let context = opts.context_tokens.or(info.context_length);
    let kv_full = match (kv_token, context) {
        (Some(k), Some(c)) => k.saturating_mul(u64::from(c)),
        _ => 0,
    };
    let need = weights.saturating_add(over).saturating_add(kv_full);
    let have = gib_to_bytes(memory_gib);
    let left = have.checked_sub(weights.saturating_add(over));
    let max_context_tokens = match (kv_token, left) {
        (Some(k), Some(l)) if k > 0 => Some(l / k),
        _ => None,
    };
    let problem = tp_problem(info, count);
    let fits = problem.is_none() && need <= have;
    let reason = match problem {
        Some(p) => Some(p),
        None if !fits => Some(format!(
            "needs {:.1} GiB per device, has {memory_gib}",
            need as f64 / GIB
        )),
        None => None,
    };
    Fit {
        accelerator: accelerator.to_string(),
        count,
        memory_gib,
        per_device_bytes: need,
        fits,
        max_context_tokens,
        reason,
    }
}

/// Fills `info.memory` and `info.fits` from the facts already in `info`.
pub(crate) fn estimate(info: &mut ModelInfo, opts: &InspectOptions) {
    let context = opts.context_tokens.or(info.context_length);
    let kv_full = match (info.kv_bytes_per_token, context) {
        (Some(k), Some(c)) => Some(k.saturating_mul(u64::from(c))),
        _ => None,
    };
    let over = overhead(info.weights_bytes, opts);
    info.memory = MemoryEstimate {
        weights_bytes: info.weights_bytes,
        kv_bytes_per_token: info.kv_bytes_per_token,
        context_tokens: context,
        kv_bytes_full_context: kv_full,
        overhead_bytes: over,
        overhead_rule: overhead_rule(opts),
        total_bytes: info
            .weights_bytes
            .saturating_add(kv_full.unwrap_or(0))
            .saturating_add(over),
    };
    let mut fits = vec![fit(info, "cpu", opts.cpu_memory_gib, 1, opts)];
    for class in ACCELERATORS {
        for count in TP_COUNTS {
            fits.push(fit(info, class.name, class.memory_gib, count, opts));
        }
    }
    info.fits = fits;
}

/// KV cache bytes per token for a Hugging Face config: K and V for every KV head of every layer, or
/// the MLA latent plus its rotary part.
pub(crate) fn kv_per_token_hf(
    layers: Option<u32>,
    kv_heads: Option<u32>,
    head_dim: Option<u32>,
    mla: Option<(u32, u32)>,
    elem: u32,
) -> Option<u64> {
    let layers = u64::from(layers?);
    // Saturating: the config's numbers are untrusted.
    let per_layer = match mla {
        Some((rank, rope)) => u64::from(rank) + u64::from(rope),
        None => 2u64
            .saturating_mul(u64::from(kv_heads?))
            .saturating_mul(u64::from(head_dim?)),
    };
    Some(layers.saturating_mul(per_layer).saturating_mul(u64::from(elem)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_8b() -> ModelInfo {
        ModelInfo {
            format: Format::Safetensors,
            name: "llama".into(),
            architecture: "LlamaForCausalLM".into(),
            parameters: 8_030_261_248,
            tensors: 291,
            context_length: Some(131_072),
            precision: "bf16".into(),
            precision_class: None,
            bytes_per_param: 2.0,
            layers: Some(32),
            hidden_size: Some(4096),
            attention_heads: Some(32),
            kv_heads: Some(8),
            head_dim: Some(128),
            kv_lora_rank: None,
            weights_bytes: 16_060_522_496,
            kv_bytes_per_token: kv_per_token_hf(Some(32), Some(8), Some(128), None, 2),
            memory: MemoryEstimate::empty(),
            fits: vec![],
            files: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn llama_8b_kv_is_128_kib_per_token() {
        let info = llama_8b();
        assert_eq!(info.kv_bytes_per_token, Some(131_072));
    }

    #[test]
    fn llama_8b_at_full_context_fits_one_h100_or_two_l4s() {
        let mut info = llama_8b();
        estimate(&mut info, &InspectOptions::default());
        // 14.96 GiB weights + 16 GiB KV at 128k + 1 GiB + 1.5 GiB overhead = 33.5 GiB.
        let total = info.memory.total_bytes as f64 / GIB;
        assert!((total - 33.45).abs() < 0.05, "{total}");
        assert_eq!(info.min_count("h100"), Some(1));
        assert_eq!(info.min_count("l4"), Some(2));
        assert_eq!(info.min_count("a100-40"), Some(1));
        let l4 = info
            .fits
            .iter()
            .find(|f| f.accelerator == "l4" && f.count == 1)
            .unwrap();
        assert!(!l4.fits);
        // 24 - 14.96 - 2.5 GiB = 6.54 GiB of KV at 128 KiB a token: ~53.6k tokens.
        assert_eq!(l4.max_context_tokens.map(|t| t / 1000), Some(53));
    }

    #[test]
    fn tensor_parallel_needs_heads_to_split() {
        let mut info = llama_8b();
        info.attention_heads = Some(14);
        info.kv_heads = Some(2);
        let f = fit(&info, "h100", 80.0, 4, &InspectOptions::default());
        assert!(!f.fits);
        assert!(f.reason.unwrap().contains("14 attention heads"));
        info.format = Format::Gguf;
        assert!(fit(&info, "h100", 80.0, 4, &InspectOptions::default()).fits);
    }

    #[test]
    fn kv_heads_replicate_beyond_their_count() {
        let info = llama_8b();
        let opts = InspectOptions::default();
        let kv_on_device = |n: u32| {
            let f = fit(&info, "h100", 80.0, n, &opts);
            let w = info.weights_bytes.div_ceil(u64::from(n));
            f.per_device_bytes - w - overhead(w, &opts)
        };
        // 16 GiB of KV at 128k over 8 KV heads: halves up to 8 devices, then stays at 2 GiB.
        assert_eq!(kv_on_device(2), 8 << 30);
        assert_eq!(kv_on_device(8), 2 << 30);
        assert_eq!(kv_on_device(16), 2 << 30);
    }

    #[test]
    fn absurd_options_do_not_panic() {
        let info = llama_8b();
        let opts = InspectOptions {
            cpu_memory_gib: f64::NAN,
            context_tokens: Some(u32::MAX),
            kv_bytes_per_element: u32::MAX,
            overhead_fixed_gib: f64::INFINITY,
            overhead_fraction: -1.0,
        };
        let f = fit(&info, "cpu", opts.cpu_memory_gib, 0, &opts);
        assert!(!f.fits);
        assert_eq!(f.count, 1);
    }
}
