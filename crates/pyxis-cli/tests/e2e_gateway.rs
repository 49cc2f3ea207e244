//! End-to-end: the real `pyxis serve` on its embedded demo fleet, driven over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

fn auth() -> String {
    format!("Bearer {KEY}")
}

#[tokio::test]
async fn demo_fleet_chat_non_streaming_and_audit() {
    let mut srv = Server::start(&[]);
    assert!(
        srv.started_in < Duration::from_secs(2),
        "ready in {:?}, goal < 2 s",
        srv.started_in
    );
    let c = client();
    // Ready at once: every model of the demo fleet has a healthy engine.
    let ready = c.get(format!("{}/readyz", srv.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let r: Value = ready.json().await.unwrap();
    assert!(r["endpoints"].as_u64().unwrap() >= 3, "{r}");

    let resp = c
        .post(format!("{}/v1/chat/completions", srv.url))
        .header("Authorization", auth())
        .header("x-request-id", "my-req-1")
        .json(&chat_body("llama-3-8b", false, 12))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "my-req-1");
    let endpoint = resp.headers()["x-pyxis-endpoint"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "llama-3-8b");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty());
    let usage = &body["usage"];
    let (pt, ct) = (
        usage["prompt_tokens"].as_i64().unwrap(),
        usage["completion_tokens"].as_i64().unwrap(),
    );
    assert!(pt > 0 && ct > 0 && ct <= 12, "{usage}");
    assert_eq!(usage["total_tokens"].as_i64().unwrap(), pt + ct);

    let rows = wait_audit(srv.data_path(), |rows| {
        rows.iter().any(|r| r["request_id"] == "my-req-1")
    });
    let rec = rows
        .iter()
        .find(|r| r["request_id"] == "my-req-1")
        .expect("audit record");
    assert_eq!(rec["tenant"], "default");
    assert_eq!(rec["model"], "llama-3-8b");
    assert_eq!(rec["status"], 200);
    assert_eq!(rec["endpoint"], endpoint.as_str());
    assert_eq!(rec["runtime_kind"], "vllm");
    assert!(
        ["h100", "a100", "l4"].contains(&rec["hardware"].as_str().unwrap()),
        "{rec}"
    );
    assert_eq!(rec["prompt_tokens"].as_i64().unwrap(), pt);
    assert_eq!(rec["completion_tokens"].as_i64().unwrap(), ct);
    assert_eq!(rec["stream"], false);

    // The human table shows the same call.
    let out = srv.cli(&["audit", "tail"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("my-req-1"));
    // Usage per tenant and hardware adds it up, in JSON lines and CSV.
    let out = srv.cli(&["usage", "--by", "tenant,hardware", "--since", "1h", "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let usage: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["group"]["tenant"], "default");
    assert_eq!(usage[0]["group"]["hardware"], rec["hardware"]);
    assert_eq!(usage[0]["requests"], 1);
    assert_eq!(usage[0]["completion_tokens"].as_i64().unwrap(), ct);
    assert!(usage[0]["cost_usd"].as_f64().unwrap() > 0.0, "the demo fleet is priced");
    let csv = srv.cli(&["audit", "tail", "--output", "csv"]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("seq,request_id,"), "{text}");
    assert!(text.contains(",my-req-1,"));
    let bad = srv.cli(&["usage", "--by", "colour"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use tenant, model, runtime or hardware"));
    assert!(srv.stop().success());
}

async fn read_sse(resp: reqwest::Response) -> (Vec<String>, Vec<Instant>) {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        arrivals.push(Instant::now());
        while let Some(i) = buf.find("\n\n") {
            let ev = buf[..i].to_string();
            buf.drain(..i + 2);
            events.push(ev.strip_prefix("data: ").expect("data event").to_string());
        }
    }
    assert!(buf.is_empty(), "stream ended mid-event: {buf:?}");
    (events, arrivals)
}

#[tokio::test]
async fn demo_fleet_streaming_with_and_without_usage() {
    let srv = Server::start(&[]);
    let c = client();
    for include_usage in [true, false] {
        let mut body = chat_body("qwen2.5-7b", true, 24);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let rid = format!("stream-{include_usage}");
        let resp = c
            .post(format!("{}/v1/chat/completions", srv.url))
            .header("Authorization", auth())
            .header("x-request-id", &rid)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let (events, arrivals) = read_sse(resp).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"]
                    .get(0)?
                    .get("delta")?
                    .get("content")?
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert!(!text.is_empty());
        assert!(chunks.iter().all(|c| c["model"] == "qwen2.5-7b"));
        let usage_chunks: Vec<&Value> = chunks
            .iter()
            .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
            .collect();
        if include_usage {
            assert_eq!(usage_chunks.len(), 1, "exactly one usage chunk");
            assert_eq!(usage_chunks[0]["choices"], json!([]));
            assert!(usage_chunks[0]["usage"]["completion_tokens"].as_i64().unwrap() > 0);
        } else {
            assert!(usage_chunks.is_empty(), "usage only when asked");
        }
        // Relayed as generated, not buffered whole: chunks arrive spread over time.
        assert!(arrivals.len() > 3, "{} reads", arrivals.len());
        let spread = *arrivals.last().unwrap() - arrivals[0];
        assert!(
            spread > Duration::from_millis(20),
            "all chunks arrived within {spread:?}"
        );

        // The gateway always learns usage, even when the client did not ask for it.
        let rows = wait_audit(srv.data_path(), |rows| {
            rows.iter().any(|r| r["request_id"] == rid.as_str())
        });
        let rec = rows.iter().find(|r| r["request_id"] == rid.as_str()).unwrap();
        assert_eq!(rec["stream"], true);
        assert!(rec["completion_tokens"].as_i64().unwrap() > 0);
        assert!(rec["ttft_ms"].as_f64().unwrap() > 0.0);
        assert!(rec["error_type"].is_null(), "{rec}");
    }
}

#[tokio::test]
async fn completions_route() {
    let srv = Server::start(&[]);
    let resp = client()
        .post(format!("{}/v1/completions", srv.url))
        .header("Authorization", auth())
        .json(&json!({"model": "llama-3-8b", "prompt": "Once upon a time", "max_tokens": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    assert!(!body["choices"][0]["text"].as_str().unwrap().is_empty());
    assert!(body["usage"]["completion_tokens"].as_i64().unwrap() <= 8);
}

#[tokio::test]
async fn errors_are_openai_shaped() {
    let srv = Server::start(&[]);
    let c = client();
    let url = format!("{}/v1/chat/completions", srv.url);

    let r = c
        .post(&url)
        .json(&chat_body("llama-3-8b", false, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-request-id"));
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "authentication_error");
    assert_eq!(e["error"]["code"], "missing_api_key");

    let r = c
        .post(&url)
        .header("Authorization", "Bearer nope")
        .json(&chat_body("llama-3-8b", false, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_api_key");

    let r = c
        .post(&url)
        .header("Authorization", auth())
        .json(&chat_body("gpt-9", false, 4))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "model_not_found");
    assert_eq!(e["error"]["param"], "model");
    assert_eq!(
        e["error"]["message"],
        "The model `gpt-9` does not exist or you do not have access to it."
    );

    let r = c
        .post(&url)
        .header("Authorization", auth())
        .header("content-type", "application/json")
        .body("{\"model\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(e["error"]["code"], "invalid_json");

    let mut body = chat_body("llama-3-8b", false, 4);
    body["max_tokens"] = json!("lots");
    let r = c
        .post(&url)
        .header("Authorization", auth())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "max_tokens");
    assert_eq!(
        e["error"]["message"],
        "Invalid type for 'max_tokens': expected an integer, but got a string instead."
    );

    let r = c.get(format!("{}/v1/nothing", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");

    // Failed calls of a known tenant are audited too.
    let rows = wait_audit(srv.data_path(), |rows| rows.iter().any(|r| r["status"] == 404));
    assert!(
        rows.iter()
            .any(|r| r["status"] == 404 && r["error_type"] == "model_not_found" && r["model"] == "gpt-9")
    );
    assert!(
        rows.iter()
            .any(|r| r["status"] == 400 && r["error_type"] == "invalid_request")
    );
}

#[tokio::test]
async fn models_lists_the_fleet() {
    let srv = Server::start(&[]);
    let r = client()
        .get(format!("{}/v1/models", srv.url))
        .header("Authorization", auth())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let mut ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["llama-3-8b", "nomic-embed-text", "qwen2.5-7b"]);
    let r = client().get(format!("{}/v1/models", srv.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn tenant_commands_work_beside_a_running_server() {
    let srv = Server::start(&[]);
    let c = client();
    let out = srv.cli(&["tenant", "create", "team-a", "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key1 = created["api_key"].as_str().unwrap().to_string();
    let call = |key: String| {
        let c = c.clone();
        let url = srv.url.clone();
        async move {
            c.post(format!("{url}/v1/chat/completions"))
                .header("Authorization", format!("Bearer {key}"))
                .json(&chat_body("llama-3-8b", false, 2))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(call(key1.clone()).await, 200, "a new key works at once");

    let dup = srv.cli(&["tenant", "create", "team-a"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("tenant `team-a` already exists"));

    let out = srv.cli(&["tenant", "rotate-key", "team-a", "--output", "json"]);
    assert!(out.status.success());
    let key2 = serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call(key2).await, 200);
    // The old key stops working within the key-cache poll period.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = call(key1.clone()).await;
        if s == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "revoked key still accepted after 3 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = srv.cli(&["tenant", "list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team-a"]);
    let team_a = &list[1];
    assert_eq!(team_a["active_keys"], 1);
    // Only hashes are stored: the plaintext key is not in the database file.
    let db = std::fs::read(srv.data_path().join("pyxis.db")).unwrap();
    assert!(!db.windows(key1.len()).any(|w| w == key1.as_bytes()));
}

#[test]
fn generated_demo_key_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let srv = Server::start_in(dir, &[], None);
    let banner = srv.stdout_lines.join("\n");
    let key = banner
        .split_whitespace()
        .find(|w| w.starts_with("pyx-"))
        .unwrap_or_else(|| panic!("no key in banner:\n{banner}"))
        .to_string();
    assert!(banner.contains("curl -s"), "{banner}");
    assert!(banner.contains(&key));
    let dir = std::mem::replace(&mut { srv }.data_dir, tempfile::tempdir().unwrap());
    // A second start on the same data dir does not print (it cannot: only the hash is kept).
    let srv2 = Server::start_in(dir, &[], None);
    let banner2 = srv2.stdout_lines.join("\n");
    assert!(!banner2.contains(&key), "{banner2}");
    assert!(banner2.contains("rotate-key default"), "{banner2}");
    assert!(path.join("pyxis.db").exists());
}
