//! Hot-path cost: one finished request plus a 100-chunk stream, against an empty loop of 100; and
//! the spans of one request.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pyxis_telemetry::spans::{
    Operation, attempt_span, queue_span, record_attempt_outcome, record_outcome, record_queue_outcome, record_request,
    record_usage, request_span,
};
use pyxis_telemetry::{
    LogConfig, LogFormat, Metrics, MetricsConfig, RequestRecord, copy_trace_headers, inject_context,
};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

fn request_path(c: &mut Criterion) {
    let m = Metrics::new(MetricsConfig::default());
    let mut g = c.benchmark_group("request_path");
    g.bench_function("baseline_empty_loop_100", |b| {
        b.iter(|| {
            for i in 0..100u64 {
                black_box(i);
            }
        })
    });
    // Chunk arrival times made up front, so the loop measures the recorder, not `Instant` maths.
    let t0 = Instant::now();
    let stamps: Vec<Instant> = (0..100u64)
        .map(|i| t0 + Duration::from_millis(i * 20 + i % 7))
        .collect();
    g.bench_function("request_done_plus_100_chunks", |b| {
        b.iter(|| {
            let mut rec = m.stream_recorder(black_box("team-a"), black_box("llama-3.1-8b"));
            for t in &stamps {
                rec.on_chunk(black_box(*t));
            }
            rec.finish();
            m.request_done(black_box(&RequestRecord {
                tenant: "team-a",
                model: "llama-3.1-8b",
                endpoint: Some("http://10.0.0.7:8000"),
                status: 200,
                ttft_s: Some(0.12),
                e2e_s: 2.1,
                prompt_tokens: 512,
                completion_tokens: 100,
                cost_usd: 0.0004,
            }));
        })
    });
    g.bench_function("stream_recorder_100_chunks_only", |b| {
        b.iter(|| {
            let mut rec = m.stream_recorder(black_box("team-a"), black_box("llama-3.1-8b"));
            for t in &stamps {
                rec.on_chunk(black_box(*t));
            }
            rec.finish();
        })
    });
    g.bench_function("request_done_only", |b| {
        b.iter(|| {
            m.request_done(black_box(&RequestRecord {
                tenant: "team-a",
                model: "llama-3.1-8b",
                endpoint: Some("http://10.0.0.7:8000"),
                status: 200,
                ttft_s: Some(0.12),
                e2e_s: 2.1,
                prompt_tokens: 512,
                completion_tokens: 100,
                cost_usd: 0.0004,
            }))
        })
    });
    g.finish();
}

/// The span work of one request (root, queue, attempt, records, header propagation) with logs at
/// `info` and trace export off: what the integrator adds per request besides metrics.
fn request_spans(c: &mut Criterion) {
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    for (format, name) in [
        (LogFormat::Json, "spans/request_queue_attempt_json_logs_otel_off"),
        (LogFormat::Human, "spans/request_queue_attempt_human_logs_otel_off"),
    ] {
        let cfg = LogConfig {
            format,
            level: "info".into(),
        };
        let Ok((subscriber, _guard)) = pyxis_telemetry::build(&cfg, None, BoxMakeWriter::new(std::io::sink), false)
        else {
            return;
        };
        let _default = tracing::subscriber::set_default(subscriber);
        c.bench_function(name, |b| {
            b.iter(|| {
                let root = request_span("req-1", "/v1/chat/completions", Operation::Chat, black_box(&incoming));
                record_request(&root, "team-a", "llama-3.1-8b", true);
                let q = queue_span(&root, "interactive");
                record_queue_outcome(&q, "admitted");
                drop(q);
                let a = attempt_span(
                    &root,
                    1,
                    "http://10.0.0.7:8000",
                    "vllm-a",
                    "vllm",
                    "llama",
                    Operation::Chat,
                );
                let mut out = http::HeaderMap::new();
                if !inject_context(&a, &mut out) {
                    copy_trace_headers(&incoming, &mut out);
                }
                record_attempt_outcome(&a, Some(200), None);
                drop(a);
                record_usage(&root, 512, 100);
                record_outcome(&root, 200, None);
                black_box(out);
            })
        });
    }
}

criterion_group!(benches, request_path, request_spans);
criterion_main!(benches);
