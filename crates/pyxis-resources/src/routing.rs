//! The `RoutingPolicy` spec: how the gateway picks an endpoint for a model (scorer weights, latency budget,
//! placement constraints, retries and outlier ejection).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ResourceSpec;

/// Spec of a `RoutingPolicy`. Every field has a default that works untouched; a model without a policy of its own
/// uses the policy listing `"*"`, or the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingPolicySpec {
    /// Names of the `Model`s this policy applies to; `["*"]` applies to every model without a policy of its own.
    pub models: Vec<String>,
    /// Weights of the scorers blended into an endpoint's score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<RoutingWeights>,
    /// Time-to-first-token budget in milliseconds for requests that do not send `x-pyxis-latency-budget-ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub latency_budget_ms: Option<u64>,
    /// Only endpoints on these accelerator classes (e.g. `[h100, a100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Vec<String>>,
    /// Only endpoints in these regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ejection: Option<EjectionPolicy>,
}

/// Scorer weights, each at least 0; an absent weight keeps its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingWeights {
    /// Queue, running requests and KV-cache use of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub load: Option<f64>,
    /// Predicted time to first token against the latency budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub latency: Option<f64>,
    /// Prompt-prefix blocks the endpoint has likely cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub prefix: Option<f64>,
    /// Price per token of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cost: Option<f64>,
    /// Stickiness of `x-session-id` to the endpoint that served the session before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub session: Option<f64>,
}

/// Retries on another endpoint when an attempt fails before its first byte.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; 1 to 10 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: Option<u32>,
    /// Retries allowed as a fraction of requests over the last 10 s, so retries cannot multiply an outage
    /// (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub budget_ratio: Option<f64>,
    /// Longest wait for an attempt's response headers before trying elsewhere (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub attempt_timeout_ms: Option<u64>,
}

/// Outlier ejection: an endpoint failing repeatedly is taken out of rotation, with back-off, and probed back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EjectionPolicy {
    /// Consecutive failures that eject an endpoint (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consecutive_failures: Option<u32>,
    /// First ejection length in milliseconds, doubled on each repeat (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub base_ms: Option<u64>,
    /// Longest ejection (default 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_ms: Option<u64>,
}

impl ResourceSpec for RoutingPolicySpec {
    const KIND: &'static str = "RoutingPolicy";
}

impl RoutingPolicySpec {
    /// Whether this policy names `model` (not counting `"*"`).
    pub fn names(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }

    /// Whether this is a catch-all policy (`"*"`).
    pub fn is_default(&self) -> bool {
        self.models.iter().any(|m| m == "*")
    }
}
