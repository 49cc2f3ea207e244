//! What the caller tells the router: the endpoints as snapshotted now, and the request being routed.

/// An endpoint's load as last scraped from its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadSignal {
    /// Requests queued in the engine, not yet scheduled.
    pub waiting: u32,
    /// Requests in the running batch.
    pub running: u32,
    /// KV-cache use, 0..1.
    pub kv_use: f64,
    /// Generated tokens per second (informational; the router does not score it).
    pub tokens_per_s: f64,
    /// Age of the scrape, ms: older signals weigh less (half weight at 2 s).
    pub age_ms: u64,
}

/// One endpoint as the router sees it at decision time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointView<'a> {
    /// Stable id (its URL): the router's learned state is keyed by it.
    pub key: &'a str,
    /// Passed its health checks.
    pub healthy: bool,
    /// Accelerator class, e.g. `h100`.
    pub hardware: &'a str,
    /// Region, if known.
    pub region: Option<&'a str>,
    /// Accelerator memory of the whole endpoint, all accelerators, GiB (0: unknown, always fits).
    pub memory_gib: f64,
    /// Requests this gateway has in flight to it right now (fresh between scrapes).
    pub in_flight: u32,
    /// Last scraped load, if the runtime exports one.
    pub load: Option<LoadSignal>,
    /// Price per million tokens, derived by the caller.
    pub price_per_mtok: Option<f64>,
    /// LoRA adapters loaded.
    pub adapters: &'a [String],
}

/// The request being routed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RouteRequest<'a> {
    /// Size of the model's weights, GiB (0: unknown, fit not checked).
    pub model_weights_gib: f64,
    /// Prompt length in tokens.
    pub prompt_tokens: u32,
    /// [`crate::prefix_blocks`] of the prompt.
    pub prefix_blocks: &'a [u64],
    /// Time-to-first-token budget of this request (overrides the configured one).
    pub latency_budget_ms: Option<u64>,
    /// Session id for stickiness.
    pub session: Option<&'a str>,
    /// LoRA adapter the request needs.
    pub adapter: Option<&'a str>,
    /// Only these accelerator classes (on top of the configured constraint).
    pub hardware: Option<&'a [String]>,
    /// Only these regions (on top of the configured constraint).
    pub regions: Option<&'a [String]>,
}
