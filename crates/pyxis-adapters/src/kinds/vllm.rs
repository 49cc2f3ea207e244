//! vLLM: the OpenAI surface for everything.
//!
//! Why: vLLM's server *is* an OpenAI server: `/v1/chat/completions`, `/v1/completions` and (for
//! pooling models) `/v1/embeddings`, SSE ending in `[DONE]`, `stream_options.include_usage`, usage
//! with cached tokens; it has no native generate route (runtimes.md §0, §1.1–1.2; verified live on
//! vLLM 0.32, shared/runtimes/NOTES.md §1). Errors: nested object with an integer `code`
//! (§1.5); `/health` 503 means the engine died (§9.3). Load: `vllm:*` gauges (§1.3).

use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use pyxis_resources::RuntimeKind;

use crate::adapter::Adapter;
use crate::prom::{Kv, LoadNames, sel};
use crate::types::{Identity, LoadSample, Probe, Surface, UpstreamRequest};

pub(crate) struct Vllm;

pub(crate) const LOAD: LoadNames = LoadNames {
    waiting: &[sel("vllm:num_requests_waiting")],
    running: &[sel("vllm:num_requests_running")],
    // `gpu_cache_usage_perc` was the name before 0.9 and is gone in 0.12.
    kv: &[
        Kv::Fraction(sel("vllm:kv_cache_usage_perc")),
        Kv::Fraction(sel("vllm:gpu_cache_usage_perc")),
    ],
    generated: &[sel("vllm:generation_tokens_total")],
};

const PROBES: &[Probe] = &[Probe::get("/version"), Probe::get("/v1/models")];

impl Adapter for Vllm {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vllm
    }

    fn surface(&self, _req_kind: RequestKind) -> Surface {
        Surface::OpenAi
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        Ok(crate::passthrough::build(req, served_model))
    }

    fn health_path(&self) -> &'static str {
        "/health"
    }

    fn identity_probes(&self) -> &'static [Probe] {
        PROBES
    }

    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity {
        match path {
            "/version" => super::version(body),
            "/v1/models" => super::openai_models(body),
            _ => Identity::default(),
        }
    }

    fn metrics_path(&self) -> Option<&'static str> {
        Some("/metrics")
    }

    fn parse_load(&self, metrics_text: &str, prev: Option<&LoadSample>, now_ms: u64) -> Option<LoadSample> {
        crate::prom::load(metrics_text, &LOAD, prev, now_ms)
    }
}
