//! Ollama's surface: `/api/chat` and `/api/generate` as NDJSON (streaming by default),
//! `/api/tags`, `/api/show`, `/api/ps`, `/api/version`, `GET /` (`/api/embed` is in `embed.rs`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pyxis_sim_core::tokenizer::render_chat;
use pyxis_sim_core::{FinishReason, SimRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::openai::{count_validation, parse, submit};
use crate::runner::{Delivery, Done};
use crate::server::{AppState, dropped_connection};
use crate::stream::{Framer, collect, relay};

/// The Ollama release whose API this surface follows.
pub(crate) const OLLAMA_VERSION: &str = "0.6.8";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(root).head(root))
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/show", post(show))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
}

async fn root() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Ollama is running",
    )
        .into_response()
}

async fn version() -> Response {
    axum::Json(json!({"version": OLLAMA_VERSION})).into_response()
}

/// RFC 3339 UTC timestamp with nanoseconds, as Ollama writes `created_at`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn name_with_tag(n: &str) -> String {
    if n.contains(':') {
        n.to_string()
    } else {
        format!("{n}:latest")
    }
}

fn digest(s: &AppState) -> String {
    (0..4u64)
        .map(|i| {
            format!(
                "{:016x}",
                pyxis_sim_core::rng::mix64(pyxis_sim_core::rng::hash_str(s.model.hf_id) ^ i)
            )
        })
        .collect()
}

fn details(s: &AppState) -> Value {
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": s.model.family,
        "families": [s.model.family],
        "parameter_size": format!("{:.1}B", s.model.params / 1e9),
        "quantization_level": "BF16",
    })
}

/// The engine's base model, matched with or without `:latest`.
pub(crate) fn resolve(s: &AppState, model: &str) -> Result<(), ApiError> {
    let base = model.strip_suffix(":latest").unwrap_or(model);
    if s.served.iter().any(|n| n == model || n == base) {
        return Ok(());
    }
    Err(ApiError::NotFound {
        message: format!("model \"{model}\" not found, try pulling it first"),
        param: None,
    })
}

async fn tags(State(s): State<Arc<AppState>>) -> Response {
    let size = s.model.weight_bytes() as u64;
    let models: Vec<Value> = s
        .served
        .iter()
        .map(|n| {
            json!({"name": name_with_tag(n), "model": name_with_tag(n), "modified_at": rfc3339(SystemTime::now()),
                        "size": size, "digest": digest(&s), "details": details(&s)})
        })
        .collect();
    axum::Json(json!({"models": models})).into_response()
}

async fn ps(State(s): State<Arc<AppState>>) -> Response {
    let size = s.model.weight_bytes() as u64;
    let expires = SystemTime::now() + std::time::Duration::from_secs(300);
    let models: Vec<Value> = s
        .served
        .iter()
        .map(|n| {
            json!({"name": name_with_tag(n), "model": name_with_tag(n), "size": size, "digest": digest(&s),
                        "details": details(&s), "expires_at": rfc3339(expires), "size_vram": size})
        })
        .collect();
    axum::Json(json!({"models": models})).into_response()
}

#[derive(Deserialize)]
struct ShowRequest {
    #[serde(alias = "name")]
    model: String,
}

async fn show(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: ShowRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(crate::Surface::Ollama),
    };
    if let Err(e) = resolve(&s, &req.model) {
        return e.render(crate::Surface::Ollama);
    }
    let fam = s.model.family;
    axum::Json(json!({
        "license": "",
        "modelfile": format!("FROM {}\n", s.model.hf_id),
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": details(&s),
        "model_info": {
            "general.architecture": fam,
            "general.parameter_count": s.model.params as u64,
            format!("{fam}.context_length"): s.config.max_model_len,
            format!("{fam}.block_count"): s.model.layers,
            format!("{fam}.embedding_length"): s.model.hidden,
            format!("{fam}.attention.head_count"): s.model.heads,
            format!("{fam}.attention.head_count_kv"): s.model.kv_heads,
            format!("{fam}.vocab_size"): s.model.vocab,
        },
        "capabilities": capabilities(&s),
        "modified_at": rfc3339(SystemTime::now()),
    }))
    .into_response()
}

/// `["embedding"]` for a model named like one (nomic-embed-text, bge-*, ...), as Ollama reports
/// embedding-only models; `["completion"]` otherwise.
fn capabilities(s: &AppState) -> Value {
    if s.served.iter().any(|n| crate::vectors::is_embedding_name(n)) {
        json!(["embedding"])
    } else {
        json!(["completion"])
    }
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    #[serde(default)]
    num_predict: Option<i64>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Msg {
    role: String,
    #[serde(default)]
    content: String,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    #[serde(default)]
    messages: Vec<Msg>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Options,
}

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Options,
}

fn done_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        _ => "length",
    }
}

