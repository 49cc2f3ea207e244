//! The tenancy, routing and deployment kinds: tenant quotas and tiers, `PriorityTier`, `RoutingPolicy`,
//! `ModelDeployment`, their defaults, cross-references and located errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{FLEET, errors};
use pyxis_resources::{DeployRuntime, Fleet, RuntimeKind};

const MORE: &str = "
---
apiVersion: pyxis.dev/v1alpha1
kind: PriorityTier
metadata: {name: interactive}
spec: {value: 100, minShare: 0.1}
---
apiVersion: pyxis.dev/v1alpha1
kind: PriorityTier
metadata: {name: batch}
spec: {value: 0, preemptible: true}
---
apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {name: search}
spec:
  weight: 2
  priorityTier: interactive
  quotas: {requestsPerMinute: 600, tokensPerMinute: 200000, concurrentRequests: 16, costPerDay: 50}
  queue: {maxQueued: 100, timeoutMs: 30000}
  acceleratorQuota: {h100: 8}
  kueueQueue: team-search
---
apiVersion: pyxis.dev/v1alpha1
kind: RoutingPolicy
metadata: {name: llama}
spec:
  models: [llama-3-8b]
  weights: {prefix: 2, cost: 0}
  latencyBudgetMs: 800
  hardware: [h100]
  retry: {maxAttempts: 2}
  ejection: {consecutiveFailures: 3, baseMs: 1000, maxMs: 8000}
---
apiVersion: pyxis.dev/v1alpha1
kind: RoutingPolicy
metadata: {name: everything-else}
spec: {models: [\"*\"]}
---
apiVersion: pyxis.dev/v1alpha1
kind: ModelDeployment
metadata: {name: llama-h100}
spec:
  model: llama-3-8b
  tenant: search
  accelerator: {type: h100, count: 2}
---
apiVersion: pyxis.dev/v1alpha1
kind: ModelDeployment
metadata: {name: llama-cpu}
spec:
  model: llama-3-8b
  runtime: llamacpp
  accelerator: {type: cpu}
  replicas: 3
  cache: {size: 20Gi}
";

fn full() -> String {
    format!("{FLEET}{MORE}")
}

#[test]
fn new_kinds_parse_with_defaults() {
    let f = Fleet::parse(&full(), "fleet.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.priority_tiers.len(), 2);
    let batch = f.priority_tier("batch").unwrap();
    assert!(batch.spec.preemptible);
    assert_eq!(batch.spec.min_share, 0.0);
    let t = f.tenant("search").unwrap();
    assert_eq!(t.spec.priority_tier.as_deref(), Some("interactive"));
    let q = t.spec.quotas.as_ref().unwrap();
    assert_eq!(
        (q.requests_per_minute, q.tokens_per_minute, q.concurrent_requests),
        (Some(600), Some(200_000), Some(16))
    );
    assert_eq!((q.tokens_per_day, q.cost_per_day), (None, Some(50.0)));
    assert_eq!(t.spec.queue.as_ref().unwrap().timeout_ms, Some(30_000));
    assert_eq!(t.spec.accelerator_quota.as_ref().unwrap()["h100"], 8);
    assert_eq!(f.routing_policy("llama-3-8b").unwrap().metadata.name, "llama");
    assert_eq!(
        f.routing_policy("other-model").unwrap().metadata.name,
        "everything-else"
    );
    let d = &f.model_deployments[0];
    assert_eq!((d.spec.runtime, d.spec.replicas), (DeployRuntime::Auto, 1));
    assert_eq!(d.spec.runtime.kind(), None);
    assert_eq!(f.model_deployments[1].spec.runtime.kind(), Some(RuntimeKind::Llamacpp));
    assert_eq!(f.model_deployments[1].spec.runtime.to_string(), "llamacpp");
    let yaml = f.to_yaml();
    assert_eq!(Fleet::parse(&yaml, "out.yaml"), Ok(f), "{yaml}");
}

#[test]
fn no_policy_without_a_default() {
    let f = Fleet::parse(FLEET, "fleet.yaml").unwrap();
    assert!(f.routing_policy("llama-3-8b").is_none());
}

#[test]
fn references_and_ranges_are_checked() {
    let src = full()
        .replace("priorityTier: interactive", "priorityTier: gold")
        .replace("minShare: 0.1", "minShare: 1.5")
        .replace("requestsPerMinute: 600", "requestsPerMinute: 0")
        .replace("models: [\"*\"]", "models: [\"*\", nope]")
        .replace("maxMs: 8000", "maxMs: 10")
        .replace("tenant: search", "tenant: nobody")
        .replace("runtime: llamacpp", "runtime: openai");
    let errs = errors(&src);
    let want = [
        "PriorityTier \"interactive\": spec.minShare: must be between 0 and 1, got 1.5",
        "Tenant \"search\": spec.priorityTier: no PriorityTier named \"gold\" (known: batch, interactive)",
        "Tenant \"search\": spec.quotas.requestsPerMinute: must be at least 1 (remove the field for no limit)",
        "RoutingPolicy \"llama\": spec.ejection.maxMs: must be at least baseMs (1000)",
        "RoutingPolicy \"everything-else\": spec.models[1]: no Model named \"nope\" (known: llama-3-8b)",
        "ModelDeployment \"llama-h100\": spec.tenant: no Tenant named \"nobody\" (known: search)",
        "ModelDeployment \"llama-cpu\": spec.runtime: unknown variant `openai`",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.contains(w), "{e}\n does not contain\n{w}");
    }
}

#[test]
fn a_model_has_one_policy() {
    let src = full().replace("models: [\"*\"]", "models: [llama-3-8b]");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("Model \"llama-3-8b\" already has the RoutingPolicy \"llama\""),
        "{}",
        errs[0]
    );
}

#[test]
fn a_model_needs_runtimes_or_a_deployment() {
    let src = full().replace("runtimes: [h100-pool, a100-pool]", "runtimes: []");
    assert_eq!(errors(&src), Vec::<String>::new());
    let src = FLEET.replace("runtimes: [h100-pool, a100-pool]", "runtimes: []");
    let errs = errors(&src);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("must name at least one Runtime (or be served by a ModelDeployment)"));
}
