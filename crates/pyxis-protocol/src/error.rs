//! OpenAI's error object (`{"error": {"message", "type", "param", "code"}}`) and the HTTP status each kind maps to.

use serde::{Deserialize, Serialize};

/// What went wrong, in OpenAI's vocabulary; each kind has one HTTP status and one `type` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: malformed JSON, wrong types, bad values.
    InvalidRequest,
    /// 401: missing or unknown API key.
    Authentication,
    /// 403: the key is valid but may not use this resource.
    PermissionDenied,
    /// 404: unknown model or route.
    NotFound,
    /// 413: request body over the limit.
    PayloadTooLarge,
    /// 429: a quota or rate limit.
    RateLimit,
    /// 500: a bug in Pyxis.
    Internal,
    /// 502: the runtime answered with garbage or broke the connection.
    BadGateway,
    /// 503: no endpoint can serve the request right now.
    Unavailable,
    /// 504: the runtime did not answer in time.
    Timeout,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The `error.type` string OpenAI's SDKs and users expect.
    pub fn type_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Internal => "server_error",
            ErrorKind::BadGateway | ErrorKind::Unavailable | ErrorKind::Timeout => "upstream_error",
        }
    }

    /// Maps an upstream HTTP status onto a kind, for errors passed through from a runtime.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::RateLimit,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::Unavailable,
            504 => ErrorKind::Timeout,
            _ => ErrorKind::Internal,
        }
    }
}

/// An error as the API returns it. `code` is a short machine-readable string such as `model_not_found`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl OpenAiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        OpenAiError {
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                // OpenAI reports an exhausted budget with its own type, not `rate_limit_error`.
                r#type: match self.code.as_deref() {
                    Some("insufficient_quota") => "insufficient_quota".to_string(),
                    _ => self.kind.type_str().to_string(),
                },
                param: self.param.clone(),
                code: self.code.clone(),
            },
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings and options cannot fail.
        serde_json::to_string(&self.body()).unwrap_or_else(|_| String::from("{}"))
    }
}

impl std::fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind.status(), self.kind.type_str(), self.message)
    }
}

impl std::error::Error for OpenAiError {}

/// The JSON body: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub r#type: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// Reads an error a runtime sent back, in any of the shapes runtimes use (OpenAI's, vLLM's integer
/// `code`, TGI's flat `{"error": "...", "error_type": "..."}`, Ollama's `{"error": "..."}`), into
/// `(message, type, param)`. Returns `None` when the body is not JSON we recognise.
pub fn parse_upstream_error(body: &[u8]) -> Option<(String, Option<String>, Option<String>)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let as_str = |v: Option<&serde_json::Value>| v.and_then(|s| s.as_str()).map(str::to_string);
    match v.get("error") {
        Some(serde_json::Value::Object(e)) => {
            Some((as_str(e.get("message"))?, as_str(e.get("type")), as_str(e.get("param"))))
        }
        Some(serde_json::Value::String(msg)) => Some((msg.clone(), as_str(v.get("error_type")), None)),
        _ => {
            // vLLM's older flat shape: {"object":"error","message":...,"type":...}
            let msg = as_str(v.get("message"))?;
            Some((msg, as_str(v.get("type")), as_str(v.get("param"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_not_found_shape() {
        let e = OpenAiError::model_not_found("nope");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(e.status(), 404);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
    }

    #[test]
    fn upstream_error_shapes() {
        let vllm = br#"{"error":{"message":"too long","type":"BadRequestError","param":"max_tokens","code":400}}"#;
        assert_eq!(
            parse_upstream_error(vllm),
            Some((
                "too long".into(),
                Some("BadRequestError".into()),
                Some("max_tokens".into())
            ))
        );
        let tgi = br#"{"error":"Model is overloaded","error_type":"overloaded"}"#;
        assert_eq!(
            parse_upstream_error(tgi),
            Some(("Model is overloaded".into(), Some("overloaded".into()), None))
        );
        let old = br#"{"object":"error","message":"m","type":"t","param":null,"code":400}"#;
        assert_eq!(parse_upstream_error(old), Some(("m".into(), Some("t".into()), None)));
        assert_eq!(parse_upstream_error(b"<html>"), None);
    }
}
