//! The inference path: authenticate, validate, resolve the model, route, call the runtime,
//! relay the answer (whole or streamed), and leave an audit record.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pyxis_adapters::{Adapter, Ctx, Dialect, UpstreamFailure, UpstreamRequest};
use pyxis_protocol::{ErrorKind, InferenceRequest, OpenAiError, RequestKind, Usage};
use pyxis_quota::QuotaLimits;
use pyxis_router::Candidate;
use tracing::Instrument;

use crate::admission::{DEFAULT_MAX_OUTPUT, DEFAULT_QUEUE_TIMEOUT};
use crate::call::Call;
use crate::error::ApiError;
use crate::fleet::{Endpoint, FleetView, InFlight, ModelEntry};
use crate::relay::{Decoder, relay_stream};
use crate::routing::{self, RouteInput, SharedRouter};
use crate::state::AppState;
use crate::upstream::{self, SendError, UpstreamResponse};

/// Why an attempt got no response headers.
enum AttemptError {
    Http(SendError),
    Timeout(Duration),
}

pub async fn handle(
    st: Arc<AppState>,
    request_id: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: RequestKind,
) -> Response {
    if !st.traces {
        return handle_inner(st, request_id, headers, body, kind, None).await;
    }
    let span = pyxis_telemetry::spans::request_span(&request_id, kind.path(), operation(kind), &headers);
    // Log lines inside the request carry its request id and trace id.
    handle_inner(st, request_id, headers, body, kind, Some(span.clone()))
        .instrument(span)
        .await
}

