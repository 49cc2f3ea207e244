//! The gateway's span conventions, as helpers: a `request` root span per call (OTel kind server),
//! a `queue` child while it waits for admission, an `attempt` child (kind client) per upstream try.
//!
//! Attributes follow the OpenTelemetry HTTP and GenAI semantic conventions where they fit
//! (`http.*`, `gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.provider.name` and the
//! older `gen_ai.system`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//! `error.type`), plus `pyxis.request_id`, `pyxis.tenant`, `pyxis.endpoint`, `pyxis.runtime`,
//! `pyxis.attempt`, `pyxis.stream`, `pyxis.priority_class`, `pyxis.queue.outcome`. Every field is
//! declared when the span is made (tracing can only record declared fields); the `record_*`
//! helpers fill them in later.

use http::HeaderMap;
use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing::field::{Empty, display};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::extract_context;

/// Target of every span made here. The log filter always enables it (so a `warn` log level still
/// gives warnings their request id), and the trace exporter takes spans whose target starts with
/// `pyxis`.
pub const SPAN_TARGET: &str = "pyxis_span";

/// What the client asked for, as `gen_ai.operation.name` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    TextCompletion,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
        }
    }
}

/// The root span of one request. Its parent is the caller's `traceparent` when `incoming` has a
/// valid one. Records `trace_id` for logs: the span's own when traces are exported, else the
/// caller's, so logs still join the caller's trace.
pub fn request_span(request_id: &str, route: &str, operation: Operation, incoming: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "request",
        otel.name = %format_args!("POST {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = "POST",
        http.route = route,
        http.response.status_code = Empty,
        error.type = Empty,
        gen_ai.operation.name = operation.as_str(),
        gen_ai.request.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        pyxis.request_id = request_id,
        pyxis.tenant = Empty,
        pyxis.endpoint = Empty,
        pyxis.stream = Empty,
        pyxis.attempts = Empty,
        trace_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let parent = extract_context(incoming);
    let caller = parent.span().span_context().clone();
    if caller.is_valid() {
        // Fails only if the span was already started, which it cannot have been.
        let _ = span.set_parent(parent);
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        span.record("trace_id", display(own.trace_id()));
    } else if caller.is_valid() {
        span.record("trace_id", display(caller.trace_id()));
    }
    span
}

/// OpenTelemetry has no unsigned integers: tracing-opentelemetry exports a `u64` field as a
/// string, so integer attributes are recorded as `i64`.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Who is asking and for what, once authentication and parsing are done.
pub fn record_request(span: &Span, tenant: &str, model: &str, stream: bool) {
    span.record("pyxis.tenant", tenant);
    span.record("gen_ai.request.model", model);
    span.record("pyxis.stream", stream);
}

pub fn record_usage(span: &Span, input_tokens: u64, output_tokens: u64) {
    span.record("gen_ai.usage.input_tokens", int(input_tokens));
    span.record("gen_ai.usage.output_tokens", int(output_tokens));
}

/// The answer given to the client. A server span is an error for 5xx, and for a 2xx whose stream
/// broke (`error_type` set); a 4xx is the client's doing and leaves the status unset.
pub fn record_outcome(span: &Span, status: u16, error_type: Option<&str>) {
    span.record("http.response.status_code", i64::from(status));
    if let Some(e) = error_type {
        span.record("error.type", e);
    }
    if status >= 500 || (status < 400 && error_type.is_some()) {
        span.record("otel.status_code", "error");
    }
}

/// A child of `parent` for the time the request waits in the admission queue.
pub fn queue_span(parent: &Span, priority_class: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "queue",
        otel.kind = "internal",
        otel.status_code = Empty,
        pyxis.priority_class = priority_class,
        pyxis.queue.outcome = Empty,
    )
}

/// How the wait ended: `admitted`, or why not (`rejected`, `timeout`, `cancelled`).
pub fn record_queue_outcome(span: &Span, outcome: &str) {
    span.record("pyxis.queue.outcome", outcome);
    if outcome != "admitted" {
        span.record("otel.status_code", "error");
    }
}

/// A child of `parent` for one upstream try (`attempt` counts from 1). Also records the endpoint
/// on `parent`, so the root span names the endpoint of the last attempt.
pub fn attempt_span(
    parent: &Span,
    attempt: u32,
    endpoint: &str,
    runtime: &str,
    runtime_kind: &str,
    served_model: &str,
    operation: Operation,
) -> Span {
    parent.record("pyxis.endpoint", endpoint);
    parent.record("pyxis.attempts", i64::from(attempt));
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "attempt",
        otel.name = %format_args!("{} {served_model}", operation.as_str()),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = operation.as_str(),
        gen_ai.provider.name = runtime_kind,
        gen_ai.system = runtime_kind,
        gen_ai.request.model = served_model,
        http.response.status_code = Empty,
        error.type = Empty,
        pyxis.attempt = i64::from(attempt),
        pyxis.endpoint = endpoint,
        pyxis.runtime = runtime,
    )
}

/// What the runtime answered: `status` is `None` when no response came (connect failure,
/// timeout). A client span is an error for any failure, 4xx included.
pub fn record_attempt_outcome(span: &Span, status: Option<u16>, error_type: Option<&str>) {
    if let Some(s) = status {
        span.record("http.response.status_code", i64::from(s));
    }
    if let Some(e) = error_type {
        span.record("error.type", e);
    }
    if status.is_none_or(|s| s >= 400) || error_type.is_some() {
        span.record("otel.status_code", "error");
    }
}
