//! OpenAI requests as Ollama native requests (`/api/chat`, `/api/generate`, `/api/embed`).

use std::collections::HashMap;

use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use serde_json::{Map, Value, json};

use crate::params::{self, Body, one_plain_choice, unsupported};

const RUNTIME: &str = "Ollama";

/// `options`: OpenAI's sampling parameters under Ollama's names, then Ollama's own knobs sent as
/// top-level extras (`top_k`, `min_p`, `repeat_penalty`, `num_ctx`), then an explicit `options`
/// object from the client, which wins.
fn options(req: &InferenceRequest) -> Result<Map<String, Value>, OpenAiError> {
    let b = req.body()?;
    let mut o = Map::new();
    let max_tokens = match req.kind {
        RequestKind::Completion => Some(req.max_tokens.unwrap_or(params::COMPLETIONS_DEFAULT_MAX_TOKENS)),
        _ => req.max_tokens,
    };
    if let Some(n) = max_tokens {
        o.insert("num_predict".into(), json!(n));
    }
    for key in ["temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"] {
        if let Some(v) = b.get(key).filter(|v| v.is_number()) {
            o.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = params::stop(b)? {
        o.insert("stop".into(), json!(stop));
    }
    for key in ["top_k", "min_p", "repeat_penalty", "num_ctx"] {
        if let Some(v) = b.get(key).filter(|v| v.is_number()) {
            o.insert(key.into(), v.clone());
        }
    }
    match b.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(extra)) => o.extend(extra.clone()),
        Some(_) => {
            return Err(OpenAiError::invalid("Invalid type for 'options': expected an object.")
                .with_param("options")
                .with_code("invalid_type"));
        }
    }
    Ok(o)
}

/// The fields every native request shares.
fn base(req: &InferenceRequest, served_model: &str) -> Result<Map<String, Value>, OpenAiError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(served_model));
    // Ollama streams unless told otherwise; always say which.
    out.insert("stream".into(), json!(req.stream));
    let opts = options(req)?;
    if !opts.is_empty() {
        out.insert("options".into(), Value::Object(opts));
    }
    if let Some(k) = req.body()?.get("keep_alive").filter(|v| !v.is_null()) {
        out.insert("keep_alive".into(), k.clone());
    }
    format(req.body()?, &mut out)?;
    Ok(out)
}

/// `response_format` as Ollama's `format`: `"json"` or a JSON schema.
fn format(b: &Body, out: &mut Map<String, Value>) -> Result<(), OpenAiError> {
    let Some(rf) = b.get("response_format").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            out.insert("format".into(), json!("json"));
        }
        Some("json_schema") => {
            let schema = rf
                .pointer("/json_schema/schema")
                .ok_or_else(|| {
                    OpenAiError::invalid("Missing required parameter: 'response_format.json_schema.schema'.")
                        .with_param("response_format.json_schema.schema")
                        .with_code("missing_required_parameter")
                })?
                .clone();
            out.insert("format".into(), schema);
        }
        other => {
            return Err(unsupported(
                "response_format.type",
                &format!("'{}' is not supported by {RUNTIME}.", other.unwrap_or("(none)")),
            ));
        }
    }
    Ok(())
}

/// An assistant message's tool calls, arguments parsed from their JSON string (Ollama wants an
/// object); remembers each call's name by id for the `tool` replies that follow.
fn tool_calls(calls: &Value, at: &str, names: &mut HashMap<String, String>) -> Result<Value, OpenAiError> {
    let Some(calls) = calls.as_array() else {
        return Err(
            OpenAiError::invalid(format!("Invalid type for '{at}': expected an array."))
                .with_param(at)
                .with_code("invalid_type"),
        );
    };
    let mut out = Vec::with_capacity(calls.len());
    for (j, c) in calls.iter().enumerate() {
        let name = c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default();
        let args = match c.pointer("/function/arguments") {
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| {
                let p = format!("{at}[{j}].function.arguments");
                OpenAiError::invalid(format!("Invalid '{p}': not valid JSON."))
                    .with_param(p)
                    .with_code("invalid_value")
            })?,
            Some(v @ Value::Object(_)) => v.clone(),
            _ => json!({}),
        };
        if let Some(id) = c.get("id").and_then(Value::as_str) {
            names.insert(id.to_string(), name.to_string());
        }
        out.push(json!({"function": {"name": name, "arguments": args}}));
    }
    Ok(Value::Array(out))
}

