//! The gateway in front of a real vLLM. Opt-in: set `PYXIS_LIVE_VLLM_URL` (and `PYXIS_LIVE_VLLM_MODEL`, default
//! `tiny`) to a running server, e.g. the CPU build from shared/runtimes/setup_vllm_cpu.sh. Without it the test
//! says so and does not run (vLLM takes minutes to install and over a minute to start: not in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use pyxis_gateway::{Gateway, ServeConfig};
use pyxis_store::{AuditQuery, Store};
use serde_json::{Value, json};

#[tokio::test]
async fn gateway_in_front_of_a_real_vllm() {
    let Ok(url) = std::env::var("PYXIS_LIVE_VLLM_URL") else {
        eprintln!("NOT RUN: gateway_in_front_of_a_real_vllm needs PYXIS_LIVE_VLLM_URL=http://127.0.0.1:8100");
        return;
    };
    let served = std::env::var("PYXIS_LIVE_VLLM_MODEL").unwrap_or_else(|_| "tiny".into());
    let fleet = format!(
        r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {{name: default}}
spec: {{}}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {{name: real-vllm}}
spec:
  kind: vllm
  endpoints: ["{url}"]
  accelerator: {{type: cpu, count: 1, memoryGiB: 1}}
  pricePerAcceleratorHour: 0.05
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {{name: live-model}}
spec: {{servedName: "{served}", version: "0", parameters: 1M, contextLength: 512, runtimes: [real-vllm]}}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, fleet).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.fleet_file = Some(file);
    cfg.demo_api_key = Some("pyx-live".into());
    let gw = Gateway::start(cfg).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // first health check learns the version
    let c = reqwest::Client::new();
    let post = |body: Value| {
        c.post(format!("{}/v1/chat/completions", gw.url()))
            .bearer_auth("pyx-live")
            .json(&body)
            .send()
    };
    let msgs = json!([{"role": "user", "content": "Hello!"}]);

    let r = post(json!({"model": "live-model", "messages": msgs, "max_tokens": 8}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "live-model", "the public name, not the served one");
    assert_eq!(v["usage"]["completion_tokens"], 8);

    let r = post(json!({"model": "live-model", "messages": msgs, "max_tokens": 6, "stream": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = String::new();
    let mut s = r.bytes_stream();
    while let Some(chunk) = s.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(body.trim_end().ends_with("data: [DONE]"));
    assert!(
        !body.contains("\"usage\":{"),
        "no usage chunk when the client did not ask"
    );

    let r = post(json!({"model": "live-model", "messages": msgs, "max_tokens": 4000}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "vLLM's own validation error passes through");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "max_tokens");

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
    assert_eq!(
        rows[1].completion_tokens, 6,
        "stream usage learned although the client did not ask"
    );
    assert!(
        rows[0].runtime_version.as_deref().is_some_and(|v| !v.is_empty()),
        "vLLM's /version recorded"
    );
    assert!(rows[0].cost_usd > 0.0);
}
