//! The scheduler's configuration, inputs and outputs: plain data, no behaviour.

/// Scheduler-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedConfig {
    /// Cost of one input token in the virtual counters (VTC's `w_p`, default 1).
    pub input_weight: f64,
    /// Cost of one output token (VTC's `w_q`, default 2: OpenAI-style pricing).
    pub output_weight: f64,
    /// Most requests queued over all tenants; beyond it a request is refused (503) unless it can evict queued
    /// preemptible work of a lower class.
    pub max_queued_total: usize,
    /// Queue timeout of tenants without their own; 0 means no timeout.
    pub default_timeout_ms: u64,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            input_weight: 1.0,
            output_weight: 2.0,
            max_queued_total: 100_000,
            default_timeout_ms: 60_000,
        }
    }
}

/// A priority class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassConfig {
    /// Name tenants refer to.
    pub name: String,
    /// Higher is served first.
    pub value: i32,
    /// Queued requests of this class may be evicted when the total cap is hit by a request of a higher class.
    pub preemptible: bool,
    /// Floor (0..1) of recently dispatched service: below it the class is served before higher classes.
    pub min_share: f64,
}

/// One tenant's scheduling policy.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// Share weight (> 0): backlogged tenants receive service in proportion to it.
    pub weight: f64,
    /// Name of a [`ClassConfig`]; an unknown name means the default class (value 0, not preemptible, no floor).
    pub class: String,
    /// Most requests this tenant may have queued (None: only the total cap applies).
    pub max_queued: Option<usize>,
    /// Queue timeout (None: [`SchedConfig::default_timeout_ms`]; Some(0): none).
    pub timeout_ms: Option<u64>,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            weight: 1.0,
            class: String::new(),
            max_queued: None,
            timeout_ms: None,
        }
    }
}

/// A request asking to be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Caller's id, unique among queued requests.
    pub id: u64,
    /// Tenant name.
    pub tenant: String,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// `max_tokens` of the request (what it may still generate).
    pub max_output_tokens: u32,
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The tenant's own queue cap (the gateway answers 429).
    #[error("the tenant's queue is full; retry after {retry_after_ms} ms")]
    TenantQueueFull {
        /// Estimated time until the tenant's queue has room.
        retry_after_ms: u64,
    },
    /// The total cap, with nothing lower to evict (the gateway answers 503).
    #[error("the gateway queue is full; retry after {retry_after_ms} ms")]
    QueueFull {
        /// Estimated time until the queue has room.
        retry_after_ms: u64,
    },
}

/// A request leaving the queue for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The request's id.
    pub id: u64,
    /// Its tenant.
    pub tenant: String,
    /// Time it spent queued.
    pub waited_ms: u64,
    /// Input + max output tokens: what it holds of the in-flight budget until it finishes.
    pub cost_tokens: u64,
}

/// One tenant's state, for metrics and the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantStats {
    /// Tenant name.
    pub tenant: String,
    /// Resolved class name.
    pub class: String,
    /// Weight in effect.
    pub weight: f64,
    /// Requests queued now.
    pub queued: usize,
    /// Virtual counter: weighted service received (normalised by weight), including lifts.
    pub counter: f64,
    /// Requests dispatched.
    pub dispatched: u64,
    /// Input tokens charged at dispatch.
    pub served_input_tokens: u64,
    /// Output tokens charged as they streamed.
    pub served_output_tokens: u64,
}
