//! Writers of OpenAI's objects for native replies: stream chunks (`chat.completion.chunk`,
//! `text_completion`), whole completions, embeddings lists.
//!
//! Chunks are written as strings around a precomputed prefix, so a token costs one escape and a
//! few copies. Content chunks carry no `usage` key: the gateway's relay reads a chunk as JSON only
//! when it mentions `"usage"`, so leaving it out keeps native streams on the fast path.

use bytes::Bytes;
use pyxis_protocol::{RequestKind, Usage};
use serde_json::{Map, Value, json};

use crate::types::Ctx;

/// A JSON string literal for `s`, quotes included.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// `chatcmpl-<id>` or `cmpl-<id>`.
pub(crate) fn object_id(kind: RequestKind, id: &str) -> String {
    match kind {
        RequestKind::Chat => format!("chatcmpl-{id}"),
        _ => format!("cmpl-{id}"),
    }
}

/// Writes the chunks of one streamed choice (index 0).
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    /// `{"id":…,"object":…,"created":…,"model":…,"choices":[`
    prefix: String,
    chat: bool,
    role_sent: bool,
}

impl ChunkWriter {
    pub(crate) fn new(kind: RequestKind, ctx: &Ctx<'_>) -> ChunkWriter {
        let chat = kind == RequestKind::Chat;
        let object = if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let prefix = format!(
            "{{\"id\":{},\"object\":\"{object}\",\"created\":{},\"model\":{},\"choices\":[",
            json_str(&object_id(kind, ctx.id)),
            ctx.created,
            json_str(ctx.public_model)
        );
        ChunkWriter {
            prefix,
            chat,
            role_sent: false,
        }
    }

    fn choice(&self, inner: &str, finish: Option<&str>) -> String {
        let finish = finish.map_or_else(|| String::from("null"), json_str);
        format!(
            "{}{{\"index\":0,{inner},\"logprobs\":null,\"finish_reason\":{finish}}}]}}",
            self.prefix
        )
    }

    /// The first chat chunk (`delta: {role, content: ""}`), once; nothing for completions.
    pub(crate) fn role(&mut self, out: &mut Vec<String>) {
        if self.chat && !self.role_sent {
            self.role_sent = true;
            out.push(self.choice("\"delta\":{\"role\":\"assistant\",\"content\":\"\"}", None));
        }
    }

    /// A text delta; empty text writes nothing.
    pub(crate) fn content(&mut self, text: &str, out: &mut Vec<String>) {
        if text.is_empty() {
            return;
        }
        self.role(out);
        let inner = if self.chat {
            format!("\"delta\":{{\"content\":{}}}", json_str(text))
        } else {
            format!("\"text\":{}", json_str(text))
        };
        out.push(self.choice(&inner, None));
    }

    /// A reasoning delta (`delta.reasoning_content`, vLLM's and DeepSeek's name); chat only.
    pub(crate) fn reasoning(&mut self, text: &str, out: &mut Vec<String>) {
        if text.is_empty() || !self.chat {
            return;
        }
        self.role(out);
        let inner = format!("\"delta\":{{\"reasoning_content\":{}}}", json_str(text));
        out.push(self.choice(&inner, None));
    }

    /// Tool calls, each already in OpenAI's streamed form (`index`, `id`, `type`, `function`).
    pub(crate) fn tool_calls(&mut self, calls: &[Value], out: &mut Vec<String>) {
        if calls.is_empty() || !self.chat {
            return;
        }
        self.role(out);
        let inner = format!("\"delta\":{{\"tool_calls\":{}}}", Value::Array(calls.to_vec()));
        out.push(self.choice(&inner, None));
    }

    /// The last chunk of the choice: empty delta (or text) and the finish reason.
    pub(crate) fn finish(&mut self, reason: &str, out: &mut Vec<String>) {
        self.role(out);
        let inner = if self.chat { "\"delta\":{}" } else { "\"text\":\"\"" };
        out.push(self.choice(inner, Some(reason)));
    }

