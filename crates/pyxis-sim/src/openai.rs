//! OpenAI-compatible routes in vLLM's shape: `/v1/chat/completions`, `/v1/completions`,
//! `/v1/models` (served by every surface, as vLLM, TGI and Ollama all have them).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pyxis_sim_core::tokenizer::render_chat;
use pyxis_sim_core::{FinishReason, SimRequest, SubmitError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::runner::{Delivery, Done, SubmitFail, Subscription};
use crate::server::{AppState, dropped_connection};
use crate::stream::{Framer, collect, relay, sse};
use crate::{Surface, VLLM_VERSION};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
    #[serde(default)]
    continuous_usage_stats: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    /// Optional, as in vLLM: absent means the first served name.
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    prompt: Prompt,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    n: Option<u32>,
}

/// Parses a JSON body into `T`, with vLLM's 400 `Bad Request` (param `body.<field>`) on failure.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        // serde says "missing field `messages` at line 1 column 16".
        let param = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.starts_with("missing field"))
            .map(|f| format!("body.{f}"));
        ApiError::InvalidBody {
            message: format!("1 validation error:\n  {msg}"),
            param,
        }
    })
}

/// Output budget as vLLM 0.32 decides it: `max_tokens` above the context, or a prompt that leaves
/// no room, is a 400; otherwise `max_tokens` is clamped to what the context leaves (absent: all
/// of it).
pub(crate) fn budget(state: &AppState, prompt_len: u32, asked: Option<i64>) -> Result<u32, ApiError> {
    let ctx = state.config.max_model_len;
    if let Some(m) = asked {
        if m < 1 {
            return Err(ApiError::bad(
                format!("max_tokens must be at least 1, got {m}. (parameter=max_tokens, value={m})"),
                Some("max_tokens"),
            ));
        }
        if m > i64::from(ctx) {
            return Err(ApiError::bad(
                format!(
                    "max_tokens={m} cannot be greater than max_model_len={ctx}. Please request fewer output tokens. (parameter=max_tokens, value={m})"
                ),
                Some("max_tokens"),
            ));
        }
    }
    if prompt_len >= ctx {
        let n = prompt_len.min(ctx + 1);
        return Err(ApiError::bad(
            format!(
                "This model's maximum context length is {ctx} tokens. However, your prompt contains at least {n} input tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input prompt. (parameter=input_tokens, value={n})"
            ),
            Some("input_tokens"),
        ));
    }
    let room = ctx - prompt_len;
    Ok(asked.map_or(room, |m| (m as u32).min(room)))
}

/// Submits to the engine, mapping refusals to API errors.
pub(crate) fn submit(state: &AppState, req: SimRequest, received: f64) -> Result<Subscription, ApiError> {
    state.runner.submit(req, received).map_err(|e| match e {
        SubmitFail::Stopped => ApiError::Unavailable("The engine is not running.".into()),
        SubmitFail::Rejected(SubmitError::UnknownLora(m)) => ApiError::NotFound {
            message: format!("The model `{m}` does not exist."),
            param: Some("model"),
        },
        SubmitFail::Rejected(e) => ApiError::bad(e.to_string(), Some("input_tokens")),
    })
}

/// Usage as vLLM reports it with `--enable-prompt-tokens-details` (cached prompt tokens are what a
/// prefix-aware router wants to see; vLLM without the flag sends `null` there).
fn usage_json(done: &Done) -> Value {
    let u = done.usage;
    json!({
        "prompt_tokens": u.prompt_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "completion_tokens": u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": null,
    })
}

