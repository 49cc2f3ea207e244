//! The `Model` spec: a model, its size and numeric precision, and the `Runtime`s that serve it.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;
use crate::meta::{Metadata, Resource, ResourceSpec};

/// Spec of a `Model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The model id the runtimes know it by; defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_name: Option<String>,
    /// Version of the weights, e.g. `"3.1"`; recorded in audit and lineage.
    pub version: String,
    /// Parameter count; in YAML an integer or a string with a suffix such as `"8B"`, `"1.5B"` or `"560M"`.
    #[serde(deserialize_with = "crate::params::deserialize")]
    #[schemars(schema_with = "crate::params::schema")]
    pub parameters: u64,
    /// Longest context (prompt plus completion) in tokens; greater than 0.
    #[schemars(range(min = 1))]
    pub context_length: u32,
    /// Names of the `Runtime` resources that serve this model; at least one unless a `ModelDeployment` serves it.
    pub runtimes: Vec<String>,
    #[serde(default)]
    pub precision: Precision,
    /// An embedding model (served on `/v1/embeddings`) rather than a generative one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedding: bool,
}

impl ResourceSpec for ModelSpec {
    const KIND: &'static str = "Model";
}

impl ModelSpec {
    /// The name the runtimes know this model by: `servedName`, else `metadata.name`.
    pub fn served_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.served_name.as_deref().unwrap_or(&meta.name)
    }

    /// Memory taken by the weights alone, in GiB.
    pub fn weights_gib(&self) -> f64 {
        self.parameters as f64 * self.precision.bytes_per_param() / f64::from(1u32 << 30)
    }
}

impl Resource<ModelSpec> {
    /// The name the runtimes know this model by: `spec.servedName`, else `metadata.name`.
    pub fn served_name(&self) -> &str {
        self.spec.served_name(&self.metadata)
    }
}

/// Numeric format of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp16,
    #[default]
    Bf16,
    Fp8,
    Int8,
    Int4,
}

impl Precision {
    pub const ALL: [Precision; 5] = [
        Precision::Fp16,
        Precision::Bf16,
        Precision::Fp8,
        Precision::Int8,
        Precision::Int4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
        }
    }

    /// Bytes one weight takes in memory.
    pub fn bytes_per_param(self) -> f64 {
        match self {
            Precision::Fp16 | Precision::Bf16 => 2.0,
            Precision::Fp8 | Precision::Int8 => 1.0,
            Precision::Int4 => 0.5,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "precision",
                value: s.to_string(),
                expected: Precision::ALL.map(Precision::as_str).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Precision;

    #[test]
    fn precision_round_trips() {
        for p in Precision::ALL {
            assert_eq!(p.as_str().parse::<Precision>(), Ok(p));
        }
        assert_eq!(
            "fp32".parse::<Precision>().map_err(|e| e.to_string()),
            Err("unknown precision \"fp32\" (expected one of: fp16, bf16, fp8, int8, int4)".into())
        );
        assert_eq!(Precision::Int4.bytes_per_param(), 0.5);
    }
}
