//! Runtime adapters: how the gateway speaks to each inference runtime kind, behind one trait.
//!
//! Each [`Adapter`] decides per request kind whether the runtime's OpenAI surface is used (bytes
//! pass through untouched) or its native API (TGI `/generate_stream`, Triton `generate_stream`,
//! Ollama `/api/chat`, llama.cpp `/completion`), builds the upstream call, translates native
//! replies and streams into OpenAI's objects, sorts error replies, and maps the runtime's identity
//! and Prometheus load signals onto one shape. All of that is pure (no sockets, no clock); the
//! [`probe`] module is the only I/O: detecting a runtime's kind over HTTP and fetching its identity
//! and load. The per-kind choices and their reasons: each `kinds::*` module and docs/adapters.md.

mod adapter;
mod base64;
mod errors;
mod kinds;
mod openai_out;
mod params;
mod passthrough;
pub mod probe;
mod prom;
mod translate;
mod types;

pub use adapter::Adapter;
pub use probe::{Detected, ProbeError, classify_kind, detect, detect_with};
pub use types::{
    Ctx, Dialect, Identity, LoadSample, Probe, ProbeMethod, ServedModel, StreamEvent, StreamTranslator, Surface,
    TritonBackend, UpstreamFailure, UpstreamRequest, Whole,
};

use pyxis_resources::RuntimeKind;

use kinds::llamacpp::LlamaCpp;
use kinds::ollama::Ollama;
use kinds::openai::OpenAi;
use kinds::sglang::Sglang;
use kinds::tgi::Tgi;
use kinds::triton::Triton;
use kinds::trtllm::TrtLlm;
use kinds::vllm::Vllm;

/// Which surface to prefer where a kind has both (TGI and llama.cpp completions, Ollama, Triton).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preference {
    /// The choice each kind's module justifies (what [`adapter`] returns).
    #[default]
    Default,
    /// The OpenAI routes (TGI `/v1/completions`, Ollama `/v1/*`, Triton's OpenAI frontend).
    OpenAi,
    /// The native API (llama.cpp `/completion`); kinds without one keep their OpenAI surface.
    Native,
}

/// Options beyond the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdapterOptions {
    pub prefer: Preference,
    /// Which backend the Triton models run on (their generate inputs differ).
    pub triton_backend: TritonBackend,
}

static VLLM: Vllm = Vllm;
static SGLANG: Sglang = Sglang;
static TRTLLM: TrtLlm = TrtLlm;
static OPENAI: OpenAi = OpenAi;
static TGI: Tgi = Tgi {
    native_completions: true,
};
static TGI_OPENAI: Tgi = Tgi {
    native_completions: false,
};
static OLLAMA: Ollama = Ollama { native: true };
static OLLAMA_OPENAI: Ollama = Ollama { native: false };
static LLAMACPP: LlamaCpp = LlamaCpp {
    native_completions: false,
};
static LLAMACPP_NATIVE: LlamaCpp = LlamaCpp {
    native_completions: true,
};
static TRITON_TRTLLM: Triton = Triton {
    backend: TritonBackend::TensorrtLlm,
    openai_frontend: false,
};
static TRITON_VLLM: Triton = Triton {
    backend: TritonBackend::Vllm,
    openai_frontend: false,
};
static TRITON_FRONTEND: Triton = Triton {
    backend: TritonBackend::TensorrtLlm,
    openai_frontend: true,
};

/// The default adapter of a runtime kind.
pub fn adapter(kind: RuntimeKind) -> &'static dyn Adapter {
    adapter_with(kind, AdapterOptions::default())
}

/// The adapter of a kind with a surface preference (and, for Triton, the models' backend).
pub fn adapter_with(kind: RuntimeKind, opts: AdapterOptions) -> &'static dyn Adapter {
    let openai = opts.prefer == Preference::OpenAi;
    match kind {
        RuntimeKind::Vllm => &VLLM,
        RuntimeKind::Sglang => &SGLANG,
        RuntimeKind::TensorrtLlm => &TRTLLM,
        RuntimeKind::Openai => &OPENAI,
        RuntimeKind::Tgi if openai => &TGI_OPENAI,
        RuntimeKind::Tgi => &TGI,
        RuntimeKind::Ollama if openai => &OLLAMA_OPENAI,
        RuntimeKind::Ollama => &OLLAMA,
        RuntimeKind::Llamacpp if opts.prefer == Preference::Native => &LLAMACPP_NATIVE,
        RuntimeKind::Llamacpp => &LLAMACPP,
        RuntimeKind::Triton if openai => &TRITON_FRONTEND,
        RuntimeKind::Triton => match opts.triton_backend {
            TritonBackend::TensorrtLlm => &TRITON_TRTLLM,
            TritonBackend::Vllm => &TRITON_VLLM,
        },
    }
}
