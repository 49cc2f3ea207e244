//! The `Tenant` spec: a team that calls the gateway, its fair-share weight, priority tier, quotas, queue limits and
//! the models it may use.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ResourceSpec;

/// Spec of a `Tenant`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Share of the fleet under contention relative to other tenants; must be greater than 0.
    #[serde(default = "default_weight")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub weight: f64,
    /// Names of the `Model`s this tenant may call; absent or `["*"]` means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Keep prompts and completions in the audit log. Off by default: only metadata is recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit_content: bool,
    /// Name of the `PriorityTier` this tenant's requests run in; absent: the default tier (value 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_tier: Option<String>,
    /// Rate limits and budgets; absent fields are unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<TenantQuotas>,
    /// Limits on this tenant's waiting requests when capacity is contended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueuePolicy>,
    /// Kubernetes: accelerators this tenant's `ModelDeployment`s may hold, per accelerator class (e.g. `h100: 8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator_quota: Option<BTreeMap<String, u32>>,
    /// Kubernetes: the Kueue `LocalQueue` this tenant's workloads are labelled with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kueue_queue: Option<String>,
}

/// A tenant's quotas. Tokens are prompt plus completion tokens; budgets run per UTC calendar day or month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantQuotas {
    /// Requests per sliding minute; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<u32>,
    /// Tokens per sliding minute (reserved at admission as prompt + max_tokens, settled with actual usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrent_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_month: Option<u64>,
    /// Spend per UTC day, in the currency of the runtimes' prices (USD); greater than 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub cost_per_day: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub cost_per_month: Option<f64>,
}

/// How long and how many of a tenant's requests may wait for capacity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueuePolicy {
    /// Requests of this tenant waiting at once; beyond it: 429. At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_queued: Option<u32>,
    /// Longest wait before a request is answered 503 with `Retry-After`; at least 1 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
}

fn default_weight() -> f64 {
    1.0
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            display_name: None,
            weight: default_weight(),
            models: None,
            description: None,
            audit_content: false,
            priority_tier: None,
            quotas: None,
            queue: None,
            accelerator_quota: None,
            kueue_queue: None,
        }
    }
}

impl ResourceSpec for TenantSpec {
    const KIND: &'static str = "Tenant";
}

impl TenantSpec {
    /// Whether this tenant may call the model named `model` (its `metadata.name`).
    pub fn allows_model(&self, model: &str) -> bool {
        match &self.models {
            None => true,
            Some(list) => list.iter().any(|m| m == "*" || m == model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TenantSpec;

    #[test]
    fn allowed_models() {
        let all = TenantSpec::default();
        assert!(all.allows_model("x"));
        let star = TenantSpec {
            models: Some(vec!["*".into()]),
            ..TenantSpec::default()
        };
        assert!(star.allows_model("x"));
        let some = TenantSpec {
            models: Some(vec!["a".into()]),
            ..TenantSpec::default()
        };
        assert!(some.allows_model("a"));
        assert!(!some.allows_model("b"));
    }
}
