//! Reconcile scenarios against the in-process fake API: the exact objects applied (bodies, field manager), the
//! status written, finalizers, quota, Kueue labels, events, errors and back-off.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::crd::ModelDeployment;
use crate::fake::{Call, Fake, path_of};
use crate::reconcile::{Context, FINALIZER, backoff, error_policy, reconcile};
use crate::workload::BuildOptions;

const NS: &str = "ml";
const NOW: &str = "2026-02-01T00:00:00Z";
const API: &str = "pyxis.dev/v1alpha1";

fn md_path(name: &str) -> String {
    path_of(API, "ModelDeployment", NS, name)
}

fn tenant_path(name: &str) -> String {
    path_of(API, "Tenant", NS, name)
}

fn dep_path(name: &str) -> String {
    path_of("apps/v1", "Deployment", NS, name)
}

fn svc_path(name: &str) -> String {
    path_of("v1", "Service", NS, name)
}

fn setup(kueue: bool) -> (Fake, Arc<Context>) {
    let (fake, client) = Fake::new();
    let ctx = Context::new(client, BuildOptions::default(), kueue).with_clock(Arc::new(|| NOW.to_string()));
    fake.insert(json!({
        "apiVersion": API, "kind": "Model",
        "metadata": {"name": "llama-8b", "namespace": NS},
        "spec": {"servedName": "meta-llama/Llama-3.1-8B-Instruct", "version": "3.1", "parameters": "8B",
                 "contextLength": 8192, "runtimes": ["llama-h100"]}
    }));
    fake.insert(json!({
        "apiVersion": API, "kind": "Tenant",
        "metadata": {"name": "team-a", "namespace": NS},
        "spec": {"acceleratorQuota": {"h100": 8}, "kueueQueue": "team-a-queue"}
    }));
    (fake, Arc::new(ctx))
}

/// Inserts a ModelDeployment that already carries the finalizer; returns it as the controller would see it.
fn deployment(fake: &Fake, name: &str, spec: Value) -> Arc<ModelDeployment> {
    fake.insert(json!({
        "apiVersion": API, "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NS, "finalizers": [FINALIZER]},
        "spec": spec
    }));
    current(fake, name)
}

fn current(fake: &Fake, name: &str) -> Arc<ModelDeployment> {
    Arc::new(serde_json::from_value(fake.object(&md_path(name)).unwrap()).unwrap())
}

fn h100_spec(replicas: u32, count: u32) -> Value {
    json!({"model": "llama-8b", "tenant": "team-a", "runtime": "vllm",
           "accelerator": {"type": "h100", "count": count}, "replicas": replicas})
}

fn applies(calls: &[Call]) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| c.content_type.as_deref() == Some("application/apply-patch+yaml"))
        .collect()
}

fn find<'a>(calls: &'a [Call], method: &str, path: &str) -> Option<&'a Call> {
    calls.iter().find(|c| c.is(method, path))
}

fn condition(status: &Value, ty: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == ty)
        .unwrap();
    (
        c["status"].as_str().unwrap().to_string(),
        c["reason"].as_str().unwrap().to_string(),
    )
}

