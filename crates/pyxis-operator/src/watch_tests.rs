//! The fleet the gateway sees in Kubernetes mode: assembled from custom resources and EndpointSlices, and
//! streamed by `watch_fleet` from the (fake) API as they change.

use std::time::Duration;

use futures::StreamExt;
use pyxis_resources::{Fleet, RuntimeKind};
use serde_json::{Value, json};

use crate::assemble::{Snapshot, assemble};
use crate::fake::{Fake, path_of};
use crate::watch_fleet;

const NS: &str = "ml";
const API: &str = "pyxis.dev/v1alpha1";

fn tenant() -> Value {
    json!({"apiVersion": API, "kind": "Tenant", "metadata": {"name": "team-a", "namespace": NS},
           "spec": {"acceleratorQuota": {"h100": 8}}})
}

fn model(runtimes: &[&str]) -> Value {
    json!({"apiVersion": API, "kind": "Model", "metadata": {"name": "llama-8b", "namespace": NS},
           "spec": {"servedName": "meta-llama/Llama-3.1-8B-Instruct", "version": "3.1", "parameters": "8B",
                    "contextLength": 8192, "runtimes": runtimes}})
}

fn static_pool() -> Value {
    json!({"apiVersion": API, "kind": "Runtime", "metadata": {"name": "static-pool", "namespace": NS},
           "spec": {"kind": "vllm", "endpoints": ["http://10.9.0.1:8000"],
                    "accelerator": {"type": "a100", "memoryGiB": 80}}})
}

fn deployment(name: &str, runtime: Option<&str>) -> Value {
    let mut d = json!({"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": name, "namespace": NS},
           "spec": {"model": "llama-8b", "tenant": "team-a", "accelerator": {"type": "h100", "count": 2}}});
    if let Some(r) = runtime {
        d["status"] = json!({"runtime": r, "replicas": 1, "readyReplicas": 1});
    }
    d
}

