//! OpenAI-compatible wire types shared by the gateway and tools: requests, the error object, usage, SSE framing.
//!
//! Serialization lives here and only here; the gateway converts these into its own domain types.

pub mod error;
pub mod request;
pub mod sse;
pub mod usage;

pub use error::{ErrorBody, ErrorKind, OpenAiError};
pub use request::{InferenceRequest, RequestKind};
pub use sse::{SseEvent, SseFramer};
pub use usage::Usage;