async fn handle_inner(
    st: Arc<AppState>,
    request_id: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: RequestKind,
    span: Option<tracing::Span>,
) -> Response {
    let principal = match st.keys.authenticate(&headers).await {
        Ok(p) => p,
        Err(e) => return ApiError(e).into_response(),
    };
    let body = match body {
        Ok(b) => b,
        Err(rej) => {
            let kind = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ErrorKind::PayloadTooLarge
            } else {
                ErrorKind::InvalidRequest
            };
            return ApiError(OpenAiError::new(
                kind,
                format!("Could not read the request body: {rej}"),
            ))
            .into_response();
        }
    };
    let mut call = Call::new(st.audit.clone(), st.metrics.clone(), &request_id, &principal);
    call.span = span;
    let req = match InferenceRequest::parse_bytes(kind, body) {
        Ok(r) => r,
        Err(e) => return fail(&mut call, e),
    };
    call.set_requested_model(&req.model);
    call.set_stream(req.stream);

    let view = st.view();
    let Some(model) = view
        .models
        .get(&req.model)
        .filter(|_| view.allows(&principal.tenant, &req.model))
    else {
        return fail(&mut call, OpenAiError::model_not_found(&req.model));
    };
    call.resolve(model);
    let wants_embeddings = kind == RequestKind::Embeddings;
    if wants_embeddings != model.embedding {
        let msg = if model.embedding {
            format!(
                "The model `{}` is an embedding model: call /v1/embeddings with it.",
                model.name
            )
        } else {
            format!(
                "The model `{}` does not produce embeddings: call /v1/chat/completions or /v1/completions, or pick an embedding model (GET /v1/models).",
                model.name
            )
        };
        return fail(&mut call, OpenAiError::invalid(msg).with_param("model"));
    }
    if view.audit_content(&principal.tenant) {
        // The prompt as the client wrote it (raw JSON).
        let prompt = req.member("messages").or_else(|| req.member("prompt"));
        call.keep_content(
            prompt
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
        );
    }
    if let Err(resp) = admit(&st, &mut call, &view, model, &req).await {
        return resp;
    }
    let retry = routing::retry(model.policy.as_ref());
    let router = st.routers.get(&model.name);
    let prompt_tokens = u32::try_from(req.estimated_prompt_tokens()).unwrap_or(u32::MAX);
    let route_in = RouteInput::new(req.prompt_json(), prompt_tokens, &headers);
    // `x-pyxis-debug-route: 1` asks for the decision's explanation in `x-pyxis-route`.
    let mut explained: Option<String> = headers.contains_key("x-pyxis-debug-route").then(String::new);
    let mut tried: Vec<usize> = Vec::new();
    let mut last_err: Option<OpenAiError> = None;
    for _ in 0..retry.max_attempts {
        let Some(i) = choose(&st, router.as_ref(), model, &route_in, &tried, &mut explained) else {
            break;
        };
        tried.push(i);
        let ep = &model.endpoints[i];
        let adapter = pyxis_adapters::adapter(ep.kind);
        // Built per attempt: the endpoints of one model may be runtimes of different kinds.
        let up = match adapter.build(&req, &model.served_name) {
            Ok(up) => up,
            Err(e) => {
                // This kind cannot take this request (e.g. a parameter its native API lacks): another may.
                st.metrics.retry(&model.name, "unsupported_by_runtime");
                last_err = Some(e);
                continue;
            }
        };
        call.bind(InFlight::new(ep.clone()));
        let attempt = call.span.as_ref().map(|parent| {
            pyxis_telemetry::spans::attempt_span(
                parent,
                tried.len() as u32,
                &ep.url,
                &ep.runtime,
                ep.kind.as_str(),
                &model.served_name,
                operation(kind),
            )
        });
        let mut trace_headers = HeaderMap::new();
        if !attempt
            .as_ref()
            .is_some_and(|a| pyxis_telemetry::inject_context(a, &mut trace_headers))
        {
            pyxis_telemetry::copy_trace_headers(&headers, &mut trace_headers);
        }
        let sent =
            match tokio::time::timeout(retry.attempt_timeout, send(&st, ep, &up, &request_id, trace_headers)).await {
                Ok(sent) => sent.map_err(AttemptError::Http),
                Err(_) => Err(AttemptError::Timeout(retry.attempt_timeout)),
            };
        if let Some(a) = &attempt {
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            pyxis_telemetry::spans::record_attempt_outcome(a, status, sent.as_ref().err().map(|_| "connect"));
        }
        match sent {
            Ok(resp) if resp.status().is_success() => {
                report(router.as_ref(), ep, true);
                if let Some(r) = &router {
                    call.route_feedback(r.clone(), &ep.url, prompt_tokens, ep.in_flight.load(Ordering::Relaxed));
                }
                let ctx = Ctx {
                    public_model: &model.name,
                    id: &request_id,
                    created: (crate::call::now_ms().max(0) / 1000) as u64,
                };
                let mut out = match (up.dialect, req.stream) {
                    (Dialect::OpenAi(_), true) => stream_response(resp, Decoder::sse(), call, &req, model, ep),
                    (Dialect::OpenAi(_), false) => whole_response(resp, call, model, ep).await,
                    (dialect, true) => {
                        let decoder = Decoder::native(adapter.stream_translator(dialect, &ctx));
                        stream_response(resp, decoder, call, &req, model, ep)
                    }
                    (dialect, false) => native_whole(resp, adapter, dialect, &ctx, call, ep).await,
                };
                if let Some(v) = explained.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                    out.headers_mut().insert("x-pyxis-route", v);
                }
                return out;
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = upstream::read_body(resp).await.unwrap_or_default();
                let failure = adapter.classify_error(status, &bytes);
                if !matches!(failure, UpstreamFailure::Client(_)) {
                    report(router.as_ref(), ep, false);
                }
                match failure {
                    // The runtime's state, not the request's fault: another endpoint may take it.
                    UpstreamFailure::Overloaded {
                        error, endpoint_down, ..
                    } => {
                        if endpoint_down {
                            ep.healthy.store(false, Ordering::Relaxed);
                            st.metrics.ejected(&ep.url);
                        }
                        st.metrics.retry(&model.name, "overloaded");
                        last_err = Some(error);
                        call.unbind();
                    }
                    UpstreamFailure::Server {
                        error,
                        retry_elsewhere: true,
                    } => {
                        st.metrics.retry(&model.name, "server_error");
                        last_err = Some(error);
                        call.unbind();
                    }
                    UpstreamFailure::Server { error, .. } | UpstreamFailure::Client(error) => {
                        return fail_with_endpoint(&mut call, error, ep);
                    }
                }
            }
            Err(AttemptError::Timeout(t)) => {
                report(router.as_ref(), ep, false);
                st.metrics.retry(&model.name, "attempt_timeout");
                tracing::warn!(%request_id, endpoint = %ep.url, timeout_ms = t.as_millis() as u64, "upstream attempt timed out before its response headers");
                last_err = Some(OpenAiError::new(
                    ErrorKind::Timeout,
                    format!(
                        "The runtime at {} did not answer within {} ms (the attempt timeout of the model's RoutingPolicy).",
                        ep.url,
                        t.as_millis()
                    ),
                ));
                call.unbind();
            }
            Err(AttemptError::Http(e)) => {
                report(router.as_ref(), ep, false);
                let reason = if e.connect { "connect_failed" } else { "upstream_error" };
                if e.connect {
                    ep.healthy.store(false, Ordering::Relaxed);
                    st.metrics.ejected(&ep.url);
                }
                st.metrics.retry(&model.name, reason);
                tracing::warn!(%request_id, endpoint = %ep.url, error = %e, "upstream attempt failed");
                let kind = if e.timed_out {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::BadGateway
                };
                last_err = Some(OpenAiError::new(
                    kind,
                    format!(
                        "The runtime at {} could not be reached ({e}). Check `pyxis serve` logs and the runtime's health.",
                        ep.url,
                    ),
                ));
                call.unbind();
            }
        }
    }
    let err = last_err.unwrap_or_else(|| {
        OpenAiError::new(
            ErrorKind::Unavailable,
            format!(
                "No healthy endpoint serves model `{}` right now; retry shortly.",
                req.model
            ),
        )
        .with_code("no_healthy_endpoint")
    });
    let mut resp = fail(&mut call, err);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Quotas, then the fair queue. On refusal, the response to send (already audited).