/// An EndpointSlice of Service `service` with `(address, ready, terminating)` endpoints.
fn slice(name: &str, service: &str, family: &str, endpoints: &[(&str, Option<bool>, bool)]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(a, ready, term)| json!({"addresses": [a], "conditions": {"ready": ready, "terminating": term}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": NS, "labels": {"kubernetes.io/service-name": service}},
           "addressType": family, "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}], "endpoints": eps})
}

fn de<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn snapshot(models: Vec<Value>, deployments: Vec<Value>, slices: Vec<Value>) -> Snapshot {
    Snapshot {
        tenants: vec![de(tenant())],
        models: models.into_iter().map(de).collect(),
        runtimes: vec![de(static_pool())],
        model_deployments: deployments.into_iter().map(de).collect(),
        endpoint_slices: slices.into_iter().map(de).collect(),
        ..Snapshot::default()
    }
}

fn endpoints(fleet: &Fleet, runtime: &str) -> Vec<String> {
    fleet
        .runtime(runtime)
        .map(|r| r.spec.endpoint_urls().to_vec())
        .unwrap_or_default()
}

#[test]
fn ready_endpoints_become_a_runtime_linked_from_the_model() {
    let slices = vec![
        slice(
            "llama-h100-a",
            "llama-h100",
            "IPv4",
            &[("10.0.0.1", Some(true), false), ("10.0.0.2", Some(false), false)],
        ),
        slice(
            "llama-h100-b",
            "llama-h100",
            "IPv4",
            &[("10.0.0.3", None, false), ("10.0.0.4", Some(true), true)],
        ),
        slice("other", "something-else", "IPv4", &[("10.0.0.9", Some(true), false)]),
    ];
    let fleet = assemble(&snapshot(
        vec![model(&["static-pool"])],
        vec![deployment("llama-h100", Some("vllm"))],
        slices,
    ));
    assert_eq!(
        endpoints(&fleet, "llama-h100"),
        ["http://10.0.0.1:8000", "http://10.0.0.3:8000"]
    );
    let rt = fleet.runtime("llama-h100").unwrap();
    assert_eq!(rt.spec.kind, RuntimeKind::Vllm);
    assert_eq!(
        (rt.spec.accelerator.r#type.as_str(), rt.spec.accelerator.count),
        ("h100", 2)
    );
    assert_eq!(rt.spec.accelerator.memory_gib, 80.0);
    assert_eq!(rt.spec.dedicated_to.as_deref(), Some("team-a"));
    assert_eq!(
        fleet.model("llama-8b").unwrap().spec.runtimes,
        ["static-pool", "llama-h100"]
    );
    assert_eq!(fleet.model_deployments.len(), 1);
    assert_eq!(fleet.tenants.len(), 1);
    // What the gateway gets is what a fleet file with the same content parses to.
    assert_eq!(Fleet::parse(&fleet.to_yaml(), "again").unwrap(), fleet);
}

#[test]
fn a_deployment_without_ready_pods_is_not_a_runtime_yet() {
    let slices = vec![slice("s", "llama-h100", "IPv4", &[("10.0.0.1", Some(false), false)])];
    let fleet = assemble(&snapshot(
        vec![model(&["static-pool", "llama-h100"])],
        vec![deployment("llama-h100", Some("vllm"))],
        slices,
    ));
    assert!(fleet.runtime("llama-h100").is_none());
    assert_eq!(fleet.model("llama-8b").unwrap().spec.runtimes, ["static-pool"]);
    // Not deployed by the operator yet (no status): no runtime either.
    let slices = vec![slice("s", "llama-h100", "IPv4", &[("10.0.0.1", Some(true), false)])];
    let fleet = assemble(&snapshot(
        vec![model(&["llama-h100"])],
        vec![deployment("llama-h100", None)],
        slices,
    ));
    assert!(fleet.runtime("llama-h100").is_none());
    assert!(
        fleet.model("llama-8b").unwrap().spec.runtimes.is_empty(),
        "served by a deployment, none ready"
    );
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let slices = vec![slice("s", "llama-h100", "IPv6", &[("fd00::1", Some(true), false)])];
    let fleet = assemble(&snapshot(
        vec![model(&["static-pool"])],
        vec![deployment("llama-h100", Some("sglang"))],
        slices,
    ));
    assert_eq!(endpoints(&fleet, "llama-h100"), ["http://[fd00::1]:8000"]);
    assert_eq!(fleet.runtime("llama-h100").unwrap().spec.kind, RuntimeKind::Sglang);
}

#[test]
fn an_invalid_resource_is_left_out_and_the_rest_kept() {
    let mut s = snapshot(vec![model(&["static-pool"])], vec![], vec![]);
    s.routing_policies = vec![de(json!({"apiVersion": API, "kind": "RoutingPolicy",
        "metadata": {"name": "bad", "namespace": NS}, "spec": {"models": ["no-such-model"]}}))];
    s.model_deployments = vec![de(json!({"apiVersion": API, "kind": "ModelDeployment",
        "metadata": {"name": "orphan", "namespace": NS},
        "spec": {"model": "llama-8b", "tenant": "ghost", "accelerator": {"type": "h100"}}}))];
    let fleet = assemble(&s);
    assert!(fleet.routing_policies.is_empty());
    assert!(fleet.model_deployments.is_empty(), "its tenant does not exist");
    assert_eq!(fleet.models.len(), 1);
    assert_eq!(fleet.runtimes.len(), 1);
    assert_eq!(assemble(&Snapshot::default()), Fleet::default());
}

async fn next(fleets: &mut tokio::sync::mpsc::UnboundedReceiver<Fleet>) -> Fleet {
    tokio::time::timeout(Duration::from_secs(10), fleets.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn watch_fleet_yields_on_every_change() {
    let (fake, client) = Fake::new();
    for obj in [
        tenant(),
        model(&["static-pool"]),
        static_pool(),
        deployment("llama-h100", Some("vllm")),
    ] {
        fake.insert(obj);
    }
    let first = slice("llama-h100-a", "llama-h100", "IPv4", &[("10.0.0.1", Some(true), false)]);
    let slice_path = fake.insert(first);
    // Polled by its own task, as the gateway would, so the watches open while the test waits.
    let (tx, mut fleets) = tokio::sync::mpsc::unbounded_channel();
    let stream = watch_fleet(client, Some(NS.to_string()));
    let pump = tokio::spawn(stream.for_each(move |f| {
        let _ = tx.send(f);
        futures::future::ready(())
    }));

    let fleet = next(&mut fleets).await;
    assert_eq!(endpoints(&fleet, "llama-h100"), ["http://10.0.0.1:8000"]);
    assert_eq!(
        fleet.model("llama-8b").unwrap().spec.runtimes,
        ["static-pool", "llama-h100"]
    );
    // Changes made before a watch is open would be missed by this fake (a real server replays them).
    tokio::time::timeout(Duration::from_secs(10), async {
        while fake.watching() < 7 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    fake.insert(slice(
        "llama-h100-a",
        "llama-h100",
        "IPv4",
        &[("10.0.0.1", Some(true), false), ("10.0.0.2", Some(true), false)],
    ));
    let fleet = next(&mut fleets).await;
    assert_eq!(
        endpoints(&fleet, "llama-h100"),
        ["http://10.0.0.1:8000", "http://10.0.0.2:8000"]
    );

    fake.remove(&slice_path);
    let fleet = next(&mut fleets).await;
    assert!(fleet.runtime("llama-h100").is_none());
    assert_eq!(fleet.model("llama-8b").unwrap().spec.runtimes, ["static-pool"]);

    // A change that does not alter the fleet yields nothing; the next real change does.
    let mut md = fake.object(&path_of(API, "ModelDeployment", NS, "llama-h100")).unwrap();
    md["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    fake.insert(md);
    fake.insert(
        json!({"apiVersion": API, "kind": "PriorityTier", "metadata": {"name": "gold", "namespace": NS},
                       "spec": {"value": 10}}),
    );
    let fleet = next(&mut fleets).await;
    assert_eq!(fleet.priority_tiers.len(), 1);
    assert!(
        fleets.try_recv().is_err(),
        "the annotation-only change yielded no fleet"
    );
    pump.abort();
}
