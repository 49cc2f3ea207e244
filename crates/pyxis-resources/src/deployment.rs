//! The `ModelDeployment` spec: asks the operator to run a model on a runtime kind and an accelerator class.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ResourceSpec;
use crate::runtime::RuntimeKind;

/// Spec of a `ModelDeployment`: on Kubernetes, `pyxis operator` turns it into a Deployment and a Service of the
/// chosen runtime, and the gateway routes the model to its ready pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelDeploymentSpec {
    /// Name of the `Model` to serve.
    pub model: String,
    /// The `Tenant` that owns this capacity (its `acceleratorQuota` applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Runtime kind, or `auto` to pick one for the accelerator class.
    #[serde(default)]
    pub runtime: DeployRuntime,
    /// With `runtime: auto`, the kinds to try in order instead of the built-in order for the accelerator class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Vec<RuntimeKind>>,
    pub accelerator: DeployAccelerator,
    /// Pods to run; at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// Where the weights come from: a Hugging Face repository id or a path in the cache volume. Default: the
    /// model's `servedName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Container image; default: the runtime kind's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Extra arguments appended to the runtime's command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables of the runtime container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A persistent volume for downloaded weights; absent: an `emptyDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ModelCache>,
    /// Port the runtime listens on; default per runtime kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

fn one() -> u32 {
    1
}

impl ResourceSpec for ModelDeploymentSpec {
    const KIND: &'static str = "ModelDeployment";
}

/// A runtime kind, or `auto`. The names are those of [`RuntimeKind`] (except `openai`, which is not deployable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployRuntime {
    /// Pick for the accelerator class.
    #[default]
    Auto,
    Vllm,
    Sglang,
    Tgi,
    Triton,
    TensorrtLlm,
    Ollama,
    Llamacpp,
}

impl DeployRuntime {
    /// The runtime kind, `None` for `auto`.
    pub fn kind(self) -> Option<RuntimeKind> {
        Some(match self {
            DeployRuntime::Auto => return None,
            DeployRuntime::Vllm => RuntimeKind::Vllm,
            DeployRuntime::Sglang => RuntimeKind::Sglang,
            DeployRuntime::Tgi => RuntimeKind::Tgi,
            DeployRuntime::Triton => RuntimeKind::Triton,
            DeployRuntime::TensorrtLlm => RuntimeKind::TensorrtLlm,
            DeployRuntime::Ollama => RuntimeKind::Ollama,
            DeployRuntime::Llamacpp => RuntimeKind::Llamacpp,
        })
    }
}

impl fmt::Display for DeployRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            None => f.write_str("auto"),
            Some(k) => k.fmt(f),
        }
    }
}

/// The accelerators of one pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployAccelerator {
    /// Accelerator class in lowercase, e.g. `h100`, `a100`, `l4`, `mi300x`, `cpu`.
    pub r#type: String,
    /// Accelerators per pod (the tensor-parallel size); at least 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub count: u32,
}

/// A persistent volume claim for model weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelCache {
    /// Requested size as a Kubernetes quantity, e.g. `200Gi`.
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}
