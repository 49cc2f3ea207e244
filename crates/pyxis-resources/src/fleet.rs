//! A whole fleet file: every Tenant, Model and Runtime, parsed, validated and cross-checked.

use std::path::Path;

use serde::Serialize;

use crate::error::{ConfigError, ConfigErrors};
use crate::parse::{AnyResource, parse_document};
use crate::split::split;
use crate::validate::{check_fleet, check_resource};
use crate::{Model, ModelDeployment, PriorityTier, RoutingPolicy, Runtime, Tenant};

/// The embedded demo fleet served by `pyxis serve` without `-f` (examples/demo-fleet.yaml).
pub const DEMO_FLEET_YAML: &str = include_str!("../../../examples/demo-fleet.yaml");

/// All resources of a fleet, each kind in file order. A `Fleet` from [`Fleet::parse`] is valid: names are unique
/// per kind and every `Model.runtimes` entry names one of `runtimes`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fleet {
    pub tenants: Vec<Tenant>,
    pub models: Vec<Model>,
    pub runtimes: Vec<Runtime>,
    pub priority_tiers: Vec<PriorityTier>,
    pub routing_policies: Vec<RoutingPolicy>,
    pub model_deployments: Vec<ModelDeployment>,
}

impl Fleet {
    /// Parses and validates a multi-document YAML fleet. `file_name` is only used in error messages.
    /// On failure returns every error found, in file order.
    pub fn parse(src: &str, file_name: &str) -> Result<Fleet, ConfigErrors> {
        let docs = split(src);
        if docs.is_empty() {
            return Err(ConfigError::new(
                file_name,
                Some(1),
                None,
                "no resources found: expected YAML documents with apiVersion, kind, metadata and spec",
            )
            .into());
        }
        let mut errors = Vec::new();
        let parsed: Vec<_> = docs.iter().map(|d| parse_document(file_name, d, &mut errors)).collect();
        for p in &parsed {
            if let Some(res) = &p.resource {
                check_resource(&p.cx, res, &mut errors);
            }
        }
        check_fleet(&parsed, &mut errors);
        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.line, e.column));
            return Err(ConfigErrors(errors));
        }
        let mut fleet = Fleet::default();
        for p in parsed {
            match p.resource {
                Some(AnyResource::Tenant(t)) => fleet.tenants.push(t),
                Some(AnyResource::Model(m)) => fleet.models.push(m),
                Some(AnyResource::Runtime(r)) => fleet.runtimes.push(r),
                Some(AnyResource::PriorityTier(r)) => fleet.priority_tiers.push(r),
                Some(AnyResource::RoutingPolicy(r)) => fleet.routing_policies.push(r),
                Some(AnyResource::ModelDeployment(r)) => fleet.model_deployments.push(r),
                None => {}
            }
        }
        Ok(fleet)
    }

    /// Reads and parses a fleet file; errors name the file as given. A read failure is one error without a line.
    pub fn load_file(path: &Path) -> Result<Fleet, ConfigErrors> {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&name, None, None, format!("cannot read the file: {e}")))?;
        Fleet::parse(&src, &name)
    }

    /// The embedded demo fleet ([`DEMO_FLEET_YAML`]): simulated runtimes on three hardware classes.
    pub fn demo() -> Fleet {
        // The file is checked by this crate's tests, so the fallback is never taken.
        Fleet::parse(DEMO_FLEET_YAML, "demo-fleet.yaml").unwrap_or_default()
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.metadata.name == name)
    }

    pub fn runtime(&self, name: &str) -> Option<&Runtime> {
        self.runtimes.iter().find(|r| r.metadata.name == name)
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.metadata.name == name)
    }

    pub fn priority_tier(&self, name: &str) -> Option<&PriorityTier> {
        self.priority_tiers.iter().find(|t| t.metadata.name == name)
    }

    /// The routing policy of a model: the one naming it, else the catch-all (`"*"`) one, else none.
    pub fn routing_policy(&self, model: &str) -> Option<&RoutingPolicy> {
        let named = self.routing_policies.iter().find(|p| p.spec.names(model));
        named.or_else(|| self.routing_policies.iter().find(|p| p.spec.is_default()))
    }

    /// The fleet as multi-document YAML (tiers, tenants, runtimes, models, policies, deployments); [`Fleet::parse`]
    /// reads it back unchanged.
    pub fn to_yaml(&self) -> String {
        fn doc<T: Serialize>(r: &T) -> String {
            serde_yaml_ng::to_string(r).unwrap_or_default()
        }
        let docs: Vec<String> = self
            .priority_tiers
            .iter()
            .map(doc)
            .chain(self.tenants.iter().map(doc))
            .chain(self.runtimes.iter().map(doc))
            .chain(self.models.iter().map(doc))
            .chain(self.routing_policies.iter().map(doc))
            .chain(self.model_deployments.iter().map(doc))
            .collect();
        docs.iter().map(|d| format!("---\n{d}")).collect()
    }
}
