//! Trace export end to end: a request span with queue and attempt children, continued from an
//! incoming `traceparent`, arrives at an OTLP/HTTP receiver with the right ids and attributes.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use pyxis_telemetry::spans::*;
use pyxis_telemetry::{LogConfig, LogFormat, OtelConfig, inject_context};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

#[derive(Default)]
struct Received {
    requests: Vec<ExportTraceServiceRequest>,
    headers: Vec<HeaderMap>,
}

type Shared = Arc<Mutex<Received>>;

async fn traces(State(rx): State<Shared>, headers: HeaderMap, body: Bytes) -> &'static str {
    let req = ExportTraceServiceRequest::decode(body).expect("protobuf ExportTraceServiceRequest");
    let mut r = rx.lock().unwrap();
    r.requests.push(req);
    r.headers.push(headers);
    ""
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    s.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn attr_str(s: &Span, key: &str) -> String {
    match attr(s, key) {
        Some(any_value::Value::StringValue(v)) => v.clone(),
        other => panic!("{key} on {}: {other:?}", s.name),
    }
}

fn attr_int(s: &Span, key: &str) -> i64 {
    match attr(s, key) {
        Some(any_value::Value::IntValue(v)) => *v,
        other => panic!("{key} on {}: {other:?}", s.name),
    }
}

/// A `MakeWriter` into a shared buffer, to read the JSON log lines back.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_receiver_with_parents_attributes_and_the_callers_trace() {
    let rx: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env: HashMap<&str, String> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant-key=s3cr%3Dt".to_string()),
        ("OTEL_SERVICE_NAME", "pyxis-test".to_string()),
    ]
    .into();
    let otel = OtelConfig::from_lookup(|k| env.get(k).cloned()).unwrap().unwrap();
    let logs = Buf::default();
    let writer = logs.clone();
    let cfg = LogConfig {
        format: LogFormat::Json,
        level: "warn".into(),
    };
    let (subscriber, guard) =
        pyxis_telemetry::build(&cfg, Some(&otel), BoxMakeWriter::new(move || writer.clone()), false).unwrap();
    assert!(guard.tracing_enabled());

    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    let mut outgoing = HeaderMap::new();
    {
        let _default = tracing::subscriber::set_default(subscriber);
        let root = request_span("req-42", "/v1/chat/completions", Operation::Chat, &incoming);
        record_request(&root, "team-a", "llama-3.1-8b", true);
        {
            let q = queue_span(&root, "interactive");
            record_queue_outcome(&q, "admitted");
        }
        {
            let a = attempt_span(
                &root,
                1,
                "http://10.0.0.7:8000",
                "vllm-a100",
                "vllm",
                "meta-llama/Llama-3.1-8B",
                Operation::Chat,
            );
            let _in = a.enter();
            assert!(inject_context(&a, &mut outgoing));
            tracing::warn!(code = 503, "upstream overloaded");
            record_attempt_outcome(&a, Some(200), None);
        }
        record_usage(&root, 512, 64);
        record_outcome(&root, 200, None);
    }
    guard.shutdown().unwrap();

    // The outgoing traceparent continues the caller's trace with the attempt span as parent.
    let tp = outgoing.get("traceparent").unwrap().to_str().unwrap().to_string();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], CALLER_TRACE);
    assert!(parts[2].len() == 16 && parts[2].chars().all(|c| c.is_ascii_hexdigit()) && parts[2] != "0".repeat(16));
    assert_eq!(parts[3], "01");

    // The warning is a JSON line that names the request and the trace.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().expect("one log line")).unwrap();
    assert_eq!(line["request_id"], "req-42", "{text}");
    assert_eq!(line["trace_id"], CALLER_TRACE);
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["fields"]["message"], "upstream overloaded");

    let r = rx.lock().unwrap();
    assert!(!r.requests.is_empty(), "the receiver got nothing");
    assert_eq!(r.headers[0].get("x-tenant-key").unwrap(), "s3cr=t");
    assert_eq!(r.headers[0].get("content-type").unwrap(), "application/x-protobuf");
    let mut spans: HashMap<String, Span> = HashMap::new();
    for req in &r.requests {
        for rs in &req.resource_spans {
            let res = rs.resource.as_ref().unwrap();
            let svc = res.attributes.iter().find(|kv| kv.key == "service.name").unwrap();
            assert_eq!(
                svc.value.as_ref().unwrap().value,
                Some(any_value::Value::StringValue("pyxis-test".into()))
            );
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    spans.insert(s.name.clone(), s.clone());
                }
            }
        }
    }
    let names: Vec<&String> = spans.keys().collect();
    let root = spans
        .get("POST /v1/chat/completions")
        .unwrap_or_else(|| panic!("{names:?}"));
    let queue = spans.get("queue").unwrap_or_else(|| panic!("{names:?}"));
    let attempt = spans
        .get("chat meta-llama/Llama-3.1-8B")
        .unwrap_or_else(|| panic!("{names:?}"));
    assert_eq!(spans.len(), 3, "{names:?}");

    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for s in [root, queue, attempt] {
        assert_eq!(hex(&s.trace_id), CALLER_TRACE, "{}", s.name);
    }
    assert_eq!(hex(&root.parent_span_id), CALLER_SPAN);
    assert_eq!(queue.parent_span_id, root.span_id);
    assert_eq!(attempt.parent_span_id, root.span_id);
    assert_eq!(
        hex(&attempt.span_id),
        parts[2],
        "the injected parent is the attempt span"
    );

    assert_eq!(root.kind, SpanKind::Server as i32);
    assert_eq!(attempt.kind, SpanKind::Client as i32);
    assert_eq!(queue.kind, SpanKind::Internal as i32);
    assert_eq!(attr_str(root, "pyxis.request_id"), "req-42");
    assert_eq!(attr_str(root, "pyxis.tenant"), "team-a");
    assert_eq!(attr_str(root, "pyxis.endpoint"), "http://10.0.0.7:8000");
    assert_eq!(attr_str(root, "gen_ai.request.model"), "llama-3.1-8b");
    assert_eq!(attr_str(root, "gen_ai.operation.name"), "chat");
    assert_eq!(attr_int(root, "gen_ai.usage.input_tokens"), 512);
    assert_eq!(attr_int(root, "gen_ai.usage.output_tokens"), 64);
    assert_eq!(attr_int(root, "http.response.status_code"), 200);
    assert_eq!(attr_str(queue, "pyxis.priority_class"), "interactive");
    assert_eq!(attr_str(queue, "pyxis.queue.outcome"), "admitted");
    assert_eq!(attr_str(attempt, "gen_ai.provider.name"), "vllm");
    assert_eq!(attr_str(attempt, "gen_ai.request.model"), "meta-llama/Llama-3.1-8B");
    assert_eq!(attr_str(attempt, "pyxis.runtime"), "vllm-a100");
    assert_eq!(attr_int(attempt, "pyxis.attempt"), 1);
    assert!(
        attempt.events.iter().any(|e| e.name == "upstream overloaded"),
        "warnings become span events: {:?}",
        attempt.events
    );
    assert!(
        attr(root, "otel.kind").is_none(),
        "steering fields are not exported as attributes"
    );
}
