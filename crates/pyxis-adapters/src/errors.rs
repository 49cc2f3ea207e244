//! Runtime error replies, in every shape they come in, sorted into what the gateway should do
//! (retry elsewhere, answer the client, or report a runtime failure) with OpenAI's status, `param`
//! and `code`. Facts per runtime: shared/reference/runtimes.md §1.5, §2.5, §3.5, §4.2, §5.3, §6.3,
//! §7.4 and the normalisation map in §8.2.

use pyxis_protocol::{ErrorKind, OpenAiError};
use pyxis_resources::RuntimeKind;
use serde_json::Value;

use crate::types::UpstreamFailure;

/// An error reply taken apart, whatever its shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawError {
    pub message: String,
    pub r#type: Option<String>,
    pub param: Option<String>,
    /// `code` when it is a string (vLLM's integer `code` is the HTTP status, kept in `status`).
    pub code: Option<String>,
    /// A status the body states (vLLM `code: 400`, TGI chat streams' `http_status_code`).
    pub status: Option<u16>,
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn status_of(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok())
}

/// Reads OpenAI's nested object (vLLM's integer `code` too), the legacy flat object (old vLLM,
/// SGLang, TRT-LLM), `{"error": str, "error_type"?}` (TGI, Ollama, Triton), FastAPI's `detail`,
/// and falls back to the text itself.
pub(crate) fn extract(body: &[u8]) -> RawError {
    let text = || {
        let t = String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string();
        RawError {
            message: if t.is_empty() { "(empty body)".into() } else { t },
            ..RawError::default()
        }
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return text();
    };
    match v.get("error") {
        Some(Value::Object(e)) => RawError {
            message: s(e.get("message")).unwrap_or_else(|| Value::Object(e.clone()).to_string()),
            r#type: s(e.get("type")),
            param: s(e.get("param")),
            code: s(e.get("code")),
            status: status_of(e.get("code")).or_else(|| status_of(e.get("http_status_code"))),
        },
        Some(Value::String(m)) => RawError {
            message: m.clone(),
            r#type: s(v.get("error_type")),
            ..RawError::default()
        },
        _ => {
            if let Some(m) = s(v.get("message")) {
                return RawError {
                    message: m,
                    r#type: s(v.get("type")),
                    param: s(v.get("param")),
                    code: s(v.get("code")),
                    status: status_of(v.get("code")),
                };
            }
            match v.get("detail") {
                Some(Value::String(d)) => RawError {
                    message: d.clone(),
                    ..RawError::default()
                },
                // FastAPI validation: [{"loc": ["body", "max_tokens"], "msg": "..."}]
                Some(Value::Array(items)) if !items.is_empty() => {
                    let first = &items[0];
                    let param = first.get("loc").and_then(Value::as_array).and_then(|loc| {
                        let names: Vec<String> = loc
                            .iter()
                            .skip_while(|p| p.as_str() == Some("body"))
                            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                            .collect();
                        (!names.is_empty()).then(|| names.join("."))
                    });
                    RawError {
                        message: s(first.get("msg")).unwrap_or_else(|| first.to_string()),
                        param,
                        ..RawError::default()
                    }
                }
                _ => text(),
            }
        }
    }
}

/// Whether a runtime's message says the prompt plus completion do not fit the context. Runtimes word
/// it differently: vLLM "maximum context length" (wording changed in 2026: match the phrase, not the
/// sentence), TGI "`inputs` tokens + `max_new_tokens` must be <=" / "`inputs` must have less than",
/// SGLang "exceeds the model's maximum context length", llama.cpp "exceeds the available context size",
/// Ollama "exceeds the context length".
pub(crate) fn is_context_overflow(raw: &RawError) -> bool {
    if raw.r#type.as_deref() == Some("exceed_context_size_error")
        || raw.code.as_deref() == Some("context_length_exceeded")
    {
        return true;
    }
    let m = raw.message.to_ascii_lowercase();
    m.contains("context length")
        || m.contains("context_length")
        || m.contains("context window")
        || m.contains("available context size")
        || m.contains("`inputs` tokens + `max_new_tokens` must be <=")
        || m.contains("`inputs` must have less than")
}

