//! NVIDIA Triton: completions on the generate extension (`/v2/models/{m}/generate[_stream]`);
//! chat and embeddings not served by the core server.
//!
//! Why native: Triton's core HTTP server (port 8000, the one with `/v2/health/ready` and the
//! `:8002` metrics) has no OpenAI routes; the generate extension is its text API (runtimes.md §4.1).
//! It takes a finished prompt (`text_input`) and applies no chat template, so chat is refused with
//! OpenAI's own "not a chat model" answer instead of guessing a template; the separate OpenAI
//! frontend (port 9000, §4.1) applies one, and `Triton { openai_frontend: true }` routes everything
//! there instead. The generate inputs are backend-specific (§4.1): the TensorRT-LLM ensemble takes
//! `max_tokens`, `stop_words`, `random_seed`... as tensors, the vLLM backend a
//! `sampling_parameters` JSON string plus `return_*` switches for finish reason and token counts
//! (triton-inference-server/vllm_backend `src/utils/request.py`, `docs/additional_outputs.md`);
//! Triton rejects inputs a model does not declare, so [`TritonBackend`] picks one set.
//!
//! Replies: `text_output` (the delta per streamed response), no `[DONE]`: the stream is complete
//! when the body ends cleanly; errors after the 200 arrive as `{"error": "..."}` events (§4.1).
//! The TensorRT-LLM ensemble reports neither finish reason nor token counts (usage stays unknown,
//! the gateway estimates); it must be deployed with `exclude_input_in_output: true` or its
//! `text_output` repeats the prompt. Errors: `{"error": str}`, 503 UNAVAILABLE when the queue is
//! full (§4.2). Load: TRT-LLM's `nv_trt_llm_*` gauges, else `nv_inference_pending_request_count`,
//! else the vLLM backend's re-exported `vllm:*` (§4.3, §9.1).

use bytes::Bytes;
use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind, Usage};
use pyxis_resources::RuntimeKind;
use serde_json::{Map, Value, json};

use super::{json as parse_json, str_at};
use crate::adapter::Adapter;
use crate::errors::malformed;
use crate::openai_out::{Answer, ChunkWriter, usage, whole as write_whole};
use crate::params::{self, num, one_plain_choice};
use crate::prom::{Kv, LoadNames, sel, sel_l};
use crate::translate::{Events, Step};
use crate::types::{
    Ctx, Dialect, Identity, LoadSample, Probe, ServedModel, Surface, TritonBackend, UpstreamRequest, Whole,
    path_segment,
};

pub(crate) struct Triton {
    pub backend: TritonBackend,
    pub openai_frontend: bool,
}

