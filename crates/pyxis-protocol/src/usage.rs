//! Token usage as OpenAI reports it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

/// A whole reply's `usage`, borrowed as raw JSON; every other member is skipped, not built.
#[derive(Deserialize)]
struct UsageOnly<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a serde_json::value::RawValue>,
}

/// Reads `usage` from a whole (non-streamed) OpenAI reply without building the rest of it, and checks on the
/// way that the body is one JSON object. `Ok(None)` when the reply has no usable `usage` (absent, `null`, or
/// not the shape OpenAI gives it): a reply is not refused for its accounting.
pub fn read_usage(body: &[u8]) -> Result<Option<Usage>, serde_json::Error> {
    let UsageOnly { usage } = serde_json::from_slice(body)?;
    Ok(usage.and_then(|raw| serde_json::from_str::<Usage>(raw.get()).ok()))
}

impl Usage {
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.map(|d| d.cached_tokens).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_and_skips_the_rest() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"a \"usage\": {} b"}}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let u = read_usage(body).unwrap().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens()),
            (8, 3, 11, 4)
        );
    }

    #[test]
    fn absent_null_or_odd_usage_is_none_not_an_error() {
        assert_eq!(read_usage(br#"{"choices":[]}"#).unwrap(), None);
        assert_eq!(read_usage(br#"{"usage":null}"#).unwrap(), None);
        assert_eq!(read_usage(br#"{"usage":"lots"}"#).unwrap(), None);
        assert_eq!(read_usage(br#"{"usage":{"prompt_tokens":-1}}"#).unwrap(), None);
        let u = read_usage(br#"{"usage":{"completion_tokens":2}}"#).unwrap().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (0, 2), "missing counts are 0");
    }

    #[test]
    fn a_body_that_is_not_one_json_object_is_an_error() {
        for bad in [&b"<html>"[..], b"{\"usage\":{}", b"[1,2]", b"", b"{\"a\":1} trailing"] {
            assert!(read_usage(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
