//! Reading OpenAI request parameters for native translations, with OpenAI-style errors that name
//! the parameter when a runtime's native API cannot honour one.

use pyxis_protocol::OpenAiError;
use serde_json::{Map, Value};

pub(crate) type Body = Map<String, Value>;

/// OpenAI's `max_tokens` when a `/v1/completions` request leaves it out. Native APIs default to
/// something else (TGI 100, llama.cpp and Ollama unlimited), so native completions send this.
pub(crate) const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

/// `Unsupported value: '<param>' ...` (OpenAI's wording and code for values a model does not take).
pub(crate) fn unsupported(param: &str, why: &str) -> OpenAiError {
    OpenAiError::invalid(format!("Unsupported value: '{param}' {why}"))
        .with_param(param)
        .with_code("unsupported_value")
}

pub(crate) fn num(body: &Body, key: &str) -> Option<f64> {
    body.get(key).and_then(Value::as_f64)
}

pub(crate) fn uint(body: &Body, key: &str) -> Option<u64> {
    body.get(key).and_then(Value::as_u64)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(_) => true,
    }
}

/// Rejects `n`/`best_of` above 1, `echo`, `logprobs`, `top_logprobs`: native generate APIs return
/// one choice without log-probabilities, and answering without them would be silently wrong.
pub(crate) fn one_plain_choice(body: &Body, runtime: &str) -> Result<(), OpenAiError> {
    for key in ["n", "best_of"] {
        if uint(body, key).is_some_and(|n| n > 1) {
            return Err(unsupported(
                key,
                &format!("above 1 is not supported: {runtime} returns one choice per request. Send several requests."),
            ));
        }
    }
    for key in ["echo", "logprobs", "top_logprobs"] {
        if truthy(body.get(key)) {
            return Err(unsupported(key, &format!("is not supported by {runtime}.")));
        }
    }
    Ok(())
}

/// A non-zero value the runtime has no knob for.
pub(crate) fn reject_nonzero(body: &Body, key: &str, runtime: &str) -> Result<(), OpenAiError> {
    if truthy(body.get(key)) {
        return Err(unsupported(
            key,
            &format!("is not supported by {runtime}; leave it at 0."),
        ));
    }
    Ok(())
}

/// `stop`: a string or an array of strings.
pub(crate) fn stop(body: &Body) -> Result<Option<Vec<String>>, OpenAiError> {
    match body.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    OpenAiError::invalid(format!("Invalid type for 'stop[{i}]': expected a string."))
                        .with_param(format!("stop[{i}]"))
                        .with_code("invalid_type")
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(
            OpenAiError::invalid("Invalid type for 'stop': expected a string or an array of strings.")
                .with_param("stop")
                .with_code("invalid_type"),
        ),
    }
}

/// A completions prompt as one text: a string, or an array holding exactly one string.
pub(crate) fn text_prompt(body: &Body, runtime: &str) -> Result<String, OpenAiError> {
    match body.get("prompt") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Ok(a[0].as_str().unwrap_or_default().to_string()),
        Some(Value::Array(a)) if a.len() > 1 && a.iter().all(Value::is_string) => Err(unsupported(
            "prompt",
            &format!("with several prompts is not supported: {runtime} takes one prompt per request."),
        )),
        _ => Err(unsupported(
            "prompt",
            &format!("as token ids is not supported: {runtime} takes a text prompt."),
        )),
    }
}

/// A completions prompt as a text or one array of token ids.
pub(crate) enum Prompt {
    Text(String),
    Tokens(Vec<Value>),
}

pub(crate) fn text_or_tokens_prompt(body: &Body, runtime: &str) -> Result<Prompt, OpenAiError> {
    match body.get("prompt") {
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_u64) => Ok(Prompt::Tokens(a.clone())),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_array() => {
            Ok(Prompt::Tokens(a[0].as_array().cloned().unwrap_or_default()))
        }
        _ => text_prompt(body, runtime).map(Prompt::Text),
    }
}

/// The text of a chat message's `content`: a string, or the text parts of an array joined by
/// newlines (as vLLM joins them); image parts are returned apart.
pub(crate) struct Content {
    pub text: String,
    /// Base64 payloads of `data:` image URLs.
    pub images: Vec<String>,
}

pub(crate) fn content(v: Option<&Value>, at: &str, runtime: &str) -> Result<Content, OpenAiError> {
    let mut c = Content {
        text: String::new(),
        images: Vec::new(),
    };
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => c.text = s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let here = format!("{at}[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | None if p.get("text").is_some() => {
                        texts.push(p.get("text").and_then(Value::as_str).unwrap_or_default().to_string())
                    }
                    Some("image_url") => {
                        let url = p
                            .pointer("/image_url/url")
                            .or_else(|| p.get("image_url"))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        match url.strip_prefix("data:").and_then(|r| r.split_once(";base64,")) {
                            Some((_, b64)) => c.images.push(b64.to_string()),
                            None => {
                                return Err(unsupported(
                                    &format!("{here}.image_url.url"),
                                    &format!("must be a base64 `data:` URL: {runtime} does not fetch images."),
                                ));
                            }
                        }
                    }
                    other => {
                        return Err(unsupported(
                            &format!("{here}.type"),
                            &format!("'{}' is not supported by {runtime}.", other.unwrap_or("(none)")),
                        ));
                    }
                }
            }
            c.text = texts.join("\n");
        }
        Some(_) => {}
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn prompts() {
        assert_eq!(text_prompt(&body(json!({"prompt": ["x"]})), "R").unwrap(), "x");
        let e = text_prompt(&body(json!({"prompt": ["x", "y"]})), "R").unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code.as_deref()),
            (Some("prompt"), Some("unsupported_value"))
        );
        assert!(text_prompt(&body(json!({"prompt": [1, 2]})), "R").is_err());
        assert!(
            matches!(text_or_tokens_prompt(&body(json!({"prompt": [[1, 2]]})), "R"), Ok(Prompt::Tokens(t)) if t.len() == 2)
        );
    }

    #[test]
    fn choices_and_content() {
        assert!(one_plain_choice(&body(json!({"n": 1, "logprobs": false, "echo": false})), "R").is_ok());
        assert_eq!(
            one_plain_choice(&body(json!({"n": 2})), "R")
                .unwrap_err()
                .param
                .as_deref(),
            Some("n")
        );
        assert_eq!(
            one_plain_choice(&body(json!({"logprobs": 2})), "R")
                .unwrap_err()
                .param
                .as_deref(),
            Some("logprobs")
        );
        let parts = json!([{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}},{"type":"text","text":"b"}]);
        let c = content(Some(&parts), "messages[0].content", "R").unwrap();
        assert_eq!(
            (c.text.as_str(), c.images.as_slice()),
            ("a\nb", &["AAA".to_string()][..])
        );
        let remote = json!([{"type":"image_url","image_url":{"url":"https://x/y.png"}}]);
        let e = content(Some(&remote), "messages[0].content", "R").err().unwrap();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].image_url.url"));
        assert_eq!(stop(&body(json!({"stop": "x"}))).unwrap(), Some(vec!["x".to_string()]));
        assert_eq!(
            stop(&body(json!({"stop": [1]}))).unwrap_err().param.as_deref(),
            Some("stop[0]")
        );
    }
}
