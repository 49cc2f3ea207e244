//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP headers.

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The caller's trace context from incoming headers; an empty context when absent or malformed.
pub fn extract_context(headers: &HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `span`'s context as `traceparent` (and `tracestate`) into outgoing headers, so the
/// runtime's spans join the trace. Returns false, writing nothing, when the span has no valid
/// context (trace export off, or the span disabled).
pub fn inject_context(span: &tracing::Span, headers: &mut HeaderMap) -> bool {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return false;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    true
}

/// Forwards the caller's trace headers unchanged; for when [`inject_context`] returned false, so
/// that a gateway that does not trace still passes its caller's trace through to the runtime.
pub fn copy_trace_headers(incoming: &HeaderMap, outgoing: &mut HeaderMap) {
    // Most requests carry no trace: skip building a context for nothing.
    if !incoming.contains_key(TRACEPARENT) || !extract_context(incoming).span().span_context().is_valid() {
        return;
    }
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(v) = incoming.get(name) {
            outgoing.insert(name, v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparent_is_extracted_and_junk_is_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = extract_context(&h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut out = HeaderMap::new();
        copy_trace_headers(&h, &mut out);
        assert_eq!(out.get(TRACEPARENT), h.get(TRACEPARENT));

        let mut junk = HeaderMap::new();
        junk.insert(TRACEPARENT, "00-zz-00f067aa0ba902b7-01".parse().unwrap());
        let mut out = HeaderMap::new();
        copy_trace_headers(&junk, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn injection_without_a_tracing_subscriber_writes_nothing() {
        let mut out = HeaderMap::new();
        assert!(!inject_context(&tracing::Span::none(), &mut out));
        assert!(out.is_empty());
    }
}
