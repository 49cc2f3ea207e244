//! TensorRT-LLM `trtllm-serve`: the OpenAI surface; no embeddings.
//!
//! Why: `trtllm-serve` is an OpenAI server (`/v1/chat/completions`, `/v1/completions`) with no
//! native generate route, and it has neither `/v1/embeddings` nor a tokenizer route (runtimes.md
//! §5.1). Errors: the legacy flat object or `{"error": str}` with 400 (§5.3). Load: `trtllm_*` on
//! `/prometheus/metrics`, mounted only with `return_perf_metrics` (§5.1–5.2, §9.2).

use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use pyxis_resources::RuntimeKind;

use crate::adapter::Adapter;
use crate::prom::{Kv, LoadNames, sel};
use crate::types::{Identity, LoadSample, Probe, Surface, UpstreamRequest};

pub(crate) struct TrtLlm;

pub(crate) const LOAD: LoadNames = LoadNames {
    waiting: &[sel("trtllm_num_requests_waiting")],
    running: &[sel("trtllm_num_requests_running")],
    kv: &[Kv::Fraction(sel("trtllm_kv_cache_utilization"))],
    generated: &[sel("trtllm_generation_tokens_total")],
};

const PROBES: &[Probe] = &[Probe::get("/version"), Probe::get("/v1/models")];

impl Adapter for TrtLlm {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::TensorrtLlm
    }

    fn surface(&self, req_kind: RequestKind) -> Surface {
        match req_kind {
            RequestKind::Embeddings => Surface::Unsupported,
            _ => Surface::OpenAi,
        }
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        if req.kind == RequestKind::Embeddings {
            return Err(super::no_route(
                self.kind(),
                "embeddings",
                "Serve embedding models on vLLM, SGLang, Ollama or llama.cpp.",
            ));
        }
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
        Some("/prometheus/metrics")
    }

    fn parse_load(&self, metrics_text: &str, prev: Option<&LoadSample>, now_ms: u64) -> Option<LoadSample> {
        crate::prom::load(metrics_text, &LOAD, prev, now_ms)
    }
}
