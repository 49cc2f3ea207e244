//! The `PriorityTier` spec: a priority class for tenants' requests (named so as not to clash with Kubernetes'
//! `PriorityClass`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ResourceSpec;

/// Spec of a `PriorityTier`. Under contention higher tiers are served first; a preemptible tier's queued requests
/// give way when a higher tier needs room; `minShare` is a floor of the contended capacity the tier keeps, so it
/// never starves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityTierSpec {
    /// Higher values go first. Tenants without a tier are in the default tier, value 0.
    pub value: i32,
    /// Queued requests of this tier may be evicted (503 with `Retry-After`) to make room for a higher tier.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preemptible: bool,
    /// Fraction of contended capacity this tier keeps even when higher tiers are busy, 0 to 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0, max = 1))]
    pub min_share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl ResourceSpec for PriorityTierSpec {
    const KIND: &'static str = "PriorityTier";
}
