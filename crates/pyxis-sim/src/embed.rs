//! Embedding routes: OpenAI's `POST /v1/embeddings` (vLLM and Ollama surfaces; TGI has none) and
//! Ollama's `POST /api/embed`.
//!
//! Each input runs through the engine as a one-token request, so it pays a prefill, queues
//! behind other work, moves the prompt-token metrics and honours `speedup`; the vector itself
//! comes from [`crate::vectors`].

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pyxis_sim_core::SimRequest;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Surface;
use crate::error::ApiError;
use crate::openai::{count_validation, parse, submit};
use crate::runner::Done;
use crate::server::{AppState, dropped_connection};
use crate::stream::collect;
use crate::vectors::{base64_f32, embed, embedding_dim, shorten};

/// OpenAI's cap on inputs in one request.
const MAX_INPUTS: usize = 2048;

pub(crate) fn routes(surface: Surface) -> Router<Arc<AppState>> {
    match surface {
        Surface::Vllm => Router::new().route("/v1/embeddings", post(openai)),
        Surface::Ollama => Router::new()
            .route("/v1/embeddings", post(openai))
            .route("/api/embed", post(ollama)),
        Surface::Tgi => Router::new(),
    }
}

/// The engine's vector length (from its served names, then its profile key).
fn dim(s: &AppState) -> usize {
    embedding_dim(s.served.iter().map(String::as_str).chain([s.spec.model.as_str()]))
}

/// Runs every prompt as a one-token request and waits for all; `None` if the engine went down.
/// The engine needs room for the sampled token, so a prompt filling the whole context is cut by
/// one for timing (it was validated against the context already).
async fn prefill_all(
    s: &Arc<AppState>,
    prompts: &[Vec<u32>],
    lora: Option<String>,
    received: f64,
) -> Result<Option<Vec<Done>>, ApiError> {
    let keep = s.config.max_model_len.saturating_sub(1).max(1) as usize;
    let mut subs = Vec::with_capacity(prompts.len());
    for p in prompts {
        let req = SimRequest {
            id: 0,
            prompt: p[..p.len().min(keep)].to_vec(),
            max_tokens: 1,
            ignore_eos: true,
            seed: None,
            lora: lora.clone(),
        };
        subs.push(submit(s, req, received)?);
    }
    let mut done = Vec::with_capacity(subs.len());
    for sub in subs {
        match collect(s, sub).await {
            Some(c) => done.push(c.done),
            None => return Ok(None),
        }
    }
    Ok(Some(done))
}

/// OpenAI's `input` (a string, strings, token ids, or lists of token ids) as prompts; a 400
/// naming `input` for anything else, empty, or over the 2,048-input cap.
fn inputs(s: &AppState, input: &Value) -> Result<Vec<Vec<u32>>, ApiError> {
    let invalid = || {
        ApiError::bad(
            "'input' must be a string, an array of strings, an array of token ids, or an array of token-id arrays.",
            Some("input"),
        )
    };
    let ids = |v: &Value| -> Option<Vec<u32>> {
        v.as_array()?
            .iter()
            .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    };
    let out = match input {
        Value::String(t) if t.is_empty() => {
            return Err(ApiError::bad("Invalid 'input': empty string.", Some("input")));
        }
        Value::String(t) => vec![s.tokenizer.encode_prompt(t)],
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::bad(
                "Invalid 'input': empty array. Expected an array with minimum length 1.",
                Some("input"),
            ));
        }
        Value::Array(items) if items.len() > MAX_INPUTS => {
            return Err(ApiError::bad(
                format!(
                    "Invalid 'input': array too long. Expected an array with maximum length {MAX_INPUTS}, but got an array with length {} instead.",
                    items.len()
                ),
                Some("input"),
            ));
        }
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|t| s.tokenizer.encode_prompt(t.as_str().unwrap_or_default()))
            .collect(),
        Value::Array(items) if items[0].is_number() => vec![ids(input).ok_or_else(invalid)?],
        Value::Array(items) => items
            .iter()
            .map(|v| ids(v).ok_or_else(invalid))
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid()),
    };
    if out.iter().any(Vec::is_empty) {
        return Err(ApiError::bad("Invalid 'input': empty token array.", Some("input")));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: Option<String>,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
}

async fn openai(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let surface = s.surface;
    openai_inner(s, body).await.unwrap_or_else(|e| e.render_openai(surface))
}

