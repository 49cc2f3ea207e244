//! Counters and histograms an engine keeps, shaped like vLLM's Prometheus metrics.

use serde::Serialize;

/// TTFT buckets, seconds (vLLM `time_to_first_token_seconds`).
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
];
/// Inter-token and per-output-token buckets, seconds (vLLM `inter_token_latency_seconds`).
pub const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
/// Request phase buckets, seconds (vLLM `e2e_request_latency_seconds` and the phase histograms).
pub const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
];
/// Tokens per engine step (vLLM `iteration_tokens_total`).
pub const ITERATION_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];
/// `n` parameter (vLLM `request_params_n`).
pub const N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];
/// Preemptions per request (vLLM `request_num_preemptions`).
pub const PREEMPTION_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0];

/// vLLM's 1-2-5 series up to `max` (token-count histograms are sized by `max_model_len`).
pub fn buckets_125(max: u32) -> Vec<f64> {
    let mut v = Vec::new();
    let mut m = 1.0f64;
    'outer: loop {
        for k in [1.0, 2.0, 5.0] {
            let b = k * m;
            if b > f64::from(max) {
                break 'outer;
            }
            v.push(b);
        }
        m *= 10.0;
    }
    v
}

/// A Prometheus histogram: per-bucket counts (the last one is `+Inf`), sum and count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Upper bounds, ascending, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); `bounds.len() + 1` entries.
    pub counts: Vec<u64>,
    /// Sum of observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// Cumulative counts per bound, then `+Inf` (what Prometheus exposes as `_bucket`).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect()
    }
}

/// Why a request finished, as vLLM's `finished_reason` label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// EOS (a natural end).
    Stop,
    /// `max_tokens` reached.
    Length,
    /// Aborted (client gone).
    Abort,
}

impl FinishReason {
    /// The label / OpenAI `finish_reason` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// Everything an engine counts, cumulative since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineMetrics {
    /// `vllm:prompt_tokens_total` (counted when the request's first token is out).
    pub prompt_tokens: u64,
    /// `vllm:generation_tokens_total`.
    pub generation_tokens: u64,
    /// `vllm:prompt_tokens_cached_total` / `prompt_tokens_by_source_total{source="local_cache_hit"}`.
    pub prompt_tokens_cached: u64,
    /// `vllm:prefix_cache_queries_total`, tokens looked up at admission.
    pub prefix_cache_queries: u64,
    /// `vllm:prefix_cache_hits_total`, tokens found.
    pub prefix_cache_hits: u64,
    /// `vllm:num_preemptions_total`.
    pub num_preemptions: u64,
    /// `vllm:request_success_total{finished_reason="stop"}`.
    pub success_stop: u64,
    /// `... {finished_reason="length"}`.
    pub success_length: u64,
    /// `... {finished_reason="abort"}`.
    pub success_abort: u64,
    /// Engine steps run.
    pub steps: u64,
    /// Simulated seconds spent in steps (busy time).
    pub busy_s: f64,
    /// `vllm:time_to_first_token_seconds`.
    pub ttft: Histogram,
    /// `vllm:inter_token_latency_seconds`.
    pub itl: Histogram,
    /// `vllm:request_time_per_output_token_seconds`.
    pub tpot: Histogram,
    /// `vllm:e2e_request_latency_seconds`.
    pub e2e: Histogram,
    /// `vllm:request_queue_time_seconds`.
    pub queue: Histogram,
    /// `vllm:request_inference_time_seconds`.
    pub inference: Histogram,
    /// `vllm:request_prefill_time_seconds`.
    pub prefill: Histogram,
    /// `vllm:request_decode_time_seconds`.
    pub decode: Histogram,
    /// `vllm:request_prompt_tokens`.
    pub prompt_len: Histogram,
    /// `vllm:request_generation_tokens`.
    pub generation_len: Histogram,
    /// `vllm:request_max_num_generation_tokens`.
    pub max_generation_len: Histogram,
    /// `vllm:request_params_max_tokens`.
    pub max_tokens_param: Histogram,
    /// `vllm:request_params_n`.
    pub n_param: Histogram,
    /// `vllm:request_num_preemptions`.
    pub preemptions_per_request: Histogram,
    /// `vllm:request_prefill_kv_computed_tokens`.
    pub prefill_kv_computed: Histogram,
    /// `vllm:iteration_tokens_total`.
    pub iteration_tokens: Histogram,
}

impl EngineMetrics {
    /// Zeroed metrics; token-count histograms are sized by `max_model_len` as vLLM does.
    pub fn new(max_model_len: u32) -> Self {
        let tok = buckets_125(max_model_len);
        EngineMetrics {
            prompt_tokens: 0,
            generation_tokens: 0,
            prompt_tokens_cached: 0,
            prefix_cache_queries: 0,
            prefix_cache_hits: 0,
            num_preemptions: 0,
            success_stop: 0,
            success_length: 0,
            success_abort: 0,
            steps: 0,
            busy_s: 0.0,
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            tpot: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_BUCKETS),
            queue: Histogram::new(REQUEST_BUCKETS),
            inference: Histogram::new(REQUEST_BUCKETS),
            prefill: Histogram::new(REQUEST_BUCKETS),
            decode: Histogram::new(REQUEST_BUCKETS),
            prompt_len: Histogram::new(&tok),
            generation_len: Histogram::new(&tok),
            max_generation_len: Histogram::new(&tok),
            max_tokens_param: Histogram::new(&tok),
            n_param: Histogram::new(N_BUCKETS),
            preemptions_per_request: Histogram::new(PREEMPTION_BUCKETS),
            prefill_kv_computed: Histogram::new(&tok),
            iteration_tokens: Histogram::new(ITERATION_BUCKETS),
        }
    }

    /// Requests finished, all reasons.
    pub fn finished(&self) -> u64 {
        self.success_stop + self.success_length + self.success_abort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_vllm() {
        assert_eq!(
            buckets_125(512),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
        );
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        // `le` is inclusive: 1.0 lands in the first bucket.
        assert_eq!(h.cumulative(), vec![2, 3, 4]);
        assert_eq!(h.count, 4);
        assert!((h.sum - 6.0).abs() < 1e-12);
    }
}
