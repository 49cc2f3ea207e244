//! The audit log: one row per finished or failed call, appended in batches by the gateway's writer.

use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, QueryBuilder, Row, Sqlite};

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Position in the log; assigned by the store, ignored on insert.
    #[serde(default)]
    pub seq: i64,
    pub request_id: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub tenant: String,
    pub key_id: Option<String>,
    pub model: String,
    pub endpoint: Option<String>,
    pub runtime: Option<String>,
    pub runtime_kind: Option<String>,
    pub hardware: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// HTTP status sent to the client (200 for a stream that started, even if it later broke;
    /// then `error_type` says what happened).
    pub status: i64,
    pub error_type: Option<String>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub stream: bool,
}

impl FromRow<'_, SqliteRow> for AuditRecord {
    fn from_row(r: &SqliteRow) -> sqlx::Result<Self> {
        Ok(AuditRecord {
            seq: r.try_get("seq")?,
            request_id: r.try_get("request_id")?,
            started_at_ms: r.try_get("started_at_ms")?,
            finished_at_ms: r.try_get("finished_at_ms")?,
            tenant: r.try_get("tenant")?,
            key_id: r.try_get("key_id")?,
            model: r.try_get("model")?,
            endpoint: r.try_get("endpoint")?,
            runtime: r.try_get("runtime")?,
            runtime_kind: r.try_get("runtime_kind")?,
            hardware: r.try_get("hardware")?,
            prompt_tokens: r.try_get("prompt_tokens")?,
            completion_tokens: r.try_get("completion_tokens")?,
            status: r.try_get("status")?,
            error_type: r.try_get("error_type")?,
            latency_ms: r.try_get("latency_ms")?,
            ttft_ms: r.try_get("ttft_ms")?,
            stream: r.try_get("stream")?,
        })
    }
}

/// Filters for reading the log back.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub limit: u32,
}

const COLUMNS: &str = "request_id, started_at_ms, finished_at_ms, tenant, key_id, model, endpoint, runtime, runtime_kind, hardware, prompt_tokens, completion_tokens, status, error_type, latency_ms, ttft_ms, stream";

impl Store {
    /// Appends records in one transaction (one fsync for the whole batch).
    pub async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // SQLite allows 32766 bound parameters; 17 columns a row.
        for chunk in records.chunks(1000) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!("INSERT INTO audit_log ({COLUMNS}) "));
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.request_id)
                    .push_bind(r.started_at_ms)
                    .push_bind(r.finished_at_ms)
                    .push_bind(&r.tenant)
                    .push_bind(&r.key_id)
                    .push_bind(&r.model)
                    .push_bind(&r.endpoint)
                    .push_bind(&r.runtime)
                    .push_bind(&r.runtime_kind)
                    .push_bind(&r.hardware)
                    .push_bind(r.prompt_tokens)
                    .push_bind(r.completion_tokens)
                    .push_bind(r.status)
                    .push_bind(&r.error_type)
                    .push_bind(r.latency_ms)
                    .push_bind(r.ttft_ms)
                    .push_bind(r.stream);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest records, newest last.
    pub async fn tail_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT seq, {COLUMNS} FROM audit_log"));
        if let Some(t) = &q.tenant {
            qb.push(" WHERE tenant = ").push_bind(t);
        }
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let mut rows: Vec<AuditRecord> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.reverse();
        Ok(rows)
    }

    pub async fn audit_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: i64, tenant: &str) -> AuditRecord {
        AuditRecord {
            seq: 0,
            request_id: format!("req-{i}"),
            started_at_ms: 1000 + i,
            finished_at_ms: 1100 + i,
            tenant: tenant.into(),
            key_id: Some("key_x".into()),
            model: "m".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            runtime: Some("pool".into()),
            runtime_kind: Some("vllm".into()),
            hardware: Some("h100".into()),
            prompt_tokens: 10,
            completion_tokens: i,
            status: 200,
            error_type: None,
            latency_ms: 12.5,
            ttft_ms: Some(3.0),
            stream: i % 2 == 0,
        }
    }

    #[tokio::test]
    async fn append_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let batch: Vec<_> = (0..2500).map(|i| rec(i, if i % 2 == 0 { "a" } else { "b" })).collect();
        store.append_audit(&batch).await.unwrap();
        assert_eq!(store.audit_count().await.unwrap(), 2500);
        let tail = store.tail_audit(&AuditQuery { tenant: None, limit: 3 }).await.unwrap();
        assert_eq!(
            tail.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
            ["req-2497", "req-2498", "req-2499"]
        );
        assert!(tail[0].seq < tail[2].seq);
        let mut expect = rec(2499, "b");
        expect.seq = tail[2].seq;
        assert_eq!(tail[2], expect);
        let only_a = store
            .tail_audit(&AuditQuery {
                tenant: Some("a".into()),
                limit: 10,
            })
            .await
            .unwrap();
        assert!(only_a.iter().all(|r| r.tenant == "a"));
        assert_eq!(only_a.len(), 10);
    }
}
