//! The `Runtime` spec: a pool of endpoints of one runtime kind on one hardware class, real or simulated.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;
use crate::meta::ResourceSpec;

/// Spec of a `Runtime`. Exactly one of `endpoints` (a real runtime) and `simulated` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeSpec {
    pub kind: RuntimeKind,
    /// Base URLs of the servers (`http` or `https`, absolute, no query), e.g. `http://10.0.0.5:8000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
    /// Serve this pool with the built-in simulator instead of real servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<Simulated>,
    pub accelerator: Accelerator,
    /// Where the pool runs, e.g. `aws`, `gcp`, `onprem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Price of one accelerator for one hour, for cost attribution; at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub price_per_accelerator_hour: Option<f64>,
    /// Price per million tokens (prompt plus completion), for hosted APIs billed per token; at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub price_per_million_tokens: Option<f64>,
    /// Name of the environment variable that holds the bearer token the gateway sends upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Tokens (prompt + max output) the gateway keeps in flight on one endpoint before requests wait in its
    /// fair queue; default: an estimate of the KV cache the accelerators hold after the weights. At least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_in_flight_tokens: Option<u64>,
    /// Name of the `Tenant` this capacity is dedicated to: that tenant is charged for it by the
    /// accelerator-hour whether it uses it or not (docs/cost.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_to: Option<String>,
}

impl ResourceSpec for RuntimeSpec {
    const KIND: &'static str = "Runtime";
}

impl RuntimeSpec {
    pub fn is_simulated(&self) -> bool {
        self.simulated.is_some()
    }

    /// The real endpoints (empty for a simulated runtime).
    pub fn endpoint_urls(&self) -> &[String] {
        self.endpoints.as_deref().unwrap_or_default()
    }
}

/// The hardware every endpoint of a runtime runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Accelerator {
    /// Accelerator class in lowercase, e.g. `h100`, `a100`, `l4`, `mi300x`, `cpu`.
    pub r#type: String,
    /// Accelerators per endpoint; at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub count: u32,
    /// Memory of one accelerator in GiB; greater than 0.
    #[serde(rename = "memoryGiB")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub memory_gib: f64,
}

impl Accelerator {
    /// Memory of all accelerators of one endpoint, in GiB.
    pub fn total_memory_gib(&self) -> f64 {
        self.memory_gib * f64::from(self.count)
    }
}

/// Settings of a simulated runtime (the built-in engine simulator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Simulated {
    /// Simulated servers in the pool; at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// How much faster than real time the simulator runs; greater than 0.
    #[serde(default = "unit")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub speedup: f64,
    /// Seed of the simulator's randomness, for repeatable runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for Simulated {
    fn default() -> Self {
        Simulated {
            replicas: 1,
            speedup: 1.0,
            seed: None,
        }
    }
}

fn one() -> u32 {
    1
}

fn unit() -> f64 {
    1.0
}

/// The inference server software of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeKind {
    Vllm,
    Sglang,
    Tgi,
    Triton,
    TensorrtLlm,
    Ollama,
    Llamacpp,
    /// Any OpenAI-compatible server, including hosted APIs.
    Openai,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 8] = [
        RuntimeKind::Vllm,
        RuntimeKind::Sglang,
        RuntimeKind::Tgi,
        RuntimeKind::Triton,
        RuntimeKind::TensorrtLlm,
        RuntimeKind::Ollama,
        RuntimeKind::Llamacpp,
        RuntimeKind::Openai,
    ];

    /// The name used in YAML, e.g. `tensorrt-llm`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Vllm => "vllm",
            RuntimeKind::Sglang => "sglang",
            RuntimeKind::Tgi => "tgi",
            RuntimeKind::Triton => "triton",
            RuntimeKind::TensorrtLlm => "tensorrt-llm",
            RuntimeKind::Ollama => "ollama",
            RuntimeKind::Llamacpp => "llamacpp",
            RuntimeKind::Openai => "openai",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RuntimeKind {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuntimeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "runtime kind",
                value: s.to_string(),
                expected: RuntimeKind::ALL.map(RuntimeKind::as_str).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeKind;

    #[test]
    fn kind_names_match_serde() {
        for k in RuntimeKind::ALL {
            let yaml = serde_yaml_ng::to_string(&k).unwrap_or_default();
            assert_eq!(yaml.trim(), k.as_str());
            assert_eq!(k.as_str().parse::<RuntimeKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert!("vLLM".parse::<RuntimeKind>().is_err());
    }
}
