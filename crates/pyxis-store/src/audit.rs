//! The audit log: one row per finished or failed call, appended in batches by the gateway's
//! writer, chained by hashes so tampering shows.

use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, FromRow, Row};

use crate::{Result, Store, now_ms};

/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Position in the log; assigned by the store on append.
    pub seq: i64,
    pub request_id: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub tenant: String,
    pub key_id: Option<String>,
    /// The model name the client asked for.
    pub requested_model: String,
    /// The model that answered (same as requested until aliases and fallbacks exist).
    pub model: String,
    pub model_version: Option<String>,
    pub lora_adapter: Option<String>,
    pub endpoint: Option<String>,
    pub runtime: Option<String>,
    pub runtime_kind: Option<String>,
    pub runtime_version: Option<String>,
    pub hardware: Option<String>,
    pub accelerator_count: Option<i64>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    /// HTTP status sent to the client (200 for a stream that started, even if it later broke;
    /// then `error_type` says what happened; 499 when the client went away).
    pub status: i64,
    pub error_type: Option<String>,
    pub queue_ms: f64,
    pub ttft_ms: Option<f64>,
    pub latency_ms: f64,
    /// Upstream attempts (retries on other endpoints count).
    pub attempts: i64,
    pub stream: bool,
    pub cost_usd: f64,
    /// Only for tenants that opted in to content logging.
    pub prompt_text: Option<String>,
    pub completion_text: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// SHA-256 over the previous hash and every field but `hash` itself, in a fixed order.
    pub fn compute_hash(&self, prev_hash: &str) -> String {
        let mut unhashed = self.clone();
        unhashed.chain(prev_hash.to_string());
        unhashed.hash
    }

    /// Links the record after `prev_hash`: sets `prev_hash` and `hash` (what `compute_hash`
    /// gives, without copying the record).
    pub fn chain(&mut self, prev_hash: String) {
        self.prev_hash = prev_hash;
        self.hash = String::new();
        // serde_json writes struct fields in declaration order, and floats round-trip exactly:
        // the bytes are the same when the row is read back.
        let mut h = HashWriter(Sha256::new());
        h.0.update(self.prev_hash.as_bytes());
        h.0.update(b"\n");
        // Writing into the hasher cannot fail, nor can serialising this struct.
        let _ = serde_json::to_writer(&mut h, &*self);
        self.hash = hex::encode(h.0.finalize());
    }
}

/// Feeds serialised bytes straight into the hash, without building them in a buffer first.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FromRow<'_, AnyRow> for AuditRecord {
    fn from_row(r: &AnyRow) -> sqlx::Result<Self> {
        Ok(AuditRecord {
            seq: r.try_get("seq")?,
            request_id: r.try_get("request_id")?,
            started_at_ms: r.try_get("started_at_ms")?,
            finished_at_ms: r.try_get("finished_at_ms")?,
            tenant: r.try_get("tenant")?,
            key_id: r.try_get("key_id")?,
            requested_model: r.try_get("requested_model")?,
            model: r.try_get("model")?,
            model_version: r.try_get("model_version")?,
            lora_adapter: r.try_get("lora_adapter")?,
            endpoint: r.try_get("endpoint")?,
            runtime: r.try_get("runtime")?,
            runtime_kind: r.try_get("runtime_kind")?,
            runtime_version: r.try_get("runtime_version")?,
            hardware: r.try_get("hardware")?,
            accelerator_count: r.try_get("accelerator_count")?,
            cloud: r.try_get("cloud")?,
            region: r.try_get("region")?,
            prompt_tokens: r.try_get("prompt_tokens")?,
            completion_tokens: r.try_get("completion_tokens")?,
            cached_tokens: r.try_get("cached_tokens")?,
            status: r.try_get("status")?,
            error_type: r.try_get("error_type")?,
            queue_ms: r.try_get("queue_ms")?,
            ttft_ms: r.try_get("ttft_ms")?,
            latency_ms: r.try_get("latency_ms")?,
            attempts: r.try_get("attempts")?,
            stream: r.try_get::<i64, _>("stream")? != 0,
            cost_usd: r.try_get("cost_usd")?,
            prompt_text: r.try_get("prompt_text")?,
            completion_text: r.try_get("completion_text")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }
}

/// Filters for reading the log back.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub runtime: Option<String>,
    pub status: Option<i64>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: u32,
}

