//! Any OpenAI-compatible server, hosted APIs included: the OpenAI surface, nothing else assumed.
//!
//! Health is `/v1/models` (the one route every OpenAI-compatible server has); there are no metrics,
//! so the gateway estimates load from its own in-flight count. A 429 here is a rate limit on the
//! gateway's key: back off and try another endpoint.

use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use pyxis_resources::RuntimeKind;

use crate::adapter::Adapter;
use crate::types::{Identity, LoadSample, Probe, Surface, UpstreamRequest};

pub(crate) struct OpenAi;

const PROBES: &[Probe] = &[Probe::get("/v1/models")];

impl Adapter for OpenAi {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Openai
    }

    fn surface(&self, _req_kind: RequestKind) -> Surface {
        Surface::OpenAi
    }

    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError> {
        Ok(crate::passthrough::build(req, served_model))
    }

    fn health_path(&self) -> &'static str {
        "/v1/models"
    }

    fn identity_probes(&self) -> &'static [Probe] {
        PROBES
    }

    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity {
        match path {
            "/v1/models" => super::openai_models(body),
            _ => Identity::default(),
        }
    }

    fn metrics_path(&self) -> Option<&'static str> {
        None
    }

    fn parse_load(&self, _metrics_text: &str, _prev: Option<&LoadSample>, _now_ms: u64) -> Option<LoadSample> {
        None
    }
}
