//! Ollama native replies (whole objects and NDJSON streams) as OpenAI objects.

use pyxis_protocol::{OpenAiError, RequestKind, Usage};
use pyxis_resources::RuntimeKind;
use serde_json::{Value, json};

use crate::errors::malformed;
use crate::openai_out::{self, Answer, ChunkWriter};
use crate::translate::{Events, Step};
use crate::types::{Ctx, Dialect, Whole};

const KIND: RuntimeKind = RuntimeKind::Ollama;

/// `done_reason` in OpenAI's words: `length` stays, `stop` (and `load`/`unload`, which carry no
/// text) is `stop`; a tool call wins over both.
fn finish_reason(v: &Value, tools: bool) -> &'static str {
    if tools {
        return "tool_calls";
    }
    match v.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ => "stop",
    }
}

/// `prompt_eval_count` / `eval_count`. Ollama leaves `prompt_eval_count` out when the whole prompt
/// came from its cache, so a missing one counts 0 as long as `eval_count` is there.
fn counts(v: &Value) -> Option<Usage> {
    let p = v.get("prompt_eval_count").and_then(Value::as_u64);
    let c = v.get("eval_count").and_then(Value::as_u64);
    if p.is_none() && c.is_none() {
        return None;
    }
    Some(openai_out::usage(p.unwrap_or(0), c.unwrap_or(0), None))
}

/// One Ollama tool call in OpenAI's form; arguments back to a JSON string. Ollama gives no ids, so
/// they are made from the request id and the call's position.
fn tool_call(c: &Value, prefix: &str, index: usize, streamed: bool) -> Value {
    let id = c
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("call_{prefix}_{index}"), str::to_string);
    let name = c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default();
    let args = match c.pointer("/function/arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "{}".into(),
    };
    let mut v = json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}});
    if streamed {
        v["index"] = json!(index);
    }
    v
}

pub(crate) fn whole(dialect: Dialect, body: &[u8], ctx: &Ctx<'_>) -> Result<Whole, OpenAiError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| malformed(KIND, "a reply body that is not JSON"))?;
    let chat = dialect == Dialect::OllamaChat;
    let (text, reasoning, calls) = if chat {
        let m = v
            .get("message")
            .ok_or_else(|| malformed(KIND, "a chat reply without `message`"))?;
        let calls: Vec<Value> = m
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, c)| tool_call(c, ctx.id, i, false))
                    .collect()
            })
            .unwrap_or_default();
        (
            m.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
            m.get("thinking")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            calls,
        )
    } else {
        let text = v
            .get("response")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(KIND, "a generate reply without `response`"))?;
        (text.to_string(), None, Vec::new())
    };
    let usage = counts(&v);
    let a = Answer {
        finish_reason: finish_reason(&v, !calls.is_empty()).into(),
        text,
        reasoning,
        tool_calls: calls,
        usage,
    };
    let kind = if chat {
        RequestKind::Chat
    } else {
        RequestKind::Completion
    };
    Ok(Whole {
        body: openai_out::whole(kind, ctx, &a),
        usage,
    })
}

/// `/api/embed`: `{"embeddings": [[...]], "prompt_eval_count": N}`.
pub(crate) fn embed_whole(body: &[u8], base64: bool, ctx: &Ctx<'_>) -> Result<Whole, OpenAiError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| malformed(KIND, "a reply body that is not JSON"))?;
    let vectors: Vec<Vec<f64>> = v
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(KIND, "an embed reply without `embeddings`"))?
        .iter()
        .map(|e| {
            e.as_array()
                .map(|xs| xs.iter().filter_map(Value::as_f64).collect())
                .ok_or_else(|| malformed(KIND, "an embedding that is not an array of numbers"))
        })
        .collect::<Result<_, _>>()?;
    let prompt = v.get("prompt_eval_count").and_then(Value::as_u64);
    Ok(Whole {
        body: openai_out::embeddings(ctx, &vectors, base64, prompt),
        usage: prompt.map(|p| openai_out::usage(p, 0, None)),
    })
}

/// NDJSON chat / generate stream: deltas until the object with `done: true`, which holds the
/// reason and the counters (§6.2).
pub(crate) struct StreamState {
    chat: bool,
    call_prefix: String,
    calls: usize,
    usage: Option<Usage>,
}

impl StreamState {
    pub(crate) fn new(dialect: Dialect, ctx: &Ctx<'_>) -> StreamState {
        StreamState {
            chat: dialect == Dialect::OllamaChat,
            call_prefix: ctx.id.to_string(),
            calls: 0,
            usage: None,
        }
    }
}

impl Events for StreamState {
    fn event(&mut self, v: &Value, w: &mut ChunkWriter, out: &mut Vec<String>) -> Result<Step, OpenAiError> {
        if self.chat {
            let m = v.get("message");
            let field = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or_default();
            w.reasoning(field("thinking"), out);
            w.content(field("content"), out);
            if let Some(calls) = m.and_then(|m| m.get("tool_calls")).and_then(Value::as_array) {
                let calls: Vec<Value> = calls
                    .iter()
                    .enumerate()
                    .map(|(j, c)| tool_call(c, &self.call_prefix, self.calls + j, true))
                    .collect();
                self.calls += calls.len();
                w.tool_calls(&calls, out);
            }
        } else {
            w.content(v.get("response").and_then(Value::as_str).unwrap_or_default(), out);
        }
        if v.get("done").and_then(Value::as_bool) != Some(true) {
            return Ok(Step::More);
        }
        w.finish(finish_reason(v, self.calls > 0), out);
        self.usage = counts(v);
        Ok(Step::End)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn final_event(&self) -> &'static str {
        "no final object with `done: true`"
    }
}
