//! One module per runtime kind: its surface choice (and why), request building, native reply
//! translation, identity and load mapping.

pub(crate) mod llamacpp;
pub(crate) mod ollama;
pub(crate) mod openai;
pub(crate) mod sglang;
pub(crate) mod tgi;
pub(crate) mod triton;
pub(crate) mod trtllm;
pub(crate) mod vllm;

use pyxis_protocol::OpenAiError;
use pyxis_resources::RuntimeKind;
use serde_json::Value;

use crate::types::{Identity, ServedModel};

/// Parses a JSON body for identity; anything else says nothing.
pub(crate) fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

pub(crate) fn str_at(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn u64_at(v: &Value, ptr: &str) -> Option<u64> {
    v.pointer(ptr).and_then(Value::as_u64)
}

/// `GET /v1/models` (OpenAI's list, with vLLM's and SGLang's `max_model_len`, vLLM's `parent`,
/// llama.cpp's `meta.n_ctx_train`).
pub(crate) fn openai_models(body: &[u8]) -> Identity {
    let v = json(body);
    let models = v
        .get("data")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(|m| {
                    Some(ServedModel {
                        id: m.get("id")?.as_str()?.to_string(),
                        context_length: u64_at(m, "/max_model_len").or_else(|| u64_at(m, "/meta/n_ctx_train")),
                        parent: str_at(m, "/parent"),
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

/// `{"version": "..."}` (vLLM and TRT-LLM `/version`, Ollama `/api/version`, Triton `/v2`).
pub(crate) fn version(body: &[u8]) -> Identity {
    Identity {
        version: str_at(&json(body), "/version"),
        ..Identity::default()
    }
}

/// The error for a request kind the runtime has no route for.
pub(crate) fn no_route(kind: RuntimeKind, what: &str, hint: &str) -> OpenAiError {
    OpenAiError::new(
        pyxis_protocol::ErrorKind::NotFound,
        format!("This model is served by {kind}, which has no {what} API. {hint}"),
    )
    .with_param("model")
    .with_code("unsupported_route")
}
