//! Admission over real HTTP: quotas (429 with `Retry-After`, OpenAI's codes), the fair queue
//! (timeouts answered 503, a disconnecting client leaves the queue), and quotas shared by two
//! gateway replicas through a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pyxis_gateway::{Gateway, ServeConfig};
use pyxis_store::AuditQuery;
use serde_json::{Value, json};

/// One simulated L4 whose in-flight budget is 512 tokens, so a request asking for 480 output tokens
/// fills it.
fn fleet(tenant: &str, tenant_spec: &str) -> String {
    format!(
        r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {{name: {tenant}}}
spec: {tenant_spec}
---
apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {{name: other}}
spec: {{queue: {{timeoutMs: 300}}}}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {{name: pool}}
spec:
  kind: vllm
  simulated: {{replicas: 1, speedup: 4}}
  accelerator: {{type: l4, count: 1, memoryGiB: 24}}
  maxInFlightTokens: 512
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {{name: small}}
spec: {{version: "1", parameters: 1B, contextLength: 512, runtimes: [pool]}}
"#
    )
}

async fn start(dir: &std::path::Path, yaml: &str, redis: Option<String>) -> Gateway {
    let file = dir.join("fleet.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.join("data"));
    cfg.fleet_file = Some(file);
    cfg.redis_url = redis;
    Gateway::start(cfg).await.unwrap()
}

async fn key(gw: &Gateway, tenant: &str) -> String {
    gw.state.store.ensure_tenant(tenant).await.unwrap();
    gw.state.store.add_key(tenant, None).await.unwrap().key
}

fn ask(c: &reqwest::Client, gw: &Gateway, key: &str, max_tokens: u32) -> reqwest::RequestBuilder {
    c.post(format!("{}/v1/chat/completions", gw.url()))
        .bearer_auth(key)
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}))
}

#[tokio::test]
async fn requests_per_minute_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &fleet("team", "{quotas: {requestsPerMinute: 2}}"), None).await;
    let k = key(&gw, "team").await;
    let c = reqwest::Client::new();
    for _ in 0..2 {
        assert_eq!(ask(&c, &gw, &k, 4).send().await.unwrap().status(), 200);
    }
    let r = ask(&c, &gw, &k, 4).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "retry after {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 requests per minute"),
        "{body}"
    );

    // Another tenant is not affected.
    let o = key(&gw, "other").await;
    assert_eq!(ask(&c, &gw, &o, 4).send().await.unwrap().status(), 200);

    // The refusal is audited with its reason.
    let rows = audit_rows(&gw, "team", |rows| rows.len() >= 3).await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter()
            .any(|r| r.status == 429 && r.error_type.as_deref() == Some("quota_requests_per_minute"))
    );
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn token_budget_answers_insufficient_quota() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &fleet("team", "{quotas: {tokensPerDay: 50}}"), None).await;
    let k = key(&gw, "team").await;
    let c = reqwest::Client::new();
    let r = ask(&c, &gw, &k, 100).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    // Small enough to fit: admitted, and settled with the actual usage.
    assert_eq!(ask(&c, &gw, &k, 5).send().await.unwrap().status(), 200);
    let q: Value = c
        .get(format!("{}/admin/v1/quotas", gw.url()))
        .bearer_auth(&k)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["tenant"], "team");
    assert_eq!(q["limits"]["tokensPerDay"], 50);
    gw.shutdown().await.unwrap();
}

/// Sets the simulated engine's added latency, so a request holds the pool's budget for that long.
async fn slow_engine(gw: &Gateway, ms: u64) {
    let url = gw.state.view().endpoints[0].url.clone();
    let r = reqwest::Client::new()
        .post(format!("{url}/admin/faults"))
        .json(&json!({"latency_ms": ms}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// The tenant's audit records once `ready` holds of them (records are written in batches, within the
/// flush bound of their call's end, later on a loaded machine), or as they are after 10 s.
async fn audit_rows(
    gw: &Gateway,
    tenant: &str,
    ready: impl Fn(&[pyxis_store::AuditRecord]) -> bool,
) -> Vec<pyxis_store::AuditRecord> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = gw
            .state
            .store
            .query_audit(&AuditQuery {
                tenant: Some(tenant.into()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        if ready(&rows) || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn queued(gw: &Gateway) -> usize {
    gw.state.admission.pool("small").unwrap().queued()
}

#[tokio::test]
async fn fair_queue_times_out_and_forgets_clients_that_leave() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &fleet("team", "{queue: {timeoutMs: 5000}}"), None).await;
    // Long enough that the last request below is still sent while the holder runs, even when a loaded
    // machine (CI runs the suite on 2 cores) stretches each earlier step toward its asserted bound.
    slow_engine(&gw, 2500).await;
    let team = key(&gw, "team").await;
    let other = key(&gw, "other").await;
    let c = reqwest::Client::new();

    // Fills the pool's budget for ~2.5 s.
    let holder = tokio::spawn(ask(&c, &gw, &team, 480).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (in_use, capacity) = gw.state.admission.pool("small").unwrap().usage();
    assert!(in_use > 0 && in_use <= capacity, "{in_use} of {capacity}");

    // A client that gives up while queued leaves the queue at once.
    let waiting = tokio::spawn(ask(&c, &gw, &team, 480).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(queued(&gw), 1, "the second request waits");
    waiting.abort();
    let _ = waiting.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(queued(&gw), 0, "a disconnected client frees its place");

    // `other` may wait 300 ms only: 503 with Retry-After, never a hang.
    let t = std::time::Instant::now();
    let r = ask(&c, &gw, &other, 480).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(t.elapsed() < Duration::from_millis(1200), "{:?}", t.elapsed());
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_timeout");

    // A request that can wait is served once the holder is done, and its wait is audited.
    assert!(
        !holder.is_finished(),
        "the holder still runs when the waiting request is sent"
    );
    let r = ask(&c, &gw, &team, 480).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(holder.await.unwrap().unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gw.state.admission.pool("small").unwrap().usage().0,
        0,
        "every permit released"
    );
    let rows = audit_rows(&gw, "team", |rows| {
        rows.iter().filter(|r| r.status == 200).count() >= 2 && rows.iter().any(|r| r.status == 499)
    })
    .await;
    assert!(
        rows.iter().any(|r| r.status == 200 && r.queue_ms > 200.0),
        "a queued request's wait is recorded"
    );
    assert!(
        rows.iter().any(|r| r.status == 499),
        "the client that left is audited as 499"
    );
    gw.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_replicas_share_one_limit_through_redis() {
    let Ok(redis) = std::env::var("REDIS_URL") else {
        eprintln!("REDIS_URL is not set: the shared-quota test did NOT run against Redis");
        return;
    };
    // A fresh tenant name, so earlier runs' counters in the same minute do not count.
    let tenant = format!("t{}", uuid::Uuid::new_v4().simple());
    let yaml = fleet(&tenant, "{quotas: {requestsPerMinute: 5}}");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(d1.path(), &yaml, Some(redis.clone())).await;
    let b = start(d2.path(), &yaml, Some(redis)).await;
    let (ka, kb) = (key(&a, &tenant).await, key(&b, &tenant).await);
    let c = reqwest::Client::new();
    let mut sends = Vec::new();
    for i in 0..12 {
        let (gw, k) = if i % 2 == 0 { (&a, &ka) } else { (&b, &kb) };
        sends.push(ask(&c, gw, k, 4).send());
    }
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (ok, limited),
        (5, 7),
        "{statuses:?}: the limit holds across replicas, not per replica"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
