//! The OpenAI surface: the request body is the gateway's `upstream_body`, the reply is OpenAI's
//! already. The stream translator only frames events, spots `[DONE]` and in-band errors, and passes
//! every data payload through byte for byte.

use bytes::Bytes;
use pyxis_protocol::{InferenceRequest, OpenAiError, SseEvent, SseFramer, Usage};
use pyxis_resources::RuntimeKind;
use serde_json::Value;

use crate::errors::{inband_error, malformed, truncated};
use crate::types::{Ctx, Dialect, StreamEvent, StreamTranslator, UpstreamRequest, Whole};

pub(crate) fn build(req: &InferenceRequest, served_model: &str) -> UpstreamRequest {
    UpstreamRequest {
        dialect: Dialect::OpenAi(req.kind),
        path: req.kind.path().to_string(),
        body: Bytes::from(req.upstream_body(served_model)),
        headers: if req.stream {
            vec![("accept", "text/event-stream")]
        } else {
            Vec::new()
        },
        stream: req.stream,
    }
}

/// Reads usage and renames the model; the bytes are re-serialised only when the name differs.
pub(crate) fn whole(kind: RuntimeKind, body: &[u8], ctx: &Ctx<'_>) -> Result<Whole, OpenAiError> {
    let mut v: Value = serde_json::from_slice(body).map_err(|_| malformed(kind, "a reply body that is not JSON"))?;
    if v.get("error").is_some_and(|e| !e.is_null()) {
        return Err(inband_error(kind, body, "in a 200 reply"));
    }
    let usage = v
        .get("usage")
        .filter(|u| !u.is_null())
        .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok());
    let body = if v.get("model").and_then(Value::as_str) == Some(ctx.public_model) {
        Bytes::copy_from_slice(body)
    } else {
        v["model"] = Value::String(ctx.public_model.to_string());
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    };
    Ok(Whole { body, usage })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Done,
    Failed,
}

pub(crate) struct PassThrough {
    kind: RuntimeKind,
    framer: SseFramer,
    events: Vec<SseEvent>,
    state: State,
}

impl PassThrough {
    pub(crate) fn new(kind: RuntimeKind) -> PassThrough {
        PassThrough {
            kind,
            framer: SseFramer::new(),
            events: Vec::with_capacity(4),
            state: State::Open,
        }
    }
}

fn is_error_event(data: &str) -> bool {
    // Cheap test first: a chunk whose text never says "error" cannot be an error object.
    data.contains("\"error\"")
        && serde_json::from_str::<Value>(data).is_ok_and(|v| v.get("error").is_some_and(|e| !e.is_null()))
}

impl StreamTranslator for PassThrough {
    fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        self.framer.push(bytes, &mut self.events);
        for ev in self.events.drain(..) {
            if self.state != State::Open {
                continue;
            }
            if ev.is_done() {
                self.state = State::Done;
                out.push(StreamEvent::Done);
            } else if is_error_event(&ev.data) {
                self.state = State::Failed;
                out.push(StreamEvent::Error(inband_error(
                    self.kind,
                    ev.data.as_bytes(),
                    "mid-stream",
                )));
            } else {
                out.push(StreamEvent::Data(ev.data));
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<StreamEvent>, OpenAiError> {
        match self.state {
            State::Done | State::Failed => Ok(Vec::new()),
            State::Open if self.framer.has_partial() => Err(truncated(self.kind, "cut in the middle of an event")),
            State::Open => Err(truncated(self.kind, "no `data: [DONE]`")),
        }
    }
}
