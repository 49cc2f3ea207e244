//! Against the repository's simulator (vLLM, TGI and Ollama surfaces over real HTTP): detection,
//! identity and load, and native requests built, sent and translated end to end.

use std::net::SocketAddr;

use pyxis_adapters::{Ctx, adapter, detect};
use pyxis_protocol::{InferenceRequest, RequestKind};
use pyxis_resources::RuntimeKind;
use pyxis_sim::{EngineHandle, EngineSpec, Surface};
use serde_json::{Value, json};

use crate::common::assert_openai_stream;
use crate::{client, stream_over_http, whole_over_http};

const MODEL: &str = "llama-3-8b";
const LORA: &str = "tgi-lora";

async fn start(surface: Surface) -> EngineHandle {
    let mut s = EngineSpec::new("adapters-test", "h100", MODEL);
    s.surface = surface;
    s.speedup = 20.0;
    s.seed = 7;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    pyxis_sim::spawn(s, addr).await.expect("spawn engine")
}

fn ctx() -> Ctx<'static> {
    crate::common::ctx()
}

fn parse(rk: RequestKind, v: Value) -> InferenceRequest {
    InferenceRequest::parse(rk, v.to_string().as_bytes()).expect("valid")
}

fn usage_of(lines: &[String]) -> Value {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("DATA "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["choices"] == json!([]))
        .map(|v| v["usage"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_the_simulated_surfaces() {
    let c = client();
    for (surface, kind, version) in [
        (Surface::Vllm, RuntimeKind::Vllm, "0.32.0"),
        (Surface::Tgi, RuntimeKind::Tgi, "3.3.6"),
        (Surface::Ollama, RuntimeKind::Ollama, "0.6.8"),
    ] {
        let h = start(surface).await;
        let d = detect(&c, &h.url()).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(d.kind, kind, "{}", d.evidence);
        assert_eq!(d.identity.version.as_deref(), Some(version), "{kind}");
        assert!(d.healthy, "{kind}: {} {:?}", d.health_path, d.health_status);
        assert!(
            d.identity.models.iter().any(|m| m.id.starts_with(MODEL)),
            "{kind}: {:?}",
            d.identity.models
        );
        match kind {
            RuntimeKind::Ollama => assert_eq!((d.metrics_url, d.load), (None, None)),
            _ => {
                let l = d
                    .load
                    .unwrap_or_else(|| panic!("{kind}: load from the simulator's metrics"));
                assert_eq!((l.waiting, l.running), (0, 0), "{kind}: idle");
            }
        }
        if kind == RuntimeKind::Vllm {
            let m = d.identity.models.iter().find(|m| m.id == MODEL).expect("model");
            assert!(m.context_length.is_some_and(|n| n > 0));
        }
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_native_completions_end_to_end() {
    // `adapter_id` carries the served name, as TGI's own OpenAI routes do with `model`. Real TGI
    // falls back to the base model for an unknown id; the simulator's TGI surface takes any
    // `adapter_id` as a LoRA (pyxis-sim src/tgi.rs `start`), so serve through an adapter here.
    let mut spec = EngineSpec::new("adapters-test", "h100", MODEL);
    spec.surface = Surface::Tgi;
    spec.speedup = 20.0;
    spec.tuning.lora_adapters = vec![LORA.into()];
    let h = pyxis_sim::spawn(spec, ([127, 0, 0, 1], 0).into()).await.expect("spawn");
    let a = adapter(RuntimeKind::Tgi);
    let req = parse(
        RequestKind::Completion,
        json!({"model": "public-model", "prompt": "Once upon a time", "max_tokens": 8, "stream": true, "seed": 3}),
    );
    let up = a.build(&req, LORA).expect("build");
    assert_eq!(up.path, "/generate_stream");
    let lines = stream_over_http(a, &h.url(), &up, &ctx()).await;
    assert_openai_stream(&lines, RequestKind::Completion, true);
    let u = usage_of(&lines);
    assert_eq!(u["completion_tokens"], 8, "{u}");
    assert!(u["prompt_tokens"].as_u64().is_some_and(|p| p > 0));

    let mut whole = req.clone();
    whole.stream = false;
    let up = a.build(&whole, LORA).expect("build");
    let w = whole_over_http(a, &h.url(), &up, &ctx()).await.expect("whole");
    let u = w.usage.expect("usage (x-prompt-tokens)");
    assert_eq!(u.completion_tokens, 8);
    let v: Value = serde_json::from_slice(&w.body).expect("json");
    assert_eq!(
        (v["object"].as_str(), v["choices"][0]["finish_reason"].as_str()),
        (Some("text_completion"), Some("length"))
    );

    // TGI's 422 for a prompt that does not fit comes back as OpenAI's context error.
    let long = parse(
        RequestKind::Completion,
        json!({"model": "m", "prompt": "x", "max_tokens": 10_000_000}),
    );
    let up = a.build(&long, LORA).expect("build");
    let resp = client()
        .post(format!("{}{}", h.url(), up.path))
        .header("content-type", "application/json")
        .body(up.body.clone())
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let body = resp.bytes().await.expect("body");
    let f = a.classify_error(status, &body);
    assert_eq!(
        f.error().code.as_deref(),
        Some("context_length_exceeded"),
        "{status} {f:?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_native_end_to_end() {
    let h = start(Surface::Ollama).await;
    let a = adapter(RuntimeKind::Ollama);
    let chat = parse(
        RequestKind::Chat,
        json!({"model": "public-model", "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
               "max_tokens": 6, "stream": true}),
    );
    let up = a.build(&chat, MODEL).expect("build");
    let lines = stream_over_http(a, &h.url(), &up, &ctx()).await;
    assert_openai_stream(&lines, RequestKind::Chat, true);
    assert_eq!(usage_of(&lines)["completion_tokens"], 6);

    let generate = parse(
        RequestKind::Completion,
        json!({"model": "public-model", "prompt": "The sky is", "max_tokens": 5}),
    );
    let up = a.build(&generate, MODEL).expect("build");
    let w = whole_over_http(a, &h.url(), &up, &ctx()).await.expect("whole");
    assert_eq!(w.usage.map(|u| u.completion_tokens), Some(5));

    // A model Ollama does not have: 404, retried elsewhere (not the client's fault).
    let up = a.build(&generate, "not-pulled").expect("build");
    let resp = client()
        .post(format!("{}{}", h.url(), up.path))
        .body(up.body.clone())
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let f = a.classify_error(status, &resp.bytes().await.expect("body"));
    assert!(f.retry_elsewhere(), "{status} {f:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_pass_through_end_to_end() {
    let h = start(Surface::Vllm).await;
    let a = adapter(RuntimeKind::Vllm);
    let req = parse(
        RequestKind::Chat,
        json!({"model": "public-model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": true, "ignore_eos": true}),
    );
    let up = a.build(&req, MODEL).expect("build");
    let lines = stream_over_http(a, &h.url(), &up, &ctx()).await;
    assert_eq!(&lines[lines.len() - 2..], ["DONE", "FINISH ok"]);
    assert_eq!(
        usage_of(&lines)["completion_tokens"],
        4,
        "include_usage was forced upstream"
    );
    h.shutdown().await;
}