async fn admit(
    st: &AppState,
    call: &mut Call,
    view: &FleetView,
    model: &ModelEntry,
    req: &InferenceRequest,
) -> Result<(), Response> {
    let tenant = call.tenant().to_string();
    let policy = view.tenants.get(&tenant);
    let prompt = u32::try_from(req.estimated_prompt_tokens()).unwrap_or(u32::MAX);
    let room = model.context_length.saturating_sub(prompt).max(1);
    let max_output = if req.kind == RequestKind::Embeddings {
        0
    } else {
        req.max_tokens.unwrap_or(DEFAULT_MAX_OUTPUT).min(room)
    };
    if let Some(q) = policy.and_then(|p| p.quotas.as_ref()) {
        let limits = quota_limits(q);
        let now = crate::call::now_ms().max(0) as u64;
        let reserve = u64::from(prompt) + u64::from(max_output);
        match st.quotas.admit(&tenant, &limits, reserve, now).await {
            Ok(r) => call.hold_quota(st.quotas.clone(), r),
            Err(rej) => {
                let err = OpenAiError::new(ErrorKind::RateLimit, rej.message()).with_code(rej.reason.code());
                let label = match rej.reason {
                    pyxis_quota::Reason::RequestsPerMinute => "quota_requests_per_minute",
                    pyxis_quota::Reason::TokensPerMinute => "quota_tokens_per_minute",
                    pyxis_quota::Reason::Concurrency => "quota_concurrency",
                    pyxis_quota::Reason::TokenBudget => "quota_token_budget",
                    pyxis_quota::Reason::CostBudget => "quota_cost_budget",
                };
                st.metrics.rejected(&tenant, label);
                return Err(refuse(call, err, rej.retry_after_s, label));
            }
        }
    }
    let timeout = policy
        .and_then(|p| p.queue.as_ref())
        .and_then(|q| q.timeout_ms)
        .map_or(DEFAULT_QUEUE_TIMEOUT, Duration::from_millis);
    let class = policy
        .and_then(|p| p.tier.as_deref())
        .unwrap_or(pyxis_sched::DEFAULT_CLASS);
    // A child span for the wait, ended when admission answers.
    let queue_span = call.span.as_ref().map(|s| pyxis_telemetry::spans::queue_span(s, class));
    let admitted = st
        .admission
        .admit(&model.name, &tenant, prompt, max_output, timeout)
        .await;
    if let Some(qs) = queue_span {
        let outcome = admitted.as_ref().map_or_else(|r| r.reason, |_| "admitted");
        pyxis_telemetry::spans::record_queue_outcome(&qs, outcome);
    }
    match admitted {
        Ok(permit) => {
            st.metrics.queue_wait(&tenant, class, permit.waited.as_secs_f64());
            call.hold_permit(permit);
            Ok(())
        }
        Err(refusal) => {
            st.metrics.rejected(&tenant, refusal.reason);
            Err(refuse(call, refusal.error, refusal.retry_after_s, refusal.reason))
        }
    }
}

