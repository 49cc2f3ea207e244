//! vLLM's extra routes: `/health`, `/version`, `/metrics`, `/ping`, `/tokenize`, `/detokenize`,
//! and runtime LoRA `/v1/load_lora_adapter` / `/v1/unload_lora_adapter` with vLLM's plain-text
//! success bodies.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pyxis_sim_core::LoraError;
use pyxis_sim_core::tokenizer::render_chat;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::openai::parse;
use crate::server::AppState;
use crate::{Surface, VLLM_VERSION};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/ping", get(health).post(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/v1/load_lora_adapter", post(load_lora))
        .route("/v1/unload_lora_adapter", post(unload_lora))
}

/// 200 with an empty body, 503 while the slow-start fault holds (vLLM answers 503 once its engine
/// is dead; here "not ready yet" is the closest thing).
pub(crate) async fn health(State(s): State<Arc<AppState>>) -> Response {
    if s.faults.starting() || s.runner.is_stopped() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    StatusCode::OK.into_response()
}

async fn version() -> Response {
    axum::Json(json!({"version": VLLM_VERSION})).into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::prom::vllm(&s),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ChatMsg {
    role: String,
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct TokenizeRequest {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMsg>>,
    #[serde(default = "yes")]
    add_generation_prompt: bool,
}

fn yes() -> bool {
    true
}

async fn tokenize(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: TokenizeRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(Surface::Vllm),
    };
    let tokens = match (&req.prompt, &req.messages) {
        (Some(p), _) => s.tokenizer.encode_prompt(p),
        (None, Some(m)) => s.tokenizer.encode_prompt(&render_chat(
            m.iter().map(|m| (m.role.as_str(), m.content.as_str())),
            req.add_generation_prompt,
        )),
        (None, None) => return ApiError::bad("either `prompt` or `messages` is required", None).render(Surface::Vllm),
    };
    axum::Json(
        json!({"count": tokens.len(), "max_model_len": s.config.max_model_len, "tokens": tokens, "token_strs": null}),
    )
    .into_response()
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<u32>,
}

async fn detokenize(body: Bytes) -> Response {
    let req: DetokenizeRequest = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(Surface::Vllm),
    };
    let text: String = req
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| match pyxis_sim_core::tokenizer::piece(*t) {
            Some(_) => pyxis_sim_core::tokenizer::render_token(*t, i == 0),
            None => format!("{}<{t}>", if i == 0 { "" } else { " " }),
        })
        .collect();
    axum::Json(json!({"prompt": text})).into_response()
}

#[derive(Deserialize)]
struct LoadLora {
    lora_name: String,
    #[serde(default)]
    lora_path: String,
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn load_lora(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: LoadLora = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(Surface::Vllm),
    };
    if req.lora_name.is_empty() || req.lora_path.is_empty() {
        return ApiError::bad("Both 'lora_name' and 'lora_path' must be provided.", None).render(Surface::Vllm);
    }
    // An absolute path that does not exist fails as in vLLM; other strings (hub ids, URLs) load.
    let path = std::path::Path::new(&req.lora_path);
    if path.is_absolute() && !path.exists() {
        return ApiError::NotFound {
            message: format!(
                "Loading lora {} failed: No adapter found for {}",
                req.lora_name, req.lora_path
            ),
            param: None,
        }
        .render(Surface::Vllm);
    }
    match s.runner.with(|e| e.load_lora(&req.lora_name)) {
        Ok(()) => {
            if let Ok(mut p) = s.lora_paths.lock() {
                p.insert(req.lora_name.clone(), req.lora_path.clone());
            }
            plain(
                StatusCode::OK,
                format!("Success: LoRA adapter '{}' added successfully.", req.lora_name),
            )
        }
        Err(e @ LoraError::AlreadyLoaded(_)) => {
            let body =
                json!({"error": {"message": e.to_string(), "type": "InvalidUserInput", "param": null, "code": 400}});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
        Err(e) => ApiError::bad(e.to_string(), None).render(Surface::Vllm),
    }
}

#[derive(Deserialize)]
struct UnloadLora {
    lora_name: String,
}

async fn unload_lora(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let req: UnloadLora = match parse(&body) {
        Ok(r) => r,
        Err(e) => return e.render(Surface::Vllm),
    };
    match s.runner.with(|e| e.unload_lora(&req.lora_name)) {
        Ok(()) => {
            if let Ok(mut p) = s.lora_paths.lock() {
                p.remove(&req.lora_name);
            }
            plain(
                StatusCode::OK,
                format!("Success: LoRA adapter '{}' removed successfully.", req.lora_name),
            )
        }
        Err(e) => ApiError::NotFound {
            message: e.to_string(),
            param: None,
        }
        .render(Surface::Vllm),
    }
}
