//! Ollama: the native API (`/api/chat`, `/api/generate`, `/api/embed`) by default.
//!
//! Why native: the native API is the documented, complete one (runtimes.md §6.1–6.2): NDJSON
//! streams whose final object always carries `done_reason`, `prompt_eval_count` and `eval_count`,
//! `options.num_predict`/`num_ctx`/..., `keep_alive`, tools, images. Ollama's OpenAI layer is an
//! unverified compatibility shim in our reference (§6.1 "[mem]", §10), and whether it honours
//! `stream_options.include_usage` depends on the release. `Ollama { native: false }` selects the
//! OpenAI routes (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`) instead.
//!
//! Translation: chat messages become Ollama messages (text parts joined, `data:` images to
//! `images`, tool calls with their arguments parsed), sampling parameters go to `options`;
//! completions use `/api/generate` with `raw: true`, because OpenAI's prompt is the final text (no
//! template); embeddings use `/api/embed` with `truncate: false`, because OpenAI rejects an input
//! too long rather than cutting it. Replies become OpenAI objects with usage from the counters.
//!
//! Errors: `{"error": str}`; 503 when the queue (`OLLAMA_MAX_QUEUE`) is full, 404 for a model not
//! pulled (§6.3). No metrics (§6.3): the gateway estimates load from its own in-flight count;
//! `/api/ps` (loaded models) is read for identity.

mod build;
mod reply;

use bytes::Bytes;
use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use pyxis_resources::RuntimeKind;
use serde_json::Value;

pub(crate) use reply::{StreamState, embed_whole, whole};

use super::{json, str_at};
use crate::adapter::Adapter;
use crate::types::{Dialect, Identity, LoadSample, Probe, ServedModel, Surface, UpstreamRequest};

pub(crate) struct Ollama {
    pub native: bool,
}

const PROBES: &[Probe] = &[
    Probe::get("/api/version"),
    Probe::get("/api/tags"),
    Probe::get("/api/ps"),
    Probe::post("/api/show", r#"{"model":"{model}"}"#).per_model(),
];

/// `models[].name` of `/api/tags` and `/api/ps`.
fn model_list(body: &[u8], loaded: Option<bool>) -> Identity {
    let v = json(body);
    let models = v
        .get("models")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some(ServedModel {
                        id: m.get("name").or_else(|| m.get("model"))?.as_str()?.to_string(),
                        loaded,
                        ..ServedModel::default()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Identity {
        models,
        ..Identity::default()
    }
}

/// `/api/show`: `model_info["<arch>.context_length"]`, `capabilities`. The path does not name the
/// model (it is in the POST body), so the caller passes it through `path` as `/api/show?model=<id>`.
fn show(path: &str, body: &[u8]) -> Identity {
    let v = json(body);
    let Some(model) = path.split_once("?model=").map(|(_, m)| m.to_string()) else {
        return Identity::default();
    };
    let arch = str_at(&v, "/model_info/general.architecture");
    let ctx = arch.and_then(|a| {
        v.get("model_info")
            .and_then(|mi| mi.get(format!("{a}.context_length")))
            .and_then(Value::as_u64)
    });
    let caps: Option<Vec<&str>> = v
        .get("capabilities")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect());
    let mut id = Identity::default();
    let m = id.model_mut(&model);
    m.context_length = ctx;
    m.embedding = caps.map(|c| c.contains(&"embedding") && !c.contains(&"completion"));
    id
}

impl Adapter for Ollama {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Ollama
    }

    fn surface(&self, _req_kind: RequestKind) -> Surface {
        if self.native { Surface::Native } else { Surface::OpenAi }
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        if !self.native {
            return Ok(crate::passthrough::build(req, served_model));
        }
        let (dialect, path, body) = match req.kind {
            RequestKind::Chat => (Dialect::OllamaChat, "/api/chat", build::chat(req, served_model)?),
            RequestKind::Completion => (
                Dialect::OllamaGenerate,
                "/api/generate",
                build::generate(req, served_model)?,
            ),
            RequestKind::Embeddings => {
                let base64 = req.body()?.get("encoding_format").and_then(Value::as_str) == Some("base64");
                (
                    Dialect::OllamaEmbed { base64 },
                    "/api/embed",
                    build::embed(req, served_model)?,
                )
            }
        };
        Ok(UpstreamRequest {
            dialect,
            path: path.into(),
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            headers: if req.stream {
                vec![("accept", "application/x-ndjson")]
            } else {
                Vec::new()
            },
            stream: req.stream,
        })
    }

    fn health_path(&self) -> &'static str {
        "/api/version"
    }

    fn identity_probes(&self) -> &'static [Probe] {
        PROBES
    }

    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity {
        match path {
            "/api/version" => super::version(body),
            "/api/tags" => model_list(body, None),
            "/api/ps" => model_list(body, Some(true)),
            p if p.starts_with("/api/show") => show(p, body),
            "/v1/models" => super::openai_models(body),
            _ => Identity::default(),
        }
    }

    fn metrics_path(&self) -> Option<&'static str> {
        None
    }

    fn parse_load(&self, _metrics_text: &str, _prev: Option<&LoadSample>, _now_ms: u64) -> Option<LoadSample> {
        None
    }
}