fn quota_limits(q: &pyxis_resources::TenantQuotas) -> QuotaLimits {
    QuotaLimits {
        requests_per_minute: q.requests_per_minute,
        tokens_per_minute: q.tokens_per_minute,
        concurrent_requests: q.concurrent_requests,
        tokens_per_day: q.tokens_per_day,
        tokens_per_month: q.tokens_per_month,
        cost_per_day: q.cost_per_day,
        cost_per_month: q.cost_per_month,
    }
}

/// A refused admission: audited with its reason, answered with `Retry-After`.
fn refuse(call: &mut Call, err: OpenAiError, retry_after_s: u64, reason: &str) -> Response {
    call.finish(err.status(), Some(reason));
    let mut resp = ApiError(err).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_s.max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Asks the model's router for an endpoint (not one of `tried`), and tells it the request went there.
fn choose(
    st: &AppState,
    router: Option<&SharedRouter>,
    model: &ModelEntry,
    input: &RouteInput,
    tried: &[usize],
    explain: &mut Option<String>,
) -> Option<usize> {
    let Some(router) = router else {
        // A model added since the last sync: least in flight until its router exists.
        let candidates: Vec<Candidate> = model
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, ep)| Candidate {
                healthy: ep.is_healthy() && !tried.contains(&i),
                in_flight: ep.in_flight.load(Ordering::Relaxed),
            })
            .collect();
        let rotation = st.rotation.fetch_add(1, Ordering::Relaxed);
        return pyxis_router::pick(&candidates, rotation);
    };
    let now = crate::call::now_ms().max(0) as u64;
    let views: Vec<_> = model.endpoints.iter().map(|e| routing::view(e, now)).collect();
    let rq = input.request(model);
    let mut r = routing::lock(router);
    let d = r.decide(now, &rq, &views, tried);
    if explain.is_some() || tracing::enabled!(tracing::Level::DEBUG) {
        let e = d.explain();
        tracing::debug!(model = %model.name, route = %e, "routing decision");
        *explain = Some(e);
    }
    let i = d.chosen?;
    r.on_dispatch(now, views[i].key, &rq);
    Some(i)
}

fn report(router: Option<&SharedRouter>, ep: &Endpoint, ok: bool) {
    if let Some(r) = router {
        let now = crate::call::now_ms().max(0) as u64;
        let mut r = routing::lock(r);
        if ok {
            r.on_success(now, &ep.url);
        } else {
            r.on_failure(now, &ep.url);
        }
    }
}

async fn send(
    st: &AppState,
    ep: &Endpoint,
    up: &UpstreamRequest,
    request_id: &str,
    mut headers: HeaderMap,
) -> Result<UpstreamResponse, SendError> {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    for (k, v) in &up.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(*k), HeaderValue::try_from(*v)) {
            headers.insert(k, v);
        }
    }
    if let Some(key) = &ep.api_key
        && let Ok(mut v) = HeaderValue::try_from(format!("Bearer {key}"))
    {
        v.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, v);
    }
    st.upstream.post_json(&ep.url, &up.path, headers, up.body.clone()).await
}

fn fail(call: &mut Call, err: OpenAiError) -> Response {
    call.finish(err.status(), Some(error_label(&err)));
    ApiError(err).into_response()
}

fn fail_with_endpoint(call: &mut Call, err: OpenAiError, ep: &Endpoint) -> Response {
    let mut resp = fail(call, err);
    if let Ok(v) = HeaderValue::from_str(&ep.url) {
        resp.headers_mut().insert("x-pyxis-endpoint", v);
    }
    resp
}

/// The short error label kept in the audit log.
fn error_label(err: &OpenAiError) -> &'static str {
    match err.kind {
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::Authentication => "authentication",
        ErrorKind::PermissionDenied => "permission_denied",
        ErrorKind::NotFound => "model_not_found",
        ErrorKind::PayloadTooLarge => "payload_too_large",
        ErrorKind::RateLimit => "rate_limited",
        ErrorKind::Internal => "internal",
        ErrorKind::BadGateway => "upstream_unreachable",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "upstream_timeout",
    }
}

