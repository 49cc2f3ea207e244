//! SGLang: the OpenAI surface for everything.
//!
//! Why: SGLang serves `/v1/chat/completions`, `/v1/completions` and `/v1/embeddings` with the
//! model's chat template and `[DONE]`-terminated SSE (runtimes.md §3.1). Its native `/generate`
//! streams the *cumulative* text and a `finish_reason` object whose shape is unverified (§3.2, §10),
//! so translating it would add risk for nothing. Errors: the legacy flat object, validation as 400
//! (§3.5). Identity: `/get_server_info` (renamed `/server_info` upstream, §3.1). Load: `sglang:*`
//! gauges, only with `--enable-metrics` (§3.3, §9.2).

use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use pyxis_resources::RuntimeKind;

use super::{json, str_at, u64_at};
use crate::adapter::Adapter;
use crate::prom::{Kv, LoadNames, sel};
use crate::types::{Identity, LoadSample, Probe, Surface, UpstreamRequest};

pub(crate) struct Sglang;

pub(crate) const LOAD: LoadNames = LoadNames {
    waiting: &[sel("sglang:num_queue_reqs")],
    running: &[sel("sglang:num_running_reqs")],
    kv: &[Kv::Fraction(sel("sglang:token_usage"))],
    generated: &[sel("sglang:generation_tokens_total")],
};

const PROBES: &[Probe] = &[
    Probe::get("/get_server_info"),
    Probe::get("/server_info"),
    Probe::get("/v1/models"),
];

/// `/get_server_info` / `/server_info`: every server argument, plus `version`.
fn server_info(body: &[u8]) -> Identity {
    let v = json(body);
    let mut id = Identity {
        version: str_at(&v, "/version"),
        ..Identity::default()
    };
    if let Some(name) = str_at(&v, "/served_model_name").or_else(|| str_at(&v, "/model_path")) {
        let m = id.model_mut(&name);
        m.context_length = u64_at(&v, "/context_length");
        m.embedding = v.get("is_embedding").and_then(serde_json::Value::as_bool);
    }
    id.max_concurrency = u64_at(&v, "/max_running_requests").and_then(|n| u32::try_from(n).ok());
    id
}

impl Adapter for Sglang {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Sglang
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
            "/get_server_info" | "/server_info" => server_info(body),
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