const COLUMNS: &str = "seq, request_id, started_at_ms, finished_at_ms, tenant, key_id, requested_model, model, model_version, lora_adapter, endpoint, runtime, runtime_kind, runtime_version, hardware, accelerator_count, cloud, region, prompt_tokens, completion_tokens, cached_tokens, status, error_type, queue_ms, ttft_ms, latency_ms, attempts, stream, cost_usd, prompt_text, completion_text, prev_hash, hash";
/// Rows per `INSERT` statement, largest first. A batch is cut into statements of these sizes only,
/// so at most five distinct statements exist and each is prepared once per connection and then
/// reused from sqlx's statement cache; one statement sized to each batch was parsed anew almost
/// every time (a 900-row insert is 30,000 parameters of SQL). 256 rows × 33 columns stays under
/// SQLite's 32,766 parameters and PostgreSQL's 65,535.
const INSERT_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

/// Cuts `n` rows into statement sizes from `INSERT_SIZES`, largest first.
fn insert_chunks(mut n: usize) -> impl Iterator<Item = usize> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < INSERT_SIZES.len() && INSERT_SIZES[i] > n {
            i += 1;
        }
        let size = *INSERT_SIZES.get(i)?;
        n -= size;
        Some(size)
    })
}

/// The `INSERT` for `rows` (one of `INSERT_SIZES`) records, built once per process.
fn insert_statement(rows: usize, backend: crate::Backend) -> &'static str {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let cell = match backend {
        crate::Backend::Sqlite => &SQLITE,
        crate::Backend::Postgres => &POSTGRES,
    };
    let all = cell.get_or_init(|| INSERT_SIZES.iter().map(|&n| insert_sql(n, backend)).collect());
    let i = INSERT_SIZES
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(INSERT_SIZES.len() - 1);
    &all[i]
}