/// `max_tokens` alone is too large (TGI "`max_new_tokens` must be <= N").
fn is_max_tokens_error(raw: &RawError) -> bool {
    raw.message.contains("`max_new_tokens` must be")
}

/// A 503 that means the replica is gone until its health check passes, not a full queue.
fn down_on_503(kind: RuntimeKind) -> bool {
    match kind {
        // Queue full (Triton UNAVAILABLE, Ollama OLLAMA_MAX_QUEUE): busy, not down. A hosted API's
        // 503 is transient overload.
        RuntimeKind::Triton | RuntimeKind::Ollama | RuntimeKind::Openai => false,
        // vLLM: dead engine; TGI/SGLang/TRT-LLM: unhealthy or starting; llama.cpp: loading a model.
        RuntimeKind::Vllm
        | RuntimeKind::Tgi
        | RuntimeKind::Sglang
        | RuntimeKind::TensorrtLlm
        | RuntimeKind::Llamacpp => true,
    }
}

/// The status to use when a stream reports an error in-band (after its 200 went out).
pub(crate) fn stream_status(kind: RuntimeKind, raw: &RawError) -> u16 {
    if let Some(st) = raw.status.filter(|s| *s >= 400) {
        return st;
    }
    match (kind, raw.r#type.as_deref()) {
        (RuntimeKind::Tgi, Some("overloaded")) => 429,
        (RuntimeKind::Tgi, Some("validation" | "template_error" | "missing_template_variable" | "tool_error")) => 422,
        (RuntimeKind::Tgi, Some("generation")) => 424,
        _ if is_context_overflow(raw) => 400,
        _ => 500,
    }
}

fn upstream_msg(kind: RuntimeKind, status: u16, raw: &RawError) -> String {
    format!("The runtime ({kind}) answered {status}: {}", raw.message)
}

/// Sorts one error reply (`status`, `body`) from a runtime of `kind`.
pub(crate) fn classify(kind: RuntimeKind, status: u16, body: &[u8]) -> UpstreamFailure {
    let raw = extract(body);
    classify_raw(kind, status, &raw)
}

