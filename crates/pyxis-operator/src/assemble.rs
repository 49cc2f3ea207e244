//! Turns what the cluster holds (the Pyxis custom resources and the EndpointSlices of the operator's Services) into
//! one valid [`Fleet`]: pure, so the gateway's Kubernetes mode is tested without a cluster.
//!
//! Each ModelDeployment with ready pods becomes a `Runtime` named after it, whose endpoints are the ready addresses
//! of its Service's EndpointSlices, listed in its Model's `runtimes`. The result goes through `Fleet::parse`, the
//! same validation as a fleet file; a resource that fails it is left out (and logged) rather than failing the
//! whole fleet, since in a cluster one bad object must not stop every update.

use std::collections::BTreeSet;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use pyxis_resources::{Accelerator, ConfigError, Fleet, Metadata, Resource, ResourceSpec, RuntimeKind, RuntimeSpec};
use serde::Serialize;
use tracing::warn;

use crate::catalog::{memory_gib, profile};
use crate::crd;
use crate::workload::HTTP_PORT_NAME;

/// Label the EndpointSlice controller puts on every slice: the name of its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Everything the fleet is made from, as listed from the cluster.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub tenants: Vec<crd::Tenant>,
    pub models: Vec<crd::Model>,
    pub runtimes: Vec<crd::Runtime>,
    pub priority_tiers: Vec<crd::PriorityTier>,
    pub routing_policies: Vec<crd::RoutingPolicy>,
    pub model_deployments: Vec<crd::ModelDeployment>,
    pub endpoint_slices: Vec<EndpointSlice>,
}

/// A standalone resource from a custom resource's metadata and spec. `last-applied-configuration` is dropped: it
/// is a copy of the object that only kubectl reads.
pub fn resource<S: ResourceSpec + Clone>(meta: &ObjectMeta, spec: &S) -> Resource<S> {
    let mut r = Resource::new(meta.name.clone().unwrap_or_default(), spec.clone());
    r.metadata = Metadata {
        name: r.metadata.name,
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    r
}

/// Base URLs of the ready, not terminating endpoints of the Service `service`, sorted.
pub fn ready_endpoints(service: &str, namespace: Option<&str>, slices: &[EndpointSlice], port: u16) -> Vec<String> {
    let mut urls = BTreeSet::new();
    for s in slices {
        let labels = s.metadata.labels.as_ref();
        if labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str) != Some(service)
            || s.metadata.namespace.as_deref() != namespace
        {
            continue;
        }
        let port = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(HTTP_PORT_NAME))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(port);
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            // An unset `ready` means "unknown", which Kubernetes asks consumers to treat as ready.
            if c.ready == Some(false) || c.terminating == Some(true) {
                continue;
            }
            for a in &e.addresses {
                let host = if s.address_type == "IPv6" {
                    format!("[{a}]")
                } else {
                    a.clone()
                };
                urls.insert(format!("http://{host}:{port}"));
            }
        }
    }
    urls.into_iter().collect()
}

/// The `Runtime` standing for a ModelDeployment's pods, when the operator has deployed it and some are ready.
pub fn deployment_runtime(md: &crd::ModelDeployment, slices: &[EndpointSlice]) -> Option<Resource<RuntimeSpec>> {
    let kind: RuntimeKind = md.status.as_ref()?.runtime.as_deref()?.parse().ok()?;
    let port = md.spec.port.or(profile(kind).map(|p| p.port))?;
    let endpoints = ready_endpoints(&md.name_any(), md.metadata.namespace.as_deref(), slices, port);
    if endpoints.is_empty() {
        return None;
    }
    let class = md.spec.accelerator.r#type.clone();
    let spec = RuntimeSpec {
        kind,
        endpoints: Some(endpoints),
        simulated: None,
        accelerator: Accelerator {
            memory_gib: memory_gib(&class),
            r#type: class,
            count: md.spec.accelerator.count,
        },
        cloud: None,
        region: None,
        price_per_accelerator_hour: None,
        price_per_million_tokens: None,
        api_key_env: None,
        // The tenant that owns the deployment pays for its accelerators, used or not.
        max_in_flight_tokens: None,
        dedicated_to: md.spec.tenant.clone(),
    };
    let mut r = resource(&md.metadata, &spec);
    r.metadata
        .labels
        .insert("pyxis.dev/model-deployment".into(), md.name_any());
    Some(r)
}

