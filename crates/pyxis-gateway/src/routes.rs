//! The HTTP surface: OpenAI routes, health routes, the request-id layer.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pyxis_protocol::{ErrorKind, OpenAiError, RequestKind};
use serde_json::json;

use crate::error::ApiError;
use crate::proxy;
use crate::state::AppState;

/// Largest request body accepted (long-context prompts are big).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn router(st: Arc<AppState>) -> Router {
    // The inference routes take and echo the request id themselves (`with_request_id`): the
    // `from_fn` middleware boxes every request's future and its `Next`, which showed in profiles
    // of the hot path. Every other route gets it from the middleware.
    let inference = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings));
    let rest = Router::new()
        .route("/v1/models", get(models))
        .route("/admin/v1/audit", get(crate::admin::audit))
        .route("/admin/v1/usage", get(crate::admin::usage))
        .route("/admin/v1/queues", get(crate::admin::queues))
        .route("/admin/v1/quotas", get(crate::admin::quotas))
        .route(
            "/admin/v1/log-level",
            get(crate::admin::get_log_level).put(crate::admin::put_log_level),
        )
        .route("/metrics", get(crate::admin::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(middleware::from_fn(request_id));
    inference
        .merge(rest)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(st)
}

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_string())
}

/// A fresh request id: `req-` and a UUIDv7, which starts with the time in milliseconds, so the
/// audit log's `request_id` index grows at its right edge instead of dirtying a random page for
/// every record (random v4 ids made each record rewrite its own index page at commit).
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::now_v7().simple())
}

/// The client's `x-request-id` (if sane) or a new one.
fn take_request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(valid_request_id)
        .unwrap_or_else(new_request_id)
}

/// Echoes the request id on the response.
fn echo_request_id(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Takes the client's `x-request-id` (if sane) or makes one, and echoes it on every response.
async fn request_id(req: Request, next: Next) -> Response {
    let id = take_request_id(req.headers());
    let resp = next.run(req).await;
    echo_request_id(resp, &id)
}

/// An inference route: the request id, the headers (moved out, where axum's `HeaderMap` extractor
/// would copy them) and the body (within `BODY_LIMIT`), then the proxy.
async fn inference(st: Arc<AppState>, req: Request, kind: RequestKind) -> Response {
    let (mut parts, body) = req.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let body = Bytes::from_request(Request::from_parts(parts, body), &()).await;
    let id = take_request_id(&headers);
    let resp = proxy::handle(st, id.clone(), headers, body, kind).await;
    echo_request_id(resp, &id)
}

async fn chat(State(st): State<Arc<AppState>>, req: Request) -> Response {
    inference(st, req, RequestKind::Chat).await
}

async fn embeddings(State(st): State<Arc<AppState>>, req: Request) -> Response {
    inference(st, req, RequestKind::Embeddings).await
}

async fn completions(State(st): State<Arc<AppState>>, req: Request) -> Response {
    inference(st, req, RequestKind::Completion).await
}

/// Only the models this tenant may use.
async fn models(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let principal = match st.keys.authenticate(&headers).await {
        Ok(p) => p,
        Err(e) => return ApiError(e).into_response(),
    };
    let view = st.view();
    let data: Vec<_> = view
        .models
        .values()
        .filter(|m| view.allows(&principal.tenant, &m.name))
        .map(|m| {
            json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "pyxis",
                "version": m.version,
                "max_model_len": m.context_length,
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready when every model has at least one healthy endpoint.
async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    let view = st.view();
    let unserved: Vec<&str> = view
        .models
        .values()
        .filter(|m| !m.endpoints.iter().any(|e| e.is_healthy()))
        .map(|m| m.name.as_str())
        .collect();
    let healthy = view.endpoints.iter().filter(|e| e.is_healthy()).count();
    let body = json!({
        "status": if unserved.is_empty() { "ready" } else { "not_ready" },
        "models": view.models.len(),
        "endpoints": view.endpoints.len(),
        "healthy_endpoints": healthy,
        "models_without_healthy_endpoint": unserved,
    });
    let status = if unserved.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn not_found(req: Request) -> Response {
    ApiError(OpenAiError::new(
        ErrorKind::NotFound,
        format!(
            "Unknown route: {} {}. Pyxis serves /v1/chat/completions, /v1/completions and /v1/models.",
            req.method(),
            req.uri().path()
        ),
    ))
    .into_response()
}
