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