/// The counters of Ollama's final object; durations in nanoseconds of simulated time.
fn final_fields(done: &Done) -> Value {
    let t = done.timing;
    let ns = |v: f64| (v.max(0.0) * 1e9) as u64;
    json!({
        "done": true,
        "done_reason": done_reason(done.reason),
        "total_duration": ns(t.e2e()),
        "load_duration": 0,
        "prompt_eval_count": done.usage.prompt_tokens,
        "prompt_eval_duration": ns(t.first_token - t.first_scheduled),
        "eval_count": done.usage.completion_tokens,
        "eval_duration": ns(t.finished - t.first_token),
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Submits a prompt; `num_predict` < 0 or absent means "until the model stops" (capped by the
/// context).
async fn run(
    s: &Arc<AppState>,
    model: &str,
    prompt: Vec<u32>,
    opts: &Options,
) -> Result<(crate::server::InFlight, crate::runner::Subscription, Vec<u32>), ApiError> {
    let guard = s.admit().await?;
    resolve(s, model)?;
    let ctx = s.config.max_model_len;
    let n = prompt.len() as u32;
    if n >= ctx {
        count_validation(s);
        return Err(ApiError::bad(
            format!("input length {n} exceeds the context length {ctx}"),
            None,
        ));
    }
    let room = ctx - n;
    let max_tokens = match opts.num_predict {
        Some(k) if k > 0 => (k.min(i64::from(u32::MAX)) as u32).min(room),
        _ => room,
    };
    let sub = submit(
        s,
        SimRequest {
            id: 0,
            prompt: prompt.clone(),
            max_tokens,
            ignore_eos: false,
            seed: opts.seed,
            lora: None,
        },
        guard.received,
    )?;
    Ok((guard, sub, prompt))
}

async fn chat(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: ChatRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(crate::Surface::Ollama),
    };
    let rendered = render_chat(req.messages.iter().map(|m| (m.role.as_str(), m.content.as_str())), true);
    let prompt = s.tokenizer.encode_prompt(&rendered);
    let (guard, sub, _) = match run(&s, &req.model, prompt, &req.options).await {
        Ok(v) => v,
        Err(e) => return e.render(crate::Surface::Ollama),
    };
    if req.stream.unwrap_or(true) {
        let framer = OllamaFramer {
            model: req.model,
            chat: true,
            context: Vec::new(),
        };
        return relay(s.clone(), sub, guard, "application/x-ndjson", framer);
    }
    let Some(out) = collect(&s, sub).await else {
        return dropped_connection();
    };
    let v = json!({"model": req.model, "created_at": rfc3339(SystemTime::now()),
                   "message": {"role": "assistant", "content": out.text}});
    axum::Json(merge(v, final_fields(&out.done))).into_response()
}

async fn generate(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: GenerateRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(crate::Surface::Ollama),
    };
    let text = match &req.system {
        Some(sys) => render_chat([("system", sys.as_str()), ("user", req.prompt.as_str())], true),
        None => req.prompt.clone(),
    };
    let prompt = s.tokenizer.encode_prompt(&text);
    let (guard, sub, prompt) = match run(&s, &req.model, prompt, &req.options).await {
        Ok(v) => v,
        Err(e) => return e.render(crate::Surface::Ollama),
    };
    if req.stream.unwrap_or(true) {
        let framer = OllamaFramer {
            model: req.model,
            chat: false,
            context: prompt,
        };
        return relay(s.clone(), sub, guard, "application/x-ndjson", framer);
    }
    let Some(out) = collect(&s, sub).await else {
        return dropped_connection();
    };
    let mut context = prompt;
    context.extend(&out.tokens);
    let v =
        json!({"model": req.model, "created_at": rfc3339(SystemTime::now()), "response": out.text, "context": context});
    axum::Json(merge(v, final_fields(&out.done))).into_response()
}

struct OllamaFramer {
    model: String,
    chat: bool,
    /// `/api/generate` returns prompt + output ids as `context`.
    context: Vec<u32>,
}

impl OllamaFramer {
    fn line(v: &Value) -> Bytes {
        Bytes::from(format!("{v}\n"))
    }
}

impl Framer for OllamaFramer {
    fn token(&mut self, text: &str, d: &Delivery) -> Vec<Bytes> {
        if !self.chat {
            self.context.push(d.token);
        }
        let now = rfc3339(SystemTime::now());
        let v = if self.chat {
            json!({"model": self.model, "created_at": now, "message": {"role": "assistant", "content": text}, "done": false})
        } else {
            json!({"model": self.model, "created_at": now, "response": text, "done": false})
        };
        vec![Self::line(&v)]
    }

    fn end(&mut self, done: &Done) -> Vec<Bytes> {
        let now = rfc3339(SystemTime::now());
        let v = if self.chat {
            json!({"model": self.model, "created_at": now, "message": {"role": "assistant", "content": ""}})
        } else {
            json!({"model": self.model, "created_at": now, "response": "", "context": self.context})
        };
        vec![Self::line(&merge(v, final_fields(done)))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000000Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert!(rfc3339(leap).starts_with("2000-02-29T"));
    }
}