fn events(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/events"))
        .map(|c| {
            let b = c.body.as_ref().unwrap();
            (
                b["type"].as_str().unwrap().to_string(),
                b["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn first_reconcile_only_adds_the_finalizer() {
    let (fake, ctx) = setup(false);
    fake.insert(json!({"apiVersion": API, "kind": "ModelDeployment",
                       "metadata": {"name": "llama-h100", "namespace": NS}, "spec": h100_spec(1, 1)}));
    let action = reconcile(current(&fake, "llama-h100"), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(calls[0].is("PATCH", &md_path("llama-h100")));
    assert_eq!(calls[0].content_type.as_deref(), Some("application/json-patch+json"));
    let stored = fake.object(&md_path("llama-h100")).unwrap();
    assert_eq!(stored["metadata"]["finalizers"], json!([FINALIZER]));
}

#[tokio::test]
async fn applies_deployment_service_and_status_with_one_field_manager() {
    let (fake, ctx) = setup(false);
    let md = deployment(&fake, "llama-h100", h100_spec(2, 4));
    let action = reconcile(md, ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)), "not ready yet");
    let calls = fake.calls();

    for c in applies(&calls) {
        assert_eq!(c.param("fieldManager"), Some("pyxis-operator"), "{}", c.path);
        assert_eq!(c.param("force"), Some("true"), "{}", c.path);
    }
    let dep = &find(&calls, "PATCH", &dep_path("llama-h100"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert_eq!(dep["apiVersion"], "apps/v1");
    assert_eq!(dep["kind"], "Deployment");
    assert_eq!(dep["spec"]["replicas"], 2);
    let owner = &dep["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("ModelDeployment"), Some("llama-h100"))
    );
    assert_eq!(owner["controller"], true);
    assert_eq!(dep["metadata"]["labels"]["pyxis.dev/tenant"], "team-a");
    assert!(
        dep["metadata"]["labels"].get("kueue.x-k8s.io/queue-name").is_none(),
        "Kueue is off"
    );
    let server = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(server["image"], "vllm/vllm-openai:v0.11.0");
    assert_eq!(server["resources"]["limits"]["nvidia.com/gpu"], "4");
    let args: Vec<&str> = server["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        &args[..3],
        [
            "meta-llama/Llama-3.1-8B-Instruct",
            "--served-model-name",
            "meta-llama/Llama-3.1-8B-Instruct"
        ]
    );
    assert!(args.windows(2).any(|w| w == ["--tensor-parallel-size", "4"]));
    assert!(args.windows(2).any(|w| w == ["--max-model-len", "8192"]));

    let svc = find(&calls, "PATCH", &svc_path("llama-h100"))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert_eq!(
        svc["spec"]["selector"],
        json!({"pyxis.dev/model-deployment": "llama-h100"})
    );
    assert_eq!(svc["spec"]["ports"][0]["port"], 8000);

    let st = find(&calls, "PATCH", &format!("{}/status", md_path("llama-h100")))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert_eq!(st["kind"], "ModelDeployment");
    let status = &st["status"];
    assert_eq!(status["runtime"], "vllm");
    assert_eq!(status["service"], "llama-h100");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["quota"],
        json!({"tenant": "team-a", "class": "h100", "requested": 8, "used": 8, "limit": 8})
    );
    assert_eq!(condition(status, "Ready"), ("False".into(), "ReplicasNotReady".into()));
    assert_eq!(condition(status, "Progressing"), ("True".into(), "RollingOut".into()));
    assert_eq!(condition(status, "Degraded"), ("False".into(), "Applied".into()));
    assert_eq!(status["conditions"][0]["lastTransitionTime"], NOW);

    let tenant = find(&calls, "PATCH", &format!("{}/status", tenant_path("team-a")))
        .unwrap()
        .body
        .clone()
        .unwrap();
    assert_eq!(tenant["status"], json!({"acceleratorUsage": {"h100": 8}}));
    assert_eq!(events(&calls), [("Normal".to_string(), "Applied".to_string())]);
}

#[tokio::test]
async fn reconciling_again_changes_nothing() {
    let (fake, ctx) = setup(false);
    reconcile(deployment(&fake, "llama-h100", h100_spec(1, 1)), ctx.clone())
        .await
        .unwrap();
    let first = fake.calls();
    fake.clear_calls();
    reconcile(current(&fake, "llama-h100"), ctx).await.unwrap();
    let second = fake.calls();
    let bodies = |calls: &[Call]| -> Vec<(String, Option<Value>)> {
        applies(calls)
            .iter()
            .filter(|c| !c.path.ends_with("/status"))
            .map(|c| (c.path.clone(), c.body.clone()))
            .collect()
    };
    assert_eq!(bodies(&first), bodies(&second), "the same objects are applied again");
    assert!(
        applies(&second).iter().all(|c| !c.path.ends_with("/status")),
        "no status write: {second:#?}"
    );
    assert!(events(&second).is_empty());
}

#[tokio::test]
async fn ready_deployment_makes_the_deployment_ready() {
    let (fake, ctx) = setup(false);
    fake.insert(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llama-h100", "namespace": NS, "generation": 1},
        "spec": {"selector": {}, "template": {}},
        // The apply changes the spec (generation 2); the Deployment controller has caught up with it.
        "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}}));
    let action = reconcile(deployment(&fake, "llama-h100", h100_spec(2, 1)), ctx)
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let status = fake.object(&md_path("llama-h100")).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Ready"), ("True".into(), "AllReplicasReady".into()));
    assert_eq!(condition(&status, "Progressing"), ("False".into(), "Complete".into()));
    assert_eq!(status["readyReplicas"], 2);
    let ev = events(&fake.calls());
    assert!(ev.contains(&("Normal".into(), "Ready".into())), "{ev:?}");
}

#[tokio::test]
async fn over_quota_is_not_created_and_is_degraded() {
    let (fake, ctx) = setup(false);
    // Older, admitted: 6 of the 8 h100.
    deployment(&fake, "older", h100_spec(3, 2));
    let md = deployment(&fake, "llama-h100", h100_spec(1, 4));
    fake.clear_calls();
    let action = reconcile(md, ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let calls = fake.calls();
    assert!(
        find(&calls, "PATCH", &dep_path("llama-h100")).is_none(),
        "no Deployment applied"
    );
    assert!(
        find(&calls, "PATCH", &svc_path("llama-h100")).is_none(),
        "no Service applied"
    );
    assert!(
        find(&calls, "DELETE", &dep_path("llama-h100")).is_some(),
        "a leftover Deployment is removed"
    );
    let status = fake.object(&md_path("llama-h100")).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "QuotaExceeded".into()));
    assert_eq!(condition(&status, "Ready"), ("False".into(), "QuotaExceeded".into()));
    assert_eq!(
        status["quota"],
        json!({"tenant": "team-a", "class": "h100", "requested": 4, "used": 6, "limit": 8})
    );
    assert!(status.get("runtime").is_none());
    assert_eq!(
        fake.object(&tenant_path("team-a")).unwrap()["status"],
        json!({"acceleratorUsage": {"h100": 6}})
    );
    assert_eq!(events(&calls), [("Warning".to_string(), "QuotaExceeded".to_string())]);
}

#[tokio::test]
async fn kueue_labels_the_workload_with_the_tenant_queue() {
    let (fake, ctx) = setup(true);
    reconcile(deployment(&fake, "llama-h100", h100_spec(1, 1)), ctx)
        .await
        .unwrap();
    let dep = fake.object(&dep_path("llama-h100")).unwrap();
    assert_eq!(dep["metadata"]["labels"]["kueue.x-k8s.io/queue-name"], "team-a-queue");
    assert_eq!(
        dep["spec"]["template"]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
        "team-a-queue"
    );
}

#[tokio::test]
async fn missing_model_or_tenant_degrades_without_touching_workloads() {
    let (fake, ctx) = setup(false);
    let spec = json!({"model": "nope", "accelerator": {"type": "h100"}});
    reconcile(deployment(&fake, "a", spec), ctx.clone()).await.unwrap();
    let status = fake.object(&md_path("a")).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "ModelNotFound".into()));

    let spec = json!({"model": "llama-8b", "tenant": "ghost", "accelerator": {"type": "h100"}});
    reconcile(deployment(&fake, "b", spec), ctx.clone()).await.unwrap();
    let status = fake.object(&md_path("b")).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "TenantNotFound".into()));

    // A checkpoint on CPUs: no CPU runtime loads safetensors.
    let spec = json!({"model": "llama-8b", "accelerator": {"type": "cpu", "count": 8}});
    reconcile(deployment(&fake, "c", spec), ctx).await.unwrap();
    let status = fake.object(&md_path("c")).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "NoRuntime".into()));
    let calls = fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.path.contains("/deployments/") || c.path.contains("/services/")),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn api_errors_fail_the_reconcile_and_back_off() {
    let (fake, ctx) = setup(false);
    let md = deployment(&fake, "llama-h100", h100_spec(1, 1));
    fake.fail("PATCH", "/deployments/llama-h100", 500);
    let err = reconcile(md.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(
        err.label(),
        "finalizer",
        "the finalizer helper wraps the apply error: {err}"
    );
    assert!(err.to_string().contains("injected failure") || format!("{err:?}").contains("injected failure"));
    assert_eq!(
        error_policy(md.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(md.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    assert_eq!(
        error_policy(md.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(20))
    );
    // A success resets the back-off.
    reconcile(md.clone(), ctx.clone()).await.unwrap();
    assert_eq!(error_policy(md, &err, ctx), Action::requeue(Duration::from_secs(5)));
    assert_eq!(backoff(100), Duration::from_secs(300));
}

#[tokio::test]
async fn deletion_releases_the_quota_and_removes_the_finalizer() {
    let (fake, ctx) = setup(false);
    reconcile(deployment(&fake, "keep", h100_spec(1, 2)), ctx.clone())
        .await
        .unwrap();
    reconcile(deployment(&fake, "llama-h100", h100_spec(1, 4)), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        fake.object(&tenant_path("team-a")).unwrap()["status"]["acceleratorUsage"]["h100"],
        6
    );

    let mut obj = fake.object(&md_path("llama-h100")).unwrap();
    obj["metadata"]["deletionTimestamp"] = json!("2026-02-01T00:00:00Z");
    fake.insert(obj);
    fake.clear_calls();
    let action = reconcile(current(&fake, "llama-h100"), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(
        fake.object(&tenant_path("team-a")).unwrap()["status"]["acceleratorUsage"]["h100"],
        2
    );
    let stored = fake.object(&md_path("llama-h100")).unwrap();
    assert_eq!(stored["metadata"]["finalizers"], json!([]), "finalizer removed");
    let calls = fake.calls();
    let patch = find(&calls, "PATCH", &md_path("llama-h100")).unwrap();
    assert_eq!(patch.content_type.as_deref(), Some("application/json-patch+json"));
    assert!(
        calls.iter().all(|c| !c.path.contains("/deployments/")),
        "garbage collection removes the workload"
    );
}

#[tokio::test]
async fn kueue_detection_reads_the_api_groups() {
    let (fake, client) = Fake::new();
    assert!(!crate::kueue_installed(&client).await.unwrap());
    fake.serve_groups(&["apps", "kueue.x-k8s.io"]);
    assert!(crate::kueue_installed(&client).await.unwrap());
}
