//! Audit records written per second: group commit (batches as the gateway's writer forms them
//! under load) against one transaction per record, in the same run, on SQLite with fsync on.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pyxis_store::{AuditRecord, Store};

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        request_id: format!("req-{i}"),
        started_at_ms: 1_700_000_000_000 + i as i64,
        finished_at_ms: 1_700_000_000_100 + i as i64,
        tenant: "team-a".into(),
        key_id: Some("key_0123456789ab".into()),
        requested_model: "llama-3-8b".into(),
        model: "llama-3-8b".into(),
        model_version: Some("3.1".into()),
        endpoint: Some("http://10.0.0.5:8000".into()),
        runtime: Some("h100-pool".into()),
        runtime_kind: Some("vllm".into()),
        runtime_version: Some("0.32.0".into()),
        hardware: Some("h100".into()),
        accelerator_count: Some(1),
        cloud: Some("aws".into()),
        region: Some("us-east-1".into()),
        prompt_tokens: 512,
        completion_tokens: 128,
        cached_tokens: 256,
        status: 200,
        queue_ms: 0.4,
        ttft_ms: Some(35.2),
        latency_ms: 880.5,
        attempts: 1,
        stream: true,
        cost_usd: 0.000_42,
        ..AuditRecord::default()
    }
}

fn next() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(Store::open(dir.path())).expect("store");
    let mut g = c.benchmark_group("audit_write");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for batch in [1usize, 1024] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    // Fresh request ids and later times, as real traffic has (repeating index keys
                    // would measure a case that never happens).
                    let mut recs: Vec<AuditRecord> = (0..batch as u64).map(|_| record(next())).collect();
                    let t = Instant::now();
                    rt.block_on(store.append_audit(&mut recs, None)).expect("append");
                    elapsed += t.elapsed();
                }
                elapsed
            })
        });
    }
    g.finish();

    // The request-id index: random ids (UUIDv4) dirty a random index page per record, time-ordered
    // ids (UUIDv7, what the gateway makes) append at the index's right edge. Same store, same
    // batch size, alternating in one run.
    let mut g = c.benchmark_group("audit_request_ids");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let batch = 256u64;
    g.throughput(Throughput::Elements(batch));
    for (name, make) in [
        ("uuid_v4", (|| uuid::Uuid::new_v4()) as fn() -> uuid::Uuid),
        ("uuid_v7", uuid::Uuid::now_v7 as fn() -> uuid::Uuid),
    ] {
        g.bench_function(format!("batch_{batch}_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let mut recs: Vec<AuditRecord> = (0..batch)
                        .map(|_| AuditRecord {
                            request_id: format!("req-{}", make().simple()),
                            ..record(next())
                        })
                        .collect();
                    let t = Instant::now();
                    rt.block_on(store.append_audit(&mut recs, None)).expect("append");
                    elapsed += t.elapsed();
                }
                elapsed
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
