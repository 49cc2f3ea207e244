//! The step-time model: a roofline over weights, KV reads and FLOPs, plus measured overheads.

use serde::Serialize;

use crate::hardware::HardwareProfile;
use crate::model::ModelProfile;

/// What one engine step processes; the engine fills it from the scheduled batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchShape {
    /// Sequences in the batch.
    pub num_seqs: u32,
    /// Tokens computed this step (prefill chunks plus one per decoding sequence).
    pub num_tokens: u32,
    /// KV tokens read by attention: each sequence's context up to the end of this step's tokens.
    pub kv_tokens: u64,
    /// (query, key) pairs attention computes this step.
    pub attn_pairs: u64,
    /// Whether any sequence uses a LoRA adapter.
    pub has_lora: bool,
}

/// Step time as a function of the batch, for one model on one device (or a tensor-parallel group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimingModel {
    /// Bytes of weights each step streams (per GPU; sharded under tensor parallelism).
    pub weight_bytes: f64,
    /// KV bytes per token of context (per GPU).
    pub kv_bytes_per_token: f64,
    /// FLOPs per computed token through the weights (per GPU).
    pub flops_per_token: f64,
    /// Attention FLOPs per (query, key) pair (per GPU).
    pub attn_flops_per_pair: f64,
    /// Achieved bandwidth, bytes/s (peak × efficiency).
    pub eff_bw: f64,
    /// Achieved FLOP/s (peak × MFU).
    pub eff_flops: f64,
    /// Fixed cost per step, s.
    pub step_overhead_s: f64,
    /// Cost per sequence per step, s.
    pub per_seq_overhead_s: f64,
    /// Cost per computed token, s.
    pub per_token_overhead_s: f64,
    /// Multiplier with a LoRA adapter in the batch.
    pub lora_step_factor: f64,
    /// Tensor-parallel degree.
    pub tensor_parallel: u32,
}

/// Throughput lost to all-reduces per tensor-parallel doubling (NVLink; Megatron-style TP reports
/// 85–95 % scaling within a node). An assumption, documented in docs/simulator.md.
const TP_EFFICIENCY: f64 = 0.9;

impl TimingModel {
    /// The model for `model` on `tensor_parallel` devices of kind `hw`.
    pub fn new(hw: &HardwareProfile, model: &ModelProfile, tensor_parallel: u32) -> Self {
        let tp = f64::from(tensor_parallel.max(1));
        let scale = if tensor_parallel > 1 {
            TP_EFFICIENCY.powf(tp.log2())
        } else {
            1.0
        };
        TimingModel {
            weight_bytes: model.weight_bytes() / tp,
            kv_bytes_per_token: model.kv_bytes_per_token() / tp,
            flops_per_token: model.flops_per_token() / tp,
            attn_flops_per_pair: model.attn_flops_per_pair() / tp,
            eff_bw: hw.mem_bw * hw.bw_efficiency * scale,
            eff_flops: hw.peak_flops * hw.mfu * scale,
            step_overhead_s: hw.step_overhead_s,
            per_seq_overhead_s: hw.per_seq_overhead_s,
            per_token_overhead_s: hw.per_token_overhead_s,
            lora_step_factor: hw.lora_step_factor,
            tensor_parallel: tensor_parallel.max(1),
        }
    }

    /// Seconds one step takes. Memory time (weights once, plus every sequence's KV) and compute
    /// time (weights × tokens, plus attention) overlap, so the slower one counts (roofline); the
    /// overheads add on top. Decode at small batch is memory-bound and nearly flat in the batch
    /// size; as the batch grows, KV reads and then FLOPs take over, so throughput saturates.
    pub fn step_time(&self, b: &BatchShape) -> f64 {
        if b.num_tokens == 0 {
            return 0.0;
        }
        let mem = (self.weight_bytes + b.kv_tokens as f64 * self.kv_bytes_per_token) / self.eff_bw;
        let compute = (self.flops_per_token * f64::from(b.num_tokens) + self.attn_flops_per_pair * b.attn_pairs as f64)
            / self.eff_flops;
        let t = self.step_overhead_s
            + self.per_seq_overhead_s * f64::from(b.num_seqs)
            + self.per_token_overhead_s * f64::from(b.num_tokens)
            + mem.max(compute);
        if b.has_lora { t * self.lora_step_factor } else { t }
    }