async fn openai_inner(s: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let guard = s.admit().await?;
    let req: EmbeddingsRequest = parse(&body).inspect_err(|_| count_validation(&s))?;
    let model = req.model.clone().unwrap_or_else(|| s.model_name().to_string());
    let lora = match s.surface {
        Surface::Ollama => crate::ollama::resolve(&s, &model).map(|()| None).map_err(|e| match e {
            ApiError::NotFound { message, .. } => ApiError::NotFound {
                message,
                param: Some("model"),
            },
            e => e,
        })?,
        _ => s.resolve_model(&model)?,
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(f) => {
            return Err(ApiError::bad(
                format!("Invalid 'encoding_format': '{f}'. Expected 'float' or 'base64'."),
                Some("encoding_format"),
            ));
        }
    };
    let full = dim(&s);
    let out_dim = match req.dimensions {
        None => full,
        Some(d) if d >= 1 && d as usize <= full => d as usize,
        Some(d) => {
            return Err(ApiError::bad(
                format!("Invalid 'dimensions': {d}. This model's embeddings have 1 to {full} dimensions."),
                Some("dimensions"),
            ));
        }
    };
    let prompts = inputs(&s, &req.input).inspect_err(|_| count_validation(&s))?;
    let ctx = s.config.max_model_len;
    if let Some(n) = prompts.iter().map(Vec::len).find(|n| *n > ctx as usize) {
        count_validation(&s);
        return Err(ApiError::bad(
            format!(
                "This model's maximum context length is {ctx} tokens. However, you requested {n} tokens in the input for embedding generation. Please reduce the length of the input."
            ),
            Some("input"),
        ));
    }
    let Some(_done) = prefill_all(&s, &prompts, lora.clone(), guard.received).await? else {
        return Ok(dropped_connection());
    };
    drop(guard);
    let key = lora.unwrap_or_else(|| s.model_name().to_string());
    let data: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v: Vec<f32> = shorten(&embed(p, &key, full), out_dim)
                .iter()
                .map(|x| *x as f32)
                .collect();
            let e = if base64 { json!(base64_f32(&v)) } else { json!(v) };
            json!({"index": i, "object": "embedding", "embedding": e})
        })
        .collect();
    let n: usize = prompts.iter().map(Vec::len).sum();
    let body = match s.surface {
        // Ollama's OpenAI layer: OpenAI's body exactly.
        Surface::Ollama => json!({
            "object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": n, "total_tokens": n},
        }),
        // vLLM adds an id, a timestamp and its usage extras.
        _ => json!({
            "id": s.next_id("embd"), "object": "list", "created": crate::server::unix_now(), "model": model,
            "data": data,
            "usage": {"prompt_tokens": n, "total_tokens": n, "completion_tokens": 0, "prompt_tokens_details": null},
        }),
    };
    Ok(axum::Json(body).into_response())
}

#[derive(Debug, Deserialize)]
struct OllamaEmbedRequest {
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    dimensions: Option<i64>,
}

fn ollama_error(message: &str) -> ApiError {
    ApiError::bad(message.to_string(), None)
}

async fn ollama(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    ollama_inner(s, body)
        .await
        .unwrap_or_else(|e| e.render(Surface::Ollama))
}

/// Ollama's order: input types, then the model, then an empty input answers at once; `truncate`
/// (default true) cuts long inputs to the context, `dimensions` shortens only when smaller.
async fn ollama_inner(s: Arc<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: OllamaEmbedRequest = parse(&body)?;
    let texts: Vec<&str> = match &req.input {
        Value::Null => Vec::new(),
        Value::String(t) if t.is_empty() => Vec::new(),
        Value::String(t) => vec![t.as_str()],
        Value::Array(items) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| ollama_error("invalid input type"))?,
        _ => return Err(ollama_error("invalid input type")),
    };
    crate::ollama::resolve(&s, &req.model).map_err(|_| ApiError::NotFound {
        message: format!("model '{}' not found", req.model),
        param: None,
    })?;
    if texts.is_empty() {
        return Ok(axum::Json(json!({"model": req.model, "embeddings": []})).into_response());
    }
    let guard = s.admit().await?;
    let ctx = s.config.max_model_len as usize;
    let mut prompts = Vec::with_capacity(texts.len());
    for t in texts {
        let mut p = s.tokenizer.encode_prompt(t);
        if p.len() > ctx {
            if req.truncate == Some(false) {
                count_validation(&s);
                return Err(ollama_error("the input length exceeds the context length"));
            }
            p.truncate(ctx);
        }
        prompts.push(p);
    }
    let Some(done) = prefill_all(&s, &prompts, None, guard.received).await? else {
        return Ok(dropped_connection());
    };
    drop(guard);
    let full = dim(&s);
    let out_dim = match req.dimensions {
        Some(d) if d > 0 && (d as usize) < full => d as usize,
        _ => full,
    };
    let embeddings: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| {
            shorten(&embed(p, s.model_name(), full), out_dim)
                .iter()
                .map(|x| *x as f32)
                .collect()
        })
        .collect();
    let start = done.iter().map(|d| d.timing.arrival).fold(f64::INFINITY, f64::min);
    let end = done.iter().map(|d| d.timing.finished).fold(0.0, f64::max);
    let n: usize = prompts.iter().map(Vec::len).sum();
    Ok(axum::Json(json!({
        "model": req.model,
        "embeddings": embeddings,
        "total_duration": ((end - start).max(0.0) * 1e9) as u64,
        "load_duration": 0,
        "prompt_eval_count": n,
    }))
    .into_response())
}
