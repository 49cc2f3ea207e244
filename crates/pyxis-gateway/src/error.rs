//! API errors as HTTP responses in OpenAI's error shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pyxis_protocol::OpenAiError;

/// Newtype so the protocol crate's error can be an axum response without axum in that crate.
#[derive(Debug)]
pub struct ApiError(pub OpenAiError);

impl From<OpenAiError> for ApiError {
    fn from(e: OpenAiError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.0.to_json()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}
