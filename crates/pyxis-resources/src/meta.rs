//! The resource envelope shared by every kind: `apiVersion`, `kind`, `metadata`, `spec`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Identifying data of a resource. `name` is unique per kind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 63 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Metadata {
            name: name.into(),
            ..Metadata::default()
        }
    }
}

/// A spec type that is the `spec` of one resource kind.
pub trait ResourceSpec {
    /// The `kind` string, e.g. `"Model"`.
    const KIND: &'static str;
}

/// One standalone resource document: the envelope around a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource<S> {
    /// Always [`crate::API_VERSION`].
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
}

impl<S: ResourceSpec> Resource<S> {
    /// A resource of `S`'s kind with the current API version and the given name.
    pub fn new(name: impl Into<String>, spec: S) -> Self {
        Resource {
            api_version: crate::API_VERSION.to_string(),
            kind: S::KIND.to_string(),
            metadata: Metadata::named(name),
            spec,
        }
    }
}

impl<S> Resource<S> {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// Longest allowed `metadata.name`.
pub const MAX_NAME_LEN: usize = 63;

/// Whether `name` is a valid `metadata.name`: DNS-1123-like, lowercase alphanumerics, `-` and `.`, starting and
/// ending with an alphanumeric, 1 to 63 characters.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'.')
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
}

#[cfg(test)]
mod tests {
    use super::is_valid_name;

    #[test]
    fn names() {
        for ok in ["a", "llama-3-8b", "qwen2.5-7b", "h100-pool", &"a".repeat(63)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "Llama", "a_b", "-a", "a-", ".a", "a b", "é", &"a".repeat(64)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
