//! HTTP engine simulator: a vLLM-compatible (or TGI / Ollama) server over `pyxis-sim-core`, in real time.
//!
//! [`spawn`] starts one engine on a socket; the gateway's demo fleet and `pyxis sim serve|fleet`
//! both go through it. [`cli`] holds the `pyxis sim` commands, including the virtual-time `run`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pyxis_sim_core::{EngineConfig, StopPolicy};
use serde::{Deserialize, Serialize};

pub mod cli;
mod embed;
mod error;
mod faults;
pub mod fleet;
mod ollama;
mod openai;
mod prom;
mod runner;
mod server;
mod stream;
mod tgi;
mod vectors;
mod vllm;

pub use faults::FaultConfig;
pub use pyxis_sim_core;

/// The vLLM release whose API and metrics the default surface follows.
pub const VLLM_VERSION: &str = "0.32.0";

/// Which runtime's HTTP API the engine presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    /// vLLM's OpenAI server (`/v1/*`, `/metrics` with `vllm:` names, LoRA load/unload).
    #[default]
    Vllm,
    /// Hugging Face TGI (`/generate`, `/generate_stream`, `/info`, `tgi_*` metrics).
    Tgi,
    /// Ollama (`/api/chat`, `/api/generate` as NDJSON, `/api/tags`, ...).
    Ollama,
}

/// Engine settings beyond the hardware and model defaults (vLLM's flags of the same names).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineTuning {
    /// `--max-num-seqs`.
    pub max_num_seqs: Option<u32>,
    /// `--max-num-batched-tokens`.
    pub max_num_batched_tokens: Option<u32>,
    /// `--max-model-len` (capped by what the KV cache holds).
    pub max_model_len: Option<u32>,
    /// KV blocks instead of the memory-derived count.
    pub num_kv_blocks: Option<u32>,
    /// `--enable-prefix-caching` / `--no-enable-prefix-caching`.
    pub enable_prefix_caching: Option<bool>,
    /// `--max-loras`: adapters in one batch.
    pub max_loras: Option<u32>,
    /// Adapters loaded at start, `name` or `name=path` (`--lora-modules`).
    pub lora_adapters: Vec<String>,
    /// When requests stop by themselves (default: natural lengths of 64..=512 tokens).
    pub stop_policy: Option<StopPolicy>,
    /// API-server latency before the engine sees a request, ms (default: the hardware profile's).
    pub frontend_latency_ms: Option<f64>,
}

impl EngineTuning {
    /// Applies the overrides to a profile-derived configuration.
    pub fn apply(&self, c: &mut EngineConfig) {
        if let Some(v) = self.num_kv_blocks {
            c.num_blocks = v.max(1);
        }
        if let Some(v) = self.max_num_seqs {
            c.max_num_seqs = v.max(1);
        }
        if let Some(v) = self.max_num_batched_tokens {
            c.max_num_batched_tokens = v.max(1);
        }
        let cap = u32::try_from(c.kv_capacity_tokens()).unwrap_or(u32::MAX);
        c.max_model_len = self.max_model_len.unwrap_or(c.max_model_len).min(cap).max(1);
        if let Some(v) = self.enable_prefix_caching {
            c.enable_prefix_caching = v;
        }
        if let Some(v) = self.max_loras {
            c.max_loras = v.max(1);
        }
        if let Some(p) = self.stop_policy {
            c.stop_policy = p;
        }
        if let Some(ms) = self.frontend_latency_ms {
            c.frontend_latency_s = (ms / 1000.0).max(0.0);
        }
    }
}

/// Everything that shapes one simulated engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSpec {
    /// Engine name (log lines).
    pub name: String,
    /// Hardware profile key, e.g. `h100` (case and vendor spellings are forgiven).
    pub hardware: String,
    /// Model profile key, e.g. `llama-3-8b` (or a Hugging Face id of a known profile).
    pub model: String,
    /// Names the engine answers to; empty means `[model]`.
    pub served_model_names: Vec<String>,
    /// Which runtime API to present.
    pub surface: Surface,
    /// Seed of the output generator and the fault draws.
    pub seed: u64,
    /// Simulated seconds per wall second (1.0 = real time; 10 runs ten times faster).
    pub speedup: f64,
    /// Faults injected from the start.
    pub faults: FaultConfig,
    /// Overrides of the engine's defaults.
    pub tuning: EngineTuning,
}

impl EngineSpec {
    /// A vLLM-surface engine with no faults, seed 0, real time, profile defaults.
    pub fn new(name: impl Into<String>, hardware: &str, model: &str) -> Self {
        EngineSpec {
            name: name.into(),
            hardware: hardware.to_string(),
            model: model.to_string(),
            served_model_names: Vec::new(),
            surface: Surface::Vllm,
            seed: 0,
            speedup: 1.0,
            faults: FaultConfig::default(),
            tuning: EngineTuning::default(),
        }
    }
}

/// A running engine. Dropping the handle leaves the engine serving until the runtime stops;
/// [`EngineHandle::shutdown`] stops it.
pub struct EngineHandle {
    addr: SocketAddr,
    state: Arc<server::AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineHandle {
    /// The bound address (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:8100`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The engine's name.
    pub fn name(&self) -> &str {
        &self.state.spec.name
    }

    /// Whether the engine has crashed (injected) or been shut down.
    pub fn is_down(&self) -> bool {
        self.state.is_down()
    }

    /// Replaces the fault set (the same as `POST /admin/faults`).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.state.faults.set(faults);
    }

    /// Stops accepting, cuts open streams, stops the engine, and waits (at most 5 s) for the
    /// server task.
    pub async fn shutdown(self) {
        self.state.go_down();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Starts one engine listening on `listen` (port 0 picks a free port).
pub async fn spawn(spec: EngineSpec, listen: SocketAddr) -> anyhow::Result<EngineHandle> {
    let state = server::build_state(spec)?;
    let (addr, task) = server::serve(state.clone(), listen).await?;
    tracing::debug!(engine = %state.spec.name, %addr, hardware = state.hardware.name, model = state.model.name, "simulated engine listening");
    Ok(EngineHandle { addr, state, task })
}

/// Hardware profile keys.
pub fn hardware_names() -> Vec<&'static str> {
    pyxis_sim_core::hardware_names()
}

/// Model profile keys.
pub fn model_names() -> Vec<&'static str> {
    pyxis_sim_core::model_names()
}

/// The model profile key nearest in parameter count to `parameters`.
pub fn nearest_model(parameters: u64) -> &'static str {
    pyxis_sim_core::nearest_model(parameters).name
}