/// `INSERT … VALUES ($1, …), (…)` for `rows` records. SQLite gets anonymous `?` parameters:
/// it resolves each named `$N` by a linear scan of the names seen so far, which made a
/// 30,000-parameter statement take seconds to prepare.
fn insert_sql(rows: usize, backend: crate::Backend) -> String {
    let cols = COLUMNS.split(',').count();
    let mut sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                crate::Backend::Sqlite => sql.push('?'),
                crate::Backend::Postgres => sql.push_str(&format!("${}", r * cols + c + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

fn bind_record<'q>(q: Query<'q, Any, AnyArguments>, r: &'q AuditRecord) -> Query<'q, Any, AnyArguments> {
    q.bind(r.seq)
        .bind(&r.request_id)
        .bind(r.started_at_ms)
        .bind(r.finished_at_ms)
        .bind(&r.tenant)
        .bind(&r.key_id)
        .bind(&r.requested_model)
        .bind(&r.model)
        .bind(&r.model_version)
        .bind(&r.lora_adapter)
        .bind(&r.endpoint)
        .bind(&r.runtime)
        .bind(&r.runtime_kind)
        .bind(&r.runtime_version)
        .bind(&r.hardware)
        .bind(r.accelerator_count)
        .bind(&r.cloud)
        .bind(&r.region)
        .bind(r.prompt_tokens)
        .bind(r.completion_tokens)
        .bind(r.cached_tokens)
        .bind(r.status)
        .bind(&r.error_type)
        .bind(r.queue_ms)
        .bind(r.ttft_ms)
        .bind(r.latency_ms)
        .bind(r.attempts)
        .bind(i64::from(r.stream))
        .bind(r.cost_usd)
        .bind(&r.prompt_text)
        .bind(&r.completion_text)
        .bind(&r.prev_hash)
        .bind(&r.hash)
}

/// (id, started, last seq, last flush, flush delay) of an `audit_sessions` row.
type SessionRow = (i64, i64, Option<i64>, Option<i64>, i64);

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub records: i64,
    /// The first record whose chain does not hold, and why.
    pub first_broken: Option<BrokenRecord>,
    /// Runs that ended without a clean shutdown: calls finished after their last flush may be missing.
    pub possible_gaps: Vec<PossibleGap>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenRecord {
    pub seq: i64,
    pub request_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PossibleGap {
    pub session: i64,
    pub started_at_ms: i64,
    /// The last record durably written by that run.
    pub last_seq: Option<i64>,
    pub last_flush_ms: Option<i64>,
    /// Calls that finished up to this long after `last_flush_ms` may be missing.
    pub flush_delay_ms: i64,
}

impl Store {
    /// Appends records in one transaction, chaining each to the last one in the log, and notes
    /// the flush on the writing session. Sets `seq`, `prev_hash` and `hash` on the records.
    pub async fn append_audit(&self, records: &mut [AuditRecord], session: Option<i64>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // IMMEDIATE: take the write lock before reading the chain's tail, so two writers (two
        // processes on one file) cannot both chain onto the same record.
        let mut tx = self.begin_write().await?;
        let tail: Option<(i64, String)> = sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (mut seq, mut prev) = tail.unwrap_or((0, GENESIS_HASH.to_string()));
        for r in records.iter_mut() {
            seq += 1;
            r.seq = seq;
            r.chain(prev);
            prev = r.hash.clone();
        }
        let mut rest: &[AuditRecord] = records;
        for size in insert_chunks(records.len()) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut q = sqlx::query(insert_statement(size, self.backend));
            for r in chunk {
                q = bind_record(q, r);
            }
            q.execute(&mut *tx).await?;
        }
        if let Some(id) = session {
            sqlx::query(
                "UPDATE audit_sessions SET first_seq = COALESCE(first_seq, $1), last_seq = $2, last_flush_ms = $3 WHERE id = $4",
            )
            .bind(records[0].seq)
            .bind(seq)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that a server run starts writing the log; returns its id.
    pub async fn begin_audit_session(&self, flush_delay_ms: i64) -> Result<i64> {
        let host = std::env::var("HOSTNAME").ok();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO audit_sessions (started_at_ms, flush_delay_ms, host) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(now_ms())
        .bind(flush_delay_ms)
        .bind(host)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Marks a run as cleanly stopped (its writer drained).
    pub async fn end_audit_session(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE audit_sessions SET stopped_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Runs that ended without a clean stop, other than `current`.
    pub async fn unclean_sessions(&self, current: Option<i64>) -> Result<Vec<PossibleGap>> {
        let rows: Vec<SessionRow> = sqlx::query_as(
            "SELECT id, started_at_ms, last_seq, last_flush_ms, flush_delay_ms FROM audit_sessions \
             WHERE stopped_at_ms IS NULL AND id != $1 ORDER BY id",
        )
        .bind(current.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(session, started_at_ms, last_seq, last_flush_ms, flush_delay_ms)| PossibleGap {
                    session,
                    started_at_ms,
                    last_seq,
                    last_flush_ms,
                    flush_delay_ms,
                },
            )
            .collect())
    }

    /// Records matching the query, newest last (the latest `limit` of them).
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut n = 0;
        let mut cond = |sql: &mut String, col: &str, op: &str| {
            n += 1;
            sql.push_str(&format!(" AND {col} {op} ${n}"));
        };
        if q.tenant.is_some() {
            cond(&mut sql, "tenant", "=");
        }
        if q.model.is_some() {
            cond(&mut sql, "model", "=");
        }
        if q.runtime.is_some() {
            cond(&mut sql, "runtime", "=");
        }
        if q.status.is_some() {
            cond(&mut sql, "status", "=");
        }
        if q.since_ms.is_some() {
            cond(&mut sql, "started_at_ms", ">=");
        }
        if q.until_ms.is_some() {
            cond(&mut sql, "started_at_ms", "<");
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", q.limit.max(1)));
        let mut query = sqlx::query_as::<_, AuditRecord>(AssertSqlSafe(sql));
        for v in [&q.tenant, &q.model, &q.runtime].into_iter().flatten() {
            query = query.bind(v.clone());
        }
        for v in [q.status, q.since_ms, q.until_ms].into_iter().flatten() {
            query = query.bind(v);
        }
        let mut rows = query.fetch_all(&self.pool).await?;
        rows.reverse();
        Ok(rows)
    }

    /// The latest records, newest last.
    pub async fn tail_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.query_audit(q).await
    }

    pub async fn audit_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Walks the whole chain in `seq` order and reports the first record that does not hold.
    pub async fn verify_audit(&self) -> Result<VerifyReport> {
        const PAGE: i64 = 5000;
        let mut prev_seq = 0i64;
        let mut prev_hash = GENESIS_HASH.to_string();
        let mut count = 0i64;
        let mut first_broken = None;
        'pages: loop {
            let page: Vec<AuditRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            )))
            .bind(prev_seq)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            if page.is_empty() {
                break;
            }
            for r in page {
                count += 1;
                let reason = if r.seq != prev_seq + 1 {
                    Some(format!(
                        "records {} to {} are missing (deleted?)",
                        prev_seq + 1,
                        r.seq - 1
                    ))
                } else if r.prev_hash != prev_hash {
                    Some("its prev_hash does not match the hash of the record before it (a record before it was changed or replaced)".to_string())
                } else if r.compute_hash(&r.prev_hash) != r.hash {
                    Some("its content does not match its hash (the record was changed)".to_string())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    first_broken = Some(BrokenRecord {
                        seq: r.seq,
                        request_id: r.request_id.clone(),
                        reason,
                    });
                    break 'pages;
                }
                prev_seq = r.seq;
                prev_hash = r.hash;
            }
        }
        if first_broken.is_some() {
            count = self.audit_count().await?;
        }
        Ok(VerifyReport {
            records: count,
            first_broken,
            possible_gaps: self.unclean_sessions(None).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cut_into_few_fixed_statement_sizes() {
        for n in [0usize, 1, 3, 4, 5, 17, 255, 256, 257, 1000, 2048, 2047] {
            let sizes: Vec<usize> = insert_chunks(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}: {sizes:?}");
            assert!(sizes.iter().all(|s| INSERT_SIZES.contains(s)), "{n}: {sizes:?}");
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "largest first: {sizes:?}");
            // Greedy on sizes that divide each other: fewer than 4 of any size but the largest.
            for &s in &INSERT_SIZES[1..] {
                assert!(sizes.iter().filter(|&&x| x == s).count() < 4, "{n}: {sizes:?}");
            }
        }
        for (&rows, backend) in INSERT_SIZES
            .iter()
            .zip([crate::Backend::Sqlite, crate::Backend::Postgres].iter().cycle())
        {
            let sql = insert_statement(rows, *backend);
            assert_eq!(sql.matches('(').count(), rows + 1, "a column list and {rows} rows");
        }
    }

    pub(crate) fn rec(i: i64, tenant: &str) -> AuditRecord {
        AuditRecord {
            request_id: format!("req-{i}"),
            started_at_ms: 1000 + i,
            finished_at_ms: 1100 + i,
            tenant: tenant.into(),
            key_id: Some("key_x".into()),
            requested_model: "m".into(),
            model: "m".into(),
            model_version: Some("1".into()),
            endpoint: Some("http://127.0.0.1:1".into()),
            runtime: Some("pool".into()),
            runtime_kind: Some("vllm".into()),
            hardware: Some("h100".into()),
            accelerator_count: Some(1),
            prompt_tokens: 10,
            completion_tokens: i,
            status: 200,
            latency_ms: 12.5 + i as f64 / 3.0,
            ttft_ms: Some(3.0),
            attempts: 1,
            stream: i % 2 == 0,
            cost_usd: 0.000_123 * i as f64,
            ..AuditRecord::default()
        }
    }

    #[tokio::test]
    async fn append_tail_and_verify() {
        for (_, store) in crate::testing::stores().await.stores {
            let mut batch: Vec<_> = (0..2500).map(|i| rec(i, if i % 2 == 0 { "a" } else { "b" })).collect();
            store.append_audit(&mut batch[..1000], None).await.unwrap();
            store.append_audit(&mut batch[1000..], None).await.unwrap();
            assert_eq!(store.audit_count().await.unwrap(), 2500);
            let tail = store
                .tail_audit(&AuditQuery {
                    limit: 3,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(
                tail.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
                ["req-2497", "req-2498", "req-2499"]
            );
            assert_eq!(tail[2], batch[2499], "a record reads back exactly as written");
            assert_eq!(batch[1000].prev_hash, batch[999].hash, "batches chain onto each other");
            let only_a = store
                .query_audit(&AuditQuery {
                    tenant: Some("a".into()),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(only_a.iter().all(|r| r.tenant == "a"));
            assert_eq!(only_a.len(), 10);
            let report = store.verify_audit().await.unwrap();
            assert_eq!(report.records, 2500);
            assert_eq!(report.first_broken, None);
        }
    }

    #[tokio::test]
    async fn tampering_is_found() {
        for (_, store) in crate::testing::stores().await.stores {
            let mut batch: Vec<_> = (0..20).map(|i| rec(i, "a")).collect();
            store.append_audit(&mut batch, None).await.unwrap();
            // Change a field of record 8: that record breaks.
            sqlx::query("UPDATE audit_log SET completion_tokens = 1 WHERE seq = 8")
                .execute(store.pool())
                .await
                .unwrap();
            let r = store.verify_audit().await.unwrap().first_broken.unwrap();
            assert_eq!((r.seq, r.request_id.as_str()), (8, "req-7"));
            assert!(r.reason.contains("content does not match its hash"), "{}", r.reason);
            // Re-hashing the changed record to hide it breaks the link from the next one.
            let changed: AuditRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq = 8"
            )))
            .fetch_one(store.pool())
            .await
            .unwrap();
            sqlx::query("UPDATE audit_log SET hash = $1 WHERE seq = 8")
                .bind(changed.compute_hash(&changed.prev_hash))
                .execute(store.pool())
                .await
                .unwrap();
            let r = store.verify_audit().await.unwrap().first_broken.unwrap();
            assert_eq!(r.seq, 9);
            assert!(r.reason.contains("prev_hash does not match"), "{}", r.reason);
            // Deleting a record is named too.
            sqlx::query("DELETE FROM audit_log WHERE seq = 3")
                .execute(store.pool())
                .await
                .unwrap();
            let r = store.verify_audit().await.unwrap().first_broken.unwrap();
            assert_eq!(r.seq, 4);
            assert!(r.reason.contains("records 3 to 3 are missing"), "{}", r.reason);
        }
    }

    #[tokio::test]
    async fn sessions_tell_where_a_gap_could_be() {
        for (_, store) in crate::testing::stores().await.stores {
            let s1 = store.begin_audit_session(100).await.unwrap();
            store
                .append_audit(&mut [rec(1, "a"), rec(2, "a")], Some(s1))
                .await
                .unwrap();
            // s1 never ends: a crash. s2 is the current run.
            let s2 = store.begin_audit_session(100).await.unwrap();
            let gaps = store.unclean_sessions(Some(s2)).await.unwrap();
            assert_eq!(gaps.len(), 1);
            assert_eq!((gaps[0].session, gaps[0].last_seq), (s1, Some(2)));
            store.end_audit_session(s2).await.unwrap();
            let report = store.verify_audit().await.unwrap();
            assert_eq!(
                report.possible_gaps.len(),
                1,
                "the crashed run is reported, the clean one is not"
            );
        }
    }
}
