//! Every manifest, committed or generated, against the Kubernetes OpenAPI schemas (kubernetes-validate, strict)
//! and the Pyxis CRDs: deploy/crds, deploy/kubernetes, the examples, and the Deployment, Service and claim the
//! operator builds for every runtime kind on every vendor. Also: the examples make a complete fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pyxis_operator::assemble::{Snapshot, assemble};
use pyxis_operator::catalog::choose;
use pyxis_operator::workload::{BuildOptions, Target, build};
use pyxis_resources::{DeployRuntime, ModelDeploymentSpec, RuntimeKind};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python with kubernetes-validate: `PYXIS_TEST_PYTHON` (set by scripts/test), else the repository's .venv.
fn python() -> Option<PathBuf> {
    let candidates = std::env::var_os("PYXIS_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([repo().join(".venv/bin/python")]);
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import kubernetes_validate"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    v.sort();
    v
}

/// Runs the validator on `files`; returns (success, output).
fn validate(py: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(py)
        .arg(repo().join("crates/pyxis-operator/tests/validate_manifests.py"))
        .arg("--crds")
        .arg(repo().join("deploy/crds"))
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn skipped() {
    eprintln!(
        "SKIPPED, did not run: no Python with kubernetes-validate (set PYXIS_TEST_PYTHON, or \
         `.venv/bin/pip install kubernetes-validate` at the repository root)"
    );
}

/// The workloads the operator builds: every deployable kind on NVIDIA, AMD and CPU, with a cache claim.
fn generated(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in RuntimeKind::ALL.into_iter().filter(|k| *k != RuntimeKind::Openai) {
        for class in ["h100", "mi300x", "cpu"] {
            let runtime: DeployRuntime = serde_json::from_value(json!(kind.as_str())).unwrap();
            let spec: ModelDeploymentSpec = serde_json::from_value(json!({
                "model": "m", "runtime": runtime, "tenant": "team-a", "accelerator": {"type": class, "count": 2},
                "replicas": 2, "image": "example.com/runtime:1", "cache": {"size": "50Gi"},
                "env": {"EXTRA": "1"}, "args": ["--extra"]
            }))
            .unwrap();
            let opts = BuildOptions::default();
            let kind = choose(spec.runtime, None, class, "org/model", true, &opts.images).unwrap();
            let t = Target {
                name: &format!("{kind}-{class}"),
                namespace: "ml",
                spec: &spec,
                served_name: "org/model",
                context_length: 8192,
                kind,
                kueue_queue: Some("team-a"),
                owner: None,
            };
            let w = build(&t, &opts).unwrap();
            let docs = [
                serde_yaml_ng::to_string(&w.deployment).unwrap(),
                serde_yaml_ng::to_string(&w.service).unwrap(),
                serde_yaml_ng::to_string(w.cache.as_ref().unwrap()).unwrap(),
            ];
            let path = dir.join(format!("{kind}-{class}.yaml"));
            std::fs::write(&path, docs.join("---\n")).unwrap();
            files.push(path);
        }
    }
    files
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let Some(py) = python() else { return skipped() };
    let tmp = tempfile::tempdir().unwrap();
    let mut files = yaml_files(&repo().join("deploy/crds"));
    files.extend(yaml_files(&repo().join("deploy/kubernetes")));
    files.extend(yaml_files(&repo().join("deploy/kubernetes/examples")));
    let built = generated(tmp.path());
    assert_eq!(built.len(), 21);
    files.extend(built);
    let (ok, out) = validate(&py, &files);
    assert!(ok, "{out}");
    assert!(out.contains("\n0 documents invalid"), "{out}");
    // 6 CRDs, 10 install objects, 15 example resources, 21 × 3 generated objects.
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok ")).count(),
        6 + 10 + 15 + 63,
        "{out}"
    );
}

#[test]
fn the_validator_rejects_what_kubernetes_would() {
    let Some(py) = python() else { return skipped() };
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: http}]}\n---\n\
         apiVersion: pyxis.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: d}\n\
         spec: {model: m, accelerator: {type: h100}, replica: 2}\n",
    )
    .unwrap();
    let (ok, out) = validate(&py, &[bad]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("INVALID") && out.contains("Service/s") && out.contains("'replica' was unexpected"),
        "{out}"
    );
    assert!(out.contains("2 documents invalid"), "{out}");
}

#[test]
fn the_examples_make_a_complete_fleet() {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/examples/mixed-fleet.yaml")).unwrap();
    let mut s = Snapshot::default();
    let mut count = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut v: Value = serde::Deserialize::deserialize(doc).unwrap();
        v["metadata"]["namespace"] = json!("pyxis");
        match v["kind"].as_str().unwrap() {
            "Tenant" => s.tenants.push(de(v)),
            "Model" => s.models.push(de(v)),
            "Runtime" => s.runtimes.push(de(v)),
            "PriorityTier" => s.priority_tiers.push(de(v)),
            "RoutingPolicy" => s.routing_policies.push(de(v)),
            "ModelDeployment" => s.model_deployments.push(de(v)),
            other => panic!("unexpected kind {other}"),
        }
        count += 1;
    }
    let fleet = assemble(&s);
    let kept = fleet.tenants.len()
        + fleet.models.len()
        + fleet.runtimes.len()
        + fleet.priority_tiers.len()
        + fleet.routing_policies.len()
        + fleet.model_deployments.len();
    assert_eq!((count, kept), (15, 15), "every example resource is valid: {fleet:#?}");
    // No deployment has ready pods here, so the deployed models have no runtimes yet; the hosted one has its own.
    assert!(fleet.model("llama-3.1-8b").unwrap().spec.runtimes.is_empty());
    assert_eq!(fleet.model("gpt-4o-mini").unwrap().spec.runtimes, ["openai-hosted"]);
}

fn de<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}
