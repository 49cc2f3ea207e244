//! One request over HTTP, timed the way vLLM's benchmark clients time it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use pyxis_protocol::sse::{SseEvent, SseFramer};
use serde_json::Value;

use crate::config::Endpoint;
use crate::metrics::{Failure, FailureKind, RequestRecord};
use crate::workload::BenchRequest;

/// Where and how requests are sent.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Full URL of the route.
    pub url: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub timeout: Duration,
}

fn fail(kind: FailureKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
    }
}

/// Classifies a transport error.
pub(crate) fn transport_failure(e: &reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connect
    } else if e.is_body() || e.is_decode() {
        FailureKind::Stream
    } else {
        FailureKind::Connect
    };
    fail(kind, error_chain(e))
}

/// The error and its sources on one line (reqwest's top-level message alone hides the cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// The innermost cause (`Connection refused (os error 111)`), which is what a person acts on.
pub(crate) fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The `error.message` of an OpenAI-style error body (or a flat `error` / `message` string), else the text.
pub(crate) fn error_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let msg = v.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let text = msg.unwrap_or_else(|| body.trim().to_string());
    let mut out: String = text.chars().take(300).collect();
    if out.is_empty() {
        out = "(empty body)".into();
    }
    out
}

/// Sends `req` and measures it. Never fails: problems become the record's `failure`.
pub(crate) async fn send(
    client: &reqwest::Client,
    target: &Target,
    key: Option<&str>,
    req: &BenchRequest,
) -> RequestRecord {
    let start = Instant::now();
    let mut rec = RequestRecord {
        input_tokens: req.est_input_tokens,
        ..Default::default()
    };
    let work = exchange(client, target, key, req, start, &mut rec);
    let result = match tokio::time::timeout(target.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            FailureKind::Timeout,
            format!(
                "no complete response within {}",
                humantime::format_duration(target.timeout)
            ),
        )),
    };
    if let Err(f) = result {
        rec.failure = Some(f);
        rec.e2el = start.elapsed().as_secs_f64();
    }
    rec
}

async fn exchange(
    client: &reqwest::Client,
    target: &Target,
    key: Option<&str>,
    req: &BenchRequest,
    start: Instant,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut b = client.post(&target.url).json(&req.body);
    if let Some(k) = key {
        b = b.bearer_auth(k);
    }
    let resp = b.send().await.map_err(|e| transport_failure(&e))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(fail(FailureKind::Http(status.as_u16()), error_message(&text)));
    }
    if target.stream {
        read_stream(resp, target.endpoint, start, rec).await
    } else {
        let bytes = resp.bytes().await.map_err(|e| transport_failure(&e))?;
        rec.e2el = start.elapsed().as_secs_f64();
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| fail(FailureKind::BadResponse, format!("response is not JSON: {e}")))?;
        let text = match target.endpoint {
            Endpoint::Chat => v.pointer("/choices/0/message/content"),
            Endpoint::Completions => v.pointer("/choices/0/text"),
        }
        .and_then(Value::as_str)
        .unwrap_or_default();
        read_usage(&v, rec);
        if rec.output_tokens == 0 {
            // No usage: about one token per word.
            rec.output_tokens = text.split_whitespace().count() as u64;
        }
        if rec.output_tokens == 0 && v.pointer("/choices/0").is_none() {
            return Err(fail(FailureKind::NoTokens, "the response has no choices"));
        }
        Ok(())
    }
}

/// Takes `usage` counts when present (the last one wins, for servers that repeat it).
fn read_usage(v: &Value, rec: &mut RequestRecord) {
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        if let Some(n) = u.get("completion_tokens").and_then(Value::as_u64) {
            rec.output_tokens = n;
        }
        if let Some(n) = u.get("prompt_tokens").and_then(Value::as_u64) {
            rec.input_tokens = n;
        }
    }
}

/// Per streamed chunk state.
struct StreamState {
    start: Instant,
    last: Option<Instant>,
    last_data: Option<Instant>,
    chunks: u64,
    usage_tokens: bool,
}

async fn read_stream(
    resp: reqwest::Response,
    endpoint: Endpoint,
    start: Instant,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let mut body = resp.bytes_stream();
    let mut framer = SseFramer::new();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut st = StreamState {
        start,
        last: None,
        last_data: None,
        chunks: 0,
        usage_tokens: false,
    };
    let mut done = false;
    while !done {
        let Some(chunk) = body.next().await else { break };
        let chunk = chunk.map_err(|e| {
            let f = transport_failure(&e);
            fail(FailureKind::Stream, format!("the stream broke: {}", f.message))
        })?;
        let now = Instant::now();
        framer.push(&chunk, &mut events);
        for ev in events.drain(..) {
            if ev.is_done() {
                done = true;
                break;
            }
            on_event(&ev, endpoint, now, &mut st, rec)?;
        }
    }
    if !done && framer.has_partial() {
        return Err(fail(FailureKind::Stream, "the stream ended in the middle of an event"));
    }
    let Some(last) = st.last_data else {
        return Err(fail(FailureKind::NoTokens, "the stream carried no token"));
    };
    if st.chunks == 0 {
        return Err(fail(FailureKind::NoTokens, "the stream carried no token"));
    }
    rec.e2el = last.duration_since(start).as_secs_f64();
    if !st.usage_tokens {
        rec.output_tokens = st.chunks;
    }
    Ok(())
}

fn on_event(
    ev: &SseEvent,
    endpoint: Endpoint,
    now: Instant,
    st: &mut StreamState,
    rec: &mut RequestRecord,
) -> Result<(), Failure> {
    let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
        fail(
            FailureKind::BadResponse,
            format!("a stream event is not JSON ({e}): {}", ev.data),
        )
    })?;
    if ev.event.as_deref() == Some("error") || v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(fail(
            FailureKind::Stream,
            format!("error event: {}", error_message(&ev.data)),
        ));
    }
    st.last_data = Some(now);
    let text = match endpoint {
        Endpoint::Chat => v.pointer("/choices/0/delta/content"),
        Endpoint::Completions => v.pointer("/choices/0/text"),
    }
    .and_then(Value::as_str);
    // vLLM's client takes the first chunk with choices; servers differ in whether the role-only
    // chunk comes before or with the first token, so only chunks with text count as tokens here.
    if text.is_some_and(|t| !t.is_empty()) {
        match st.last {
            None => rec.ttft = Some(now.duration_since(st.start).as_secs_f64()),
            Some(prev) => rec.itl.push(now.duration_since(prev).as_secs_f64()),
        }
        st.last = Some(now);
        st.chunks += 1;
    }
    if v.get("usage").is_some_and(|u| u.get("completion_tokens").is_some()) {
        read_usage(&v, rec);
        st.usage_tokens = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_extracted_from_common_shapes() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message("plain text\n"), "plain text");
        assert_eq!(error_message(""), "(empty body)");
    }
}
