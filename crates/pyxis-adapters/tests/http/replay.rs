//! `detect` against every kind's recorded routes, and native streams relayed over HTTP (the
//! server sends 7-byte pieces) giving the same output as the in-memory replays.

use pyxis_adapters::{AdapterOptions, Preference, ProbeError, TritonBackend, adapter, adapter_with, detect, probe};
use pyxis_protocol::RequestKind;
use pyxis_resources::RuntimeKind;
use serde_json::Value;

use crate::common::replay_server::serve;
use crate::common::{ctx, golden_json, golden_lines, request};
use crate::{client, stream_over_http, whole_over_http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_every_kind_from_its_routes() {
    let c = client();
    for kind in RuntimeKind::ALL {
        let base = serve(kind.as_str()).await;
        let d = detect(&c, &base).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(d.kind, kind, "{kind}: {}", d.evidence);
        let mut v = serde_json::to_value(&d).expect("json");
        // The replay server's port changes every run.
        if let Some(url) = v["metrics_url"].as_str() {
            v["metrics_url"] = Value::String(url.replace(&base, "BASE").replace("127.0.0.1:8002", "BASE:8002"));
        }
        if kind == RuntimeKind::Triton {
            // Nothing listens on :8002 here; whether something does on this machine is not ours to test.
            v["metrics_status"] = Value::Null;
            v["load"] = Value::Null;
        }
        golden_json(kind.as_str(), "detect.expected.json", &v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_reports_what_it_saw() {
    let c = client();
    let d = detect(&c, &serve("ollama").await).await.expect("detect");
    let m = d
        .identity
        .models
        .iter()
        .find(|m| m.id == "nomic-embed-text:latest")
        .expect("model");
    assert_eq!(
        (m.embedding, m.context_length, m.loaded),
        (Some(true), Some(2048), None)
    );
    let l = d
        .identity
        .models
        .iter()
        .find(|m| m.id == "llama3.2:latest")
        .expect("model");
    assert_eq!(
        (l.embedding, l.context_length, l.loaded),
        (Some(false), Some(131_072), Some(true))
    );

    let d = detect(&c, &serve("triton").await).await.expect("detect");
    assert_eq!(d.triton_backend, Some(TritonBackend::TensorrtLlm));
    assert_eq!(probe::suggested_adapter(&d).kind(), RuntimeKind::Triton);

    // Nothing listening: unreachable, with the reason.
    let dead = "http://127.0.0.1:9";
    match detect(&c, dead).await {
        Err(ProbeError::Unreachable { url, reason }) => assert!(url == dead && !reason.is_empty()),
        other => panic!("{other:?}"),
    }
    // An HTTP server that is no runtime: every probe is listed.
    let base = serve("no-such-kind-dir-is-fine-for-404s").await;
    match detect(&c, &base).await {
        Err(ProbeError::Unrecognized { answers, .. }) => assert!(answers.contains("GET /api/version 404"), "{answers}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_streams_over_http_match_the_fixtures() {
    let cx = ctx();
    let tgi = adapter(RuntimeKind::Tgi);
    let base = serve("tgi").await;
    let req = request("tgi", "completion.request.json", RequestKind::Completion);
    let up = tgi.build(&req, "meta-llama/Llama-3.1-8B-Instruct").expect("build");
    golden_lines(
        "tgi",
        "generate_stream.expected",
        &stream_over_http(tgi, &base, &up, &cx).await,
    );
    let mut whole = req.clone();
    whole.stream = false;
    let up = tgi.build(&whole, "m").expect("build");
    assert_eq!(up.path, "/generate");
    let w = whole_over_http(tgi, &base, &up, &cx).await.expect("whole");
    let u = w.usage.expect("usage from x-prompt-tokens over HTTP");
    assert_eq!((u.prompt_tokens, u.completion_tokens), (4, 5));

    let triton = adapter(RuntimeKind::Triton);
    let base = serve("triton").await;
    let up = triton
        .build(
            &request("triton", "completion.request.json", RequestKind::Completion),
            "llama",
        )
        .expect("build");
    golden_lines(
        "triton",
        "generate_stream.expected",
        &stream_over_http(triton, &base, &up, &cx).await,
    );

    let ollama = adapter(RuntimeKind::Ollama);
    let base = serve("ollama").await;
    let req = request("ollama", "chat.request.json", RequestKind::Chat);
    let up = ollama.build(&req, "llama3.2").expect("build");
    golden_lines(
        "ollama",
        "chat.stream.expected",
        &stream_over_http(ollama, &base, &up, &cx).await,
    );
    let mut whole = req.clone();
    whole.stream = false;
    let up = ollama.build(&whole, "llama3.2").expect("build");
    let w = whole_over_http(ollama, &base, &up, &cx).await.expect("whole");
    let v: Value = serde_json::from_slice(&w.body).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "Paris is 18°C.");

    let llama = adapter_with(
        RuntimeKind::Llamacpp,
        AdapterOptions {
            prefer: Preference::Native,
            ..AdapterOptions::default()
        },
    );
    let base = serve("llamacpp").await;
    let up = llama
        .build(
            &request("llamacpp", "completion.request.json", RequestKind::Completion),
            "tiny",
        )
        .expect("build");
    golden_lines(
        "llamacpp",
        "completion.stream.expected",
        &stream_over_http(llama, &base, &up, &cx).await,
    );

    let vllm = adapter(RuntimeKind::Vllm);
    let base = serve("vllm").await;
    let up = vllm
        .build(&request("vllm", "chat.request.json", RequestKind::Chat), "tiny")
        .expect("build");
    golden_lines(
        "vllm",
        "chat.stream.expected",
        &stream_over_http(vllm, &base, &up, &cx).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_and_identity_fetchers() {
    let c = client();
    let vllm = adapter(RuntimeKind::Vllm);
    let base = serve("vllm").await;
    let l = probe::fetch_load(&c, &base, vllm, None, None, 5).await.expect("load");
    assert_eq!((l.waiting, l.running, l.at_ms), (3, 8, 5));
    let id = probe::fetch_identity(&c, &base, vllm, None).await;
    assert_eq!(id.version.as_deref(), Some("0.32.0"));
    let lora = id.models.iter().find(|m| m.id == "tiny-lora").expect("adapter listed");
    assert_eq!(lora.parent.as_deref(), Some("tiny"));
    assert_eq!(
        probe::fetch_load(&c, &base, adapter(RuntimeKind::Ollama), None, None, 5).await,
        None
    );
}