async fn whole_response(resp: UpstreamResponse, mut call: Call, model: &ModelEntry, ep: &Endpoint) -> Response {
    let bytes = match upstream::read_body(resp).await {
        Ok(b) => b,
        Err(e) => {
            let err = OpenAiError::new(
                ErrorKind::BadGateway,
                format!("The runtime at {} broke the connection mid-response: {e}", ep.url),
            );
            return fail_with_endpoint(&mut call, err, ep);
        }
    };
    let not_json = |e: serde_json::Error| {
        OpenAiError::new(
            ErrorKind::BadGateway,
            format!("The runtime at {} sent a body that is not JSON: {e}", ep.url),
        )
    };
    let rename = model.served_name != model.name;
    if !rename && !call.keeps_content() {
        // The common case: the bytes pass through; only `usage` is read (the rest is checked
        // to be JSON, not built into a tree).
        match pyxis_protocol::usage::read_usage(&bytes) {
            Ok(Some(u)) => call.set_usage(&u),
            Ok(None) => {}
            Err(e) => return fail_with_endpoint(&mut call, not_json(e), ep),
        }
        return whole_ok(call, bytes, ep);
    }
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return fail_with_endpoint(&mut call, not_json(e), ep),
    };
    if let Some(u) = value
        .get("usage")
        .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
    {
        call.set_usage(&u);
    }
    if call.keeps_content() {
        keep_completion(&mut call, &value);
    }
    let out = if rename {
        value["model"] = serde_json::Value::String(model.name.clone());
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    } else {
        bytes
    };
    whole_ok(call, out, ep)
}

/// A native runtime's whole reply, translated into OpenAI's object by its adapter.
async fn native_whole(
    resp: UpstreamResponse,
    adapter: &'static dyn Adapter,
    dialect: Dialect,
    ctx: &Ctx<'_>,
    mut call: Call,
    ep: &Endpoint,
) -> Response {
    let headers = resp.headers().clone();
    let bytes = match upstream::read_body(resp).await {
        Ok(b) => b,
        Err(e) => {
            let err = OpenAiError::new(
                ErrorKind::BadGateway,
                format!("The runtime at {} broke the connection mid-response: {e}", ep.url),
            );
            return fail_with_endpoint(&mut call, err, ep);
        }
    };
    let whole = match adapter.translate_whole(dialect, &headers, &bytes, ctx) {
        Ok(w) => w,
        Err(e) => return fail_with_endpoint(&mut call, e, ep),
    };
    if let Some(u) = &whole.usage {
        call.set_usage(u);
    }
    if call.keeps_content()
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&whole.body)
    {
        keep_completion(&mut call, &value);
    }
    whole_ok(call, whole.body, ep)
}

/// The span operation of a request kind.
fn operation(kind: RequestKind) -> pyxis_telemetry::spans::Operation {
    match kind {
        RequestKind::Chat => pyxis_telemetry::spans::Operation::Chat,
        _ => pyxis_telemetry::spans::Operation::TextCompletion,
    }
}

/// Keeps the completion text of a whole reply (chat or completions) for content logging.
fn keep_completion(call: &mut Call, value: &serde_json::Value) {
    let choice = &value["choices"][0];
    let text = choice["message"]["content"]
        .as_str()
        .or_else(|| choice["text"].as_str());
    call.push_content(text.unwrap_or_default());
}

/// Finishes a call answered with a whole JSON body, naming the endpoint that served it.
fn whole_ok(mut call: Call, body: Bytes, ep: &Endpoint) -> Response {
    call.finish(200, None);
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&ep.url) {
        h.insert("x-pyxis-endpoint", v);
    }
    r
}

fn stream_response(
    resp: UpstreamResponse,
    decoder: Decoder,
    call: Call,
    req: &InferenceRequest,
    model: &ModelEntry,
    ep: &Endpoint,
) -> Response {
    let rename = (model.served_name != model.name).then(|| model.name.clone());
    // Native translators already write the public model name.
    let rename = rename.filter(|_| matches!(decoder, Decoder::Sse(..)));
    let body = relay_stream(resp, decoder, call, req.include_usage, rename, ep.url.clone());
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&ep.url) {
        h.insert("x-pyxis-endpoint", v);
    }
    r
}

/// Per-attempt connect timeout; a runtime that cannot accept a connection in this long is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