fn messages(b: &Body) -> Result<Vec<Value>, OpenAiError> {
    let msgs = b.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str).unwrap_or("user") {
            "developer" => "system",
            "function" => "tool",
            r => r,
        };
        let c = params::content(m.get("content"), &format!("messages[{i}].content"), RUNTIME)?;
        let mut om = Map::new();
        om.insert("role".into(), json!(role));
        om.insert("content".into(), json!(c.text));
        if !c.images.is_empty() {
            om.insert("images".into(), json!(c.images));
        }
        if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
            om.insert(
                "tool_calls".into(),
                tool_calls(calls, &format!("messages[{i}].tool_calls"), &mut names)?,
            );
        }
        if role == "tool" {
            let name = m
                .get("tool_call_id")
                .and_then(Value::as_str)
                .and_then(|id| names.get(id).cloned())
                .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string));
            if let Some(n) = name {
                om.insert("tool_name".into(), json!(n));
            }
        }
        out.push(Value::Object(om));
    }
    Ok(out)
}

pub(super) fn chat(req: &InferenceRequest, served_model: &str) -> Result<Value, OpenAiError> {
    let b = req.body()?;
    one_plain_choice(b, RUNTIME)?;
    let mut out = base(req, served_model)?;
    out.insert("messages".into(), Value::Array(messages(b)?));
    let tools = b.get("tools").filter(|t| !t.is_null());
    let tools = match b.get("tool_choice").filter(|c| !c.is_null()).map(Value::as_str) {
        None | Some(Some("auto")) => tools,
        // "none": answer without tools, as OpenAI does.
        Some(Some("none")) => None,
        Some(_) => {
            return Err(unsupported(
                "tool_choice",
                "other than 'auto' or 'none' is not supported by Ollama (it cannot force a tool call).",
            ));
        }
    };
    if let Some(t) = tools {
        out.insert("tools".into(), t.clone());
    }
    if let Some(t) = b.get("think").filter(|v| !v.is_null()) {
        out.insert("think".into(), t.clone());
    }
    Ok(Value::Object(out))
}

pub(super) fn generate(req: &InferenceRequest, served_model: &str) -> Result<Value, OpenAiError> {
    let b = req.body()?;
    let prompt = params::text_prompt(b, RUNTIME)?;
    one_plain_choice(b, RUNTIME)?;
    let mut out = base(req, served_model)?;
    out.insert("prompt".into(), json!(prompt));
    // OpenAI's completion prompt is final text: no chat template around it.
    out.insert("raw".into(), json!(true));
    if let Some(s) = b.get("suffix").filter(|v| !v.is_null()) {
        out.insert("suffix".into(), s.clone());
    }
    Ok(Value::Object(out))
}

pub(super) fn embed(req: &InferenceRequest, served_model: &str) -> Result<Value, OpenAiError> {
    let b = req.body()?;
    let input = match b.get("input") {
        Some(v @ Value::String(_)) => v.clone(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Value::Array(a.clone()),
        _ => {
            return Err(unsupported(
                "input",
                "as token ids is not supported by Ollama: send text.",
            ));
        }
    };
    if b.get("dimensions").is_some_and(|d| !d.is_null()) {
        return Err(unsupported(
            "dimensions",
            "is not supported by Ollama's embed API: it returns the model's full vectors.",
        ));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(served_model));
    out.insert("input".into(), input);
    out.insert("truncate".into(), json!(false));
    if let Some(k) = b.get("keep_alive").filter(|v| !v.is_null()) {
        out.insert("keep_alive".into(), k.clone());
    }
    Ok(Value::Object(out))
}
