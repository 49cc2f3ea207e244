//! Relays a runtime's stream to the client event by event as it arrives, accounting usage on the
//! way. OpenAI-surface streams are SSE, re-framed and passed through; native streams (TGI, Triton,
//! Ollama NDJSON, llama.cpp) go through their adapter's translator into OpenAI chunks first. A
//! stream that ends without `[DONE]` is closed with an error event, never silently.

use std::pin::Pin;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use pyxis_adapters::{StreamEvent, StreamTranslator};
use pyxis_protocol::sse::encode_data;
use pyxis_protocol::{SseEvent, SseFramer, Usage};

use crate::call::Call;
use crate::upstream::UpstreamResponse;

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

/// How upstream bytes become OpenAI events.
pub enum Decoder {
    /// OpenAI SSE: re-framed, passed through.
    Sse(SseFramer, Vec<SseEvent>),
    /// A native stream, translated by its runtime's adapter.
    Native(Box<dyn StreamTranslator>, Vec<StreamEvent>),
}

impl Decoder {
    pub fn sse() -> Self {
        Decoder::Sse(SseFramer::new(), Vec::with_capacity(4))
    }

    pub fn native(t: Box<dyn StreamTranslator>) -> Self {
        Decoder::Native(t, Vec::with_capacity(4))
    }
}

struct Relay {
    upstream: Upstream,
    decoder: Decoder,
    call: Call,
    client_wants_usage: bool,
    rename: Option<String>,
    endpoint: String,
    content_events: u64,
    done: bool,
}

pub fn relay_stream(
    resp: UpstreamResponse,
    decoder: Decoder,
    call: Call,
    client_wants_usage: bool,
    rename: Option<String>,
    endpoint: String,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let relay = Relay {
        upstream: Box::pin(crate::upstream::body_stream(resp)),
        decoder,
        call,
        client_wants_usage,
        rename,
        endpoint,
        content_events: 0,
        done: false,
    };
    futures::stream::unfold(relay, |mut r| async move {
        loop {
            if r.done {
                return None;
            }
            match r.upstream.next().await {
                Some(Ok(chunk)) => {
                    let out = r.process(&chunk);
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), r));
                    }
                }
                Some(Err(e)) => {
                    let msg = format!("The runtime at {} broke the stream: {e}", r.endpoint);
                    return Some((Ok(r.broken(msg)), r));
                }
                None => {
                    let out = r.end_of_body();
                    if r.done {
                        return Some((Ok(Bytes::from(out)), r));
                    }
                    let msg = format!("The runtime at {} ended the stream without finishing it", r.endpoint);
                    let mut out = out;
                    out.extend_from_slice(&r.broken(msg));
                    return Some((Ok(Bytes::from(out)), r));
                }
            }
        }
    })
}

impl Relay {
    fn process(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match &mut self.decoder {
            Decoder::Sse(framer, events) => {
                framer.push(chunk, events);
                let evs = std::mem::take(events);
                for ev in &evs {
                    if self.done {
                        break;
                    }
                    if ev.is_done() {
                        encode_data(b"[DONE]", &mut out);
                        self.finish(200, None);
                        break;
                    }
                    self.event(&ev.data, &mut out);
                }
                if let Decoder::Sse(_, events) = &mut self.decoder {
                    *events = evs;
                    events.clear();
                }
            }
            Decoder::Native(t, events) => {
                t.feed_into(chunk, events);
                let evs = std::mem::take(events);
                self.native_events(&evs, &mut out);
                if let Decoder::Native(_, events) = &mut self.decoder {
                    *events = evs;
                    events.clear();
                }
            }
        }
        out
    }

