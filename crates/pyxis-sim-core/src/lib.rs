//! Pure engine model of an LLM inference server, step-based and clock-free.
//!
//! - [`Engine`]: continuous batching with a token budget, paged KV with block-level prefix
//!   caching and LRU eviction, recompute preemption, LoRA slots; [`Engine::step_into`] takes the
//!   time and returns how long the step took, so one core serves real time and virtual time.
//! - [`hardware`] and [`model`]: the profiles the [`timing`] roofline is built from.
//! - [`tokenizer`] and [`generator`]: exact, deterministic token counts and output text.
//! - [`workload`] and [`sim`]: load generators and the virtual-time fleet runner with pluggable
//!   routing ([`sim::Router`]) and admission ([`sim::AdmissionScheduler`]) hooks.

pub mod engine;
pub mod generator;
pub mod hardware;
pub mod kv;
pub mod metrics;
pub mod model;
pub mod report;
pub mod rng;
pub mod sim;
pub mod timing;
pub mod tokenizer;
pub mod workload;

pub use engine::{
    ConfigError, Engine, EngineConfig, EngineEvent, EngineStats, LoraError, RequestTiming, SimRequest, StepInfo,
    StepResult, SubmitError, Time, Usage,
};
pub use generator::StopPolicy;
pub use hardware::{HardwareProfile, find_hardware, hardware_names, hardware_profiles};
pub use metrics::{EngineMetrics, FinishReason, Histogram};
pub use model::{ModelProfile, find_model, model_names, model_profiles, nearest_model};
pub use timing::TimingModel;
pub use tokenizer::Tokenizer;
