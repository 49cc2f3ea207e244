//! What reaches the runtime: through the real gateway to a recording OpenAI-compatible upstream, a
//! body's `model` (repeated, escaped) is the served name once, parameters Pyxis does not read arrive
//! as the client wrote them, a stream always asks for usage, and a refused body reaches nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use pyxis_gateway::{Gateway, ServeConfig};
use serde_json::Value;

type Seen = Arc<Mutex<Vec<Bytes>>>;

/// An OpenAI-compatible upstream that records each chat body and answers it (a stream when asked).
async fn recording_upstream() -> (String, Seen) {
    async fn chat(State(seen): State<Seen>, body: Bytes) -> axum::response::Response {
        let stream = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["stream"].as_bool())
            == Some(true);
        seen.lock().unwrap().push(body);
        if stream {
            let sse = concat!(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"served-x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"served-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
                "data: [DONE]\n\n"
            );
            ([(header::CONTENT_TYPE, "text/event-stream")], sse).into_response()
        } else {
            let answer = r#"{"id":"c","object":"chat.completion","created":1,"model":"served-x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
            ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
        }
    }
    let seen: Seen = Arc::default();
    let models =
        || async { axum::Json(serde_json::json!({"object": "list", "data": [{"id": "served-x", "object": "model"}]})) };
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { "ok" }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn start(dir: &std::path::Path, upstream: &str) -> (Gateway, String) {
    let yaml = format!(
        r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {{name: team}}
spec: {{}}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {{name: recorder}}
spec:
  kind: openai
  endpoints: [{upstream}]
  accelerator: {{type: l4, memoryGiB: 24}}
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {{name: m}}
spec: {{servedName: served-x, version: "1", parameters: 1B, contextLength: 4096, runtimes: [recorder]}}
"#
    );
    let file = dir.join("fleet.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.join("data"));
    cfg.fleet_file = Some(file);
    let gw = Gateway::start(cfg).await.unwrap();
    gw.state.store.ensure_tenant("team").await.unwrap();
    let key = gw.state.store.add_key("team", None).await.unwrap().key;
    // Ready once the health check has seen the upstream.
    let c = reqwest::Client::new();
    for _ in 0..100 {
        if c.get(format!("{}/readyz", gw.url())).send().await.unwrap().status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (gw, key)
}

async fn send(gw: &Gateway, key: &str, body: &'static str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_runtime_sees_one_model_and_the_clients_own_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, seen) = recording_upstream().await;
    let (gw, key) = start(dir.path(), &upstream).await;

    // `model` three times, once escaped: the last one counts for the gateway, and the runtime gets
    // the served name once. Values Pyxis does not read pass as written (`1.0e0`, the spacing).
    let r = send(
        &gw,
        &key,
        r#"{"model":"nope","messages":[{"role":"user","content":"hello"}],"mod\u0065l":"other","top_k":1.0e0,"logit_bias":{"50256": -100},"model":"m"}"#,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body = String::from_utf8(seen.lock().unwrap()[0].to_vec()).unwrap();
    assert_eq!(body.matches("\"model\"").count(), 1, "{body}");
    assert!(!body.contains("mod\\u0065l"), "{body}");
    assert!(body.contains(r#""top_k":1.0e0"#), "{body}");
    assert!(body.contains(r#""logit_bias":{"50256": -100}"#), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["model"], "served-x");
    assert_eq!(v["messages"][0]["content"], "hello");

    // A stream: usage is asked of the runtime whatever the client said, the client's other stream
    // options kept, and the client (which did not ask) gets no usage chunk.
    let r = send(
        &gw,
        &key,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true}}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("\"hi\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("\"usage\":{"),
        "the client did not ask for usage: {text}"
    );
    let body = String::from_utf8(seen.lock().unwrap()[1].to_vec()).unwrap();
    assert_eq!(body.matches("include_usage").count(), 1, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(v["stream_options"]["continuous_usage_stats"], true);

    // Refused bodies reach nobody, and say what is wrong in OpenAI's shape.
    for (bad, param) in [
        (
            r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":{"a":1}}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            "max_tokens",
        ),
    ] {
        let r = send(&gw, &key, bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{bad}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    let r = send(&gw, &key, r#"{"model":"m","messages":[{"role":"user","content":"x"}"#).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_json");
    assert_eq!(seen.lock().unwrap().len(), 2, "no refused body was sent on");
    gw.shutdown().await.unwrap();
}
