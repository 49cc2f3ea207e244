//! End-to-end: `pyxis validate` and `pyxis serve -f` with live reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

const ONE_MODEL: &str = r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata:
  name: default
spec: {}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata:
  name: sim-pool
spec:
  kind: vllm
  simulated:
    replicas: 2
  accelerator:
    type: h100
    count: 1
    memoryGiB: 80
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata:
  name: llama-3-8b
spec:
  version: "3.1"
  parameters: 8B
  contextLength: 8192
  runtimes: [sim-pool]
"#;

const SECOND_MODEL: &str = r#"---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata:
  name: small-model
spec:
  version: "1"
  parameters: 1.5B
  contextLength: 4096
  runtimes: [sim-pool]
"#;

#[test]
fn validate_good_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("fleet.yaml");
    std::fs::write(&good, ONE_MODEL).unwrap();
    let out = std::process::Command::new(bin())
        .args(["validate", "-f"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (1 tenants, 1 models, 1 runtimes)"));

    // Unknown field in the third document: the error names file, line and the field.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        ONE_MODEL.replace("  contextLength: 8192", "  contextLength: 8192\n  colour: blue"),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["validate", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = ONE_MODEL.lines().position(|l| l == "  contextLength: 8192").unwrap() + 2;
    assert!(err.contains(&format!("bad.yaml:{line}:")), "want line {line} in: {err}");
    assert!(err.contains("unknown field `colour`"), "{err}");

    let out = std::process::Command::new(bin())
        .args(["validate", "--output", "json", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], line);

    // serve refuses a bad file with the same message, and does not start.
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("-f")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));

    let missing = std::process::Command::new(bin())
        .args(["validate", "-f", "/nonexistent/fleet.yaml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/fleet.yaml"));
}

async fn model_ids(url: &str) -> Vec<String> {
    let v: Value = client()
        .get(format!("{url}/v1/models"))
        .header("Authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn edits_reload_without_dropping_streams() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    write_file(&file, ONE_MODEL);
    let srv = Server::start(&["-f", file.to_str().unwrap()]);
    assert_eq!(model_ids(&srv.url).await, ["llama-3-8b"]);

    // A long stream in flight while the file changes twice.
    let resp = client()
        .post(format!("{}/v1/chat/completions", srv.url))
        .header("Authorization", format!("Bearer {KEY}"))
        .json(&json!({"model": "llama-3-8b", "messages": [{"role": "user", "content": "a long story"}], "max_tokens": 300, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn(async move {
        let mut body = String::new();
        let mut s = resp.bytes_stream();
        while let Some(c) = s.next().await {
            body.push_str(&String::from_utf8_lossy(&c.unwrap()));
        }
        body
    });

    // Add a model, and change the pool (2 → 1 replicas): the engine serving the stream is retired
    // but must finish its work first.
    write_file(
        &file,
        &format!("{}{SECOND_MODEL}", ONE_MODEL.replace("replicas: 2", "replicas: 1")),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while model_ids(&srv.url).await != ["llama-3-8b", "small-model"] {
        assert!(Instant::now() < deadline, "reload not seen within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A broken edit is refused and the running config stays.
    write_file(
        &file,
        "apiVersion: pyxis.dev/v1alpha1\nkind: Model\nmetadata: {name: x}\nspec: {bogus: 1}\n",
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(model_ids(&srv.url).await, ["llama-3-8b", "small-model"]);

    let body = reader.await.unwrap();
    assert!(
        body.trim_end().ends_with("data: [DONE]"),
        "stream did not finish: …{}",
        &body[body.len().saturating_sub(300)..]
    );
    assert!(!body.contains("\"error\""), "stream broke during reload");

    let r = client()
        .post(format!("{}/v1/chat/completions", srv.url))
        .header("Authorization", format!("Bearer {KEY}"))
        .json(&chat_body("small-model", false, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
