//! The admin API: the audit log and usage reports over HTTP. A tenant's key reads only that
//! tenant's records; the admin key (`PYXIS_ADMIN_KEY`) reads everything.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use pyxis_protocol::{ErrorKind, OpenAiError};
use pyxis_store::{AuditQuery, UsageKey, hash_key};
use serde::Deserialize;

use crate::call::now_ms;
use crate::error::ApiError;
use crate::state::AppState;

/// Who is reading: the admin, or one tenant.
enum Reader {
    Admin,
    Tenant(String),
}

async fn reader(st: &AppState, headers: &HeaderMap) -> Result<Reader, OpenAiError> {
    if let Some(admin) = &st.admin_key_hash
        && let Some(key) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        && hash_key(key.trim()) == *admin
    {
        return Ok(Reader::Admin);
    }
    Ok(Reader::Tenant(st.keys.authenticate(headers).await?.tenant))
}

/// The tenant filter to apply: a tenant may only name itself.
fn scope(reader: &Reader, asked: Option<String>) -> Result<Option<String>, OpenAiError> {
    match (reader, asked) {
        (Reader::Admin, asked) => Ok(asked),
        (Reader::Tenant(me), None) => Ok(Some(me.clone())),
        (Reader::Tenant(me), Some(t)) if *me == t => Ok(Some(t)),
        (Reader::Tenant(_), Some(t)) => Err(OpenAiError::new(
            ErrorKind::PermissionDenied,
            format!("This key may only read its own tenant's records, not `{t}`. Use the admin key for other tenants."),
        )
        .with_param("tenant")),
    }
}

fn since_ms(since: Option<&str>) -> Result<Option<i64>, OpenAiError> {
    let Some(s) = since else { return Ok(None) };
    let d: Duration = humantime::parse_duration(s).map_err(|e| {
        OpenAiError::invalid(format!(
            "Invalid 'since': {e}. Use a duration such as 15m, 24h or 7days."
        ))
        .with_param("since")
    })?;
    Ok(Some(now_ms() - d.as_millis() as i64))
}

#[derive(Deserialize)]
pub struct AuditParams {
    tenant: Option<String>,
    model: Option<String>,
    runtime: Option<String>,
    status: Option<i64>,
    since: Option<String>,
    limit: Option<u32>,
    /// `json` (default), `jsonl` or `csv`.
    format: Option<String>,
}

pub async fn audit(State(st): State<Arc<AppState>>, headers: HeaderMap, Query(p): Query<AuditParams>) -> Response {
    let run = async {
        let who = reader(&st, &headers).await?;
        let q = AuditQuery {
            tenant: scope(&who, p.tenant)?,
            model: p.model,
            runtime: p.runtime,
            status: p.status,
            since_ms: since_ms(p.since.as_deref())?,
            until_ms: None,
            limit: p.limit.unwrap_or(100).min(100_000),
        };
        let rows = st.store.query_audit(&q).await.map_err(internal)?;
        render(&rows, p.format.as_deref())
    };
    run.await.unwrap_or_else(|e| ApiError(e).into_response())
}

#[derive(Deserialize)]
pub struct UsageParams {
    /// Comma-separated: tenant, model, runtime, hardware.
    by: Option<String>,
    since: Option<String>,
    tenant: Option<String>,
    format: Option<String>,
}

pub async fn usage(State(st): State<Arc<AppState>>, headers: HeaderMap, Query(p): Query<UsageParams>) -> Response {
    let run = async {
        let who = reader(&st, &headers).await?;
        let by: Vec<UsageKey> =
            p.by.as_deref()
                .unwrap_or("tenant")
                .split(',')
                .map(|s| s.trim().parse::<UsageKey>())
                .collect::<Result<_, _>>()
                .map_err(|e| OpenAiError::invalid(e).with_param("by"))?;
        let tenant = scope(&who, p.tenant)?;
        let since = since_ms(Some(p.since.as_deref().unwrap_or("24h")))?.unwrap_or(0);
        let view = st.view();
        let rows = st
            .store
            .usage(&by, since, i64::MAX, tenant.as_deref(), &view.dedicated)
            .await
            .map_err(internal)?;
        render(&rows, p.format.as_deref())
    };
    run.await.unwrap_or_else(|e| ApiError(e).into_response())
}

fn internal(e: pyxis_store::StoreError) -> OpenAiError {
    tracing::error!(error = %e, "admin query failed");
    OpenAiError::new(ErrorKind::Internal, "The store could not answer; try again shortly.")
}

