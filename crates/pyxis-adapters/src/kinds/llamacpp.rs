//! llama.cpp `llama-server`: the OpenAI surface by default; native `/completion` selectable.
//!
//! Why OpenAI: llama-server's `/v1/chat/completions`, `/v1/completions` and `/v1/embeddings` are
//! complete: the chat template, SSE ending in `[DONE]`, `stream_options.include_usage` with a
//! `choices: []` usage chunk, `prompt_tokens_details.cached_tokens` (runtimes.md §7.1; verified on a
//! real llama-server, shared/runtimes/NOTES.md §2b). The native `/completion` adds nothing the
//! gateway needs, and whether its stream ends with `[DONE]` is unverified (§7.2, §10).
//! `LlamaCpp { native_completions: true }` sends completions to `/completion` (`n_predict`,
//! `stop_type`, `tokens_evaluated`/`tokens_predicted`, a final event with `stop: true`) for builds
//! whose OpenAI layer misbehaves; chat and embeddings stay on the OpenAI routes.
//!
//! Errors: `{"error": {code, message, type}}`; `exceed_context_size_error` becomes OpenAI's
//! `context_length_exceeded`; 503 `unavailable_error` while a model loads (§7.4). Load:
//! `llamacpp:requests_deferred` (queued) and `llamacpp:requests_processing` (running), only with
//! `--metrics`; current builds export no KV gauge (§7.3).

use bytes::Bytes;
use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind, Usage};
use pyxis_resources::RuntimeKind;
use serde_json::{Map, Value, json};

use super::{json as parse_json, str_at, u64_at};
use crate::adapter::Adapter;
use crate::errors::malformed;
use crate::openai_out::{Answer, ChunkWriter, usage, whole as write_whole};
use crate::params::{self, Prompt, one_plain_choice};
use crate::prom::{Kv, LoadNames, sel};
use crate::translate::{Events, Step};
use crate::types::{Ctx, Dialect, Identity, LoadSample, Probe, Surface, UpstreamRequest, Whole};

pub(crate) struct LlamaCpp {
    pub native_completions: bool,
}

pub(crate) const LOAD: LoadNames = LoadNames {
    waiting: &[sel("llamacpp:requests_deferred")],
    running: &[sel("llamacpp:requests_processing")],
    // Older builds only.
    kv: &[Kv::Fraction(sel("llamacpp:kv_cache_usage_ratio"))],
    generated: &[sel("llamacpp:tokens_predicted_total")],
};

const PROBES: &[Probe] = &[Probe::get("/props"), Probe::get("/v1/models")];

const RUNTIME: &str = "llama.cpp's /completion";

fn completion_body(req: &InferenceRequest) -> Result<Value, OpenAiError> {
    let b = req.body()?;
    let prompt = match params::text_or_tokens_prompt(b, RUNTIME)? {
        Prompt::Text(t) => json!(t),
        Prompt::Tokens(t) => Value::Array(t),
    };
    one_plain_choice(b, RUNTIME)?;
    let mut out = Map::new();
    out.insert("prompt".into(), prompt);
    out.insert(
        "n_predict".into(),
        json!(req.max_tokens.unwrap_or(params::COMPLETIONS_DEFAULT_MAX_TOKENS)),
    );
    out.insert("stream".into(), json!(req.stream));
    for key in [
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "repeat_penalty",
    ] {
        if let Some(v) = b.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = params::stop(b)? {
        out.insert("stop".into(), json!(stop));
    }
    for key in ["cache_prompt", "id_slot", "lora"] {
        if let Some(v) = b.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

impl Adapter for LlamaCpp {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Llamacpp
    }

    fn surface(&self, req_kind: RequestKind) -> Surface {
        match req_kind {
            RequestKind::Completion if self.native_completions => Surface::Native,
            _ => Surface::OpenAi,
        }
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        if self.surface(req.kind) == Surface::OpenAi {
            return Ok(crate::passthrough::build(req, served_model));
        }
        let body = completion_body(req)?;
        Ok(UpstreamRequest {
            dialect: Dialect::LlamaCppCompletion,
            path: "/completion".into(),
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            headers: if req.stream {
                vec![("accept", "text/event-stream")]
            } else {
                Vec::new()
            },
            stream: req.stream,
        })
    }

    fn health_path(&self) -> &'static str {
        "/health"
    }

    fn identity_probes(&self) -> &'static [Probe] {
        PROBES
    }

    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity {
        match path {
            "/props" => {
                let v = parse_json(body);
                let mut id = Identity {
                    version: str_at(&v, "/build_info"),
                    max_concurrency: u64_at(&v, "/total_slots").and_then(|n| u32::try_from(n).ok()),
                    ..Identity::default()
                };
                let name = str_at(&v, "/model_alias").or_else(|| str_at(&v, "/model_path"));
                if let Some(name) = name {
                    id.model_mut(&name).context_length =
                        u64_at(&v, "/default_generation_settings/n_ctx").or_else(|| u64_at(&v, "/n_ctx"));
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

/// `stop_type` (`eos`, `word`, `limit`, `none`) or, in older builds, `stopped_limit`.
fn finish_reason(v: &Value) -> &'static str {
    let limit = v.get("stop_type").and_then(Value::as_str) == Some("limit")
        || v.get("stopped_limit").and_then(Value::as_bool) == Some(true);
    if limit { "length" } else { "stop" }
}

/// `tokens_evaluated` / `tokens_predicted`, else the `timings` counts; cached prompt tokens from
/// `timings.cache_n`.
fn counts(v: &Value) -> Option<Usage> {
    let cached = u64_at(v, "/timings/cache_n");
    let prompt = u64_at(v, "/tokens_evaluated").or_else(|| Some(u64_at(v, "/timings/prompt_n")? + cached.unwrap_or(0)));
    let completion = u64_at(v, "/tokens_predicted").or_else(|| u64_at(v, "/timings/predicted_n"));
    Some(usage(prompt?, completion?, cached))
}

pub(crate) fn whole(body: &[u8], ctx: &Ctx<'_>) -> Result<Whole, OpenAiError> {
    let kind = RuntimeKind::Llamacpp;
    let v: Value = serde_json::from_slice(body).map_err(|_| malformed(kind, "a reply body that is not JSON"))?;
    let text = v
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(kind, "a reply without `content`"))?;
    let usage = counts(&v);
    let a = Answer {
        text: text.to_string(),
        finish_reason: finish_reason(&v).into(),
        usage,
        ..Answer::default()
    };
    Ok(Whole {
        body: write_whole(RequestKind::Completion, ctx, &a),
        usage,
    })
}

/// `/completion` stream: `content` pieces until the event with `stop: true` (§7.2).
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    usage: Option<Usage>,
}

impl Events for StreamState {
    fn event(&mut self, v: &Value, w: &mut ChunkWriter, out: &mut Vec<String>) -> Result<Step, OpenAiError> {
        w.content(v.get("content").and_then(Value::as_str).unwrap_or_default(), out);
        if v.get("stop").and_then(Value::as_bool) != Some(true) {
            return Ok(Step::More);
        }
        w.finish(finish_reason(v), out);
        self.usage = counts(v);
        Ok(Step::End)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn final_event(&self) -> &'static str {
        "no final event with `stop: true`"
    }
}
