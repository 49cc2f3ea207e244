//! Parsing and validation of `/v1/chat/completions`, `/v1/completions` and `/v1/embeddings` bodies.
//!
//! The body is read once as its top-level members, each value kept as raw JSON where it lies in the
//! body. The fields the gateway needs are checked where they lie, with errors that name the
//! parameter, and no tree of the body is built: chat `messages` are walked in one pass
//! ([`messages`]), small fields read as `Value`s. Everything else is passed on byte for byte, so
//! unknown runtime-specific parameters (`top_k`, `min_p`, vLLM's extras…) reach the runtime
//! untouched. A `Value` map of the whole body is built only when asked for ([`InferenceRequest::body`]:
//! the adapters that translate to a runtime's native API).

mod members;
mod messages;

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::OpenAiError;
use members::{Member, Object, Str};

/// Which OpenAI route a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Chat,
    Completion,
    Embeddings,
}

impl RequestKind {
    pub fn path(self) -> &'static str {
        match self {
            RequestKind::Chat => "/v1/chat/completions",
            RequestKind::Completion => "/v1/completions",
            RequestKind::Embeddings => "/v1/embeddings",
        }
    }
}

/// A validated inference request.
#[derive(Debug, Clone)]
pub struct InferenceRequest {
    pub kind: RequestKind,
    pub model: String,
    pub stream: bool,
    /// The client asked for a usage chunk at the end of the stream.
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens`, whichever was given (the former wins).
    pub max_tokens: Option<u32>,
    /// Characters of prompt text, for token estimates before the runtime counts them.
    pub prompt_chars: usize,
    /// The client's body as it came.
    raw: Bytes,
    /// Its top-level members, each key once (the last of repeated keys, as `serde_json` reads a map).
    members: Vec<Member>,
    /// The body as a map, built on first use.
    tree: OnceLock<Result<Map<String, Value>, OpenAiError>>,
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

/// The name [`type_name`] gives the raw JSON value `raw`, read from its first character (numbers
/// are parsed: `1` is an integer, `1.0` and `1e3` are numbers).
fn raw_type_name(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => serde_json::from_str::<Value>(raw.get()).map_or("a number", |v| type_name(&v)),
    }
}

fn wrong_type_named(param: &str, expected: &str, got: &str) -> OpenAiError {
    OpenAiError::invalid(format!(
        "Invalid type for '{param}': expected {expected}, but got {got} instead."
    ))
    .with_param(param)
    .with_code("invalid_type")
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> OpenAiError {
    wrong_type_named(param, expected, type_name(got))
}

fn missing(param: &str) -> OpenAiError {
    OpenAiError::invalid(format!("Missing required parameter: '{param}'."))
        .with_param(param)
        .with_code("missing_required_parameter")
}

fn invalid_value(param: &str, msg: String) -> OpenAiError {
    OpenAiError::invalid(msg).with_param(param).with_code("invalid_value")
}

fn invalid_json(e: &serde_json::Error) -> OpenAiError {
    OpenAiError::invalid(format!(
        "We could not parse the JSON body of your request: {e}. Send a valid JSON object."
    ))
    .with_code("invalid_json")
}

/// A member's value as a `Value` (small fields only: this builds it). `None` for an absent member.
fn value_of(raw: Option<&RawValue>) -> Result<Option<Value>, OpenAiError> {
    raw.map(|r| serde_json::from_str(r.get()).map_err(|e| invalid_json(&e)))
        .transpose()
}

fn opt_bool(v: Option<&Value>, key: &str) -> Result<Option<bool>, OpenAiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "a boolean", v)),
    }
}

fn opt_positive_int(v: Option<&Value>, key: &str) -> Result<Option<u32>, OpenAiError> {
    match v {
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

fn opt_number_in(v: Option<&Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, OpenAiError> {
    match v {
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

fn check_messages(raw: Option<&RawValue>) -> Result<usize, OpenAiError> {
    match raw {
        None => Err(missing("messages")),
        Some(r) if r.get().starts_with('[') => messages::check(r),
        Some(r) if r.get() == "null" => Err(missing("messages")),
        Some(r) => Err(wrong_type_named("messages", "an array", raw_type_name(r))),
    }
}

fn check_prompt(prompt: Option<&Value>) -> Result<usize, OpenAiError> {
    let expected = "a string, an array of strings, or an array of token arrays";
    match prompt {
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
fn check_input(body: &Object<'_>) -> Result<usize, OpenAiError> {
    let expected = "a string, an array of strings, an array of integers, or an array of integer arrays";
    let chars = match value_of(body.get("input"))? {
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
                let p = || format!("input[{i}]");
                match (&items[0], it) {
                    (Value::String(_), Value::String(s)) if s.is_empty() => {
                        let p = p();
                        return Err(invalid_value(&p, format!("Invalid '{p}': empty string.")));
                    }
                    (Value::String(_), Value::String(s)) => chars += s.len(),
                    (Value::String(_), v) => return Err(wrong_type(&p(), "a string", v)),
                    (Value::Number(_), Value::Number(n)) if n.is_u64() => chars += 4,
                    (Value::Number(_), v) => return Err(wrong_type(&p(), "a non-negative integer", v)),
                    (Value::Array(_), Value::Array(toks)) if toks.is_empty() => {
                        let p = p();
                        return Err(invalid_value(&p, format!("Invalid '{p}': empty array.")));
                    }
                    (Value::Array(_), Value::Array(toks)) if toks.iter().all(Value::is_u64) => chars += 4 * toks.len(),
                    (Value::Array(_), v) => return Err(wrong_type(&p(), "an array of non-negative integers", v)),
                    (v, _) => return Err(wrong_type(&p(), expected, v)),
                }
            }
            chars
        }
        Some(v) => return Err(wrong_type("input", expected, &v)),
    };
    match value_of(body.get("encoding_format"))? {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == "float" || f == "base64" => {}
        Some(Value::String(f)) => {
            return Err(invalid_value(
                "encoding_format",
                format!("Invalid value for 'encoding_format': '{f}'. Supported values are: 'float' and 'base64'."),
            ));
        }
        Some(v) => return Err(wrong_type("encoding_format", "a string", &v)),
    }
    opt_positive_int(value_of(body.get("dimensions"))?.as_ref(), "dimensions")?;
    Ok(chars)
}

/// The body's top-level members, or the error a `Value` parse of the body gives (the same parser:
/// a syntax error with its line and column, or the type of a body that is JSON but no object).
fn read_object(bytes: &[u8]) -> Result<Object<'_>, OpenAiError> {
    match serde_json::from_slice::<Object<'_>>(bytes) {
        Ok(mut obj) => {
            obj.dedup();
            Ok(obj)
        }
        Err(raw_err) => Err(match serde_json::from_slice::<Value>(bytes) {
            Err(e) => invalid_json(&e),
            Ok(v) if !v.is_object() => OpenAiError::invalid(format!(
                "The request body must be a JSON object, but got {} instead.",
                type_name(&v)
            ))
            .with_code("invalid_json"),
            Ok(_) => invalid_json(&raw_err),
        }),
    }
}

impl InferenceRequest {
    /// Parses and validates a request body for the given route (the bytes are copied; see
    /// [`InferenceRequest::parse_bytes`]).
    pub fn parse(kind: RequestKind, bytes: &[u8]) -> Result<InferenceRequest, OpenAiError> {
        Self::parse_bytes(kind, Bytes::copy_from_slice(bytes))
    }

    /// Parses and validates a request body for the given route, keeping the body without a copy.
    pub fn parse_bytes(kind: RequestKind, raw: Bytes) -> Result<InferenceRequest, OpenAiError> {
        let body = read_object(&raw)?;
        let model = match body.get("model") {
            None => return Err(missing("model")),
            Some(r) if r.get().starts_with('"') => {
                let Str(s) = serde_json::from_str(r.get()).map_err(|e| invalid_json(&e))?;
                if s.is_empty() {
                    return Err(invalid_value("model", "Invalid 'model': empty string.".into()));
                }
                s.into_owned()
            }
            Some(r) if r.get() == "null" => return Err(missing("model")),
            Some(r) => return Err(wrong_type_named("model", "a string", raw_type_name(r))),
        };
        let (stream, include_usage, max_tokens, prompt_chars) = match kind {
            RequestKind::Chat | RequestKind::Completion => {
                let prompt_chars = match kind {
                    RequestKind::Chat => check_messages(body.get("messages"))?,
                    _ => check_prompt(value_of(body.get("prompt"))?.as_ref())?,
                };
                let (stream, include_usage, max_tokens) = check_sampling(&body)?;
                (stream, include_usage, max_tokens, prompt_chars)
            }
            // Embeddings take no sampling or streaming parameters: only the input and its format.
            RequestKind::Embeddings => (false, false, None, check_input(&body)?),
        };
        let members = body.0.into_iter().map(|(k, v)| Member::new(&raw, k, v)).collect();
        Ok(InferenceRequest {
            kind,
            model,
            stream,
            include_usage,
            max_tokens,
            prompt_chars,
            members,
            raw,
            tree: OnceLock::new(),
        })
    }

    /// Rough prompt-token estimate (4 characters a token) for admission before the runtime counts.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        (self.prompt_chars as u64).div_ceil(4).max(1)
    }

    /// A top-level member's value as the client wrote it (raw JSON), if present.
    pub fn member(&self, key: &str) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|m| m.key(&self.raw) == key.as_bytes())
            .map(|m| &self.raw[m.value.clone()])
    }

    /// The prompt as the client wrote it (raw JSON): `messages`, `prompt` or `input`; empty if none.
    pub fn prompt_json(&self) -> &[u8] {
        let key = match self.kind {
            RequestKind::Chat => "messages",
            RequestKind::Completion => "prompt",
            RequestKind::Embeddings => "input",
        };
        self.member(key).unwrap_or_default()
    }

    /// The whole body as a JSON map, built on first use and kept. An error only for a value that
    /// is JSON but that `serde_json` cannot hold (a number beyond `f64`, nesting deeper than 128)
    /// where the gateway itself does not read (an unknown member, a message's other fields): the
    /// parse checks those as JSON syntax only and passes them on as written.
    pub fn body(&self) -> Result<&Map<String, Value>, OpenAiError> {
        self.tree
            .get_or_init(|| {
                let mut map = Map::new();
                for m in &self.members {
                    let key = String::from_utf8_lossy(m.key(&self.raw)).into_owned();
                    let value = serde_json::from_slice(&self.raw[m.value.clone()])
                        .map_err(|e| invalid_json(&e).with_param(key.clone()))?;
                    map.insert(key, value);
                }
                Ok(map)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The body to send upstream: `model` set to the name the runtime knows, and for streams
    /// usage always requested so the gateway can account tokens even when the client did not ask.
    ///
    /// Written from the parsed members, never the client's bytes whole: each key once, with the
    /// value the gateway validated (a body with a duplicate or escaped `model` key cannot name one
    /// model to the gateway and another to the runtime). Values are copied as the client wrote them.
    pub fn upstream_body(&self, served_model: &str) -> Vec<u8> {
        let force_usage = self.stream;
        let mut out = Vec::with_capacity(self.raw.len() + served_model.len() + 48);
        out.extend_from_slice(b"{\"model\":");
        members::write_str(&mut out, served_model);
        let mut stream_options = None;
        for m in &self.members {
            let key = m.key(&self.raw);
            if key == b"model" {
                continue;
            }
            if force_usage && key == b"stream_options" {
                stream_options = Some(&self.raw[m.value.clone()]);
                continue;
            }
            out.push(b',');
            m.write(&self.raw, &mut out);
        }
        if force_usage {
            // The client's `stream_options` (if any) with `include_usage: true`.
            out.extend_from_slice(b",\"stream_options\":{");
            if let Some(opts) = stream_options {
                members::write_members_except(&mut out, opts, "include_usage");
            }
            out.extend_from_slice(b"\"include_usage\":true}");
        }
        out.push(b'}');
        out
    }
}

/// `stream`, `stream_options`, and the sampling parameters the gateway checks; returns `stream`,
/// `include_usage` and the token limit.
fn check_sampling(body: &Object<'_>) -> Result<(bool, bool, Option<u32>), OpenAiError> {
    let stream = opt_bool(value_of(body.get("stream"))?.as_ref(), "stream")?.unwrap_or(false);
    let include_usage = match value_of(body.get("stream_options"))? {
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
        Some(v) => return Err(wrong_type("stream_options", "an object", &v)),
    };
    let int =
        |key: &str| -> Result<Option<u32>, OpenAiError> { opt_positive_int(value_of(body.get(key))?.as_ref(), key) };
    let max_tokens = int("max_tokens")?;
    let max_completion = int("max_completion_tokens")?;
    opt_number_in(value_of(body.get("temperature"))?.as_ref(), "temperature", 0.0, 2.0)?;
    opt_number_in(value_of(body.get("top_p"))?.as_ref(), "top_p", 0.0, 1.0)?;
    int("n")?;
    Ok((stream, include_usage, max_completion.or(max_tokens)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(s: &str) -> Result<InferenceRequest, OpenAiError> {
        InferenceRequest::parse(RequestKind::Chat, s.as_bytes())
    }

    #[test]
    fn valid_chat() {
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"hello"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"top_k":3}"#).unwrap();
        assert_eq!(r.model, "m");
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(5));
        assert_eq!(r.prompt_chars, 5);
        let up: Value = serde_json::from_slice(&r.upstream_body("served")).unwrap();
        assert_eq!(up["model"], "served");
        assert_eq!(up["top_k"], 3, "unknown params pass through");
        assert_eq!(up["stream_options"]["include_usage"], true);
    }

    #[test]
    fn upstream_body_keeps_other_stream_options_and_one_model_key() {
        let r = chat(
            r#"{"model":"a","model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true}}"#,
        )
        .unwrap();
        assert_eq!(r.model, "m", "the last of duplicate keys, as serde_json reads it");
        let raw = r.upstream_body("served");
        let text = String::from_utf8(raw.clone()).unwrap();
        assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
        assert_eq!(text.matches("include_usage").count(), 1, "{text}");
        let up: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(up["model"], "served");
        assert_eq!(up["stream_options"]["include_usage"], true);
        assert_eq!(up["stream_options"]["continuous_usage_stats"], true);
        assert_eq!(up["messages"][0]["content"], "x");
        // Not a stream: stream_options cannot be there, nothing is added.
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"seed":7}"#).unwrap();
        let up: Value = serde_json::from_slice(&r.upstream_body("m")).unwrap();
        assert_eq!(
            up,
            serde_json::json!({"model":"m","messages":[{"role":"user","content":"x"}],"seed":7})
        );
    }

    #[test]
    fn stream_forces_usage_upstream() {
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#).unwrap();
        assert!(!r.include_usage);
        let up: Value = serde_json::from_slice(&r.upstream_body("m")).unwrap();
        assert_eq!(up["stream_options"]["include_usage"], true);
    }

    #[test]
    fn errors_name_the_param() {
        let cases = [
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "model",
                "Missing required parameter: 'model'.",
            ),
            (
                r#"{"model":1,"messages":[]}"#,
                "model",
                "Invalid type for 'model': expected a string, but got an integer instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#,
                "max_tokens",
                "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
                "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
                "messages[0].role",
                "Invalid value for 'messages[0].role': 'robot'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', 'function'.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                "messages[0].content",
                "Invalid type for 'messages[0].content': expected a string or an array of content parts, but got an integer instead.",
            ),
            (
                r#"{"model":"m","messages":[]}"#,
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "stream",
                "Invalid type for 'stream': expected a boolean, but got a string instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "temperature",
                "Invalid 'temperature': expected a value between 0 and 2, but got 3 instead.",
            ),
        ];
        for (body, param, msg) in cases {
            let e = chat(body).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
            assert_eq!(e.message, msg, "{body}");
        }
    }

    #[test]
    fn malformed_json() {
        let e = chat("{not json").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
        assert!(
            e.message
                .starts_with("We could not parse the JSON body of your request")
        );
        let e = chat("[1,2]").unwrap_err();
        assert_eq!(
            e.message,
            "The request body must be a JSON object, but got an array instead."
        );
    }

    #[test]
    fn embeddings_inputs() {
        let p = |s: &str| InferenceRequest::parse(RequestKind::Embeddings, s.as_bytes());
        let r =
            p(r#"{"model":"e","input":"abcd","encoding_format":"base64","dimensions":8,"stream":"ignored"}"#).unwrap();
        assert_eq!((r.kind, r.prompt_chars, r.stream), (RequestKind::Embeddings, 4, false));
        assert_eq!(RequestKind::Embeddings.path(), "/v1/embeddings");
        assert_eq!(p(r#"{"model":"e","input":["ab","cd"]}"#).unwrap().prompt_chars, 4);
        assert_eq!(p(r#"{"model":"e","input":[1,2]}"#).unwrap().prompt_chars, 8);
        assert_eq!(p(r#"{"model":"e","input":[[1,2],[3]]}"#).unwrap().prompt_chars, 12);
        let up: Value = serde_json::from_slice(&p(r#"{"model":"e","input":"x"}"#).unwrap().upstream_body("s")).unwrap();
        assert_eq!(up, serde_json::json!({"model":"s","input":"x"}));
        let cases = [
            (r#"{"model":"e"}"#, "input", "Missing required parameter: 'input'."),
            (r#"{"model":"e","input":""}"#, "input", "Invalid 'input': empty string."),
            (
                r#"{"model":"e","input":[]}"#,
                "input",
                "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            ),
            (
                r#"{"model":"e","input":{"a":1}}"#,
                "input",
                "Invalid type for 'input': expected a string, an array of strings, an array of integers, or an array of integer arrays, but got an object instead.",
            ),
            (
                r#"{"model":"e","input":["a",2]}"#,
                "input[1]",
                "Invalid type for 'input[1]': expected a string, but got an integer instead.",
            ),
            (
                r#"{"model":"e","input":["a",""]}"#,
                "input[1]",
                "Invalid 'input[1]': empty string.",
            ),
            (
                r#"{"model":"e","input":[1,-2]}"#,
                "input[1]",
                "Invalid type for 'input[1]': expected a non-negative integer, but got an integer instead.",
            ),
            (
                r#"{"model":"e","input":[[1],["x"]]}"#,
                "input[1]",
                "Invalid type for 'input[1]': expected an array of non-negative integers, but got an array instead.",
            ),
            (
                r#"{"model":"e","input":"x","encoding_format":"hex"}"#,
                "encoding_format",
                "Invalid value for 'encoding_format': 'hex'. Supported values are: 'float' and 'base64'.",
            ),
            (
                r#"{"model":"e","input":"x","dimensions":0}"#,
                "dimensions",
                "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            ),
        ];
        for (body, param, msg) in cases {
            let e = p(body).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}");
            assert_eq!(e.message, msg, "{body}");
        }
        let many = format!(r#"{{"model":"e","input":[{}]}}"#, vec!["\"a\""; 2049].join(","));
        assert_eq!(p(&many).unwrap_err().param.as_deref(), Some("input"));
    }

    #[test]
    fn completion_prompts() {
        let p = |s: &str| InferenceRequest::parse(RequestKind::Completion, s.as_bytes());
        assert_eq!(p(r#"{"model":"m","prompt":"abcd"}"#).unwrap().prompt_chars, 4);
        assert_eq!(p(r#"{"model":"m","prompt":["ab","cd"]}"#).unwrap().prompt_chars, 4);
        assert_eq!(p(r#"{"model":"m","prompt":[1,2,3]}"#).unwrap().prompt_chars, 12);
        let e = p(r#"{"model":"m","prompt":{"a":1}}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = p(r#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.message, "Missing required parameter: 'prompt'.");
    }

    #[test]
    fn values_pass_through_as_written_and_keys_once() {
        let r = chat(
            r#"{ "model" : "m", "messages":[ {"role":"user", "content":"x"} ], "top_k": 1.0e0, "x": {"b":1, "a":[1, 2]} }"#,
        )
        .unwrap();
        let up = String::from_utf8(r.upstream_body("served")).unwrap();
        assert_eq!(
            up,
            r#"{"model":"served","messages":[ {"role":"user", "content":"x"} ],"top_k":1.0e0,"x":{"b":1, "a":[1, 2]}}"#
        );
        assert_eq!(r.prompt_json(), br#"[ {"role":"user", "content":"x"} ]"#);
        assert_eq!(r.member("top_k"), Some(&b"1.0e0"[..]));
        assert_eq!(r.member("absent"), None);
        // An escaped key is the same key: one `model` reaches the runtime.
        let r =
            chat(r#"{"mod\u0065l":"a","messages":[{"role":"user","content":"x"}],"model":"b","\u00e9":1}"#).unwrap();
        assert_eq!(r.model, "b");
        let up = String::from_utf8(r.upstream_body("served")).unwrap();
        assert_eq!(
            up,
            r#"{"model":"served","messages":[{"role":"user","content":"x"}],"é":1}"#
        );
    }

    #[test]
    fn many_repeated_keys_keep_the_last() {
        // Over 64 keys the repeats are found with a map, not by comparing pairs.
        let mut body = String::from(r#"{"model":"first","messages":[{"role":"user","content":"x"}]"#);
        for i in 0..200 {
            body.push_str(&format!(r#","k{}":{i}"#, i % 100));
        }
        body.push_str(r#","model":"last"}"#);
        let r = chat(&body).unwrap();
        assert_eq!(r.model, "last");
        let up = r.upstream_body("served");
        let tree: Map<String, Value> = serde_json::from_slice(&up).unwrap();
        assert_eq!(tree.len(), 102, "model, messages and k0..k99");
        assert_eq!(tree["k7"], 107, "the last value of a repeated key");
        let text = String::from_utf8(up).unwrap();
        assert_eq!(text.matches("\"k7\"").count(), 1);
        assert_eq!(text.matches("\"model\"").count(), 1);
        assert_eq!(r.body().unwrap()["k99"], 199);
    }

    #[test]
    fn the_tree_is_built_on_demand_and_can_refuse() {
        // A member the gateway does not read is checked as JSON only; a `Value` cannot hold this
        // number, so the native adapters (which need the tree) refuse it with the member's name.
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":1e999}"#).unwrap();
        let e = r.body().unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("top_k")));
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
        // So is nesting deeper than `serde_json`'s recursion limit (128).
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let r = chat(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{deep}}}"#
        ))
        .unwrap();
        assert!(String::from_utf8(r.upstream_body("s")).unwrap().contains(&deep));
        assert_eq!(r.body().unwrap_err().param.as_deref(), Some("x"));
        // Skipping nesting costs no stack: a million levels (the body limit allows 16 million) is fine.
        let deeper = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        assert!(
            chat(&format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{deeper}}}"#
            ))
            .is_ok()
        );
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":3}"#).unwrap();
        assert_eq!(r.body().unwrap()["top_k"], 3);
        // A field the gateway reads is refused at once.
        let e = chat(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1e999}"#).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("invalid_json"));
    }
}