pub(crate) fn classify_raw(kind: RuntimeKind, status: u16, raw: &RawError) -> UpstreamFailure {
    let server = |k: ErrorKind, code: &str, retry: bool| UpstreamFailure::Server {
        error: OpenAiError::new(k, upstream_msg(kind, status, raw)).with_code(code),
        retry_elsewhere: retry,
    };
    let overloaded = |retry_after_ms: Option<u64>, endpoint_down: bool| UpstreamFailure::Overloaded {
        error: OpenAiError::new(ErrorKind::Unavailable, upstream_msg(kind, status, raw))
            .with_code("upstream_overloaded"),
        retry_after_ms,
        endpoint_down,
    };
    let lower = raw.message.to_ascii_lowercase();
    match status {
        // TGI rejects at once when its concurrency semaphore is full: any other replica may take
        // it now. A hosted API's 429 is a rate limit: back off a second.
        429 if kind == RuntimeKind::Tgi => overloaded(Some(0), false),
        429 => overloaded(Some(1000), false),
        503 if down_on_503(kind) => overloaded(None, true),
        503 => overloaded(Some(1000), false),
        // A proxy in front of the runtime could not reach it.
        502 => overloaded(None, true),
        500 if kind == RuntimeKind::Vllm && (lower.contains("enginedead") || lower.contains("engine is dead")) => {
            overloaded(None, true)
        }
        400 | 422 => {
            let mut e = OpenAiError::invalid(raw.message.clone());
            if is_context_overflow(raw) {
                e = e.with_code("context_length_exceeded");
                if let Some(p) = &raw.param {
                    e = e.with_param(p.clone());
                }
            } else if is_max_tokens_error(raw) {
                e = e.with_param("max_tokens").with_code("invalid_value");
            } else {
                e.param = raw.param.clone();
                e.code = raw.code.clone();
            }
            UpstreamFailure::Client(e)
        }
        413 => UpstreamFailure::Client(OpenAiError::new(ErrorKind::PayloadTooLarge, raw.message.clone())),
        // The gateway resolved the model itself, so a 404 means this endpoint does not have it (an
        // adapter not loaded here, a wrong `servedName`) or lacks the route: not the client's fault.
        404 if lower.contains("model") || lower.contains("adapter") || raw.param.as_deref() == Some("model") => {
            server(ErrorKind::BadGateway, "upstream_model_not_found", true)
        }
        404 => server(ErrorKind::BadGateway, "upstream_route_not_found", false),
        // The gateway's own credentials for the runtime were refused.
        401 | 403 => server(ErrorKind::BadGateway, "upstream_auth_failed", false),
        408 | 504 => server(ErrorKind::Timeout, "upstream_timeout", false),
        // TGI: the generation itself failed (e.g. out of memory); not the request's fault.
        424 => server(ErrorKind::BadGateway, "upstream_error", false),
        // llama.cpp `not_supported_error`: a feature of the request the runtime lacks.
        501 => UpstreamFailure::Client(OpenAiError::invalid(raw.message.clone()).with_code("unsupported_value")),
        400..=499 => {
            let mut e = OpenAiError::new(ErrorKind::from_status(status), raw.message.clone());
            e.param = raw.param.clone();
            UpstreamFailure::Client(e)
        }
        _ => server(ErrorKind::BadGateway, "upstream_error", false),
    }
}

/// An error reported in-band (an error event in a stream, or an error object under a 2xx).
/// `place` says where, for the message: `mid-stream`, `in a 200 reply`.
pub(crate) fn inband_error(kind: RuntimeKind, payload: &[u8], place: &str) -> OpenAiError {
    let raw = extract(payload);
    let status = stream_status(kind, &raw);
    let mut e = classify_raw(kind, status, &raw).into_error();
    if e.kind != ErrorKind::InvalidRequest {
        // No status went with it: do not claim one.
        e.message = format!("The runtime ({kind}) reported an error {place}: {}", raw.message);
    }
    e
}

/// The runtime stopped a stream before it finished.
pub(crate) fn truncated(kind: RuntimeKind, what: &str) -> OpenAiError {
    OpenAiError::new(
        ErrorKind::BadGateway,
        format!("The runtime ({kind}) ended the stream without finishing it ({what})."),
    )
    .with_code("upstream_stream_broken")
}

/// The runtime sent something that is not the format it documents.
pub(crate) fn malformed(kind: RuntimeKind, what: &str) -> OpenAiError {
    OpenAiError::new(ErrorKind::BadGateway, format!("The runtime ({kind}) sent {what}."))
        .with_code("upstream_malformed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let v = extract(br#"{"error":{"message":"m","type":"BadRequestError","param":"max_tokens","code":400}}"#);
        assert_eq!(
            (v.status, v.code.as_deref(), v.param.as_deref()),
            (Some(400), None, Some("max_tokens"))
        );
        let v = extract(br#"{"object":"error","message":"m","type":"Bad Request","param":null,"code":400}"#);
        assert_eq!((v.message.as_str(), v.status), ("m", Some(400)));
        let v = extract(br#"{"error":"Model is overloaded","error_type":"overloaded"}"#);
        assert_eq!(v.r#type.as_deref(), Some("overloaded"));
        let v = extract(br#"{"detail":[{"loc":["body","messages",0,"role"],"msg":"bad role"}]}"#);
        assert_eq!(
            (v.message.as_str(), v.param.as_deref()),
            ("bad role", Some("messages.0.role"))
        );
        assert_eq!(extract(b"  ").message, "(empty body)");
        assert_eq!(extract(b"upstream connect error").message, "upstream connect error");
    }
}
