//! One fleet, several runtime kinds: simulated vLLM, TGI (native completions), Ollama (native NDJSON
//! API) and llama.cpp (OpenAI surface), each behind its adapter, all looking the same through
//! Pyxis; and moving a model to another runtime is a one-line edit of the fleet file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pyxis_gateway::{Gateway, ServeConfig};
use serde_json::{Value, json};

const KEY: &str = "pyx-runtimes";

fn fleet(tgi_model_runtime: &str) -> String {
    let mut y = String::from("apiVersion: pyxis.dev/v1alpha1\nkind: Tenant\nmetadata: {name: default}\nspec: {}\n");
    for kind in ["vllm", "tgi", "ollama", "llamacpp"] {
        y.push_str(&format!(
            "---\napiVersion: pyxis.dev/v1alpha1\nkind: Runtime\nmetadata: {{name: {kind}-pool}}\nspec:\n  kind: {kind}\n  simulated: {{replicas: 1, speedup: 20}}\n  accelerator: {{type: l4, memoryGiB: 24}}\n"
        ));
        let runtime = if kind == "tgi" { tgi_model_runtime } else { "" };
        let runtime = if runtime.is_empty() {
            format!("{kind}-pool")
        } else {
            runtime.to_string()
        };
        y.push_str(&format!(
            "---\napiVersion: pyxis.dev/v1alpha1\nkind: Model\nmetadata: {{name: m-{kind}}}\nspec: {{version: \"1\", parameters: 1B, contextLength: 4096, runtimes: [{runtime}]}}\n"
        ));
    }
    for kind in ["vllm", "ollama"] {
        y.push_str(&format!(
            "---\napiVersion: pyxis.dev/v1alpha1\nkind: Model\nmetadata: {{name: e-{kind}}}\nspec: {{servedName: nomic-embed-text, version: \"1\", parameters: 137M, contextLength: 2048, embedding: true, runtimes: [{kind}-pool]}}\n"
        ));
    }
    y
}

async fn post(c: &reqwest::Client, gw: &Gateway, path: &str, body: Value) -> reqwest::Response {
    c.post(format!("{}{path}", gw.url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn endpoint_of(r: &reqwest::Response) -> String {
    r.headers()["x-pyxis-endpoint"].to_str().unwrap().to_string()
}

/// The data events of an SSE body, `[DONE]` included.
fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_kind_looks_like_openai() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, fleet("")).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.fleet_file = Some(file.clone());
    cfg.demo_api_key = Some(KEY.into());
    let gw = Gateway::start(cfg).await.unwrap();
    let c = reqwest::Client::new();

    for kind in ["vllm", "tgi", "ollama", "llamacpp"] {
        let model = format!("m-{kind}");
        // Chat, whole.
        let r = post(
            &c,
            &gw,
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 8}),
        )
        .await;
        assert_eq!(r.status(), 200, "{kind} chat");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion", "{kind}: {v}");
        assert_eq!(v["model"], model.as_str(), "{kind}");
        assert!(v["choices"][0]["message"]["content"].is_string(), "{kind}: {v}");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{kind}: {v}");
        assert!(v["choices"][0]["finish_reason"].is_string(), "{kind}: {v}");

        // Completions, streamed, with usage asked for.
        let r = post(
            &c,
            &gw,
            "/v1/completions",
            json!({"model": model, "prompt": "Once upon a time", "max_tokens": 6, "stream": true,
                   "stream_options": {"include_usage": true}}),
        )
        .await;
        assert_eq!(r.status(), 200, "{kind} completions stream");
        assert_eq!(r.headers()["content-type"], "text/event-stream", "{kind}");
        let events = sse_data(&r.text().await.unwrap());
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{kind}: {events:?}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "text_completion" && c["model"] == model.as_str()),
            "{kind}: {chunks:?}"
        );
        let usage = chunks
            .iter()
            .rev()
            .find(|c| c["usage"].is_object())
            .expect("a usage chunk");
        assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{kind}");
        assert_eq!(
            chunks
                .iter()
                .filter(|c| c["choices"][0]["finish_reason"].is_string())
                .count(),
            1,
            "{kind}: exactly one finish_reason: {chunks:?}"
        );
    }

    // Embeddings through the OpenAI surface (vLLM) and Ollama's native /api/embed.
    for kind in ["vllm", "ollama"] {
        let model = format!("e-{kind}");
        let r = post(
            &c,
            &gw,
            "/v1/embeddings",
            json!({"model": model, "input": ["hello world", "bye"]}),
        )
        .await;
        assert_eq!(r.status(), 200, "{kind} embeddings");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "list", "{kind}: {v}");
        assert_eq!(v["model"], model.as_str(), "{kind}: {v}");
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{kind}");
        assert_eq!(data[1]["index"], 1);
        assert_eq!(
            data[0]["embedding"].as_array().unwrap().len(),
            768,
            "{kind}: nomic dimension"
        );
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{kind}: {v}");
    }
    let r = post(&c, &gw, "/v1/embeddings", json!({"model": "m-vllm", "input": "x"})).await;
    assert_eq!(r.status(), 400, "a chat model does not embed");
    let r = post(
        &c,
        &gw,
        "/v1/chat/completions",
        json!({"model": "e-vllm", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 400, "an embedding model does not chat");

    // Version discovery per kind reaches the audit log's runtime version (health loop, 2 s period).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let view = gw.state.view();
    // (The simulator serves llama.cpp's OpenAI routes through its vLLM surface, which has no `/props`.)
    for ep in view
        .endpoints
        .iter()
        .filter(|e| e.kind != pyxis_resources::RuntimeKind::Llamacpp)
    {
        assert!(ep.version().is_some(), "{} ({}) reported no version", ep.url, ep.kind);
    }
    // vLLM's surface exports load metrics; the sample is kept on the endpoint.
    let vllm = view.models["m-vllm"].endpoints[0].clone();
    assert!(vllm.load_sample().is_some(), "vLLM load signal scraped");

    // Moving a model to another runtime is a one-line change.
    let before = post(
        &c,
        &gw,
        "/v1/chat/completions",
        json!({"model": "m-tgi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
    )
    .await;
    let tgi_url = endpoint_of(&before);
    std::fs::write(&file, fleet("ollama-pool")).unwrap();
    let mut moved = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = post(
            &c,
            &gw,
            "/v1/chat/completions",
            json!({"model": "m-tgi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
        )
        .await;
        assert_eq!(r.status(), 200);
        let now = gw.state.view();
        let ep = now.models["m-tgi"].endpoints[0].clone();
        if endpoint_of(&r) != tgi_url {
            assert_eq!(endpoint_of(&r), ep.url);
            assert_eq!(
                (ep.runtime.as_str(), ep.kind),
                ("ollama-pool", pyxis_resources::RuntimeKind::Ollama)
            );
            moved = true;
            break;
        }
    }
    assert!(moved, "m-tgi now served by the Ollama runtime");
    gw.shutdown().await.unwrap();
}