fn running_usage(prompt: u32, completion: u32) -> Value {
    json!({"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion})
}

pub(crate) fn finish_str(r: FinishReason) -> &'static str {
    r.as_str()
}

fn fingerprint() -> String {
    // vLLM appends 8 hex digits of its build; these spell "pyxis-sim" loosely.
    format!("vllm-{VLLM_VERSION}-9f815e51")
}

async fn chat(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let surface = s.surface;
    chat_inner(s, body).await.unwrap_or_else(|e| e.render_openai(surface))
}

async fn chat_inner(s: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let guard = s.admit().await?;
    let req: ChatRequest = parse(&body).inspect_err(|_| count_validation(&s))?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad("The simulator serves n=1 only.", Some("n")));
    }
    let model = req.model.clone().unwrap_or_else(|| s.model_name().to_string());
    let lora = resolve(&s, &model)?;
    let texts: Vec<(String, String)> = req
        .messages
        .iter()
        .map(|m| {
            let content = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(p)) => p
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            (m.role.clone(), content)
        })
        .collect();
    let rendered = render_chat(texts.iter().map(|(r, c)| (r.as_str(), c.as_str())), true);
    let prompt = s.tokenizer.encode_prompt(&rendered);
    let prompt_len = prompt.len() as u32;
    let max_tokens =
        budget(&s, prompt_len, req.max_completion_tokens.or(req.max_tokens)).inspect_err(|_| count_validation(&s))?;
    let sub = submit(
        &s,
        SimRequest {
            id: 0,
            prompt,
            max_tokens,
            ignore_eos: req.ignore_eos,
            seed: req.seed,
            lora,
        },
        guard.received,
    )?;
    let id = s.next_id("chatcmpl");
    if req.stream {
        let opts = req.stream_options.unwrap_or_default();
        let framer = ChatFramer {
            id,
            created: crate::server::unix_now(),
            model,
            include_usage: opts.include_usage,
            continuous: opts.continuous_usage_stats,
            prompt_len,
        };
        return Ok(relay(s.clone(), sub, guard, "text/event-stream", framer));
    }
    let Some(out) = collect(&s, sub).await else {
        return Ok(dropped_connection());
    };
    drop(guard);
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": crate::server::unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": out.text, "refusal": null, "annotations": null,
                        "audio": null, "function_call": null, "reasoning": null},
            "logprobs": null,
            "finish_reason": finish_str(out.done.reason),
            "stop_reason": null,
            "token_ids": null,
            "routed_experts": null,
        }],
        "service_tier": null,
        "system_fingerprint": fingerprint(),
        "usage": usage_json(&out.done),
        "prompt_logprobs": null,
        "prompt_token_ids": null,
        "prompt_text": null,
        "kv_transfer_params": null,
        "ec_transfer_params": null,
        "metrics": null,
    });
    Ok(axum::Json(body).into_response())
}

pub(crate) fn count_validation(s: &AppState) {
    s.counters.validation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Model name → adapter. On the TGI surface any unknown name means the base model (TGI treats
/// `model` as an adapter id only when adapters are configured; clients often send anything).
fn resolve(s: &AppState, model: &str) -> Result<Option<String>, ApiError> {
    match s.resolve_model(model) {
        Err(_) if s.surface == Surface::Tgi => Ok(None),
        r => r,
    }
}

struct ChatFramer {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    continuous: bool,
    prompt_len: u32,
}

impl ChatFramer {
    fn chunk(&self, choices: Value, usage: Option<Value>, extra: Value) -> Bytes {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(m) = v.as_object_mut() {
            if let Some(u) = usage {
                m.insert("usage".into(), u);
            }
            if let Value::Object(e) = extra {
                m.extend(e);
            }
        }
        sse(&v)
    }
}

impl Framer for ChatFramer {
    fn start(&mut self) -> Vec<Bytes> {
        let usage = self.continuous.then(|| running_usage(self.prompt_len, 0));
        vec![self.chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]),
            usage,
            json!({"prompt_token_ids": null, "prompt_text": null}),
        )]
    }

    fn token(&mut self, text: &str, d: &Delivery) -> Vec<Bytes> {
        let mut choice =
            json!({"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null, "token_ids": null});
        if let (Some(done), Some(m)) = (d.done, choice.as_object_mut()) {
            m.insert("finish_reason".into(), json!(finish_str(done.reason)));
            m.insert("stop_reason".into(), Value::Null);
        }
        let usage = self.continuous.then(|| running_usage(self.prompt_len, d.index + 1));
        vec![self.chunk(json!([choice]), usage, Value::Null)]
    }

    fn end(&mut self, done: &Done) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.include_usage {
            out.push(self.chunk(
                json!([]),
                Some(usage_json(done)),
                json!({"system_fingerprint": fingerprint()}),
            ));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }
}

async fn completions(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let surface = s.surface;
    completions_inner(s, body)
        .await
        .unwrap_or_else(|e| e.render_openai(surface))
}

async fn completions_inner(s: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let guard = s.admit().await?;
    let req: CompletionRequest = parse(&body).inspect_err(|_| count_validation(&s))?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad("The simulator serves n=1 only.", Some("n")));
    }
    let model = req.model.clone().unwrap_or_else(|| s.model_name().to_string());
    let lora = resolve(&s, &model)?;
    let prompt = match req.prompt {
        Prompt::Text(t) => s.tokenizer.encode_prompt(&t),
        Prompt::Texts(v) if v.len() == 1 => s.tokenizer.encode_prompt(&v[0]),
        Prompt::Ids(ids) => ids,
        Prompt::IdLists(mut v) if v.len() == 1 => v.remove(0),
        _ => {
            return Err(ApiError::bad(
                "The simulator serves one prompt per request.",
                Some("prompt"),
            ));
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::bad("The prompt is empty.", Some("prompt")));
    }
    let prompt_len = prompt.len() as u32;
    // OpenAI's and vLLM's legacy completions default to 16 tokens.
    let max_tokens =
        budget(&s, prompt_len, Some(req.max_tokens.unwrap_or(16))).inspect_err(|_| count_validation(&s))?;
    let sub = submit(
        &s,
        SimRequest {
            id: 0,
            prompt,
            max_tokens,
            ignore_eos: req.ignore_eos,
            seed: req.seed,
            lora,
        },
        guard.received,
    )?;
    let id = s.next_id("cmpl");
    if req.stream {
        let opts = req.stream_options.unwrap_or_default();
        let framer = CompletionFramer {
            id,
            created: crate::server::unix_now(),
            model,
            include_usage: opts.include_usage,
        };
        return Ok(relay(s.clone(), sub, guard, "text/event-stream", framer));
    }
    let Some(out) = collect(&s, sub).await else {
        return Ok(dropped_connection());
    };
    drop(guard);
    Ok(axum::Json(json!({
        "id": id,
        "object": "text_completion",
        "created": crate::server::unix_now(),
        "model": model,
        "choices": [{"index": 0, "text": out.text, "logprobs": null, "finish_reason": finish_str(out.done.reason),
                     "stop_reason": null, "token_ids": null, "prompt_logprobs": null, "prompt_token_ids": null,
                     "routed_experts": null}],
        "service_tier": null,
        "system_fingerprint": fingerprint(),
        "usage": usage_json(&out.done),
        "kv_transfer_params": null,
        "ec_transfer_params": null,
        "metrics": null,
    }))
    .into_response())
}

