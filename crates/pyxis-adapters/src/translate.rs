//! Reply translation, dispatched by dialect, and the driver shared by every native stream: framing
//! (SSE or NDJSON), JSON per event, in-band errors, the end marker, and the rule that a stream which
//! stops before its final event is an error.

use pyxis_protocol::{OpenAiError, SseEvent, SseFramer, Usage};
use pyxis_resources::RuntimeKind;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::errors::{inband_error, malformed, truncated};
use crate::kinds::{llamacpp, ollama, tgi, triton};
use crate::openai_out::ChunkWriter;
use crate::passthrough::{self, PassThrough};
use crate::types::{Ctx, Dialect, StreamEvent, StreamTranslator, Whole};

pub(crate) fn whole(
    kind: RuntimeKind,
    dialect: Dialect,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &Ctx<'_>,
) -> Result<Whole, OpenAiError> {
    if dialect.surface() == crate::Surface::Native {
        // A native reply can carry an error under a 2xx (Ollama, Triton).
        if let Ok(v) = serde_json::from_slice::<Value>(body)
            && v.get("error").is_some_and(|e| !e.is_null())
        {
            return Err(inband_error(kind, body, "in a 200 reply"));
        }
    }
    match dialect {
        Dialect::OpenAi(_) => passthrough::whole(kind, body, ctx),
        Dialect::TgiGenerate => tgi::whole(headers, body, ctx),
        Dialect::TritonGenerate(_) => triton::whole(body, ctx),
        Dialect::OllamaChat | Dialect::OllamaGenerate => ollama::whole(dialect, body, ctx),
        Dialect::OllamaEmbed { base64 } => ollama::embed_whole(body, base64, ctx),
        Dialect::LlamaCppCompletion => llamacpp::whole(body, ctx),
    }
}

pub(crate) fn stream(kind: RuntimeKind, dialect: Dialect, ctx: &Ctx<'_>) -> Box<dyn StreamTranslator> {
    let k = dialect.request_kind();
    match dialect {
        Dialect::OpenAi(_) | Dialect::OllamaEmbed { .. } => Box::new(PassThrough::new(kind)),
        Dialect::TgiGenerate => Box::new(NativeStream::sse(kind, k, ctx, tgi::StreamState::default())),
        Dialect::TritonGenerate(_) => Box::new(NativeStream::sse(kind, k, ctx, triton::StreamState::default())),
        Dialect::OllamaChat | Dialect::OllamaGenerate => Box::new(NativeStream::lines(
            kind,
            k,
            ctx,
            ollama::StreamState::new(dialect, ctx),
        )),
        Dialect::LlamaCppCompletion => Box::new(NativeStream::sse(kind, k, ctx, llamacpp::StreamState::default())),
    }
}

/// What one native event meant.
pub(crate) enum Step {
    More,
    /// The runtime's final event: write the finish chunk before returning this.
    End,
}

/// The per-dialect part of a native stream.
pub(crate) trait Events: Send {
    /// One event's JSON (already checked for an `error` key).
    fn event(&mut self, v: &Value, w: &mut ChunkWriter, out: &mut Vec<String>) -> Result<Step, OpenAiError>;

    /// The body ended cleanly without a final event. Formats with no end marker (Triton) finish
    /// here and return `true`; the others return `false` (a truncated stream).
    fn at_eof(&mut self, _w: &mut ChunkWriter, _out: &mut Vec<String>) -> bool {
        false
    }

    /// Token counts, once known.
    fn usage(&self) -> Option<Usage>;

    /// What the final event is called, for the truncation error.
    fn final_event(&self) -> &'static str;
}

enum Framing {
    Sse { framer: SseFramer, events: Vec<SseEvent> },
    Lines { buf: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Done,
    Failed,
}

pub(crate) struct NativeStream<E: Events> {
    kind: RuntimeKind,
    framing: Framing,
    writer: ChunkWriter,
    events: E,
    state: State,
    scratch: Vec<String>,
}

impl<E: Events> NativeStream<E> {
    pub(crate) fn sse(kind: RuntimeKind, k: pyxis_protocol::RequestKind, ctx: &Ctx<'_>, events: E) -> Self {
        Self::new(
            kind,
            ctx,
            k,
            Framing::Sse {
                framer: SseFramer::new(),
                events: Vec::with_capacity(4),
            },
            events,
        )
    }

    pub(crate) fn lines(kind: RuntimeKind, k: pyxis_protocol::RequestKind, ctx: &Ctx<'_>, events: E) -> Self {
        Self::new(kind, ctx, k, Framing::Lines { buf: Vec::new() }, events)
    }

    fn new(kind: RuntimeKind, ctx: &Ctx<'_>, k: pyxis_protocol::RequestKind, framing: Framing, events: E) -> Self {
        NativeStream {
            kind,
            framing,
            writer: ChunkWriter::new(k, ctx),
            events,
            state: State::Open,
            scratch: Vec::with_capacity(4),
        }
    }

