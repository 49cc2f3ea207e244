//! Hardware profiles: datasheet peaks plus the efficiencies and overheads measured on real engines.
//!
//! Every number is sourced in `docs/simulator.md` (section "Hardware profiles"); the doc comment on
//! each profile repeats the source in one line.

use serde::Serialize;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One accelerator (or CPU host) as the timing model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardwareProfile {
    /// Profile key, e.g. `h100`.
    pub name: &'static str,
    /// What the profile stands for.
    pub description: &'static str,
    /// Device memory in bytes (what vLLM's memory profiler sees as total).
    pub mem_bytes: f64,
    /// Peak memory bandwidth, bytes/s (datasheet).
    pub mem_bw: f64,
    /// Peak dense BF16 (CPU: FP32 vector) FLOP/s (datasheet, no sparsity).
    pub peak_flops: f64,
    /// Fraction of peak bandwidth that decode GEMVs reach (weights and KV streamed once per step).
    pub bw_efficiency: f64,
    /// Fraction of peak FLOP/s that prefill GEMMs reach (model FLOPs utilisation).
    pub mfu: f64,
    /// Fixed cost of one engine step: scheduler, input preparation, kernel launch, sampling.
    pub step_overhead_s: f64,
    /// Added per sequence in the batch per step (per-request bookkeeping, sampling, detokenising).
    pub per_seq_overhead_s: f64,
    /// Added per token scheduled in the step (input preparation; matters on CPU only).
    pub per_token_overhead_s: f64,
    /// Latency between the HTTP request and the engine seeing it (API server: parsing, chat
    /// template, tokenising, IPC to the engine core); it delays the first token, not the batch.
    pub frontend_latency_s: f64,
    /// API-server CPU time per streamed output token (detokenising, SSE framing). The API server
    /// is one process: the share of it spent relaying tokens (ρ = this × recent tokens/s) stretches
    /// new requests' front-end delay to `frontend_latency_s / (1 − ρ)` (processor sharing).
    pub frontend_token_cost_s: f64,
    /// vLLM's `--gpu-memory-utilization` default (0.9): the share of memory vLLM may take.
    pub gpu_memory_utilization: f64,
    /// Memory reserved for activations and CUDA graphs, bytes (vLLM's profiling run).
    pub activation_reserve_bytes: f64,
    /// Fixed KV-cache size in bytes instead of the memory-derived one (vLLM CPU's
    /// `VLLM_CPU_KVCACHE_SPACE`).
    pub kv_cache_bytes: Option<f64>,
    /// KV block size in tokens (vLLM: 16 on GPUs, 128 on CPU).
    pub block_size: u32,
    /// vLLM's default `max_num_seqs` for the OpenAI server on this device.
    pub default_max_num_seqs: u32,
    /// vLLM's default `max_num_batched_tokens` for the OpenAI server on this device.
    pub default_max_num_batched_tokens: u32,
    /// Step-time multiplier when a LoRA adapter is in the batch (extra LoRA GEMMs).
    pub lora_step_factor: f64,
    /// Where the numbers come from (one line; details in docs/simulator.md).
    pub source: &'static str,
}

/// Step overhead of vLLM V1 on a GPU (CUDA graphs, async output processing), seconds: with
/// `NV_BW_EFF` it puts Llama-3.1-8B batch-1 decode at 6.7 ms on an H100 (measured 6.48 ms TPOT,
/// vLLM 0.21) and 74 tok/s on an A100-40GB (measured ~75 tok/s, vLLM 0.23); docs/simulator.md.
const GPU_STEP_OVERHEAD: f64 = 0.0010;
/// Per-sequence cost per step on a GPU, seconds: fitted to the L4 Qwen2.5-0.5B sweep (ITL 5.1 ms at
/// concurrency 1 → 7.1 ms at 32).
const GPU_PER_SEQ: f64 = 0.000_03;
/// vLLM API-server latency before the engine sees a request on a large server host, seconds
/// (H100 sweep: TTFT p50 14 ms at concurrency 1 with short chat prompts, of which the prefill
/// step accounts for ~7 ms).
const GPU_FRONTEND: f64 = 0.007;
/// The same on a small cloud host (L4 on a 4-vCPU g2-standard-4: TTFT p50 27 ms at concurrency 1
/// for 256 prompt tokens of a 0.5B model, of which the model accounts for ~6 ms).
const SMALL_HOST_FRONTEND: f64 = 0.020;
/// Activation / CUDA-graph reserve (vLLM logs 1–3 GiB for 7–8B models).
const GPU_ACTIVATION_RESERVE: f64 = 2.0 * GIB;
/// Decode bandwidth efficiency on NVIDIA GPUs (see `GPU_STEP_OVERHEAD`: 0.85 × peak plus the
/// overhead gives the measured 77 % of the bandwidth ceiling end to end).
const NV_BW_EFF: f64 = 0.85;
/// Prefill MFU on NVIDIA GPUs with vLLM (FlashAttention + cuBLAS BF16 GEMMs, 1–8k token batches).
const NV_MFU: f64 = 0.5;
/// LoRA (Punica/SGMV kernels) step overhead, from vLLM CPU measured here (LoRA on: ~20 % slower)
/// and S-LoRA/Punica reports of 10–30 % on GPUs.
const LORA_FACTOR: f64 = 1.2;

