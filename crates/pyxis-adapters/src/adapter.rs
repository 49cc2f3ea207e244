//! The one trait every runtime kind implements. Everything here is pure: no sockets, no clock.

use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use pyxis_resources::RuntimeKind;
use reqwest::header::HeaderMap;

use crate::types::{
    Ctx, Dialect, Identity, LoadSample, Probe, StreamTranslator, Surface, UpstreamFailure, UpstreamRequest, Whole,
};

/// How the gateway talks to one kind of runtime.
pub trait Adapter: Send + Sync {
    fn kind(&self) -> RuntimeKind;

    /// Which API serves `req_kind` (the per-kind choice and its reason are in the kind's module).
    fn surface(&self, req_kind: RequestKind) -> Surface;

    /// The upstream call for a validated request; `served_model` is the runtime's name for it.
    /// On the OpenAI surface this is `InferenceRequest::upstream_body` unchanged. Errors are the
    /// client's answer: a parameter the native API cannot honour, or a route the runtime lacks.
    fn build(&self, req: &InferenceRequest, served_model: &str) -> Result<UpstreamRequest, OpenAiError>;

    /// A whole (non-streamed) 2xx reply turned into OpenAI's JSON. `headers` are the reply's
    /// (TGI puts the prompt's token count only there).
    fn translate_whole(
        &self,
        dialect: Dialect,
        headers: &HeaderMap,
        body: &[u8],
        ctx: &Ctx<'_>,
    ) -> Result<Whole, OpenAiError> {
        crate::translate::whole(self.kind(), dialect, headers, body, ctx)
    }

    /// A translator for a streamed 2xx reply in `dialect`.
    fn stream_translator(&self, dialect: Dialect, ctx: &Ctx<'_>) -> Box<dyn StreamTranslator> {
        crate::translate::stream(self.kind(), dialect, ctx)
    }

    /// Sorts a non-2xx reply: retry elsewhere, the client's fault, or the runtime's.
    fn classify_error(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        crate::errors::classify(self.kind(), status, body)
    }

    /// The route whose 2xx means "send requests here".
    fn health_path(&self) -> &'static str;

    /// Routes that tell version, models and context length; see [`Probe`] for `{model}`.
    fn identity_probes(&self) -> &'static [Probe];

    /// What one probe's 2xx body says; merge the results with [`Identity::merge`]. `path` is the
    /// probe's path as sent (with `{model}` substituted).
    fn parse_identity(&self, path: &str, body: &[u8]) -> Identity;

    /// The Prometheus route, when the runtime has one (`None`: the gateway estimates load from its
    /// own in-flight count).
    fn metrics_path(&self) -> Option<&'static str>;

    /// Where to scrape, given the endpoint's base URL (Triton serves metrics on its own port).
    fn metrics_url(&self, base_url: &str) -> Option<String> {
        self.metrics_path()
            .map(|p| format!("{}{p}", base_url.trim_end_matches('/')))
    }

    /// The load a scrape shows; `prev` (the last sample) turns counters into rates. `now_ms` is the
    /// caller's clock. `None` when the text holds none of this kind's load gauges.
    fn parse_load(&self, metrics_text: &str, prev: Option<&LoadSample>, now_ms: u64) -> Option<LoadSample>;
}
