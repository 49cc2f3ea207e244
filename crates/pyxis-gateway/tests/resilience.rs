//! The gateway against misbehaving runtimes: simulated engines with injected faults, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pyxis_gateway::{Gateway, ServeConfig};
use pyxis_sim::{EngineHandle, EngineSpec, FaultConfig};
use pyxis_store::{AuditQuery, AuditRecord, Store};
use serde_json::{Value, json};

const KEY: &str = "pyx-resilience";

async fn engine(name: &str, faults: FaultConfig) -> EngineHandle {
    let mut spec = EngineSpec::new(name, "h100", "llama-3-8b");
    spec.served_model_names = vec!["m".into()];
    spec.speedup = 4.0;
    spec.faults = faults;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    pyxis_sim::spawn(spec, addr).await.expect("spawn engine")
}

fn fleet(urls: &[String]) -> String {
    let eps: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {{name: default}}
spec: {{}}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {{name: pool}}
spec:
  kind: vllm
  endpoints: [{}]
  accelerator: {{type: h100, count: 1, memoryGiB: 80}}
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {{name: m}}
spec:
  version: "1"
  parameters: 8B
  contextLength: 8192
  runtimes: [pool]
"#,
        eps.join(", ")
    )
}

async fn gateway(dir: &Path, urls: &[String]) -> Gateway {
    let file = dir.join("fleet.yaml");
    std::fs::write(&file, fleet(urls)).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.join("data"));
    cfg.fleet_file = Some(file);
    cfg.demo_api_key = Some(KEY.into());
    Gateway::start(cfg).await.expect("gateway starts")
}

fn chat(stream: bool, max_tokens: u32) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": max_tokens, "stream": stream})
}

async fn post(gw: &Gateway, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Shuts the gateway down (draining the audit writer) and reads the whole log.
async fn audit_after(gw: Gateway, dir: &Path) -> Vec<AuditRecord> {
    gw.shutdown().await.unwrap();
    let store = Store::open(&dir.join("data")).await.unwrap();
    store
        .tail_audit(&AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        "cut",
        FaultConfig {
            stream_cut_after: Some(3),
            ..Default::default()
        },
    )
    .await;
    let gw = gateway(dir.path(), &[e.url()]).await;
    let resp = post(&gw, &chat(true, 50)).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("[DONE]"), "a cut stream must not look finished: {body}");
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    let ev: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(ev["error"]["code"], "upstream_stream_broken", "{last}");
    let rows = audit_after(gw, dir.path()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].error_type.as_deref(), Some("upstream_stream_broken"));
    e.shutdown().await;
}

#[tokio::test]
async fn overloaded_or_dead_endpoints_are_routed_around() {
    let dir = tempfile::tempdir().unwrap();
    let good = engine("good", FaultConfig::default()).await;
    let busy = engine(
        "busy",
        FaultConfig {
            overload: true,
            ..Default::default()
        },
    )
    .await;
    let dead = engine("dead", FaultConfig::default()).await;
    let dead_url = dead.url();
    dead.shutdown().await;
    let gw = gateway(dir.path(), &[busy.url(), dead_url.clone(), good.url()]).await;
    for i in 0..6 {
        let r = post(&gw, &chat(i % 2 == 0, 4)).await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-pyxis-endpoint"], good.url().as_str());
        let _ = r.bytes().await;
    }
    let view = gw.state.view();
    let dead_ep = view.endpoints.iter().find(|e| e.url == dead_url).unwrap();
    assert!(
        !dead_ep.is_healthy(),
        "a refused connection marks the endpoint unhealthy"
    );
    // Nothing left counted in flight once the calls are done.
    assert!(view.endpoints.iter().all(|e| e.in_flight.load(Ordering::Relaxed) == 0));
    let rows = audit_after(gw, dir.path()).await;
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .all(|r| r.status == 200 && r.endpoint.as_deref() == Some(good.url().as_str()))
    );
    good.shutdown().await;
    busy.shutdown().await;
}

#[tokio::test]
async fn client_errors_from_the_runtime_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine("ok", FaultConfig::default()).await;
    let gw = gateway(dir.path(), &[e.url()]).await;
    // More output than the model's context: the runtime's 400, in OpenAI's shape, with its param.
    let r = post(&gw, &chat(false, 1_000_000)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "max_tokens", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_model_len"), "{v}");
    let rows = audit_after(gw, dir.path()).await;
    assert_eq!(rows[0].status, 400);
    e.shutdown().await;
}

#[tokio::test]
async fn all_endpoints_down_is_a_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine("gone", FaultConfig::default()).await;
    let url = e.url();
    e.shutdown().await;
    let gw = gateway(dir.path(), &[url]).await;
    let r = post(&gw, &chat(false, 4)).await;
    assert!(r.status() == 502 || r.status() == 503, "{}", r.status());
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().len() > 10);
    // Once the health check has seen it down, the answer is a clean 503.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = post(&gw, &chat(false, 4)).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_healthy_endpoint");
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_audited_and_frees_the_slot() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine("slow", FaultConfig::default()).await;
    let gw = gateway(dir.path(), &[e.url()]).await;
    let resp = post(&gw, &chat(true, 2000)).await;
    let mut s = resp.bytes_stream();
    let _ = s.next().await;
    drop(s);
    let view = gw.state.view();
    let deadline = Instant::now() + Duration::from_secs(5);
    while view.endpoints[0].in_flight.load(Ordering::Relaxed) != 0 {
        assert!(Instant::now() < deadline, "slot not freed after disconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(view);
    let rows = audit_after(gw, dir.path()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 499);
    assert_eq!(rows[0].error_type.as_deref(), Some("client_disconnected"));
    e.shutdown().await;
}