    /// Decode step time for `batch` sequences of `ctx` tokens each (a convenience for docs/tests).
    pub fn decode_step(&self, batch: u32, ctx: u32) -> f64 {
        self.step_time(&BatchShape {
            num_seqs: batch,
            num_tokens: batch,
            kv_tokens: u64::from(batch) * u64::from(ctx),
            attn_pairs: u64::from(batch) * u64::from(ctx),
            has_lora: false,
        })
    }

    /// Time to prefill `tokens` prompt tokens in one step with nothing else in the batch.
    pub fn prefill(&self, tokens: u32) -> f64 {
        let t = u64::from(tokens);
        self.step_time(&BatchShape {
            num_seqs: 1,
            num_tokens: tokens,
            kv_tokens: t,
            attn_pairs: t * (t + 1) / 2,
            has_lora: false,
        })
    }
}

/// Smallest power-of-two tensor-parallel degree whose weight shard fills at most 80 % of the
/// memory vLLM may use, as operators size deployments (70B on 4×H100, 8B on one).
pub fn auto_tensor_parallel(hw: &HardwareProfile, model: &ModelProfile) -> u32 {
    if hw.kv_cache_bytes.is_some() {
        return 1;
    }
    let usable = hw.mem_bytes * hw.gpu_memory_utilization - hw.activation_reserve_bytes;
    let mut tp = 1u32;
    while tp < 8 && model.weight_bytes() / f64::from(tp) > 0.8 * usable {
        tp *= 2;
    }
    tp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::find_hardware;
    use crate::model::find_model;

    fn tm(hw: &str, m: &str) -> TimingModel {
        let h = find_hardware(hw).expect("hw");
        let m = find_model(m).expect("model");
        TimingModel::new(h, m, auto_tensor_parallel(h, m))
    }

    #[test]
    fn batch_one_decode_matches_published_measurements() {
        // A100-40GB (1,555 GB/s) Llama-3.1-8B batch-1 decode measured at ~75 tok/s (vLLM 0.23).
        let mut a100_40 = find_hardware("a100").expect("a100").clone();
        a100_40.mem_bw = 1.555e12;
        let m = find_model("llama-3.1-8b").expect("m");
        let t = TimingModel::new(&a100_40, m, 1).decode_step(1, 1100);
        let tok_s = 1.0 / t;
        assert!((tok_s - 75.0).abs() / 75.0 < 0.1, "{tok_s}");
        // H100 Llama-3.1-8B TPOT p50 6.48 ms at concurrency 1 (vLLM 0.21 sweep).
        let tpot = tm("h100", "llama-3.1-8b").decode_step(1, 300);
        assert!((tpot - 0.00648).abs() / 0.00648 < 0.1, "{tpot}");
        // L4 Qwen2.5-0.5B ITL 5.1 ms at concurrency 1 (vLLM 0.23 sweep).
        let itl = tm("l4", "qwen2.5-0.5b").decode_step(1, 300);
        assert!((itl - 0.0051).abs() / 0.0051 < 0.1, "{itl}");
    }

    #[test]
    fn throughput_saturates_with_batch() {
        let t = tm("h100", "llama-3-8b");
        let thr = |b: u32| f64::from(b) / t.decode_step(b, 1024);
        let (t1, t8, t64, t256, t1024) = (thr(1), thr(8), thr(64), thr(256), thr(1024));
        assert!(t8 > 6.0 * t1, "batching is nearly free at small batch");
        assert!(t1024 > t256 && t256 > t64);
        assert!(t1024 / t256 < 1.5, "saturates: {t256} -> {t1024}");
        assert!(t.decode_step(256, 1024) > t.decode_step(1, 1024));
    }

    #[test]
    fn prefill_is_compute_bound_and_linear() {
        let t = tm("h100", "llama-3-8b");
        let a = t.prefill(2048);
        let b = t.prefill(4096);
        assert!(b > 1.8 * a && b < 2.4 * a, "{a} {b}");
        // 2 × 8B × 4096 / (989T × 0.5) ≈ 133 ms.
        assert!(b > 0.10 && b < 0.2, "{b}");
    }

    #[test]
    fn big_models_get_tensor_parallel() {
        let h = find_hardware("h100").expect("h");
        assert_eq!(auto_tensor_parallel(h, find_model("llama-3-8b").expect("m")), 1);
        assert_eq!(auto_tensor_parallel(h, find_model("llama-3-70b").expect("m")), 4);
        let mi = find_hardware("mi300x").expect("h");
        assert_eq!(auto_tensor_parallel(mi, find_model("llama-3-70b").expect("m")), 1);
    }
}
