//! Hugging Face TGI: chat on the OpenAI surface, completions on the native `/generate[_stream]`,
//! no embeddings.
//!
//! Why chat stays on `/v1/chat/completions`: only TGI knows the model's chat template (and tools,
//! grammar); `/generate` takes a finished prompt (runtimes.md §2.1–2.3). Its chat replies are
//! OpenAI-shaped, with two quirks the gateway tolerates: `id` is `""`, and `model` other than
//! `"tgi"` selects a LoRA adapter (an unknown adapter id falls back to the base model:
//! `ADAPTER_TO_INDEX.get(adapter_id, 0)` in TGI's `flash_causal_lm.py`), so the served name passes.
//!
//! Why completions go native: TGI's `/v1/completions` is the weaker route. Its chunks carry
//! `finish_reason: ""` instead of null, the final chunk TGI's own reason (`eos_token`,
//! `stop_sequence`) instead of OpenAI's, usage is attached to every prompt's final chunk whatever
//! `stream_options` says, ids are empty, and `top_k` is dropped (TGI@db931fcf
//! `router/src/server.rs` `completions`, `router/src/lib.rs` `Completion`). The native
//! stream gives the same tokens with `details.finish_reason`, `generated_tokens` and `input_length`
//! (§2.2), which this module maps onto OpenAI's chunks and usage. `Tgi { native_completions: false }`
//! selects `/v1/completions` instead.
//!
//! Errors: `{"error", "error_type"}`; 429 `overloaded` is an immediate rejection at
//! `--max-concurrent-requests` (retry elsewhere at once); context errors are 422 `validation`
//! (§2.5). Load: `tgi_queue_size` + `tgi_batch_current_size`, no KV gauge (§2.4).

use bytes::Bytes;
use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind, Usage};
use pyxis_resources::RuntimeKind;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::{json as parse_json, str_at, u64_at};
use crate::adapter::Adapter;
use crate::errors::malformed;
use crate::openai_out::{Answer, ChunkWriter, usage, whole as write_whole};
use crate::params::{self, num, one_plain_choice, reject_nonzero};
use crate::prom::{LoadNames, sel};
use crate::translate::{Events, Step};
use crate::types::{Ctx, Dialect, Identity, LoadSample, Probe, Surface, UpstreamRequest, Whole};

pub(crate) struct Tgi {
    pub native_completions: bool,
}

pub(crate) const LOAD: LoadNames = LoadNames {
    waiting: &[sel("tgi_queue_size")],
    running: &[sel("tgi_batch_current_size")],
    kv: &[],
    // The histogram's `_sum` only grows: generated tokens of finished requests.
    generated: &[sel("tgi_request_generated_tokens_sum")],
};

const PROBES: &[Probe] = &[Probe::get("/info"), Probe::get("/v1/models")];

const RUNTIME: &str = "TGI's generate API";

/// TGI's finish reasons in OpenAI's words (TGI's own chat route maps `eos_token` to `stop` too).
pub(crate) fn finish_reason(r: &str) -> &'static str {
    match r {
        "length" => "length",
        _ => "stop",
    }
}

fn generate_body(req: &InferenceRequest, served_model: &str) -> Result<Value, OpenAiError> {
    let b = req.body()?;
    let inputs = params::text_prompt(b, RUNTIME)?;
    one_plain_choice(b, RUNTIME)?;
    reject_nonzero(b, "presence_penalty", RUNTIME)?;
    if b.get("suffix").is_some_and(|s| !s.is_null()) {
        return Err(params::unsupported("suffix", "is not supported by TGI."));
    }
    let mut p = Map::new();
    p.insert(
        "max_new_tokens".into(),
        json!(req.max_tokens.unwrap_or(params::COMPLETIONS_DEFAULT_MAX_TOKENS)),
    );
    // TGI wants temperature > 0 and 0 < top_p < 1; OpenAI's 0 means greedy, 1 means "no cut".
    let mut sample = true;
    match num(b, "temperature") {
        Some(t) if t <= 0.0 => sample = false,
        Some(t) => {
            p.insert("temperature".into(), json!(t));
        }
        None => {}
    }
    match num(b, "top_p") {
        Some(x) if x <= 0.0 => sample = false,
        Some(x) if x < 1.0 => {
            p.insert("top_p".into(), json!(x));
        }
        _ => {}
    }
    p.insert("do_sample".into(), json!(sample));
    if let Some(s) = b.get("seed").filter(|s| s.is_u64()) {
        p.insert("seed".into(), s.clone());
    }
    if let Some(stop) = params::stop(b)? {
        p.insert("stop".into(), json!(stop));
    }
    if let Some(f) = num(b, "frequency_penalty").filter(|f| *f != 0.0) {
        p.insert("frequency_penalty".into(), json!(f));
    }
    // TGI's own extensions, kept when a client sends them.
    for key in [
        "top_k",
        "repetition_penalty",
        "typical_p",
        "truncate",
        "watermark",
        "grammar",
    ] {
        if let Some(v) = b.get(key).filter(|v| !v.is_null()) {
            p.insert(key.into(), v.clone());
        }
    }
    // What TGI's own OpenAI routes do with `model`: a LoRA adapter id, the base model when unknown.
    p.insert("adapter_id".into(), json!(served_model));
    p.insert("details".into(), json!(true));
    Ok(json!({"inputs": inputs, "parameters": p}))
}