struct CompletionFramer {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl Framer for CompletionFramer {
    fn token(&mut self, text: &str, d: &Delivery) -> Vec<Bytes> {
        let reason = d.done.map(|done| finish_str(done.reason));
        let mut v = json!({
            "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": reason, "stop_reason": null,
                         "prompt_token_ids": null, "token_ids": null}],
        });
        if let (Some(_), Some(m)) = (reason, v.as_object_mut()) {
            m.insert("system_fingerprint".into(), json!(fingerprint()));
        }
        vec![sse(&v)]
    }

    fn end(&mut self, done: &Done) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.include_usage {
            out.push(sse(&json!({
                "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_json(done),
            })));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }
}

async fn models(State(s): State<Arc<AppState>>) -> Response {
    let created = s.created;
    let perm = |id: &str| {
        json!([{"id": format!("modelperm-{id}"), "object": "model_permission", "created": created,
                "allow_create_engine": false, "allow_sampling": true, "allow_logprobs": true,
                "allow_search_indices": false, "allow_view": true, "allow_fine_tuning": false,
                "organization": "*", "group": null, "is_blocking": false}])
    };
    let owned_by = match s.surface {
        Surface::Vllm => "vllm",
        Surface::Tgi => s.model_name(),
        Surface::Ollama => "library",
    };
    let mut data: Vec<Value> = s
        .served
        .iter()
        .map(|name| {
            json!({"id": name, "object": "model", "created": created, "owned_by": owned_by,
                   "root": s.model.hf_id, "parent": null, "max_model_len": s.config.max_model_len,
                   "permission": perm(name)})
        })
        .collect();
    let paths = s.lora_paths.lock().map(|p| p.clone()).unwrap_or_default();
    for name in s.runner.with(|e| e.loras()) {
        let root = paths.get(&name).cloned().unwrap_or_else(|| name.clone());
        data.push(
            json!({"id": name, "object": "model", "created": created, "owned_by": owned_by,
                         "root": root, "parent": s.model_name(), "max_model_len": null,
                         "permission": perm(&name)}),
        );
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
