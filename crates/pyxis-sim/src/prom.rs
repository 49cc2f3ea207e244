//! Prometheus text exposition: vLLM's `vllm:*` families and TGI's `tgi_*` ones, from the engine's
//! counters, gauges and histograms.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use pyxis_sim_core::{EngineMetrics, EngineStats, Histogram};

use crate::server::AppState;

/// Formats like Python's prometheus_client (`28.0`, `1.5e-05`, `+Inf`).
fn num(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v.is_nan() {
        return "NaN".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// A Prometheus text writer.
pub(crate) struct Prom {
    out: String,
}

impl Prom {
    pub(crate) fn new() -> Self {
        Prom {
            out: String::with_capacity(16 * 1024),
        }
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn labels(labels: &[(&str, &str)]) -> String {
        if labels.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = labels
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}=\"{}\"",
                    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
                )
            })
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = writeln!(self.out, "{name}{} {}", Self::labels(labels), num(v));
    }

    /// A one-sample family.
    pub(crate) fn single(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.family(name, kind, help);
        self.sample(name, labels, v);
    }

    pub(crate) fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], h: &Histogram) {
        self.family(name, "histogram", help);
        let cum = h.cumulative();
        for (i, c) in cum.iter().enumerate() {
            let le = h.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| num(*b));
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", le.as_str()));
            self.sample(&format!("{name}_bucket"), &l, *c as f64);
        }
        self.sample(&format!("{name}_count"), labels, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
    }
}

fn snapshot(s: &AppState) -> (EngineMetrics, EngineStats) {
    s.runner.with(|e| (e.metrics().clone(), e.stats()))
}