pub(crate) const LOAD: LoadNames = LoadNames {
    // The vLLM backend queues inside vLLM, not in Triton's scheduler: its own gauge comes first.
    waiting: &[
        sel_l("nv_trt_llm_request_metrics", "request_type", "waiting"),
        sel("vllm:num_requests_waiting"),
        sel("nv_inference_pending_request_count"),
    ],
    // The Gateway API Inference Extension reads `scheduled` as the running signal.
    running: &[
        sel_l("nv_trt_llm_request_metrics", "request_type", "scheduled"),
        sel_l("nv_trt_llm_request_metrics", "request_type", "active"),
        sel("vllm:num_requests_running"),
    ],
    kv: &[
        Kv::Fraction(sel_l(
            "nv_trt_llm_kv_cache_block_metrics",
            "kv_cache_block_type",
            "fraction",
        )),
        Kv::Ratio(
            sel_l("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "used"),
            sel_l("nv_trt_llm_kv_cache_block_metrics", "kv_cache_block_type", "max"),
        ),
        Kv::Fraction(sel("vllm:kv_cache_usage_perc")),
        Kv::Fraction(sel("vllm:gpu_cache_usage_perc")),
    ],
    generated: &[sel("nv_llm_output_token_len_sum"), sel("vllm:generation_tokens_total")],
};

const PROBES: &[Probe] = &[
    Probe::get("/v2"),
    Probe::post("/v2/repository/index", "{}"),
    Probe::get("/v2/models/{model}").per_model(),
];

const FRONTEND_PROBES: &[Probe] = &[Probe::get("/v1/models")];

const RUNTIME: &str = "Triton's generate API";

/// Triton's metrics port (`--metrics-port`, default 8002).
const METRICS_PORT: u16 = 8002;

/// `base_url` with its port replaced by `port`.
fn with_port(base_url: &str, port: u16) -> String {
    let base = base_url.trim_end_matches('/');
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // Bracketed IPv6 hosts keep their colons.
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    format!("{scheme}://{host}:{port}{path}")
}

fn trtllm_inputs(b: &params::Body, out: &mut Map<String, Value>) -> Result<(), OpenAiError> {
    match num(b, "temperature") {
        // OpenAI's 0 is greedy; TRT-LLM's greedy is top_k 1.
        Some(t) if t <= 0.0 => {
            out.insert("top_k".into(), json!(1));
        }
        Some(t) => {
            out.insert("temperature".into(), json!(t));
        }
        None => {}
    }
    if let Some(k) = b.get("top_k").filter(|v| v.is_u64())
        && !out.contains_key("top_k")
    {
        out.insert("top_k".into(), k.clone());
    }
    if let Some(p) = num(b, "top_p").filter(|p| *p > 0.0 && *p < 1.0) {
        out.insert("top_p".into(), json!(p));
    }
    if let Some(s) = b.get("seed").filter(|s| s.is_u64()) {
        out.insert("random_seed".into(), s.clone());
    }
    for key in ["frequency_penalty", "presence_penalty", "repetition_penalty"] {
        if let Some(x) = num(b, key).filter(|x| *x != 0.0) {
            out.insert(key.into(), json!(x));
        }
    }
    if let Some(stop) = params::stop(b)? {
        out.insert("stop_words".into(), json!(stop));
    }
    Ok(())
}

fn vllm_sampling(b: &params::Body, max_tokens: u32) -> Result<Value, OpenAiError> {
    let mut sp = Map::new();
    sp.insert("max_tokens".into(), json!(max_tokens));
    for key in [
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "repetition_penalty",
    ] {
        if let Some(v) = b.get(key).filter(|v| v.is_number()) {
            sp.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = params::stop(b)? {
        sp.insert("stop".into(), json!(stop));
    }
    Ok(Value::Object(sp))
}

impl Triton {
    fn generate_body(&self, req: &InferenceRequest) -> Result<Value, OpenAiError> {
        let b = req.body()?;
        let prompt = params::text_prompt(b, RUNTIME)?;
        one_plain_choice(b, RUNTIME)?;
        // The TRT-LLM ensemble requires a value.
        let max_tokens = req.max_tokens.unwrap_or(params::COMPLETIONS_DEFAULT_MAX_TOKENS);
        let mut out = Map::new();
        out.insert("text_input".into(), json!(prompt));
        out.insert("stream".into(), json!(req.stream));
        match self.backend {
            TritonBackend::TensorrtLlm => {
                out.insert("max_tokens".into(), json!(max_tokens));
                trtllm_inputs(b, &mut out)?;
            }
            TritonBackend::Vllm => {
                let sp = vllm_sampling(b, max_tokens)?;
                out.insert("sampling_parameters".into(), json!(sp.to_string()));
                out.insert("exclude_input_in_output".into(), json!(true));
                for switch in [
                    "return_finish_reason",
                    "return_num_input_tokens",
                    "return_num_output_tokens",
                ] {
                    out.insert(switch.into(), json!(true));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

impl Adapter for Triton {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Triton
    }

    fn surface(&self, req_kind: RequestKind) -> Surface {
        match (self.openai_frontend, req_kind) {
            (_, RequestKind::Embeddings) => Surface::Unsupported,
            (true, _) => Surface::OpenAi,
            (false, RequestKind::Completion) => Surface::Native,
            (false, RequestKind::Chat) => Surface::Unsupported,
        }
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        match (self.surface(req.kind), req.kind) {
            (Surface::OpenAi, _) => Ok(crate::passthrough::build(req, served_model)),
            (Surface::Unsupported, RequestKind::Chat) => Err(OpenAiError::new(
                pyxis_protocol::ErrorKind::NotFound,
                "This is not a chat model and thus not supported in the v1/chat/completions endpoint. Did you mean to use v1/completions?",
            )
            .with_param("model")
            .with_code("unsupported_route")),
            (Surface::Unsupported, _) => Err(super::no_route(
                self.kind(),
                "embeddings",
                "Serve embedding models on vLLM, SGLang, Ollama or llama.cpp.",
            )),
            (Surface::Native, _) => {
                let body = self.generate_body(req)?;
                let route = if req.stream { "generate_stream" } else { "generate" };
                Ok(UpstreamRequest {
                    dialect: Dialect::TritonGenerate(self.backend),
                    path: format!("/v2/models/{}/{route}", path_segment(served_model)),
                    body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
                    headers: if req.stream {
                        vec![("accept", "text/event-stream")]
                    } else {
                        Vec::new()
                    },
                    stream: req.stream,
                })
            }
        }
    }

    fn health_path(&self) -> &'static str {
        if self.openai_frontend {
            "/v1/models"
        } else {
            "/v2/health/ready"
        }
    }

    fn identity_probes(&self) -> &'static [Probe] {
        if self.openai_frontend { FRONTEND_PROBES } else { PROBES }
    }

    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity {
        let v = parse_json(body);
        match path {
            "/v2" => super::version(body),
            "/v1/models" => super::openai_models(body),
            "/v2/repository/index" => {
                let models = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| {
                                Some(ServedModel {
                                    id: m.get("name")?.as_str()?.to_string(),
                                    loaded: m.get("state").and_then(Value::as_str).map(|s| s == "READY"),
                                    ..ServedModel::default()
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Identity {
                    models,
                    ..Identity::default()
                }
            }
            p if p.starts_with("/v2/models/") => {
                let Some(name) = str_at(&v, "/name") else {
                    return Identity::default();
                };
                let inputs: Vec<&str> = v
                    .get("inputs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|i| i.get("name").and_then(Value::as_str)).collect())
                    .unwrap_or_default();
                // The inputs tell the backend apart better than `platform` (an ensemble wraps either).
                let backend = if inputs.contains(&"sampling_parameters") {
                    Some("vllm".to_string())
                } else if inputs.contains(&"max_tokens") {
                    Some("tensorrtllm".to_string())
                } else {
                    str_at(&v, "/platform")
                };
                let mut id = Identity::default();
                id.model_mut(&name).backend = backend;
                id
            }
            _ => Identity::default(),
        }
    }

    fn metrics_path(&self) -> Option<&'static str> {
        (!self.openai_frontend).then_some("/metrics")
    }

    fn metrics_url(&self, base_url: &str) -> Option<String> {
        self.metrics_path()
            .map(|p| format!("{}{p}", with_port(base_url, METRICS_PORT)))
    }

    fn parse_load(&self, metrics_text: &str, prev: Option<&LoadSample>, now_ms: u64) -> Option<LoadSample> {
        crate::prom::load(metrics_text, &LOAD, prev, now_ms)
    }
}

/// An output as the generate extension writes it: a scalar, or a one-element array.
fn scalar(v: &Value, key: &str) -> Option<Value> {
    match v.get(key)? {
        Value::Array(a) => a.first().cloned(),
        x => Some(x.clone()),
    }
}

/// The vLLM backend's finish reason (`str(None)` while running); `None` when absent or not final.
fn finish_of(v: &Value) -> Option<&'static str> {
    match scalar(v, "finish_reason")?.as_str()? {
        "length" => Some("length"),
        "" | "None" | "null" => None,
        _ => Some("stop"),
    }
}

pub(crate) fn whole(body: &[u8], ctx: &Ctx<'_>) -> Result<Whole, OpenAiError> {
    let kind = RuntimeKind::Triton;
    let v: Value = serde_json::from_slice(body).map_err(|_| malformed(kind, "a reply body that is not JSON"))?;
    let text = scalar(&v, "text_output")
        .and_then(|t| t.as_str().map(str::to_string))
        .ok_or_else(|| malformed(kind, "a reply without `text_output`"))?;
    let usage = match (
        scalar(&v, "num_input_tokens").and_then(|x| x.as_u64()),
        scalar(&v, "num_output_tokens").and_then(|x| x.as_u64()),
    ) {
        (Some(p), Some(c)) => Some(usage(p, c, None)),
        _ => None,
    };
    let a = Answer {
        text,
        finish_reason: finish_of(&v).unwrap_or("stop").into(),
        usage,
        ..Answer::default()
    };
    Ok(Whole {
        body: write_whole(RequestKind::Completion, ctx, &a),
        usage,
    })
}

/// Generate-stream events: `text_output` deltas; with the vLLM backend also per-response
/// `num_output_tokens` (a delta), `num_input_tokens` and, on the last response, `finish_reason`.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    prompt: Option<u64>,
    completion: Option<u64>,
}

impl Events for StreamState {
    fn event(&mut self, v: &Value, w: &mut ChunkWriter, out: &mut Vec<String>) -> Result<Step, OpenAiError> {
        if let Some(t) = scalar(v, "text_output") {
            w.content(t.as_str().unwrap_or_default(), out);
        }
        if let Some(p) = scalar(v, "num_input_tokens").and_then(|x| x.as_u64()) {
            self.prompt = Some(p);
        }
        if let Some(c) = scalar(v, "num_output_tokens").and_then(|x| x.as_u64()) {
            self.completion = Some(self.completion.unwrap_or(0) + c);
        }
        match finish_of(v) {
            Some(reason) => {
                w.finish(reason, out);
                Ok(Step::End)
            }
            None => Ok(Step::More),
        }
    }

    fn at_eof(&mut self, w: &mut ChunkWriter, out: &mut Vec<String>) -> bool {
        // No end marker in this format: a clean end of the body is the end of the answer.
        w.finish("stop", out);
        true
    }

    fn usage(&self) -> Option<Usage> {
        Some(usage(self.prompt?, self.completion?, None))
    }

    fn final_event(&self) -> &'static str {
        "the body ended"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_port_and_paths() {
        assert_eq!(with_port("http://10.0.0.5:8000", 8002), "http://10.0.0.5:8002");
        assert_eq!(with_port("http://triton/", 8002), "http://triton:8002");
        assert_eq!(with_port("https://[::1]:8000/x", 8002), "https://[::1]:8002/x");
        assert_eq!(with_port("http://[::1]", 8002), "http://[::1]:8002");
        assert_eq!(path_segment("llama 3/x"), "llama%203%2Fx");
    }
}