    /// The usage chunk: `choices: []` and the whole request's usage, as OpenAI sends it last.
    pub(crate) fn usage(&self, u: &Usage) -> String {
        format!("{}],\"usage\":{}}}", self.prefix, usage_json(u))
    }
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    });
    if let Some(d) = u.prompt_tokens_details {
        v["prompt_tokens_details"] = json!({"cached_tokens": d.cached_tokens});
    }
    v
}

pub(crate) fn usage(prompt: u64, completion: u64, cached: Option<u64>) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: cached.map(|c| pyxis_protocol::usage::PromptTokensDetails { cached_tokens: c }),
    }
}

/// What one whole completion says, before it becomes OpenAI JSON.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub text: String,
    pub reasoning: Option<String>,
    /// Tool calls in OpenAI's (non-streamed) form.
    pub tool_calls: Vec<Value>,
    pub finish_reason: String,
    pub usage: Option<Usage>,
}

/// A `chat.completion` or `text_completion` object.
pub(crate) fn whole(kind: RequestKind, ctx: &Ctx<'_>, a: &Answer) -> Bytes {
    let choice = if kind == RequestKind::Chat {
        let mut msg = Map::new();
        msg.insert("role".into(), json!("assistant"));
        let content = if a.text.is_empty() && !a.tool_calls.is_empty() {
            Value::Null
        } else {
            json!(a.text)
        };
        msg.insert("content".into(), content);
        if let Some(r) = &a.reasoning {
            msg.insert("reasoning_content".into(), json!(r));
        }
        if !a.tool_calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(a.tool_calls.clone()));
        }
        json!({"index": 0, "message": msg, "logprobs": null, "finish_reason": a.finish_reason})
    } else {
        json!({"index": 0, "text": a.text, "logprobs": null, "finish_reason": a.finish_reason})
    };
    let object = if kind == RequestKind::Chat {
        "chat.completion"
    } else {
        "text_completion"
    };
    let mut v = json!({
        "id": object_id(kind, ctx.id),
        "object": object,
        "created": ctx.created,
        "model": ctx.public_model,
        "choices": [choice],
    });
    if let Some(u) = &a.usage {
        v["usage"] = usage_json(u);
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// An embeddings `list`; vectors as float arrays or, for `base64`, little-endian f32 bytes in base64.
pub(crate) fn embeddings(ctx: &Ctx<'_>, vectors: &[Vec<f64>], base64: bool, prompt_tokens: Option<u64>) -> Bytes {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let mut raw = Vec::with_capacity(v.len() * 4);
                for x in v {
                    raw.extend_from_slice(&(*x as f32).to_le_bytes());
                }
                json!(crate::base64::encode(&raw))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut v = json!({"object": "list", "data": data, "model": ctx.public_model});
    if let Some(p) = prompt_tokens {
        v["usage"] = json!({"prompt_tokens": p, "total_tokens": p});
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx<'static> {
        Ctx {
            public_model: "m\"x",
            id: "r1",
            created: 7,
        }
    }

    #[test]
    fn chunks_are_valid_json_with_escapes() {
        let mut w = ChunkWriter::new(RequestKind::Chat, &ctx());
        let mut out = Vec::new();
        w.content("a\"b\n", &mut out);
        w.finish("stop", &mut out);
        out.push(w.usage(&usage(3, 2, None)));
        let v: Vec<Value> = out.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
        assert_eq!(v.len(), 4);
        assert_eq!(v[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(v[1]["choices"][0]["delta"]["content"], "a\"b\n");
        assert_eq!(v[1]["model"], "m\"x");
        assert_eq!(v[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(v[3]["choices"], json!([]));
        assert_eq!(v[3]["usage"]["total_tokens"], 5);
        assert!(
            !out[1].contains("usage"),
            "content chunks stay off the relay's slow path"
        );
    }

    #[test]
    fn embeddings_base64_is_f32_le() {
        let b = embeddings(&ctx(), &[vec![1.0, -2.0]], true, Some(3));
        let v: Value = serde_json::from_slice(&b).unwrap();
        // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0
        assert_eq!(v["data"][0]["embedding"], "AACAPwAAAMA=");
        assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    }
}
