//! The request parser as it was before it read raw members (346d8b6): a `serde_json::Value` tree of
//! the whole body, checked field by field. Kept verbatim as the oracle the new parser must agree with.
#![allow(dead_code)]
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use pyxis_protocol::OpenAiError;

use pyxis_protocol::RequestKind;

/// A validated inference request.
#[derive(Debug, Clone)]
pub struct Reference {
    pub kind: RequestKind,
    pub model: String,
    pub stream: bool,
    /// The client asked for a usage chunk at the end of the stream.
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens`, whichever was given (the former wins).
    pub max_tokens: Option<u32>,
    /// Characters of prompt text, for token estimates before the runtime counts them.
    pub prompt_chars: usize,
    /// The whole body, for forwarding.
    pub body: Map<String, Value>,
    /// Size of the client's body, to size the upstream one.
    pub body_len_hint: usize,
}

const CHAT_ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> OpenAiError {
    OpenAiError::invalid(format!(
        "Invalid type for '{param}': expected {expected}, but got {} instead.",
        type_name(got)
    ))
    .with_param(param)
    .with_code("invalid_type")
}

fn missing(param: &str) -> OpenAiError {
    OpenAiError::invalid(format!("Missing required parameter: '{param}'."))
        .with_param(param)
        .with_code("missing_required_parameter")
}

fn invalid_value(param: &str, msg: String) -> OpenAiError {
    OpenAiError::invalid(msg).with_param(param).with_code("invalid_value")
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, OpenAiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "a boolean", v)),
    }
}

fn opt_positive_int(body: &Map<String, Value>, key: &str) -> Result<Option<u32>, OpenAiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => match n.as_u64() {
            Some(0) => Err(invalid_value(
                key,
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got 0 instead."),
            )),
            Some(x) => Ok(Some(u32::try_from(x).unwrap_or(u32::MAX))),
            None if n.is_i64() => Err(invalid_value(
                key,
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {n} instead."),
            )),
            None => Err(wrong_type(key, "an integer", v)),
        },
        Some(v) => Err(wrong_type(key, "an integer", v)),
    }
}

fn opt_number_in(body: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, OpenAiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => {
            let x = n.as_f64().ok_or_else(|| wrong_type(key, "a number", v))?;
            if x < lo || x > hi {
                return Err(invalid_value(
                    key,
                    format!("Invalid '{key}': expected a value between {lo} and {hi}, but got {x} instead."),
                ));
            }
            Ok(Some(x))
        }
        Some(v) => Err(wrong_type(key, "a number", v)),
    }
}

fn text_len(content: &Value) -> usize {
    match content {
        Value::String(s) => s.len(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| p.get("text").and_then(Value::as_str).map_or(0, str::len))
            .sum(),
        _ => 0,
    }
}

fn check_messages(body: &Map<String, Value>) -> Result<usize, OpenAiError> {
    let msgs = match body.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(a)) => a,
        Some(v) => return Err(wrong_type("messages", "an array", v)),
    };
    if msgs.is_empty() {
        return Err(invalid_value(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
                .into(),
        ));
    }
    let mut chars = 0;
    for (i, m) in msgs.iter().enumerate() {
        let obj = m
            .as_object()
            .ok_or_else(|| wrong_type(&format!("messages[{i}]"), "an object", m))?;
        match obj.get("role") {
            None => return Err(missing(&format!("messages[{i}].role"))),
            Some(Value::String(r)) if CHAT_ROLES.contains(&r.as_str()) => {}
            Some(Value::String(r)) => {
                let p = format!("messages[{i}].role");
                return Err(invalid_value(
                    &p,
                    format!(
                        "Invalid value for '{p}': '{r}'. Supported values are: {}.",
                        CHAT_ROLES
                            .iter()
                            .map(|r| format!("'{r}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Some(v) => return Err(wrong_type(&format!("messages[{i}].role"), "a string", v)),
        }
        match obj.get("content") {
            None | Some(Value::Null) | Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(v) => {
                return Err(wrong_type(
                    &format!("messages[{i}].content"),
                    "a string or an array of content parts",
                    v,
                ));
            }
        }
        chars += obj.get("content").map_or(0, text_len);
    }
    Ok(chars)
}

fn check_prompt(body: &Map<String, Value>) -> Result<usize, OpenAiError> {
    let expected = "a string, an array of strings, or an array of token arrays";
    match body.get("prompt") {
        None | Some(Value::Null) => Err(missing("prompt")),
        Some(Value::String(s)) => Ok(s.len()),
        Some(Value::Array(items)) => {
            let mut chars = 0;
            for (i, it) in items.iter().enumerate() {
                match it {
                    Value::String(s) => chars += s.len(),
                    // Token ids: count them as ~4 chars each for the estimate.
                    Value::Number(n) if n.is_u64() => chars += 4,
                    Value::Array(toks) if toks.iter().all(Value::is_u64) => chars += 4 * toks.len(),
                    v => return Err(wrong_type(&format!("prompt[{i}]"), expected, v)),
                }
            }
            Ok(chars)
        }
        Some(v) => Err(wrong_type("prompt", expected, v)),
    }
}

/// Most inputs OpenAI accepts in one embeddings request.
const MAX_EMBEDDING_INPUTS: usize = 2048;

/// Validates `input` (a string, an array of strings, an array of token ids, or an array of token
/// arrays), `encoding_format` and `dimensions`; returns the characters of text for the estimate.
fn check_input(body: &Map<String, Value>) -> Result<usize, OpenAiError> {
    let expected = "a string, an array of strings, an array of integers, or an array of integer arrays";
    let chars = match body.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid_value("input", "Invalid 'input': empty string.".into()));
        }
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(invalid_value(
                    "input",
                    "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead."
                        .into(),
                ));
            }
            if items.len() > MAX_EMBEDDING_INPUTS {
                return Err(invalid_value(
                    "input",
                    format!(
                        "Invalid 'input': array too long. Expected an array with maximum length {MAX_EMBEDDING_INPUTS}, but got an array with length {} instead.",
                        items.len()
                    ),
                ));
            }
            // The first item decides which of the three array forms this is; the rest must match.
            let mut chars = 0;
            for (i, it) in items.iter().enumerate() {
                let p = format!("input[{i}]");
                match (&items[0], it) {
                    (Value::String(_), Value::String(s)) if s.is_empty() => {
                        return Err(invalid_value(&p, format!("Invalid '{p}': empty string.")));
                    }
                    (Value::String(_), Value::String(s)) => chars += s.len(),
                    (Value::String(_), v) => return Err(wrong_type(&p, "a string", v)),
                    (Value::Number(_), Value::Number(n)) if n.is_u64() => chars += 4,
                    (Value::Number(_), v) => return Err(wrong_type(&p, "a non-negative integer", v)),
                    (Value::Array(_), Value::Array(toks)) if toks.is_empty() => {
                        return Err(invalid_value(&p, format!("Invalid '{p}': empty array.")));
                    }
                    (Value::Array(_), Value::Array(toks)) if toks.iter().all(Value::is_u64) => chars += 4 * toks.len(),
                    (Value::Array(_), v) => return Err(wrong_type(&p, "an array of non-negative integers", v)),
                    (v, _) => return Err(wrong_type(&p, expected, v)),
                }
            }
            chars
        }
        Some(v) => return Err(wrong_type("input", expected, v)),
    };
    match body.get("encoding_format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(Value::String(f)) => {
            return Err(invalid_value(
                "encoding_format",
                format!("Invalid value for 'encoding_format': '{f}'. Supported values are: 'float' and 'base64'."),
            ));
        }
        Some(v) => return Err(wrong_type("encoding_format", "a string", v)),
    }
    opt_positive_int(body, "dimensions")?;
    Ok(chars)
}

impl Reference {
    /// Parses and validates a request body for the given route.
    pub fn parse(kind: RequestKind, bytes: &[u8]) -> Result<Reference, OpenAiError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            OpenAiError::invalid(format!(
                "We could not parse the JSON body of your request: {e}. Send a valid JSON object."
            ))
            .with_code("invalid_json")
        })?;
        let Value::Object(body) = value else {
            return Err(OpenAiError::invalid(format!(
                "The request body must be a JSON object, but got {} instead.",
                type_name(&value)
            ))
            .with_code("invalid_json"));
        };
        let model = match body.get("model") {
            None | Some(Value::Null) => return Err(missing("model")),
            Some(Value::String(s)) if s.is_empty() => {
                return Err(invalid_value("model", "Invalid 'model': empty string.".into()));
            }
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(wrong_type("model", "a string", v)),
        };
        let prompt_chars = match kind {
            RequestKind::Chat => check_messages(&body)?,
            RequestKind::Completion => check_prompt(&body)?,
            RequestKind::Embeddings => {
                // Embeddings take no sampling or streaming parameters: only the input and its format.
                let chars = check_input(&body)?;
                return Ok(Reference {
                    kind,
                    model,
                    stream: false,
                    include_usage: false,
                    max_tokens: None,
                    prompt_chars: chars,
                    body,
                    body_len_hint: bytes.len() + 64,
                });
            }
        };
        let stream = opt_bool(&body, "stream")?.unwrap_or(false);
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => {
                if !stream {
                    return Err(invalid_value(
                        "stream_options",
                        "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
                    ));
                }
                match o.get("include_usage") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(v) => return Err(wrong_type("stream_options.include_usage", "a boolean", v)),
                }
            }
            Some(v) => return Err(wrong_type("stream_options", "an object", v)),
        };
        let max_tokens = opt_positive_int(&body, "max_tokens")?;
        let max_completion = opt_positive_int(&body, "max_completion_tokens")?;
        opt_number_in(&body, "temperature", 0.0, 2.0)?;
        opt_number_in(&body, "top_p", 0.0, 1.0)?;
        opt_positive_int(&body, "n")?;
        Ok(Reference {
            kind,
            model,
            stream,
            include_usage,
            max_tokens: max_completion.or(max_tokens),
            prompt_chars,
            body,
            body_len_hint: bytes.len() + 64,
        })
    }

    /// Rough prompt-token estimate (4 characters a token) for admission before the runtime counts.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        (self.prompt_chars as u64).div_ceil(4).max(1)
    }

    /// The body to send upstream: `model` set to the name the runtime knows, and for streams
    /// usage always requested so the gateway can account tokens even when the client did not ask.
    ///
    /// Always written from the parsed map, never the client's bytes: the runtime then sees exactly
    /// what was validated (a body with a duplicate or escaped `model` key cannot name one model to
    /// the gateway and another to the runtime). Written without copying the map.
    pub fn upstream_body(&self, served_model: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_len_hint);
        let body = UpstreamBody {
            body: &self.body,
            model: served_model,
            force_usage: self.stream,
        };
        match serde_json::to_writer(&mut out, &body) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }
}

/// The request map with `model` replaced and, for streams, `stream_options.include_usage` set.
struct UpstreamBody<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    force_usage: bool,
}

impl Serialize for UpstreamBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", self.model)?;
        for (k, v) in self.body {
            if k == "model" || (self.force_usage && k == "stream_options") {
                continue;
            }
            m.serialize_entry(k, v)?;
        }
        if self.force_usage {
            let opts = StreamOptions(self.body.get("stream_options").and_then(Value::as_object));
            m.serialize_entry("stream_options", &opts)?;
        }
        m.end()
    }
}

/// The client's `stream_options` (if any) with `include_usage: true`.
struct StreamOptions<'a>(Option<&'a Map<String, Value>>);

impl Serialize for StreamOptions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.into_iter().flatten() {
            if k != "include_usage" {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("include_usage", &true)?;
        m.end()
    }
}