static PROFILES: &[HardwareProfile] = &[
    HardwareProfile {
        name: "h100",
        description: "NVIDIA H100 SXM5 80GB (HBM3)",
        mem_bytes: 80.0 * GIB,
        mem_bw: 3.35e12,
        peak_flops: 989e12,
        bw_efficiency: NV_BW_EFF,
        mfu: NV_MFU,
        step_overhead_s: GPU_STEP_OVERHEAD,
        per_seq_overhead_s: GPU_PER_SEQ,
        per_token_overhead_s: 0.0,
        frontend_latency_s: GPU_FRONTEND,
        frontend_token_cost_s: 0.0,
        gpu_memory_utilization: 0.9,
        activation_reserve_bytes: GPU_ACTIVATION_RESERVE,
        kv_cache_bytes: None,
        block_size: 16,
        default_max_num_seqs: 1024,
        default_max_num_batched_tokens: 8192,
        lora_step_factor: LORA_FACTOR,
        source: "NVIDIA H100 datasheet: 3.35 TB/s, 989 TFLOPS dense BF16; vLLM arg_utils defaults for >=70 GiB GPUs",
    },
    HardwareProfile {
        name: "h200",
        description: "NVIDIA H200 SXM 141GB (HBM3e)",
        mem_bytes: 141.0e9,
        mem_bw: 4.8e12,
        peak_flops: 989e12,
        bw_efficiency: NV_BW_EFF,
        mfu: NV_MFU,
        step_overhead_s: GPU_STEP_OVERHEAD,
        per_seq_overhead_s: GPU_PER_SEQ,
        per_token_overhead_s: 0.0,
        frontend_latency_s: GPU_FRONTEND,
        frontend_token_cost_s: 0.0,
        gpu_memory_utilization: 0.9,
        activation_reserve_bytes: GPU_ACTIVATION_RESERVE,
        kv_cache_bytes: None,
        block_size: 16,
        default_max_num_seqs: 1024,
        default_max_num_batched_tokens: 8192,
        lora_step_factor: LORA_FACTOR,
        source: "NVIDIA H200 datasheet: 4.8 TB/s, 989 TFLOPS dense BF16, 141 GB",
    },
    HardwareProfile {
        name: "a100",
        description: "NVIDIA A100 SXM4 80GB (HBM2e)",
        mem_bytes: 80.0 * GIB,
        mem_bw: 2.039e12,
        peak_flops: 312e12,
        bw_efficiency: NV_BW_EFF,
        mfu: NV_MFU,
        step_overhead_s: GPU_STEP_OVERHEAD,
        per_seq_overhead_s: GPU_PER_SEQ,
        per_token_overhead_s: 0.0,
        frontend_latency_s: GPU_FRONTEND,
        frontend_token_cost_s: 0.0,
        gpu_memory_utilization: 0.9,
        activation_reserve_bytes: GPU_ACTIVATION_RESERVE,
        kv_cache_bytes: None,
        block_size: 16,
        // vLLM excludes A100 from the large defaults (PR #17885).
        default_max_num_seqs: 256,
        default_max_num_batched_tokens: 2048,
        lora_step_factor: LORA_FACTOR,
        source: "NVIDIA A100 datasheet: 2,039 GB/s, 312 TFLOPS dense BF16; batch-1 Llama-3.1-8B 75 tok/s (A100-40GB, vLLM 0.23)",
    },
    HardwareProfile {
        name: "l4",
        description: "NVIDIA L4 24GB (GDDR6)",
        mem_bytes: 22.5 * GIB,
        mem_bw: 300e9,
        peak_flops: 121e12,
        bw_efficiency: NV_BW_EFF,
        mfu: NV_MFU,
        step_overhead_s: GPU_STEP_OVERHEAD,
        per_seq_overhead_s: GPU_PER_SEQ,
        per_token_overhead_s: 0.0,
        frontend_latency_s: SMALL_HOST_FRONTEND,
        frontend_token_cost_s: 0.0,
        gpu_memory_utilization: 0.9,
        activation_reserve_bytes: 1.5 * GIB,
        kv_cache_bytes: None,
        block_size: 16,
        default_max_num_seqs: 256,
        default_max_num_batched_tokens: 2048,
        lora_step_factor: LORA_FACTOR,
        source: "NVIDIA L4 datasheet: 300 GB/s, 121 TFLOPS dense BF16 (242 with sparsity), 24 GB; Qwen2.5-0.5B vLLM sweep on L4",
    },
    HardwareProfile {
        name: "mi300x",
        description: "AMD Instinct MI300X 192GB (HBM3)",
        mem_bytes: 192.0 * GIB,
        mem_bw: 5.3e12,
        peak_flops: 1307e12,
        // ROCm kernels reach a smaller share of peak than CUDA ones in public benchmarks.
        bw_efficiency: 0.7,
        mfu: 0.35,
        step_overhead_s: 0.0015,
        per_seq_overhead_s: GPU_PER_SEQ,
        per_token_overhead_s: 0.0,
        frontend_latency_s: GPU_FRONTEND,
        frontend_token_cost_s: 0.0,
        gpu_memory_utilization: 0.9,
        activation_reserve_bytes: GPU_ACTIVATION_RESERVE,
        kv_cache_bytes: None,
        block_size: 16,
        default_max_num_seqs: 1024,
        default_max_num_batched_tokens: 8192,
        lora_step_factor: LORA_FACTOR,
        source: "AMD MI300X datasheet: 5.3 TB/s, 1,307 TFLOPS dense BF16, 192 GB; efficiencies per SemiAnalysis MI300X benchmarks (assumption)",
    },
    HardwareProfile {
        name: "cpu",
        description: "vLLM 0.32 CPU on one Xeon core (AVX-512, 2.5 GHz, LoRA enabled), fitted on this project's machines",
        mem_bytes: 16.0 * GIB,
        // One core's share of DDR bandwidth (vLLM binds its worker to one core on a 2-core host).
        mem_bw: 12e9,
        // 2 FMA units × 16 FP32 lanes × 2 FLOP × 2.5 GHz (no AMX, no avx512_bf16).
        peak_flops: 160e9,
        bw_efficiency: 0.6,
        mfu: 0.3,
        // Fitted to vLLM 0.32 CPU serving the tiny model as setup_vllm_cpu.sh runs it (LoRA on,
        // so eager mode), medians of 6 rounds of bench_chat.py: decode 7.85 ms/token alone,
        // 9.55 ms at 4 streams, 17.0 ms at 16; 1-token completions from token ids 17 ms at 8
        // prompt tokens, 95 ms at 500 (docs/calibration.md).
        // (per-token cost net of the model's own FLOPs at 30 % of one core: 34 µs a token)
        step_overhead_s: 0.0070,
        per_seq_overhead_s: 0.000_454,
        per_token_overhead_s: 0.000_121,
        // 1-token chat 20.9 ms alone (9.5 ms before the engine sees it); streamed TTFT 20 ms alone,
        // ~36 ms at 4 streams, ~90 ms at 16 (~880 tok/s through the API server).
        frontend_latency_s: 0.0095,
        frontend_token_cost_s: 0.000_82,
        gpu_memory_utilization: 1.0,
        activation_reserve_bytes: 0.0,
        // VLLM_CPU_KVCACHE_SPACE=1 (GiB), as setup_vllm_cpu.sh runs it.
        kv_cache_bytes: Some(GIB),
        block_size: 128,
        default_max_num_seqs: 128,
        default_max_num_batched_tokens: 2048,
        // LoRA-enabled server, base vs adapter requests, single stream: ~97 vs ~80 tok/s.
        lora_step_factor: 1.2,
        source: "fitted to vllm-cpu 0.32.0 serving the tiny model on the project machine (docs/calibration.md)",
    },
];

