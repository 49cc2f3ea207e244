//! The values adapters hand the gateway: upstream requests, translated replies and stream events,
//! classified failures, runtime identity and load.

use bytes::Bytes;
use pyxis_protocol::{OpenAiError, RequestKind, Usage};
use serde::Serialize;

/// Which API of the runtime a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Surface {
    /// The runtime's OpenAI-compatible route; bytes pass through untouched (the gateway's fast path).
    OpenAi,
    /// The runtime's own API, translated to and from OpenAI's shape by this crate.
    Native,
    /// The runtime cannot serve this kind of request (e.g. embeddings on TGI); `build` says why.
    Unsupported,
}

/// Which backend serves a Triton model: the two take different inputs on the generate extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TritonBackend {
    /// The TensorRT-LLM `ensemble` / BLS model (`text_input`, `max_tokens`, `stop_words`, ...).
    #[default]
    TensorrtLlm,
    /// Triton's vLLM backend (`text_input` plus sampling parameters as request parameters).
    Vllm,
}

/// The wire dialect of one upstream call; it picks the translator for the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An OpenAI route; the reply is already OpenAI's shape.
    OpenAi(RequestKind),
    /// TGI `/generate` or `/generate_stream`, answering a completions request.
    TgiGenerate,
    /// Triton's generate extension, answering a completions request.
    TritonGenerate(TritonBackend),
    /// Ollama `/api/chat`.
    OllamaChat,
    /// Ollama `/api/generate` (raw prompt), answering a completions request.
    OllamaGenerate,
    /// Ollama `/api/embed`; `base64` when the client asked for `encoding_format: "base64"`.
    OllamaEmbed { base64: bool },
    /// llama.cpp `/completion`, answering a completions request.
    LlamaCppCompletion,
}

impl Dialect {
    pub fn surface(self) -> Surface {
        match self {
            Dialect::OpenAi(_) => Surface::OpenAi,
            _ => Surface::Native,
        }
    }

    /// The OpenAI route the client called.
    pub fn request_kind(self) -> RequestKind {
        match self {
            Dialect::OpenAi(k) => k,
            Dialect::OllamaChat => RequestKind::Chat,
            Dialect::OllamaEmbed { .. } => RequestKind::Embeddings,
            Dialect::TgiGenerate
            | Dialect::TritonGenerate(_)
            | Dialect::OllamaGenerate
            | Dialect::LlamaCppCompletion => RequestKind::Completion,
        }
    }
}

/// One call to make: `POST {base_url}{path}` with `body` (JSON) and `headers`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    pub dialect: Dialect,
    /// Path (and query) appended to the endpoint's base URL.
    pub path: String,
    pub body: Bytes,
    /// Headers beyond `content-type: application/json`, the request id and the bearer token.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The reply is a stream (SSE or NDJSON) to feed a [`StreamTranslator`].
    pub stream: bool,
}

/// What the translated reply needs that the upstream does not send: the id, clock and public name.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The model name the client asked for; written into every object.
    pub public_model: &'a str,
    /// The gateway's request id; objects get `chatcmpl-<id>` / `cmpl-<id>`.
    pub id: &'a str,
    /// Unix seconds, the objects' `created`.
    pub created: u64,
}

/// A whole (non-streamed) reply in OpenAI's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Whole {
    /// `chat.completion`, `text_completion` or embeddings `list` JSON.
    pub body: Bytes,
    /// Token counts when the runtime reported them.
    pub usage: Option<Usage>,
}

/// One translated stream event.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The JSON payload of one `data:` event (a chunk object); write it with `sse::encode_data`.
    Data(String),
    /// The stream ended properly: write `data: [DONE]`.
    Done,
    /// The runtime reported an error inside the stream; write its JSON and close the stream.
    Error(OpenAiError),
}

/// Incremental translation of a runtime's stream: bytes in as the network delivers them (split
/// anywhere), OpenAI events out. Output never depends on where the reads were split.
pub trait StreamTranslator: Send {
    /// Feeds bytes; appends the events they complete.
    fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>);

    /// Feeds bytes; returns the events they complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.feed_into(bytes, &mut out);
        out
    }

    /// Call at a clean end of the upstream body. `Ok` holds the last events (ending with
    /// [`StreamEvent::Done`] unless it was already sent or an error ended the stream); `Err` means
    /// the runtime stopped before finishing, which must reach the client as an error, never as a
    /// silently short answer.
    fn finish(&mut self) -> Result<Vec<StreamEvent>, OpenAiError>;
}

/// A runtime's error reply, sorted by what the gateway should do with it.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamFailure {
    /// Not the request's fault: this endpoint cannot take it now (overloaded, queue full, starting,
    /// dead engine). Another endpoint may; `error` is what to answer when none can.
    Overloaded {
        error: OpenAiError,
        /// How long to avoid this endpoint, when the runtime's semantics say (`0` = only this attempt).
        retry_after_ms: Option<u64>,
        /// The endpoint is down until its health check passes again (vLLM dead engine,
        /// llama.cpp loading a model): mark it unhealthy.
        endpoint_down: bool,
    },
    /// The request is at fault; answer the client with this (status, `param`, `code` mapped).
    Client(OpenAiError),
    /// The runtime failed. `retry_elsewhere` when another endpoint plausibly succeeds (e.g. this
    /// one does not have the model or adapter loaded).
    Server { error: OpenAiError, retry_elsewhere: bool },
}