fn render<T: serde::Serialize>(rows: &[T], format: Option<&str>) -> Result<Response, OpenAiError> {
    let (body, ctype) = match format.unwrap_or("json") {
        "json" => (
            serde_json::to_vec(&serde_json::json!({"object": "list", "data": rows})).unwrap_or_default(),
            "application/json",
        ),
        "jsonl" => {
            let mut out = Vec::new();
            for r in rows {
                out.extend(serde_json::to_vec(r).unwrap_or_default());
                out.push(b'\n');
            }
            (out, "application/x-ndjson")
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in rows {
                w.serialize(r)
                    .map_err(|e| OpenAiError::new(ErrorKind::Internal, format!("CSV: {e}")))?;
            }
            (w.into_inner().unwrap_or_default(), "text/csv")
        }
        other => {
            return Err(
                OpenAiError::invalid(format!("Unknown format `{other}`: use json, jsonl or csv.")).with_param("format"),
            );
        }
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}

/// `GET /admin/v1/queues`: each model pool's token budget, what is in use, and who waits. A tenant's
/// key sees its own queue depth only.
pub async fn queues(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let reader = match reader(&st, &headers).await {
        Ok(r) => r,
        Err(e) => return ApiError(e).into_response(),
    };
    let view = st.view();
    let mut pools = Vec::new();
    for name in view.models.keys() {
        let Some(pool) = st.admission.pool(name) else { continue };
        let (in_use, capacity) = pool.usage();
        let tenants: Vec<serde_json::Value> = pool
            .stats()
            .into_iter()
            .filter(|t| match &reader {
                Reader::Admin => true,
                Reader::Tenant(me) => *me == t.tenant,
            })
            .map(|t| {
                serde_json::json!({
                    "tenant": t.tenant, "queued": t.queued, "dispatched": t.dispatched,
                    "virtual_service": t.counter,
                })
            })
            .collect();
        let mut pool_json = serde_json::json!({"model": name, "tenants": tenants});
        if matches!(reader, Reader::Admin) {
            pool_json["capacity_tokens"] = capacity.into();
            pool_json["in_use_tokens"] = in_use.into();
            pool_json["queued"] = pool.queued().into();
        }
        pools.push(pool_json);
    }
    axum::Json(serde_json::json!({ "pools": pools })).into_response()
}

/// `GET /admin/v1/quotas?tenant=T`: a tenant's quota usage now (requests and tokens in the last
/// minute, in flight, today's and this month's tokens and cost) next to its limits.
pub async fn quotas(State(st): State<Arc<AppState>>, headers: HeaderMap, Query(q): Query<TenantParam>) -> Response {
    let reader = match reader(&st, &headers).await {
        Ok(r) => r,
        Err(e) => return ApiError(e).into_response(),
    };
    let tenant = match scope(&reader, q.tenant) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return ApiError(
                OpenAiError::invalid("Name the tenant: /admin/v1/quotas?tenant=NAME").with_param("tenant"),
            )
            .into_response();
        }
        Err(e) => return ApiError(e).into_response(),
    };
    let usage = st.quotas.snapshot(&tenant, now_ms().max(0) as u64).await;
    let view = st.view();
    let limits = view.tenants.get(&tenant).and_then(|p| p.quotas.clone());
    axum::Json(serde_json::json!({ "tenant": tenant, "limits": limits, "usage": usage })).into_response()
}

#[derive(Debug, Deserialize)]
pub struct TenantParam {
    tenant: Option<String>,
}

/// `GET /metrics`: Prometheus exposition (text 0.0.4, or OpenMetrics when the scraper asks for it).
/// Gauges that describe the moment (in flight, health, load, queue depth) are read here, at scrape
/// time, so the request path pays nothing for them.
pub async fn metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let m = &st.metrics;
    let view = st.view();
    let now = now_ms().max(0) as u64;
    for ep in &view.endpoints {
        m.in_flight(
            &ep.url,
            i64::from(ep.in_flight.load(std::sync::atomic::Ordering::Relaxed)),
        );
        m.endpoint_health(&ep.url, ep.kind.as_str(), ep.is_healthy());
        if let Some(l) = ep.load_sample() {
            m.load_signal(
                &ep.url,
                l.waiting as f64,
                l.running as f64,
                l.kv_use.unwrap_or(0.0),
                l.tokens_per_s.unwrap_or(0.0),
                now.saturating_sub(l.at_ms) as f64 / 1e3,
            );
        }
    }
    for name in view.models.keys() {
        if let Some(pool) = st.admission.pool(name) {
            for t in pool.stats() {
                m.queue_depth(&t.tenant, &t.class, t.queued as i64);
            }
        }
    }
    if let Some(io) = st.io_load.get() {
        for (i, open) in io.open_connections().into_iter().enumerate() {
            m.io_connections(i + 1, open as i64);
        }
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (body, content_type) = m.encode_for_accept(accept);
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[derive(Debug, Deserialize)]
pub struct LogLevel {
    level: String,
}

/// `GET /admin/v1/log-level` shows the log filter; `PUT` with `{"level": "debug,hyper=info"}`
/// changes it while running. Admin key only.
pub async fn get_log_level(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = admin_only(&st, &headers).await {
        return ApiError(e).into_response();
    }
    match st.telemetry.get() {
        Some(t) => axum::Json(serde_json::json!({ "level": t.level() })).into_response(),
        None => ApiError(OpenAiError::new(
            ErrorKind::NotFound,
            "This process does not manage its own logging.",
        ))
        .into_response(),
    }
}

pub async fn put_log_level(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<LogLevel>,
) -> Response {
    if let Err(e) = admin_only(&st, &headers).await {
        return ApiError(e).into_response();
    }
    let Some(t) = st.telemetry.get() else {
        return ApiError(OpenAiError::new(
            ErrorKind::NotFound,
            "This process does not manage its own logging.",
        ))
        .into_response();
    };
    match t.set_level(&body.level) {
        Ok(()) => {
            tracing::info!(level = %body.level, "log level changed");
            axum::Json(serde_json::json!({ "level": t.level() })).into_response()
        }
        Err(e) => ApiError(
            OpenAiError::invalid(format!(
                "{e}. Use a tracing filter such as `info`, `debug` or `info,pyxis_gateway=debug`."
            ))
            .with_param("level"),
        )
        .into_response(),
    }
}

async fn admin_only(st: &AppState, headers: &HeaderMap) -> Result<(), OpenAiError> {
    match reader(st, headers).await? {
        Reader::Admin => Ok(()),
        Reader::Tenant(_) => Err(OpenAiError::new(
            ErrorKind::PermissionDenied,
            "Only the admin key (PYXIS_ADMIN_KEY) may do this.",
        )),
    }
}