/// All hardware profiles.
pub fn hardware_profiles() -> &'static [HardwareProfile] {
    PROFILES
}

/// Profile keys, in declaration order.
pub fn hardware_names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}

/// Looks a profile up by key, forgiving case and vendor spellings (`H100`, `nvidia-h100-80gb`,
/// `MI300X`, `cpu`).
pub fn find_hardware(name: &str) -> Option<&'static HardwareProfile> {
    let n = name.trim().to_ascii_lowercase();
    if let Some(p) = PROFILES.iter().find(|p| p.name == n) {
        return Some(p);
    }
    // Longest key contained in the name wins, so "h100" does not steal "h1000"-like names first.
    PROFILES
        .iter()
        .filter(|p| n.contains(p.name))
        .max_by_key(|p| p.name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_forgives_spelling() {
        assert_eq!(find_hardware("H100").map(|p| p.name), Some("h100"));
        assert_eq!(find_hardware("nvidia-h100-80gb").map(|p| p.name), Some("h100"));
        assert_eq!(find_hardware("AMD-MI300X").map(|p| p.name), Some("mi300x"));
        assert!(find_hardware("tpu-v5e").is_none());
        for need in ["h100", "a100", "l4", "mi300x", "cpu"] {
            assert!(find_hardware(need).is_some(), "{need}");
        }
    }

    #[test]
    fn profiles_are_sane() {
        for p in hardware_profiles() {
            assert!(p.mem_bw > 0.0 && p.peak_flops > 0.0 && p.mem_bytes > 0.0, "{}", p.name);
            assert!(p.bw_efficiency > 0.0 && p.bw_efficiency <= 1.0, "{}", p.name);
            assert!(p.mfu > 0.0 && p.mfu <= 1.0, "{}", p.name);
            assert!(p.block_size.is_power_of_two(), "{}", p.name);
        }
    }
}
