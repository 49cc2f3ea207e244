//! Error responses in each runtime's own shape (vLLM's nested object, TGI's flat pair, Ollama's
//! bare string).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Surface;

/// What went wrong, independent of the surface that reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// Malformed or invalid request (400; TGI: 422 validation).
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    /// The body does not parse as the request type (vLLM: 400 `Bad Request`, param `body.<field>`).
    InvalidBody { message: String, param: Option<String> },
    /// Unknown model or adapter (404).
    NotFound {
        message: String,
        param: Option<&'static str>,
    },
    /// Injected failure (500).
    Internal(String),
    /// Refused for load (TGI 429, others 503).
    Overloaded,
    /// Still starting (503).
    Unavailable(String),
}

impl ApiError {
    pub(crate) fn bad(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            param,
        }
    }

    fn status(&self, surface: Surface) -> StatusCode {
        match (self, surface) {
            (ApiError::BadRequest { .. } | ApiError::InvalidBody { .. }, Surface::Tgi) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            (ApiError::BadRequest { .. } | ApiError::InvalidBody { .. }, _) => StatusCode::BAD_REQUEST,
            (ApiError::NotFound { .. }, _) => StatusCode::NOT_FOUND,
            (ApiError::Internal(_), _) => StatusCode::INTERNAL_SERVER_ERROR,
            (ApiError::Overloaded, Surface::Tgi) => StatusCode::TOO_MANY_REQUESTS,
            (ApiError::Overloaded, _) | (ApiError::Unavailable(_), _) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self, surface: Surface) -> String {
        match (self, surface) {
            (
                ApiError::BadRequest { message, .. }
                | ApiError::NotFound { message, .. }
                | ApiError::InvalidBody { message, .. },
                _,
            ) => message.clone(),
            (ApiError::Internal(m) | ApiError::Unavailable(m), _) => m.clone(),
            (ApiError::Overloaded, Surface::Tgi) => "Model is overloaded".into(),
            (ApiError::Overloaded, Surface::Ollama) => {
                "server busy, please try again.  maximum pending requests exceeded".into()
            }
            (ApiError::Overloaded, Surface::Vllm) => "The server is overloaded, please retry later.".into(),
        }
    }

    /// The response in `surface`'s shape.
    pub(crate) fn render(&self, surface: Surface) -> Response {
        let status = self.status(surface);
        let message = self.message(surface);
        let body = match surface {
            Surface::Vllm => {
                let (kind, param) = match self {
                    ApiError::BadRequest { param, .. } => ("BadRequestError", param.map(str::to_string)),
                    ApiError::InvalidBody { param, .. } => ("Bad Request", param.clone()),
                    ApiError::NotFound { param, .. } => ("NotFoundError", param.map(str::to_string)),
                    ApiError::Internal(_) => ("InternalServerError", None),
                    ApiError::Overloaded | ApiError::Unavailable(_) => ("ServiceUnavailableError", None),
                };
                json!({"error": {"message": message, "type": kind, "param": param, "code": status.as_u16()}})
            }
            Surface::Tgi => {
                let kind = match self {
                    ApiError::BadRequest { .. } | ApiError::InvalidBody { .. } => "validation",
                    ApiError::NotFound { .. } => "not_found",
                    ApiError::Internal(_) => "generation",
                    ApiError::Overloaded => "overloaded",
                    ApiError::Unavailable(_) => "healthcheck",
                };
                json!({"error": message, "error_type": kind})
            }
            Surface::Ollama => json!({"error": message}),
        };
        (status, axum::Json(body)).into_response()
    }

    /// The OpenAI-compatible routes of Ollama answer in OpenAI's shape (string codes).
    pub(crate) fn render_openai(&self, surface: Surface) -> Response {
        if surface != Surface::Ollama {
            return self.render(surface);
        }
        let status = self.status(surface);
        let kind = match self {
            ApiError::BadRequest { .. } | ApiError::NotFound { .. } | ApiError::InvalidBody { .. } => {
                "invalid_request_error"
            }
            _ => "api_error",
        };
        let param = match self {
            ApiError::BadRequest { param, .. } | ApiError::NotFound { param, .. } => param.map(str::to_string),
            ApiError::InvalidBody { param, .. } => param.clone(),
            _ => None,
        };
        let body = json!({"error": {"message": self.message(surface), "type": kind, "param": param, "code": null}});
        (status, axum::Json(body)).into_response()
    }
}
