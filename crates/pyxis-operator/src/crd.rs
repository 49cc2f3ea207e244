//! The Pyxis kinds as Kubernetes custom resources: each wraps a `pyxis-resources` spec, so the CRD schema is the
//! spec's own schema and a standalone YAML document and a custom resource have the same `spec`.

use std::collections::BTreeMap;
use std::ops::Deref;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use pyxis_resources::{ModelDeploymentSpec, ModelSpec, PriorityTierSpec, RoutingPolicySpec, RuntimeSpec, TenantSpec};

/// The API group of every Pyxis kind.
pub const GROUP: &str = "pyxis.dev";
/// The version of every Pyxis kind; `GROUP/VERSION` is `pyxis_resources::API_VERSION`.
pub const VERSION: &str = "v1alpha1";

/// A spec wrapper: the same JSON as the inner spec, and the same schema after [`crate::schema::structural`].
/// The wrappers carry no doc comment: schemars would make it the schema's description instead of the spec's.
macro_rules! wrap {
    ($(#[$attr:meta])* $name:ident($inner:ty)) => {
        #[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        $(#[$attr])*
        #[serde(transparent)]
        #[schemars(transparent, transform = crate::schema::structural)]
        pub struct $name(pub $inner);

        impl Deref for $name {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}

wrap!(
    #[kube(
        group = "pyxis.dev",
        version = "v1alpha1",
        kind = "Tenant",
        namespaced,
        status = "TenantStatus"
    )]
    #[kube(
        category = "pyxis",
        doc = "A team that calls the gateway; owns ModelDeployments and their accelerator quota."
    )]
    #[kube(printcolumn(name = "Weight", type_ = "number", json_path = ".spec.weight"))]
    #[kube(printcolumn(name = "Queue", type_ = "string", json_path = ".spec.kueueQueue"))]
    TenantCrdSpec(TenantSpec)
);

wrap!(
    #[kube(group = "pyxis.dev", version = "v1alpha1", kind = "Model", namespaced)]
    #[kube(
        category = "pyxis",
        doc = "A model clients can call, and the Runtimes that serve it."
    )]
    #[kube(printcolumn(name = "Served", type_ = "string", json_path = ".spec.servedName"))]
    #[kube(printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"))]
    ModelCrdSpec(ModelSpec)
);

wrap!(
    #[kube(group = "pyxis.dev", version = "v1alpha1", kind = "Runtime", namespaced)]
    #[kube(
        category = "pyxis",
        doc = "A pool of endpoints of one runtime kind on one accelerator class."
    )]
    #[kube(printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"))]
    #[kube(printcolumn(name = "Accelerator", type_ = "string", json_path = ".spec.accelerator.type"))]
    RuntimeCrdSpec(RuntimeSpec)
);

wrap!(
    #[kube(group = "pyxis.dev", version = "v1alpha1", kind = "PriorityTier", namespaced)]
    #[kube(category = "pyxis", doc = "A priority class for tenants' requests.")]
    #[kube(printcolumn(name = "Value", type_ = "integer", json_path = ".spec.value"))]
    #[kube(printcolumn(name = "Preemptible", type_ = "boolean", json_path = ".spec.preemptible"))]
    PriorityTierCrdSpec(PriorityTierSpec)
);

wrap!(
    #[kube(group = "pyxis.dev", version = "v1alpha1", kind = "RoutingPolicy", namespaced)]
    #[kube(category = "pyxis", doc = "How the gateway picks an endpoint for some models.")]
    RoutingPolicyCrdSpec(RoutingPolicySpec)
);

wrap!(
    #[kube(group = "pyxis.dev", version = "v1alpha1", kind = "ModelDeployment", namespaced)]
    #[kube(status = "ModelDeploymentStatus", category = "pyxis", shortname = "mdep")]
    #[kube(
        doc = "A model to run on a runtime kind and accelerator class; the operator makes its Deployment and Service."
    )]
    #[kube(printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"))]
    #[kube(printcolumn(name = "Runtime", type_ = "string", json_path = ".status.runtime"))]
    #[kube(printcolumn(name = "Accelerator", type_ = "string", json_path = ".spec.accelerator.type"))]
    #[kube(printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"))]
    #[kube(printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"))]
    #[kube(printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"))]
    ModelDeploymentCrdSpec(ModelDeploymentSpec)
);

/// A status condition, as Kubernetes' `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word, e.g. `QuotaExceeded`.
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Accelerator quota accounting of a deployment's tenant on its accelerator class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    pub tenant: String,
    /// Accelerator class, e.g. `h100`.
    pub class: String,
    /// Accelerators this deployment asks for (replicas × accelerator count).
    pub requested: u32,
    /// Accelerators of the class held by the tenant's admitted deployments, this one included when admitted.
    pub used: u32,
    /// The tenant's quota for the class; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Observed state of a `ModelDeployment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::structural)]
pub struct ModelDeploymentStatus {
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The runtime kind in use (the choice made for `runtime: auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name of the Service in front of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub ready_replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl ModelDeploymentStatus {
    /// The condition of type `ty`, if set.
    pub fn condition(&self, ty: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.r#type == ty)
    }
}

/// Observed state of a `Tenant`: what its ModelDeployments hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::structural)]
pub struct TenantStatus {
    /// Accelerators held by admitted ModelDeployments, per accelerator class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accelerator_usage: BTreeMap<String, u32>,
}

/// Every Pyxis CRD, in a fixed order (that of `pyxis crd` and of `deploy/crds/`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        Tenant::crd(),
        Model::crd(),
        Runtime::crd(),
        PriorityTier::crd(),
        RoutingPolicy::crd(),
        ModelDeployment::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let Ok(mut json) = serde_json::to_value(&crd) else {
            return crd;
        };
        crate::schema::int_or_string(&mut json);
        serde_json::from_value(json).unwrap_or(crd)
    })
    .collect()
}

/// Every CRD as its own YAML text with the file name it is committed under in `deploy/crds/`
/// (`<plural>.pyxis.dev.yaml`).
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            (format!("{name}.yaml"), to_yaml(crd))
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream, as printed by `pyxis crd` (`kubectl apply -f -` takes it).
pub fn crds_yaml() -> String {
    crd_files().into_iter().map(|(_, y)| format!("---\n{y}")).collect()
}

fn to_yaml(crd: &CustomResourceDefinition) -> String {
    // Serializing a typed, already-validated value cannot fail; an empty document would fail the drift test.
    serde_yaml_ng::to_string(crd).unwrap_or_default()
}
