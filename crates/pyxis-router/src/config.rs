//! Routing settings: scorer weights, constraints, guards and outlier ejection, with defaults that work untouched.

/// How much each scorer counts in an endpoint's total (each score is 0..1, higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Queue depth, waiting requests and KV use, scaled by the endpoint's speed.
    pub load: f64,
    /// Predicted time to first token against the fastest candidate's.
    pub latency: f64,
    /// Share of the prompt's leading blocks the endpoint has probably cached.
    pub prefix: f64,
    /// Price per token against the cheapest candidate's.
    pub cost: f64,
    /// The endpoint served this session before.
    pub session: f64,
}

impl Default for Weights {
    /// Latency and load equal: latency already prices speed, the queue ahead and the cached prefix (it wins
    /// TTFT), load keeps the fast endpoints' batches from growing until decoding slows (it wins end-to-end
    /// latency). Affinity at half weight keeps a system prompt or a conversation in place unless that costs
    /// real latency; cost only breaks near-ties. Tuned on `examples/routebench` (docs/routing.md).
    fn default() -> Self {
        Weights {
            load: 1.0,
            latency: 1.0,
            prefix: 0.5,
            cost: 0.1,
            session: 0.5,
        }
    }
}

/// Outlier ejection: `consecutive_failures` in a row eject an endpoint for `base_ms`, doubled on each
/// repeat up to `max_ms`; once the back-off has passed, an active probe that passes re-admits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionConfig {
    /// Failures in a row that eject (0 disables ejection).
    pub consecutive_failures: u32,
    /// First ejection, ms.
    pub base_ms: u64,
    /// Longest ejection, ms.
    pub max_ms: u64,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            consecutive_failures: 5,
            base_ms: 30_000,
            max_ms: 300_000,
        }
    }
}

/// Everything [`crate::Router`] is tuned by. `RoutingPolicy` resources map onto this one to one.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// Scorer weights.
    pub weights: Weights,
    /// Time-to-first-token budget for requests that bring none of their own.
    pub latency_budget_ms: Option<u64>,
    /// Only endpoints on these accelerator classes (ASCII case ignored).
    pub hardware: Option<Vec<String>>,
    /// Only endpoints in these regions (ASCII case ignored).
    pub regions: Option<Vec<String>>,
    /// Memory needed beyond the weights, as a fraction of them, for KV cache and activations.
    pub kv_headroom: f64,
    /// Load guard: affinity (prefix, session) counts only on endpoints whose load is within this many
    /// requests of the least-loaded candidate's.
    pub prefix_max_imbalance: u32,
    /// Outlier ejection.
    pub ejection: EjectionConfig,
    /// Prefix-index blocks remembered per GiB of an endpoint's memory left after the weights (bounds the
    /// per-endpoint LRU near what its KV cache can hold: 64 is right for an 8B-class model with
    /// 512-byte blocks, about 128 tokens each).
    pub prefix_blocks_per_gib: f64,
    /// Sessions remembered (the oldest are forgotten first).
    pub session_capacity: usize,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            weights: Weights::default(),
            latency_budget_ms: None,
            hardware: None,
            regions: None,
            kv_headroom: 0.2,
            prefix_max_imbalance: 16,
            ejection: EjectionConfig::default(),
            prefix_blocks_per_gib: 64.0,
            session_capacity: 100_000,
        }
    }
}
