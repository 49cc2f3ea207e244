//! The `Tenant` spec: a team that calls the gateway, its fair-share weight and the models it may use.

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
