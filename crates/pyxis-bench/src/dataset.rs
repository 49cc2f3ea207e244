//! Prompts from a JSONL file: one `{"prompt": "..."}` or `{"messages": [...]}` per line, optional `max_tokens`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::BenchError;

/// What one dataset line asks.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetPrompt {
    /// Plain text: the user message (chat) or the prompt (completions).
    Text(String),
    /// Chat messages, sent verbatim to chat; flattened to their text for completions.
    Messages(Vec<Value>),
}

/// One dataset line.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetEntry {
    pub prompt: DatasetPrompt,
    /// `max_tokens` for this prompt; otherwise `--output-len` applies.
    pub max_tokens: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Value>>,
    #[serde(default, alias = "max_completion_tokens", alias = "output_len")]
    max_tokens: Option<u32>,
}

/// Reads a JSONL dataset.
pub fn load(path: &Path) -> Result<Vec<DatasetEntry>, BenchError> {
    let err = |message: String| BenchError::Dataset {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse(&text).map_err(err)
}

/// Parses JSONL text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<DatasetEntry>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let l: Line = serde_json::from_str(line).map_err(|e| format!("line {n}: {e}"))?;
        let prompt = match (l.prompt, l.messages) {
            (Some(p), None) => DatasetPrompt::Text(p),
            (None, Some(m)) if !m.is_empty() => DatasetPrompt::Messages(m),
            (None, Some(_)) => return Err(format!("line {n}: `messages` is empty")),
            (Some(_), Some(_)) => return Err(format!("line {n}: give `prompt` or `messages`, not both")),
            (None, None) => {
                return Err(format!(
                    "line {n}: expected {{\"prompt\": \"...\"}} or {{\"messages\": [...]}}"
                ));
            }
        };
        if l.max_tokens == Some(0) {
            return Err(format!("line {n}: `max_tokens` must be at least 1"));
        }
        out.push(DatasetEntry {
            prompt,
            max_tokens: l.max_tokens,
        });
    }
    if out.is_empty() {
        return Err("no prompts in the file".into());
    }
    Ok(out)
}

/// The text of chat messages (string contents and the `text` of content parts), one per line.
pub(crate) fn messages_text(messages: &[Value]) -> String {
    let mut parts = Vec::new();
    for m in messages {
        match m.get("content") {
            Some(Value::String(s)) => parts.push(s.clone()),
            Some(Value::Array(items)) => {
                parts.extend(items.iter().filter_map(|p| p.get("text")?.as_str().map(str::to_string)));
            }
            _ => {}
        }
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes_and_names_bad_lines() {
        let ok = parse(
            "{\"prompt\": \"hi there\", \"max_tokens\": 7}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"yo\"}]}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].prompt, DatasetPrompt::Text("hi there".into()));
        assert_eq!(ok[0].max_tokens, Some(7));
        assert!(matches!(&ok[1].prompt, DatasetPrompt::Messages(m) if m.len() == 1));
        let e = parse("{\"prompt\": \"a\"}\n{\"text\": 1}\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
        assert!(parse("\n").is_err());
    }

    #[test]
    fn flattens_message_text() {
        let m: Vec<Value> = serde_json::from_str(
            r#"[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello"}]}]"#,
        )
        .unwrap();
        assert_eq!(messages_text(&m), "be brief\nhello");
    }
}