impl UpstreamFailure {
    pub fn error(&self) -> &OpenAiError {
        match self {
            UpstreamFailure::Overloaded { error, .. } | UpstreamFailure::Server { error, .. } => error,
            UpstreamFailure::Client(e) => e,
        }
    }

    pub fn into_error(self) -> OpenAiError {
        match self {
            UpstreamFailure::Overloaded { error, .. } | UpstreamFailure::Server { error, .. } => error,
            UpstreamFailure::Client(e) => e,
        }
    }

    /// Whether another endpoint should be tried.
    pub fn retry_elsewhere(&self) -> bool {
        match self {
            UpstreamFailure::Overloaded { .. } => true,
            UpstreamFailure::Server { retry_elsewhere, .. } => *retry_elsewhere,
            UpstreamFailure::Client(_) => false,
        }
    }
}

/// What a runtime says about itself; identity probes each fill part of it, [`Identity::merge`] joins them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Identity {
    /// The runtime's version (`0.32.0`, TGI `3.3.6`, llama.cpp `b1-0c1e570`).
    pub version: Option<String>,
    pub models: Vec<ServedModel>,
    /// Requests the runtime runs or admits at once (TGI `max_concurrent_requests`, llama.cpp `total_slots`).
    pub max_concurrency: Option<u32>,
}

/// One model (or adapter) a runtime serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServedModel {
    pub id: String,
    /// Longest prompt plus completion, tokens.
    pub context_length: Option<u64>,
    /// The base model when this is a LoRA adapter.
    pub parent: Option<String>,
    /// Loaded in memory now (Ollama `/api/ps`, Triton repository state).
    pub loaded: Option<bool>,
    /// Triton backend or platform (`tensorrtllm`, `vllm`, `ensemble`...).
    pub backend: Option<String>,
    /// An embedding model, where the runtime says (Ollama capabilities, SGLang `is_generation`).
    pub embedding: Option<bool>,
}

impl Identity {
    /// Adds what `other` knows and `self` does not; models are joined by id.
    pub fn merge(&mut self, other: Identity) {
        if self.version.is_none() {
            self.version = other.version;
        }
        if self.max_concurrency.is_none() {
            self.max_concurrency = other.max_concurrency;
        }
        for m in other.models {
            let slot = self.model_mut(&m.id);
            slot.context_length = slot.context_length.or(m.context_length);
            slot.parent = slot.parent.take().or(m.parent);
            slot.loaded = slot.loaded.or(m.loaded);
            slot.backend = slot.backend.take().or(m.backend);
            slot.embedding = slot.embedding.or(m.embedding);
        }
    }

    /// The entry for `id`, created empty when missing.
    pub fn model_mut(&mut self, id: &str) -> &mut ServedModel {
        let i = match self.models.iter().position(|m| m.id == id) {
            Some(i) => i,
            None => {
                self.models.push(ServedModel {
                    id: id.to_string(),
                    ..ServedModel::default()
                });
                self.models.len() - 1
            }
        };
        &mut self.models[i]
    }
}

/// One reading of a runtime's load, the same shape for every kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LoadSample {
    /// When it was read, in the caller's milliseconds.
    pub at_ms: u64,
    /// Requests queued, not yet running.
    pub waiting: u64,
    /// Requests running (in the batch).
    pub running: u64,
    /// KV cache in use, 0..=1, where the runtime exports it.
    pub kv_use: Option<f64>,
    /// Generated tokens per second since the previous sample (from a counter's delta).
    pub tokens_per_s: Option<f64>,
    /// The generated-tokens counter as read, for the next sample's delta.
    pub generated_tokens: Option<f64>,
}

/// HTTP method of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProbeMethod {
    Get,
    Post,
}

/// One identity probe. `{model}` in `path` or `body` stands for each model id learned so far
/// (`per_model`); the prober substitutes it, escaped for a path or a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub method: ProbeMethod,
    pub path: &'static str,
    pub body: Option<&'static str>,
    pub per_model: bool,
}

impl Probe {
    pub const fn get(path: &'static str) -> Probe {
        Probe {
            method: ProbeMethod::Get,
            path,
            body: None,
            per_model: false,
        }
    }

    pub const fn post(path: &'static str, body: &'static str) -> Probe {
        Probe {
            method: ProbeMethod::Post,
            path,
            body: Some(body),
            per_model: false,
        }
    }

    pub const fn per_model(mut self) -> Probe {
        self.per_model = true;
        self
    }

    /// The path to request for `model` (`{model}` replaced, percent-encoded).
    pub fn path_for(&self, model: Option<&str>) -> String {
        match model {
            Some(m) => self.path.replace("{model}", &path_segment(m)),
            None => self.path.to_string(),
        }
    }

    /// The body to send for `model` (`{model}` replaced, escaped for a JSON string).
    pub fn body_for(&self, model: Option<&str>) -> Option<String> {
        let body = self.body?;
        Some(match model {
            Some(m) => {
                let quoted = serde_json::to_string(m).unwrap_or_default();
                body.replace("{model}", quoted.trim_matches('"'))
            }
            None => body.to_string(),
        })
    }

    /// What to pass to [`crate::Adapter::parse_identity`] as `path`: the path as sent, plus
    /// `?model=<id>` when the model is named only in the body (Ollama's `POST /api/show`).
    pub fn label_for(&self, model: Option<&str>) -> String {
        match model {
            Some(m) if !self.path.contains("{model}") => format!("{}?model={m}", self.path),
            _ => self.path_for(model),
        }
    }
}

/// Percent-encodes a model name for one path segment.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
