//! The audit writer: records arrive on a channel from request tasks and are appended in batches
//! by one task, so the request path never waits on the database.

use std::time::Duration;

use pyxis_store::{AuditRecord, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::call::now_ms;

/// Cheap to clone; sending never blocks and never fails while the writer runs.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::UnboundedSender<AuditRecord>,
}

impl AuditSink {
    pub fn record(&self, r: AuditRecord) {
        if self.tx.send(r).is_err() {
            tracing::error!("audit writer is gone; a record was lost");
        }
    }
}

/// Most records written in one transaction.
const MAX_BATCH: usize = 2048;

/// How long the writer lets a batch gather after its first record: a quarter of the flush bound,
/// which leaves three quarters for the write itself.
pub fn linger(flush_bound: Duration) -> Duration {
    flush_bound / 4
}

/// Starts the writer. Group commit: when a record arrives, the writer waits `linger(flush_bound)`
/// for more (unless a full batch is already there), then writes everything queued in one
/// transaction. Every transaction costs a fsync and rewrites the B-tree pages it touches, so
/// without the wait a gateway at a few thousand requests/s spent a quarter of its CPU writing
/// batches of a few records. A record is durable within `flush_bound` of its call finishing as
/// long as a batch writes faster than the rest of the bound; a slower write is logged as writer
/// lag. The writer exits after every sink is dropped and the queue is drained, so awaiting the
/// handle is the shutdown drain.
pub fn spawn_writer(
    store: Store,
    flush_bound: Duration,
    session: Option<i64>,
    metrics: Option<std::sync::Arc<pyxis_telemetry::Metrics>>,
) -> (AuditSink, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<AuditRecord>();
    let linger = linger(flush_bound);
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if batch.len() < MAX_BATCH && !rx.is_closed() && !linger.is_zero() {
                tokio::time::sleep(linger).await;
                while batch.len() < MAX_BATCH && !rx.is_empty() {
                    let room = MAX_BATCH - batch.len();
                    rx.recv_many(&mut batch, room).await;
                }
            }
            let mut delay = Duration::from_millis(50);
            // A locked or failing database must not lose records: retry with back-off.
            while let Err(e) = store.append_audit(&mut batch, session).await {
                tracing::error!(error = %e, records = batch.len(), "audit write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            let oldest = batch.iter().map(|r| r.finished_at_ms).min().unwrap_or_default();
            let lag_ms = now_ms() - oldest;
            if let Some(m) = &metrics {
                m.audit_lag(lag_ms.max(0) as f64 / 1e3, rx.len() as i64);
            }
            if lag_ms > flush_bound.as_millis() as i64 {
                tracing::warn!(lag_ms, records = batch.len(), "audit writer behind its flush bound");
            }
            batch.clear();
        }
    });
    (AuditSink { tx }, handle)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use pyxis_store::AuditQuery;

    use super::*;

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            request_id: format!("req-{i}"),
            tenant: "t".into(),
            model: "m".into(),
            requested_model: "m".into(),
            finished_at_ms: now_ms(),
            status: 200,
            ..AuditRecord::default()
        }
    }

    async fn count(store: &Store) -> usize {
        let q = AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        };
        store.query_audit(&q).await.map(|r| r.len()).unwrap_or(0)
    }

    #[tokio::test]
    async fn a_batch_lingers_then_is_written_whole_and_drained_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let bound = Duration::from_millis(400);
        let (sink, writer) = spawn_writer(store.clone(), bound, None, None);
        let t = Instant::now();
        for i in 0..5 {
            sink.record(record(i));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if t.elapsed() < linger(bound) {
            assert_eq!(count(&store).await, 0, "written before the linger ended");
        }
        while count(&store).await < 5 {
            assert!(t.elapsed() < Duration::from_secs(10), "records not written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(t.elapsed() >= linger(bound), "the batch waited {:?}", t.elapsed());
        // Records sent just before the last sink goes are written before the writer ends.
        for i in 5..9 {
            sink.record(record(i));
        }
        drop(sink);
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(count(&store).await, 9);
        let report = store.verify_audit().await.unwrap();
        assert!(report.first_broken.is_none(), "{report:?}");
    }
}
