//! TGI's native surface: `/generate`, `/generate_stream` (SSE without `[DONE]`), `/info`,
//! `/health`, `/metrics` with `tgi_*` names, errors as `{"error", "error_type"}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pyxis_sim_core::{FinishReason, SimRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::openai::{count_validation, parse, submit};
use crate::runner::{Delivery, Done};
use crate::server::{AppState, dropped_connection};
use crate::stream::{Framer, collect, relay};

/// The TGI release whose API this surface follows.
pub(crate) const TGI_VERSION: &str = "3.3.6";
/// TGI's `max_new_tokens` when a request leaves it out.
const DEFAULT_MAX_NEW_TOKENS: u32 = 100;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(crate::vllm::health))
        .route("/ping", get(crate::vllm::health))
        .route("/info", get(info))
        .route("/generate", post(generate))
        .route("/generate_stream", post(generate_stream))
        .route("/metrics", get(metrics))
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::prom::tgi(&s),
    )
        .into_response()
}

async fn info(State(s): State<Arc<AppState>>) -> Response {
    let ctx = s.config.max_model_len;
    axum::Json(json!({
        "model_id": s.model_name(),
        "model_sha": null,
        "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": s.faults.get().max_concurrent.unwrap_or(128),
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": ctx.saturating_sub(1),
        "max_total_tokens": ctx,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": TGI_VERSION,
        "sha": null,
        "docker_label": null,
    }))
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct Parameters {
    #[serde(default)]
    max_new_tokens: Option<u32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    details: bool,
    #[serde(default)]
    adapter_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    inputs: String,
    #[serde(default)]
    parameters: Parameters,
}

fn tgi_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "eos_token",
        _ => "length",
    }
}

/// Validates and submits; TGI's 422 wording for length errors.
async fn start(
    s: &Arc<AppState>,
    body: &Bytes,
) -> Result<(crate::server::InFlight, crate::runner::Subscription, u32, bool), ApiError> {
    let guard = s.admit().await?;
    let req: GenerateRequest = parse(body).inspect_err(|_| count_validation(s))?;
    let p = req.parameters;
    let prompt = s.tokenizer.encode_prompt(&req.inputs);
    let n = prompt.len() as u32;
    let ctx = s.config.max_model_len;
    let max_new = p
        .max_new_tokens
        .unwrap_or(DEFAULT_MAX_NEW_TOKENS.min(ctx.saturating_sub(n)).max(1));
    if max_new == 0 {
        count_validation(s);
        return Err(ApiError::bad("`max_new_tokens` must be strictly positive", None));
    }
    if n + max_new > ctx {
        count_validation(s);
        return Err(ApiError::bad(
            format!(
                "`inputs` tokens + `max_new_tokens` must be <= {ctx}. Given: {n} `inputs` tokens and {max_new} `max_new_tokens`"
            ),
            None,
        ));
    }
    // An adapter id naming the served model means the base model, as in TGI; an unknown one is
    // a 404.
    let lora = match p.adapter_id {
        Some(a) => s.resolve_model(&a)?,
        None => None,
    };
    let sub = submit(
        s,
        SimRequest {
            id: 0,
            prompt,
            max_tokens: max_new,
            ignore_eos: false,
            seed: p.seed,
            lora,
        },
        guard.received,
    )?;
    Ok((guard, sub, n, p.details))
}

fn headers(s: &AppState, done: &Done) -> HeaderMap {
    let t = done.timing;
    let ms = |v: f64| {
        HeaderValue::from_str(&format!("{}", (v * 1000.0).round() as u64)).unwrap_or(HeaderValue::from_static("0"))
    };
    let mut h = HeaderMap::new();
    h.insert(
        "x-compute-type",
        HeaderValue::from_str(&format!("1-{}", s.hardware.name)).unwrap_or(HeaderValue::from_static("gpu")),
    );
    h.insert("x-compute-time", ms(t.finished - t.first_scheduled));
    h.insert("x-total-time", ms(t.e2e()));
    h.insert("x-validation-time", HeaderValue::from_static("0"));
    h.insert("x-queue-time", ms((t.first_scheduled - t.arrival).max(0.0)));
    h.insert("x-inference-time", ms(t.finished - t.first_scheduled));
    let per = if done.usage.completion_tokens > 0 {
        (t.finished - t.first_scheduled) / f64::from(done.usage.completion_tokens)
    } else {
        0.0
    };
    h.insert("x-time-per-token", ms(per));
    h.insert("x-prompt-tokens", HeaderValue::from(done.usage.prompt_tokens));
    h.insert("x-generated-tokens", HeaderValue::from(done.usage.completion_tokens));
    h
}

async fn generate(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let (guard, sub, _n, details) = match start(&s, &body).await {
        Ok(v) => v,
        Err(e) => return e.render(crate::Surface::Tgi),
    };
    let Some(out) = collect(&s, sub).await else {
        return dropped_connection();
    };
    drop(guard);
    let mut v = json!({"generated_text": out.text});
    if details {
        let tokens: Vec<Value> = out
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"id": t, "text": pyxis_sim_core::tokenizer::render_token(*t, i == 0), "logprob": -0.5, "special": false}))
            .collect();
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "details".into(),
                json!({"finish_reason": tgi_reason(out.done.reason), "generated_tokens": out.done.usage.completion_tokens,
                       "seed": null, "prefill": [], "tokens": tokens}),
            );
        }
    }
    (StatusCode::OK, headers(&s, &out.done), axum::Json(v)).into_response()
}

async fn generate_stream(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let (guard, sub, n, _) = match start(&s, &body).await {
        Ok(v) => v,
        Err(e) => return e.render(crate::Surface::Tgi),
    };
    relay(
        s.clone(),
        sub,
        guard,
        "text/event-stream",
        TgiFramer {
            text: String::new(),
            input_length: n,
        },
    )
}

struct TgiFramer {
    text: String,
    input_length: u32,
}

impl Framer for TgiFramer {
    fn token(&mut self, text: &str, d: &Delivery) -> Vec<Bytes> {
        self.text.push_str(text);
        let (generated, details) = match d.done {
            Some(done) => (
                json!(self.text),
                json!({"finish_reason": tgi_reason(done.reason), "generated_tokens": done.usage.completion_tokens,
                       "seed": null, "input_length": self.input_length}),
            ),
            None => (Value::Null, Value::Null),
        };
        let ev = json!({
            "index": d.index + 1,
            "token": {"id": d.token, "text": text, "logprob": -0.5, "special": false},
            "generated_text": generated,
            "details": details,
        });
        // TGI writes `data:` without a space and never sends `[DONE]` on this route.
        vec![Bytes::from(format!("data:{ev}\n\n"))]
    }

    fn end(&mut self, _done: &Done) -> Vec<Bytes> {
        Vec::new()
    }
}