/// `/metrics` of the vLLM surface: vLLM 0.32's families and labels (`engine`, `model_name`).
pub(crate) fn vllm(s: &AppState) -> String {
    let (m, st) = snapshot(s);
    let model = s.model_name();
    let l: &[(&str, &str)] = &[("engine", "0"), ("model_name", model)];
    let mut p = Prom::new();
    for (n, h) in [
        (
            "vllm:estimated_flops_per_gpu_total",
            "Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).",
        ),
        (
            "vllm:estimated_read_bytes_per_gpu_total",
            "Estimated number of bytes read from memory per GPU (for Model Flops Utilization calculations).",
        ),
        (
            "vllm:estimated_write_bytes_per_gpu_total",
            "Estimated number of bytes written to memory per GPU (for Model Flops Utilization calculations).",
        ),
    ] {
        p.single(n, "counter", h, l, 0.0);
    }
    p.single(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        l,
        f64::from(st.running),
    );
    p.single(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        l,
        f64::from(st.waiting),
    );
    p.family(
        "vllm:num_requests_waiting_by_reason",
        "gauge",
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
    );
    p.sample(
        "vllm:num_requests_waiting_by_reason",
        &[l[0], l[1], ("reason", "capacity")],
        f64::from(st.waiting),
    );
    p.sample(
        "vllm:num_requests_waiting_by_reason",
        &[l[0], l[1], ("reason", "deferred")],
        0.0,
    );
    p.family("vllm:engine_sleep_state", "gauge", "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.");
    for (state, v) in [("awake", 1.0), ("weights_offloaded", 0.0), ("discard_all", 0.0)] {
        p.sample("vllm:engine_sleep_state", &[l[0], l[1], ("sleep_state", state)], v);
    }
    p.single(
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        l,
        st.kv_usage,
    );
    p.single(
        "vllm:prefix_cache_queries_total",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        l,
        m.prefix_cache_queries as f64,
    );
    p.single(
        "vllm:prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        l,
        m.prefix_cache_hits as f64,
    );
    p.single("vllm:external_prefix_cache_queries_total", "counter", "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.", l, 0.0);
    p.single("vllm:external_prefix_cache_hits_total", "counter", "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.", l, 0.0);
    p.single(
        "vllm:mm_cache_queries_total",
        "counter",
        "Multi-modal cache queries, in terms of number of queried items.",
        l,
        0.0,
    );
    p.single(
        "vllm:mm_cache_hits_total",
        "counter",
        "Multi-modal cache hits, in terms of number of cached items.",
        l,
        0.0,
    );
    p.single(
        "vllm:num_preemptions_total",
        "counter",
        "Cumulative number of preemption from the engine.",
        l,
        m.num_preemptions as f64,
    );
    p.single(
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        l,
        m.prompt_tokens as f64,
    );
    p.family(
        "vllm:prompt_tokens_by_source_total",
        "counter",
        "Number of prompt tokens by source.",
    );
    let computed = m.prompt_tokens.saturating_sub(m.prompt_tokens_cached) as f64;
    for (src, v) in [
        ("local_compute", computed),
        ("local_cache_hit", m.prompt_tokens_cached as f64),
        ("external_kv_transfer", 0.0),
    ] {
        p.sample("vllm:prompt_tokens_by_source_total", &[l[0], l[1], ("source", src)], v);
    }
    p.single(
        "vllm:prompt_tokens_cached_total",
        "counter",
        "Number of cached prompt tokens (local + external).",
        l,
        m.prompt_tokens_cached as f64,
    );
    p.family("vllm:prompt_tokens_cached_by_source_total", "counter", "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.");
    for src in ["device", "host", "p2p", "disk", "external_unspecified"] {
        let v = if src == "device" {
            m.prefix_cache_hits as f64
        } else {
            0.0
        };
        p.sample(
            "vllm:prompt_tokens_cached_by_source_total",
            &[l[0], l[1], ("source", src)],
            v,
        );
    }
    p.single(
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        l,
        m.generation_tokens as f64,
    );
    p.family(
        "vllm:request_success_total",
        "counter",
        "Count of successfully processed requests.",
    );
    for (reason, v) in [
        ("stop", m.success_stop),
        ("length", m.success_length),
        ("abort", m.success_abort),
        ("error", 0),
        ("repetition", 0),
    ] {
        p.sample(
            "vllm:request_success_total",
            &[l[0], ("finished_reason", reason), l[1]],
            v as f64,
        );
    }
    p.family(
        "vllm:admission_rejections_total",
        "counter",
        "Number of admission attempts rejected by a queue limit, by reason.",
    );
    for reason in ["max_num_queued_reqs", "max_num_queued_tokens"] {
        p.sample(
            "vllm:admission_rejections_total",
            &[("model_name", model), ("reason", reason)],
            0.0,
        );
    }
    p.histogram(
        "vllm:request_prompt_tokens",
        "Number of prefill tokens processed.",
        l,
        &m.prompt_len,
    );
    p.histogram(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        l,
        &m.generation_len,
    );
    p.histogram(
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        l,
        &m.iteration_tokens,
    );
    p.histogram(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        l,
        &m.max_generation_len,
    );
    p.histogram(
        "vllm:request_params_n",
        "Histogram of the n request parameter.",
        l,
        &m.n_param,
    );
    p.histogram(
        "vllm:request_params_max_tokens",
        "Histogram of the max_tokens request parameter.",
        l,
        &m.max_tokens_param,
    );
    p.histogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        l,
        &m.ttft,
    );
    p.histogram(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        l,
        &m.itl,
    );
    p.histogram(
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
        l,
        &m.tpot,
    );
    p.histogram(
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        l,
        &m.e2e,
    );
    p.histogram(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        l,
        &m.queue,
    );
    p.histogram(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        l,
        &m.inference,
    );
    p.histogram(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        l,
        &m.prefill,
    );
    p.histogram(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        l,
        &m.decode,
    );
    p.histogram(
        "vllm:request_num_preemptions",
        "Histogram of the number of times a request was preempted.",
        l,
        &m.preemptions_per_request,
    );
    p.histogram(
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        l,
        &m.prefill_kv_computed,
    );
    let c = &s.config;
    let blocks = c.num_blocks.to_string();
    let bs = c.block_size.to_string();
    let tokens = c.kv_capacity_tokens().to_string();
    let prefix = if c.enable_prefix_caching { "True" } else { "False" };
    let mem = (c.kv_capacity_tokens() as f64 * c.timing.kv_bytes_per_token)
        .round()
        .to_string();
    let conc = format!(
        "{:.1}",
        c.kv_capacity_tokens() as f64 / f64::from(c.max_model_len.max(1))
    );
    // vLLM's CacheConfig as `cache_config_info` labels (all of 0.32's, with this engine's values).
    let info: Vec<(&str, &str)> = vec![
        ("_block_size_resolved", "True"),
        ("block_size", &bs),
        ("cache_dtype", "auto"),
        ("cache_hit_alignment_tokens", "None"),
        ("effective_attention_block_size", &bs),
        ("enable_mamba_shared_prefix_checkpoint", "False"),
        ("enable_prefix_caching", prefix),
        ("engine", "0"),
        ("gpu_memory_utilization", "0.92"),
        ("hash_block_size", "None"),
        ("is_attention_free", "False"),
        ("kv_cache_dtype_skip_layers", "[]"),
        ("kv_cache_layout", "None"),
        ("kv_cache_max_concurrency", &conc),
        ("kv_cache_memory_bytes", &mem),
        ("kv_cache_size_tokens", &tokens),
        ("kv_offloading_backend", "native"),
        ("kv_offloading_size", "None"),
        ("kv_sharing_fast_prefill", "False"),
        ("mamba_block_size", "None"),
        ("mamba_cache_dtype", "auto"),
        ("mamba_cache_mode", "none"),
        ("mamba_page_size_padded", "None"),
        ("mamba_ssm_cache_dtype", "auto"),
        ("num_cpu_blocks", "None"),
        ("num_gpu_blocks", &blocks),
        ("num_gpu_blocks_override", "None"),
        ("prefix_cache_retention_interval", "0"),
        ("prefix_caching_hash_algo", "sha256"),
        ("prefix_match_unit", "None"),
        ("replayssm_buffer_len", "16"),
        ("skip_page_size_padded", "None"),
        ("sliding_window", "None"),
        ("swa_bounded_replay", "True"),
        ("use_kda_recoverssm", "False"),
        ("use_replayssm", "False"),
        ("user_specified_block_size", "False"),
    ];
    p.single(
        "vllm:cache_config_info",
        "gauge",
        "Information of the LLMEngine CacheConfig",
        &info,
        1.0,
    );
    if !s.runner.with(|e| e.loras()).is_empty() {
        let running = st.running_loras.join(",");
        let waiting = st.waiting_loras.join(",");
        let max = c.max_loras.to_string();
        p.single(
            "vllm:lora_requests_info",
            "gauge",
            "Running stats on lora requests.",
            &[
                ("max_lora", &max),
                ("running_lora_adapters", &running),
                ("waiting_lora_adapters", &waiting),
            ],
            crate::server::unix_now() as f64,
        );
    }
    p.finish()
}

