//! Each fault, by flag (the spec) and at run time (`POST /admin/faults`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use pyxis_sim::{FaultConfig, Surface};
use serde_json::{Value, json};

async fn post_faults(url: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{url}/admin/faults"))
        .json(&body)
        .send()
        .await
        .expect("admin")
}

async fn chat_status(url: &str) -> reqwest::StatusCode {
    client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("llama-3-8b", "x", 3, false))
        .send()
        .await
        .expect("chat")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_latency_and_overload_at_run_time() {
    let h = start(fast_spec(Surface::Vllm)).await;
    let url = h.url();
    let v: Value = client()
        .get(format!("{url}/admin/faults"))
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("j");
    assert_eq!(v["error_rate"], 0.0);

    assert_eq!(post_faults(&url, json!({"error_rate": 1.0})).await.status(), 200);
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("llama-3-8b", "x", 3, false))
        .send()
        .await
        .expect("c");
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.expect("j")["error"]["code"], 500);

    // About half fail at 0.5 (seeded, so this is stable).
    post_faults(&url, json!({"error_rate": 0.5})).await;
    let mut fails = 0;
    for _ in 0..40 {
        if chat_status(&url).await == 500 {
            fails += 1;
        }
    }
    assert!((10..=30).contains(&fails), "{fails}/40");

    post_faults(&url, json!({"latency_ms": 300})).await;
    let t = Instant::now();
    assert_eq!(chat_status(&url).await, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    post_faults(&url, json!({"overload": true})).await;
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("llama-3-8b", "x", 3, false))
        .send()
        .await
        .expect("c");
    assert_eq!(r.status(), 503);

    assert_eq!(
        post_faults(&url, json!({"error_rate": 2.0})).await.status(),
        400,
        "validated"
    );
    assert_eq!(
        post_faults(&url, json!({"bogus": 1})).await.status(),
        400,
        "unknown fields refused"
    );
    post_faults(&url, json!({})).await;
    assert_eq!(chat_status(&url).await, 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_refuses_the_excess() {
    let mut spec = fast_spec(Surface::Tgi);
    spec.speedup = 1.0;
    spec.faults = FaultConfig {
        max_concurrent: Some(2),
        ..Default::default()
    };
    let h = start(spec).await;
    let url = h.url();
    let long = |url: String| async move {
        client()
            .post(format!("{url}/generate"))
            .json(&json!({"inputs": "x", "parameters": {"max_new_tokens": 60}}))
            .send()
            .await
            .expect("g")
            .status()
    };
    let a = tokio::spawn(long(url.clone()));
    let b = tokio::spawn(long(url.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(long(url.clone()).await, 429);
    assert_eq!(a.await.expect("a"), 200);
    assert_eq!(b.await.expect("b"), 200);
    assert_eq!(long(url.clone()).await, 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_by_flag() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.faults = FaultConfig {
        slow_start_s: 0.6,
        ..Default::default()
    };
    let h = start(spec).await;
    let url = h.url();
    assert_eq!(
        client().get(format!("{url}/health")).send().await.expect("h").status(),
        503
    );
    assert_eq!(chat_status(&url).await, 503);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        client().get(format!("{url}/health")).send().await.expect("h").status(),
        200
    );
    assert_eq!(chat_status(&url).await, 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_never_answers_but_admin_does() {
    let h = start(fast_spec(Surface::Vllm)).await;
    let url = h.url();
    post_faults(&url, json!({"hang": true})).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .expect("c");
    let r = quick.get(format!("{url}/health")).send().await;
    assert!(r.is_err_and(|e| e.is_timeout()), "health hangs");
    let r = quick
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("llama-3-8b", "x", 3, false))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()), "inference hangs");
    post_faults(&url, json!({})).await;
    assert_eq!(chat_status(&url).await, 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cut_drops_the_connection_mid_stream() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.faults = FaultConfig {
        stream_cut_after: Some(3),
        ..Default::default()
    };
    let h = start(spec).await;
    let r = client()
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama-3-8b", "x", 20, true))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    use futures::StreamExt;
    let mut s = r.bytes_stream();
    let mut got = Vec::new();
    let mut broke = false;
    while let Some(chunk) = s.next().await {
        match chunk {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the body ends in an error, not a clean end");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(sse_data(&text).len(), 3);
    assert!(!text.contains("[DONE]"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_closes_the_listener_and_cuts_streams() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.speedup = 1.0;
    let h = start(spec).await;
    let url = h.url();
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("llama-3-8b", "x", 3000, true))
        .send()
        .await
        .expect("s");
    use futures::StreamExt;
    let mut s = r.bytes_stream();
    assert!(s.next().await.is_some_and(|c| c.is_ok()));
    post_faults(&url, json!({"crash": true})).await;
    let mut ended_in_error = false;
    while let Some(c) = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("stream ends")
    {
        if c.is_err() {
            ended_in_error = true;
            break;
        }
    }
    assert!(ended_in_error, "the open stream is cut");
    for _ in 0..50 {
        if h.is_down() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.is_down());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("c");
    let r = fresh.get(format!("{url}/health")).send().await;
    assert!(
        r.is_err_and(|e| e.is_connect() || e.is_request()),
        "nothing listens any more"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_by_flag() {
    let mut spec = fast_spec(Surface::Ollama);
    spec.faults = FaultConfig {
        crash_after_s: Some(0.3),
        ..Default::default()
    };
    let h = start(spec).await;
    let url = h.url();
    assert_eq!(client().get(&url).send().await.expect("up").status(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(h.is_down());
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("c");
    assert!(fresh.get(&url).send().await.is_err());
    h.shutdown().await;
}
