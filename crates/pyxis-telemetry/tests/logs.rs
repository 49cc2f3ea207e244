//! Logs: the level changes while running, JSON lines name the request and trace, human lines are
//! free of exporter-steering fields; with export off nothing is injected.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

use std::sync::{Arc, Mutex};

use http::HeaderMap;
use pyxis_telemetry::spans::{Operation, attempt_span, record_request, request_span};
use pyxis_telemetry::{LogConfig, LogFormat, inject_context};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

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

impl Buf {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn setup(
    format: LogFormat,
    level: &str,
) -> (
    Buf,
    impl tracing::Subscriber + Send + Sync,
    pyxis_telemetry::TelemetryGuard,
) {
    let buf = Buf::default();
    let w = buf.clone();
    let cfg = LogConfig {
        format,
        level: level.into(),
    };
    let (s, g) = pyxis_telemetry::build(&cfg, None, BoxMakeWriter::new(move || w.clone()), false).unwrap();
    (buf, s, g)
}

#[test]
fn level_changes_while_running_and_a_bad_filter_keeps_the_old_one() {
    let (buf, s, guard) = setup(LogFormat::Json, "warn");
    let _d = tracing::subscriber::set_default(s);
    tracing::info!("hidden");
    tracing::warn!("shown");
    let out = buf.take();
    assert!(!out.contains("hidden") && out.contains("shown"), "{out}");
    guard.set_level("info,hyper=warn").unwrap();
    assert_eq!(guard.level(), "info,hyper=warn");
    tracing::info!("now shown");
    assert!(buf.take().contains("now shown"));
    let err = guard.set_level("info,[[[").unwrap_err();
    assert!(err.to_string().contains("[[["), "{err}");
    assert_eq!(guard.level(), "info,hyper=warn");
    tracing::info!("still shown");
    assert!(buf.take().contains("still shown"));
    assert!(!guard.tracing_enabled());
    guard.flush().unwrap();
}

#[test]
fn json_lines_carry_request_and_caller_trace_ids_even_with_export_off() {
    let (buf, s, _guard) = setup(LogFormat::Json, "warn");
    let _d = tracing::subscriber::set_default(s);
    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let root = request_span("req-\"7\"", "/v1/completions", Operation::TextCompletion, &incoming);
    record_request(&root, "team-b", "m", false);
    let attempt = attempt_span(&root, 2, "http://e", "rt", "tgi", "m", Operation::TextCompletion);
    attempt.in_scope(|| tracing::warn!("inside"));
    let mut out = HeaderMap::new();
    assert!(
        !inject_context(&attempt, &mut out),
        "no trace export, nothing to inject"
    );
    pyxis_telemetry::spans::record_usage(&root, 12, 3);
    root.in_scope(|| tracing::warn!("in root"));
    tracing::warn!("outside");
    let text = buf.take();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Fields recorded after the span was made are in its JSON, with their types.
    let span = &lines[1]["span"];
    assert_eq!(span["name"], "request", "{text}");
    assert_eq!(span["pyxis.tenant"], "team-b");
    assert_eq!(span["pyxis.request_id"], "req-\"7\"");
    assert_eq!(span["pyxis.stream"], false);
    assert_eq!(span["gen_ai.usage.input_tokens"], 12);
    assert_eq!(span["pyxis.endpoint"], "http://e");
    assert_eq!(lines[0]["request_id"], "req-\"7\"");
    assert_eq!(lines[0]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(lines[0]["span"]["name"], "attempt");
    assert_eq!(lines[0]["span"]["pyxis.endpoint"], "http://e");
    assert!(lines[2].get("request_id").is_none(), "{}", lines[2]);
}

#[test]
fn human_lines_show_request_fields_without_otel_steering_fields() {
    let (buf, s, _guard) = setup(LogFormat::Human, "info");
    let _d = tracing::subscriber::set_default(s);
    let root = request_span("req-9", "/v1/chat/completions", Operation::Chat, &HeaderMap::new());
    record_request(&root, "team-c", "m", true);
    root.in_scope(|| tracing::info!(tokens = 3, "hello"));
    let text = buf.take();
    assert!(text.contains("pyxis.request_id=\"req-9\""), "{text}");
    assert!(text.contains("pyxis.tenant=\"team-c\""), "{text}");
    assert!(text.contains("hello tokens=3"), "{text}");
    assert!(!text.contains("otel.") && !text.contains("http.route"), "{text}");
    assert!(
        !text.contains("trace_id"),
        "no caller trace, no export: no trace id: {text}"
    );
}