    /// The upstream body ended cleanly: a native translator may still hold the last events (or know
    /// the stream was cut short).
    fn end_of_body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if let Decoder::Native(t, _) = &mut self.decoder {
            match t.finish() {
                Ok(evs) => self.native_events(&evs, &mut out),
                Err(e) => {
                    encode_data(e.to_json().as_bytes(), &mut out);
                    self.finish(200, Some("upstream_stream_broken"));
                }
            }
        }
        out
    }

    fn native_events(&mut self, evs: &[StreamEvent], out: &mut Vec<u8>) {
        for ev in evs {
            if self.done {
                break;
            }
            match ev {
                StreamEvent::Data(d) => self.event(d, out),
                StreamEvent::Done => {
                    encode_data(b"[DONE]", out);
                    self.finish(200, None);
                }
                StreamEvent::Error(e) => {
                    encode_data(e.to_json().as_bytes(), out);
                    self.finish(200, Some("upstream_stream_error"));
                }
            }
        }
    }

    fn event(&mut self, data: &str, out: &mut Vec<u8>) {
        // Fast path: nothing to read or rewrite in this event.
        let keep = self.call.keeps_content();
        if !keep && self.rename.is_none() && !data.contains("\"usage\"") && !data.contains("\"error\"") {
            self.count_content(data);
            encode_data(data.as_bytes(), out);
            return;
        }
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(data) else {
            encode_data(data.as_bytes(), out);
            return;
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            encode_data(data.as_bytes(), out);
            self.finish(200, Some("upstream_stream_error"));
            return;
        }
        let usage_only = v
            .get("choices")
            .and_then(|c| c.as_array())
            .is_some_and(|c| c.is_empty());
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            if let Ok(u) = serde_json::from_value::<Usage>(u.clone()) {
                self.call.set_usage(&u);
            }
            if !self.client_wants_usage {
                if usage_only {
                    return;
                }
                if let Some(o) = v.as_object_mut() {
                    o.remove("usage");
                }
            }
        }
        if !usage_only {
            self.count_content(data);
            if keep && let Some(c) = v.get("choices").and_then(|c| c.get(0)) {
                let text = c
                    .pointer("/delta/content")
                    .or_else(|| c.get("text"))
                    .and_then(|t| t.as_str());
                self.call.push_content(text.unwrap_or_default());
            }
        }
        if let Some(name) = &self.rename {
            v["model"] = serde_json::Value::String(name.clone());
        }
        encode_data(&serde_json::to_vec(&v).unwrap_or_default(), out);
    }

    fn count_content(&mut self, data: &str) {
        // A non-empty content (chat) or text (completions) delta is a token; the role-only first
        // chunk (`"content":""`) is not.
        if has_nonempty(data, "\"content\":\"") || has_nonempty(data, "\"text\":\"") {
            self.call.mark_first_token();
            self.call.output_tokens(1);
            self.content_events += 1;
        }
    }

    fn finish(&mut self, status: u16, error: Option<&str>) {
        self.done = true;
        if !self.call.usage_known() {
            // The runtime sent no usage: count content events as tokens, the best estimate left.
            self.call.set_completion_estimate(self.content_events);
        }
        self.call.finish(status, error);
    }

    fn broken(&mut self, message: String) -> Bytes {
        tracing::warn!(%message, "stream broken");
        let err = pyxis_protocol::OpenAiError::new(pyxis_protocol::ErrorKind::BadGateway, message)
            .with_code("upstream_stream_broken");
        let mut out = Vec::new();
        encode_data(err.to_json().as_bytes(), &mut out);
        self.finish(200, Some("upstream_stream_broken"));
        Bytes::from(out)
    }
}

fn has_nonempty(data: &str, key: &str) -> bool {
    data.match_indices(key)
        .any(|(i, _)| !data[i + key.len()..].starts_with('"'))
}

#[cfg(test)]
mod tests {
    use super::has_nonempty;

    #[test]
    fn empty_role_chunk_is_not_a_token() {
        let k = "\"content\":\"";
        assert!(!has_nonempty(r#"{"delta":{"content":"","role":"assistant"}}"#, k));
        assert!(has_nonempty(r#"{"delta":{"content":" get"}}"#, k));
        assert!(!has_nonempty(r#"{"delta":{}}"#, k));
    }
}