/// `/metrics` of the TGI surface: TGI's names (no labels but `err` and `method`).
pub(crate) fn tgi(s: &AppState) -> String {
    let (m, st) = snapshot(s);
    let mut p = Prom::new();
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    p.single(
        "tgi_queue_size",
        "gauge",
        "Requests waiting",
        &[],
        f64::from(st.waiting),
    );
    p.single(
        "tgi_batch_current_size",
        "gauge",
        "Requests in the running batch",
        &[],
        f64::from(st.running),
    );
    p.single(
        "tgi_batch_current_max_tokens",
        "gauge",
        "Maximum tokens of the current batch",
        &[],
        (st.num_blocks - st.free_blocks) as f64 * f64::from(s.config.block_size),
    );
    p.single(
        "tgi_request_count",
        "counter",
        "Requests received",
        &[],
        n(&s.counters.requests),
    );
    p.single(
        "tgi_request_success",
        "counter",
        "Requests answered",
        &[],
        (m.success_stop + m.success_length) as f64,
    );
    p.family("tgi_request_failure", "counter", "Requests failed");
    p.sample(
        "tgi_request_failure",
        &[("err", "overloaded")],
        n(&s.counters.overloaded),
    );
    p.sample(
        "tgi_request_failure",
        &[("err", "validation")],
        n(&s.counters.validation),
    );
    p.sample("tgi_request_failure", &[("err", "generation")], n(&s.counters.injected));
    p.histogram("tgi_request_duration", "End-to-end request duration", &[], &m.e2e);
    p.histogram("tgi_request_queue_duration", "Time in queue", &[], &m.queue);
    p.histogram("tgi_request_inference_duration", "Time in inference", &[], &m.inference);
    p.histogram(
        "tgi_request_mean_time_per_token_duration",
        "Mean time per token",
        &[],
        &m.tpot,
    );
    p.histogram("tgi_request_input_length", "Input tokens", &[], &m.prompt_len);
    p.histogram(
        "tgi_request_generated_tokens",
        "Generated tokens",
        &[],
        &m.generation_len,
    );
    p.histogram("tgi_request_max_new_tokens", "max_new_tokens", &[], &m.max_tokens_param);
    p.histogram(
        "tgi_batch_next_size",
        "Tokens per forward pass",
        &[],
        &m.iteration_tokens,
    );
    p.finish()
}
