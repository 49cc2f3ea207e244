//! A collector that cannot be reached is reported in the logs and by `flush`, never silently.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

use std::sync::{Arc, Mutex};

use http::HeaderMap;
use pyxis_telemetry::{LogConfig, LogFormat, Operation, OtelConfig, request_span};
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

#[test]
fn an_unreachable_collector_is_logged_and_flush_says_so() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let otel = OtelConfig::from_lookup(|k| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:1".into()))
        .unwrap()
        .unwrap();
    let buf = Buf::default();
    let w = buf.clone();
    let cfg = LogConfig {
        format: LogFormat::Human,
        level: "info".into(),
    };
    let (s, guard) = pyxis_telemetry::build(&cfg, Some(&otel), BoxMakeWriter::new(move || w.clone()), false).unwrap();
    // The exporter reports from its own thread, so the subscriber must be global (this test binary
    // has no other test).
    tracing::subscriber::set_global_default(s).unwrap();
    drop(request_span(
        "r-1",
        "/v1/chat/completions",
        Operation::Chat,
        &HeaderMap::new(),
    ));
    let err = guard.flush().unwrap_err();
    assert!(err.to_string().contains("export failed"), "{err}");
    guard.shutdown().unwrap();
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("ERROR") && logs.contains("ExportError"), "{logs}");
}