impl Adapter for Tgi {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Tgi
    }

    fn surface(&self, req_kind: RequestKind) -> Surface {
        match req_kind {
            RequestKind::Chat => Surface::OpenAi,
            RequestKind::Completion if self.native_completions => Surface::Native,
            RequestKind::Completion => Surface::OpenAi,
            RequestKind::Embeddings => Surface::Unsupported,
        }
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        match self.surface(req.kind) {
            Surface::OpenAi => Ok(crate::passthrough::build(req, served_model)),
            Surface::Unsupported => Err(super::no_route(
                self.kind(),
                "embeddings",
                "TGI serves text generation only; serve embedding models on vLLM, SGLang, Ollama or llama.cpp.",
            )),
            Surface::Native => {
                let body = generate_body(req, served_model)?;
                let (path, headers) = if req.stream {
                    ("/generate_stream", vec![("accept", "text/event-stream")])
                } else {
                    ("/generate", Vec::new())
                };
                Ok(UpstreamRequest {
                    dialect: Dialect::TgiGenerate,
                    path: path.into(),
                    body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
                    headers,
                    stream: req.stream,
                })
            }
        }
    }

    fn health_path(&self) -> &'static str {
        "/health"
    }

    fn identity_probes(&self) -> &'static [Probe] {
        PROBES
    }

    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity {
        match path {
            "/info" => {
                let v = parse_json(body);
                let mut id = Identity {
                    version: str_at(&v, "/version"),
                    max_concurrency: u64_at(&v, "/max_concurrent_requests").and_then(|n| u32::try_from(n).ok()),
                    ..Identity::default()
                };
                if let Some(name) = str_at(&v, "/model_id") {
                    id.model_mut(&name).context_length = u64_at(&v, "/max_total_tokens");
                }
                id
            }
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

/// `/generate`: `{"generated_text", "details": {finish_reason, generated_tokens, ...}}`; the
/// prompt's token count is only in the `x-prompt-tokens` header (§2.2).
pub(crate) fn whole(headers: &HeaderMap, body: &[u8], ctx: &Ctx<'_>) -> Result<Whole, OpenAiError> {
    let kind = RuntimeKind::Tgi;
    let v: Value = serde_json::from_slice(body).map_err(|_| malformed(kind, "a reply body that is not JSON"))?;
    // The compat route `POST /` answers a one-element array; accept it too.
    let v = match v {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        v => v,
    };
    let text = v
        .get("generated_text")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(kind, "a reply without `generated_text`"))?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let completion = u64_at(&v, "/details/generated_tokens").or_else(|| header("x-generated-tokens"));
    let prompt = header("x-prompt-tokens");
    let reason = str_at(&v, "/details/finish_reason").map_or("stop", |r| finish_reason(&r));
    let usage = match (prompt, completion) {
        (Some(p), Some(c)) => Some(usage(p, c, None)),
        _ => None,
    };
    let a = Answer {
        text: text.to_string(),
        finish_reason: reason.into(),
        usage,
        ..Answer::default()
    };
    Ok(Whole {
        body: write_whole(RequestKind::Completion, ctx, &a),
        usage,
    })
}

/// `/generate_stream`: one event per token; the last has `details` (§2.2). Special tokens (the
/// EOS that ends most answers) are not text.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    usage: Option<Usage>,
}

impl Events for StreamState {
    fn event(&mut self, v: &Value, w: &mut ChunkWriter, out: &mut Vec<String>) -> Result<Step, OpenAiError> {
        let token = v.get("token");
        let special = token
            .and_then(|t| t.get("special"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !special && let Some(text) = token.and_then(|t| t.get("text")).and_then(Value::as_str) {
            w.content(text, out);
        }
        match v.get("details").filter(|d| !d.is_null()) {
            None => Ok(Step::More),
            Some(d) => {
                let reason = d.get("finish_reason").and_then(Value::as_str).unwrap_or("stop");
                w.finish(finish_reason(reason), out);
                if let (Some(p), Some(c)) = (u64_at(d, "/input_length"), u64_at(d, "/generated_tokens")) {
                    self.usage = Some(usage(p, c, None));
                }
                Ok(Step::End)
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn final_event(&self) -> &'static str {
        "no final event with `details`"
    }
}
