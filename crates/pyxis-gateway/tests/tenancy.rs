//! Tenant policies from the fleet file: model allow-lists and opt-in content logging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pyxis_gateway::{Gateway, ServeConfig};
use pyxis_store::{AuditQuery, Store};
use serde_json::{Value, json};

const KEY: &str = "pyx-tenancy";

const FLEET: &str = r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {name: default}
spec:
  models: [small]
  auditContent: true
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {name: pool}
spec:
  kind: vllm
  simulated: {replicas: 1, speedup: 4}
  accelerator: {type: l4, count: 1, memoryGiB: 24}
  pricePerAcceleratorHour: 0.8
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {name: small}
spec: {version: "1", parameters: 1B, contextLength: 4096, runtimes: [pool]}
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {name: big}
spec: {version: "1", parameters: 8B, contextLength: 8192, runtimes: [pool]}
"#;

#[tokio::test]
async fn allow_list_and_content_logging() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, FLEET).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.fleet_file = Some(file);
    cfg.demo_api_key = Some(KEY.into());
    let gw = Gateway::start(cfg).await.unwrap();
    let c = reqwest::Client::new();

    let models: Value = c
        .get(format!("{}/v1/models", gw.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["small"], "only the models the tenant may use");

    let ask = |model: &str, stream: bool| {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "remember this prompt"}], "max_tokens": 5, "stream": stream});
        c.post(format!("{}/v1/chat/completions", gw.url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    let r = ask("big", false).await.unwrap();
    assert_eq!(
        r.status(),
        404,
        "a model outside the allow-list is not found for this tenant"
    );
    let r = ask("small", false).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let r = ask("small", true).await.unwrap();
    assert_eq!(r.status(), 200);
    let streamed = r.text().await.unwrap();

    gw.shutdown().await.unwrap();
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    let rows = store
        .query_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let ok: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 2);
    for r in &ok {
        assert!(r.prompt_text.as_deref().unwrap().contains("remember this prompt"));
        assert!(!r.completion_text.as_deref().unwrap().is_empty());
        assert_eq!(r.model_version.as_deref(), Some("1"));
        assert_eq!(r.hardware.as_deref(), Some("l4"));
        assert_eq!(r.attempts, 1);
        assert!(r.cost_usd > 0.0, "priced runtime: every call has a cost");
        assert!(r.runtime_version.is_some(), "the runtime's version is recorded");
    }
    assert_eq!(ok[0].completion_text.as_deref(), Some(answer.as_str()));
    let streamed_text = ok[1].completion_text.as_deref().unwrap();
    assert!(streamed.contains(&streamed_text[..streamed_text.len().min(3)]));
}

#[tokio::test]
async fn tenant_keys_read_only_their_own_audit_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(
        &file,
        FLEET.replace("  models: [small]\n  auditContent: true\n", "  models: [\"*\"]\n"),
    )
    .unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.fleet_file = Some(file);
    cfg.demo_api_key = Some(KEY.into());
    cfg.admin_key = Some("pyx-admin-secret".into());
    let gw = Gateway::start(cfg).await.unwrap();
    let other = gw.state.store.create_tenant("team-b").await.unwrap().key;
    let c = reqwest::Client::new();
    for key in [KEY, other.as_str(), other.as_str()] {
        let body = json!({"model": "small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url()))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await; // past the audit flush bound
    let get = |path: &str, key: &str| c.get(format!("{}{path}", gw.url())).bearer_auth(key).send();
    let tenants_of = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["tenant"].as_str().unwrap().to_string())
            .collect()
    };
    let mine: Value = get("/admin/v1/audit", KEY).await.unwrap().json().await.unwrap();
    assert_eq!(tenants_of(&mine), ["default"]);
    let theirs: Value = get("/admin/v1/audit", &other).await.unwrap().json().await.unwrap();
    assert_eq!(tenants_of(&theirs), ["team-b", "team-b"]);
    let r = get("/admin/v1/audit?tenant=team-b", KEY).await.unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "permission_error");
    let r = get("/admin/v1/audit", "wrong").await.unwrap();
    assert_eq!(r.status(), 401);

    let all: Value = get("/admin/v1/audit", "pyx-admin-secret")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let only_b: Value = get("/admin/v1/audit?tenant=team-b&limit=1", "pyx-admin-secret")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenants_of(&only_b), ["team-b"]);

    let usage: Value = get("/admin/v1/usage?by=tenant&since=1h", "pyx-admin-secret")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reqs: Vec<(String, u64)> = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["tenant"].as_str().unwrap().to_string(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reqs, [("default".to_string(), 1), ("team-b".to_string(), 2)]);
    let own: Value = get("/admin/v1/usage?by=tenant,model", &other)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own["data"].as_array().unwrap().len(), 1);
    let csv = get("/admin/v1/audit?format=csv", "pyx-admin-secret").await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv");
    assert_eq!(csv.text().await.unwrap().lines().count(), 4, "header and three rows");
    let jsonl = get("/admin/v1/usage?format=jsonl&by=model", KEY)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(jsonl.lines().count(), 1);
    let r = get("/admin/v1/usage?by=colour", KEY).await.unwrap();
    assert_eq!(r.status(), 400);
    gw.shutdown().await.unwrap();
}