    fn flush(&mut self, out: &mut Vec<StreamEvent>) {
        out.extend(self.scratch.drain(..).map(StreamEvent::Data));
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        self.flush(out);
        if let Some(u) = self.events.usage() {
            out.push(StreamEvent::Data(self.writer.usage(&u)));
        }
        out.push(StreamEvent::Done);
        self.state = State::Done;
    }

    fn payload(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) {
        if self.state != State::Open {
            return;
        }
        let v: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(_) => {
                self.state = State::Failed;
                out.push(StreamEvent::Error(malformed(
                    self.kind,
                    "a stream event that is not JSON",
                )));
                return;
            }
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            self.state = State::Failed;
            out.push(StreamEvent::Error(inband_error(self.kind, data, "mid-stream")));
            return;
        }
        self.writer.role(&mut self.scratch);
        match self.events.event(&v, &mut self.writer, &mut self.scratch) {
            Ok(Step::More) => self.flush(out),
            Ok(Step::End) => self.end(out),
            Err(e) => {
                self.scratch.clear();
                self.state = State::Failed;
                out.push(StreamEvent::Error(e));
            }
        }
    }
}

impl<E: Events> StreamTranslator for NativeStream<E> {
    fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        match &mut self.framing {
            Framing::Sse { framer, events } => {
                framer.push(bytes, events);
                let batch = std::mem::take(events);
                for ev in &batch {
                    // Native SSE routes send no `[DONE]`; tolerate one if a build adds it.
                    if !ev.is_done() {
                        self.payload(ev.data.as_bytes(), out);
                    }
                }
                if let Framing::Sse { events, .. } = &mut self.framing {
                    *events = batch;
                    events.clear();
                }
            }
            Framing::Lines { buf } => {
                buf.extend_from_slice(bytes);
                let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
                    return;
                };
                let complete: Vec<u8> = buf.drain(..=last_nl).collect();
                for line in complete.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        self.payload(line, out);
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> Result<Vec<StreamEvent>, OpenAiError> {
        let mut out = Vec::new();
        if self.state == State::Open {
            let leftover = match &mut self.framing {
                Framing::Sse { framer, .. } => {
                    if framer.has_partial() {
                        return Err(truncated(self.kind, "cut in the middle of an event"));
                    }
                    None
                }
                Framing::Lines { buf } => Some(std::mem::take(buf)),
            };
            // A last NDJSON line without its newline is still a whole object if it parses.
            if let Some(rest) = leftover.filter(|r| !r.iter().all(u8::is_ascii_whitespace)) {
                if serde_json::from_slice::<Value>(&rest).is_err() {
                    return Err(truncated(self.kind, "cut in the middle of a line"));
                }
                self.payload(&rest, &mut out);
            }
        }
        match self.state {
            State::Done | State::Failed => Ok(out),
            State::Open => {
                if self.events.at_eof(&mut self.writer, &mut self.scratch) {
                    self.end(&mut out);
                    Ok(out)
                } else {
                    Err(truncated(self.kind, self.events.final_event()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Dialect;

    fn ctx() -> Ctx<'static> {
        Ctx {
            public_model: "m",
            id: "1",
            created: 1,
        }
    }

    fn data(evs: &[StreamEvent]) -> usize {
        evs.iter().filter(|e| matches!(e, StreamEvent::Data(_))).count()
    }

    #[test]
    fn ndjson_tolerates_crlf_and_blank_lines() {
        let mut t = stream(RuntimeKind::Ollama, Dialect::OllamaGenerate, &ctx());
        let wire =
            b"{\"response\":\"a\",\"done\":false}\r\n\r\n  \n{\"response\":\"\",\"done\":true,\"eval_count\":1}\r\n";
        let evs = t.feed(wire);
        assert_eq!(data(&evs), 3, "text, finish, usage: {evs:?}");
        assert_eq!(evs.last(), Some(&StreamEvent::Done));
        assert_eq!(t.finish(), Ok(Vec::new()));
        // Bytes after the end are ignored.
        assert!(t.feed(b"{\"response\":\"late\"}\n").is_empty());
    }

    #[test]
    fn garbage_in_a_native_stream_is_an_error_not_a_crash() {
        let mut t = stream(RuntimeKind::Tgi, Dialect::TgiGenerate, &ctx());
        let evs = t.feed(b"data: <html>\n\n");
        assert!(matches!(evs.as_slice(), [StreamEvent::Error(e)] if e.status() == 502));
        assert_eq!(t.finish(), Ok(Vec::new()), "the error already ended it");
    }

    #[test]
    fn triton_ends_at_a_clean_eof_even_without_tokens() {
        let mut t = stream(RuntimeKind::Triton, Dialect::TritonGenerate(Default::default()), &ctx());
        let end = t.finish().expect("clean end");
        assert_eq!(data(&end), 1, "the finish chunk");
        assert_eq!(end.last(), Some(&StreamEvent::Done));
    }
}
