//! Kubernetes-style declarative resources of a Pyxis fleet (Tenant, Model, Runtime, PriorityTier, RoutingPolicy,
//! ModelDeployment), parsed and validated from YAML.
//!
//! A fleet file holds several YAML documents separated by `---`; each is one resource with `apiVersion`, `kind`,
//! `metadata` and `spec`. [`Fleet::parse`] reads them all and returns either a consistent [`Fleet`] or every
//! problem found, each located by file, line and column ([`ConfigErrors`]).
//!
//! The `*Spec` types are plain serde + [`schemars::JsonSchema`] types so that an operator crate can wrap them in
//! Kubernetes CRDs without this crate depending on kube.

mod deployment;
mod error;
mod fleet;
mod locate;
mod meta;
mod model;
mod params;
mod parse;
mod priority;
mod routing;
mod runtime;
mod split;
mod tenant;
mod url;
mod validate;

pub use deployment::{DeployAccelerator, DeployRuntime, ModelCache, ModelDeploymentSpec};
pub use error::{ConfigError, ConfigErrors, ParseEnumError};
pub use fleet::{DEMO_FLEET_YAML, Fleet};
pub use meta::{Metadata, Resource, ResourceSpec, is_valid_name};
pub use model::{ModelSpec, Precision};
pub use params::parse_parameters;
pub use priority::PriorityTierSpec;
pub use routing::{EjectionPolicy, RetryPolicy, RoutingPolicySpec, RoutingWeights};
pub use runtime::{Accelerator, RuntimeKind, RuntimeSpec, Simulated};
pub use tenant::{QueuePolicy, TenantQuotas, TenantSpec};

/// The only `apiVersion` this crate accepts.
pub const API_VERSION: &str = "pyxis.dev/v1alpha1";

/// A `Tenant` resource: a team that calls the gateway, with a fair-share weight and the models it may use.
pub type Tenant = Resource<TenantSpec>;
/// A `Model` resource: a model, its size and the runtimes that serve it.
pub type Model = Resource<ModelSpec>;
/// A `Runtime` resource: a pool of endpoints of one runtime kind on one hardware class.
pub type Runtime = Resource<RuntimeSpec>;

/// A `PriorityTier` resource: a priority class for tenants' requests.
pub type PriorityTier = Resource<PriorityTierSpec>;
/// A `RoutingPolicy` resource: scorer weights and constraints for routing some models.
pub type RoutingPolicy = Resource<RoutingPolicySpec>;
/// A `ModelDeployment` resource: a model to run on a runtime kind and accelerator class (Kubernetes operator).
pub type ModelDeployment = Resource<ModelDeploymentSpec>;

/// The kinds this crate knows, in the order they are listed in error messages.
pub const KINDS: [&str; 6] = [
    "Model",
    "ModelDeployment",
    "PriorityTier",
    "RoutingPolicy",
    "Runtime",
    "Tenant",
];