/// One YAML document of the fleet under construction.
fn doc<T: Serialize>(r: &T) -> Option<String> {
    serde_yaml_ng::to_string(r).ok()
}

/// The fleet the cluster describes. Never fails: resources that do not validate are left out, each error logged.
pub fn assemble(s: &Snapshot) -> Fleet {
    let derived: Vec<Resource<RuntimeSpec>> = s
        .model_deployments
        .iter()
        .filter_map(|md| deployment_runtime(md, &s.endpoint_slices))
        .collect();
    let derived_names: BTreeSet<&str> = derived.iter().map(|r| r.name()).collect();
    // Names of deployments without ready pods: a Model may list them, but they are not Runtimes (yet).
    let waiting: BTreeSet<String> = s
        .model_deployments
        .iter()
        .map(|m| m.name_any())
        .filter(|n| !derived_names.contains(n.as_str()))
        .collect();

    let mut docs: Vec<String> = Vec::new();
    docs.extend(
        s.priority_tiers
            .iter()
            .filter_map(|r| doc(&resource(&r.metadata, &r.spec.0))),
    );
    docs.extend(s.tenants.iter().filter_map(|r| doc(&resource(&r.metadata, &r.spec.0))));
    docs.extend(s.runtimes.iter().filter_map(|r| doc(&resource(&r.metadata, &r.spec.0))));
    docs.extend(derived.iter().filter_map(doc));
    for m in &s.models {
        let mut model = resource(&m.metadata, &m.spec.0);
        model.spec.runtimes.retain(|r| !waiting.contains(r));
        for r in &derived {
            let serves = s
                .model_deployments
                .iter()
                .any(|md| md.name_any() == r.name() && md.spec.model == model.name());
            if serves && !model.spec.runtimes.iter().any(|n| n == r.name()) {
                model.spec.runtimes.push(r.name().to_string());
            }
        }
        docs.extend(doc(&model));
    }
    docs.extend(
        s.routing_policies
            .iter()
            .filter_map(|r| doc(&resource(&r.metadata, &r.spec.0))),
    );
    docs.extend(
        s.model_deployments
            .iter()
            .filter_map(|r| doc(&resource(&r.metadata, &r.spec.0))),
    );
    validate(docs)
}

const SOURCE: &str = "kubernetes";

/// Parses the documents as one fleet; while some fail, drops those (errors are located by line) and tries again.
fn validate(mut docs: Vec<String>) -> Fleet {
    loop {
        if docs.is_empty() {
            return Fleet::default();
        }
        let mut starts = Vec::with_capacity(docs.len());
        let mut text = String::new();
        let mut line = 1;
        for d in &docs {
            starts.push(line);
            text.push_str("---\n");
            text.push_str(d);
            line += 1 + d.lines().count();
        }
        let errors = match Fleet::parse(&text, SOURCE) {
            Ok(fleet) => return fleet,
            Err(e) => e,
        };
        let bad: BTreeSet<usize> = errors
            .iter()
            .filter_map(|e: &ConfigError| e.line)
            .map(|l| starts.partition_point(|s| *s <= l).saturating_sub(1))
            .collect();
        for e in errors.iter() {
            warn!(error = %e.message, "a Kubernetes resource is left out of the fleet");
        }
        if bad.is_empty() {
            return Fleet::default();
        }
        let mut i = 0;
        docs.retain(|_| {
            i += 1;
            !bad.contains(&(i - 1))
        });
    }
}
