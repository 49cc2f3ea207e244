//! Telemetry for the Pyxis gateway: Prometheus metrics, OpenTelemetry traces over OTLP/HTTP, and logs.
//!
//! - [`Metrics`]: every gateway metric family, with bounded label values; [`Metrics::encode`] is
//!   the body of a `/metrics` route.
//! - [`init`]: the tracing subscriber (JSON or human logs, a reloadable level, trace export when
//!   the `OTEL_*` variables configure it) and a [`TelemetryGuard`] to change the level and flush.
//! - [`spans`]: the request / queue / attempt span conventions; [`propagation`]: W3C
//!   `traceparent` in and out.

mod exposition;
mod histogram;
mod labels;
mod logfmt;
mod logs;
mod metrics;
mod otel;
pub mod propagation;
pub mod spans;
mod stream;

pub use exposition::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
pub use histogram::{E2E_BUCKETS, ITL_BUCKETS, QUEUE_WAIT_BUCKETS, TTFT_BUCKETS};
pub use labels::{NONE, OTHER};
pub use logs::{LogConfig, LogFormat, TelemetryGuard, build, init};
pub use metrics::{Metrics, MetricsConfig, RequestRecord};
pub use otel::OtelConfig;
pub use propagation::{copy_trace_headers, extract_context, inject_context};
pub use spans::{
    Operation, SPAN_TARGET, attempt_span, queue_span, record_attempt_outcome, record_outcome, record_queue_outcome,
    record_request, record_usage, request_span,
};
pub use stream::StreamRecorder;

/// The model label for a request whose model did not resolve (so client-chosen names never take
/// label slots).
pub const UNRESOLVED: &str = "unresolved";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting (environment variable or argument) that cannot be used as given.
    #[error("telemetry configuration: {0}")]
    Config(String),
    /// A log filter that does not parse.
    #[error("invalid log level directives {0}")]
    Level(String),
    /// The trace pipeline failed to start, flush or stop.
    #[error("trace export: {0}")]
    Otel(String),
}
