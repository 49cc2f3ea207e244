//! What audit costs the request path: finishing a call's record and handing it to the writer
//! (a channel send), against building the same record and dropping it, in the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use pyxis_store::AuditRecord;

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        request_id: format!("req-{i}"),
        tenant: "team-a".into(),
        requested_model: "llama-3-8b".into(),
        model: "llama-3-8b".into(),
        endpoint: Some("http://10.0.0.5:8000".into()),
        prompt_tokens: 512,
        completion_tokens: 128,
        status: 200,
        ..AuditRecord::default()
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // The writer side drains as the real writer does, on another task.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AuditRecord>();
    rt.spawn(async move {
        let mut buf = Vec::with_capacity(1024);
        while rx.recv_many(&mut buf, 1024).await > 0 {
            buf.clear();
        }
    });
    let mut i = 0u64;
    c.bench_function("baseline/build_and_drop_record", |b| {
        b.iter(|| {
            i += 1;
            drop(std::hint::black_box(record(i)));
        })
    });
    c.bench_function("audit/build_and_send_record", |b| {
        b.iter(|| {
            i += 1;
            let _ = tx.send(std::hint::black_box(record(i)));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
