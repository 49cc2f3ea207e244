//! Native surfaces: requests built for TGI, Triton, Ollama and llama.cpp, and their replies and
//! streams (split at every byte) turned into valid OpenAI objects.

use pyxis_adapters::{
    Adapter, AdapterOptions, Dialect, Preference, TritonBackend, UpstreamRequest, adapter, adapter_with,
};
use pyxis_protocol::{InferenceRequest, RequestKind};
use pyxis_resources::RuntimeKind;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::common::{PUBLIC, assert_openai_stream, ctx, golden_json, golden_lines, read, replay, request};

fn upstream_json(up: &UpstreamRequest) -> Value {
    json!({
        "path": up.path,
        "stream": up.stream,
        "headers": up.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>(),
        "body": serde_json::from_slice::<Value>(&up.body).expect("body is JSON"),
    })
}

fn whole_json(a: &dyn Adapter, dialect: Dialect, headers: &HeaderMap, body: &[u8]) -> Value {
    let w = a.translate_whole(dialect, headers, body, &ctx()).expect("whole");
    let body: Value = serde_json::from_slice(&w.body).expect("json");
    assert_eq!(body["model"], PUBLIC);
    assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()));
    json!({"body": body, "usage": w.usage.map(|u| json!([u.prompt_tokens, u.completion_tokens, u.total_tokens]))})
}

fn parse(rk: RequestKind, body: Value) -> InferenceRequest {
    InferenceRequest::parse(rk, body.to_string().as_bytes()).expect("valid request")
}

fn rejects(a: &dyn Adapter, rk: RequestKind, body: Value, param: &str) {
    let e = a.build(&parse(rk, body.clone()), "m").expect_err("must be refused");
    assert_eq!((e.status(), e.param.as_deref()), (400, Some(param)), "{body}: {e}");
}

#[test]
fn tgi_completions_on_generate() {
    let a = adapter(RuntimeKind::Tgi);
    let up = a
        .build(
            &request("tgi", "completion.request.json", RequestKind::Completion),
            "meta-llama/Llama-3.1-8B-Instruct",
        )
        .expect("build");
    assert_eq!(up.dialect, Dialect::TgiGenerate);
    golden_json("tgi", "completion.upstream.json", &upstream_json(&up));

    let lines = replay(a, Dialect::TgiGenerate, &read("tgi", "generate_stream.sse"));
    assert_openai_stream(&lines, RequestKind::Completion, true);
    golden_lines("tgi", "generate_stream.expected", &lines);

    let lines = replay(a, Dialect::TgiGenerate, &read("tgi", "generate_stream.eos.sse"));
    assert_openai_stream(&lines, RequestKind::Completion, true);
    assert!(
        !lines.iter().any(|l| l.contains("eot_id")),
        "special tokens are not text"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"finish_reason\":\"stop\"")),
        "eos_token is stop"
    );

    let lines = replay(a, Dialect::TgiGenerate, &read("tgi", "generate_stream.error.sse"));
    golden_lines("tgi", "generate_stream.error.expected", &lines);
    let lines = replay(a, Dialect::TgiGenerate, &read("tgi", "generate_stream.truncated.sse"));
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("FINISH-ERR 502") && l.contains("details")),
        "{lines:?}"
    );

    let mut headers = HeaderMap::new();
    for line in String::from_utf8(read("tgi", "generate.headers"))
        .expect("utf8")
        .lines()
    {
        let (k, v) = line.split_once(": ").expect("header");
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let got = whole_json(a, Dialect::TgiGenerate, &headers, &read("tgi", "generate.json"));
    golden_json("tgi", "generate.whole.expected.json", &got);
    // Without TGI's headers the prompt count is unknown: no usage rather than a wrong one.
    let got = whole_json(
        a,
        Dialect::TgiGenerate,
        &HeaderMap::new(),
        &read("tgi", "generate.json"),
    );
    assert_eq!(got["usage"], Value::Null);

    let base = json!({"model": "m", "prompt": "x"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    rejects(a, RequestKind::Completion, with("n", json!(2)), "n");
    rejects(a, RequestKind::Completion, with("prompt", json!([1, 2, 3])), "prompt");
    rejects(a, RequestKind::Completion, with("prompt", json!(["a", "b"])), "prompt");
    rejects(
        a,
        RequestKind::Completion,
        with("presence_penalty", json!(0.5)),
        "presence_penalty",
    );
    rejects(a, RequestKind::Completion, with("logprobs", json!(3)), "logprobs");
    assert!(
        a.build(&parse(RequestKind::Completion, with("presence_penalty", json!(0))), "m")
            .is_ok()
    );
}

#[test]
fn triton_generate_extension() {
    let trt = adapter(RuntimeKind::Triton);
    let req = request("triton", "completion.request.json", RequestKind::Completion);
    let up = trt.build(&req, "llama").expect("build");
    assert_eq!(up.dialect, Dialect::TritonGenerate(TritonBackend::TensorrtLlm));
    golden_json("triton", "completion.upstream.trtllm.json", &upstream_json(&up));
    let vllm = adapter_with(
        RuntimeKind::Triton,
        AdapterOptions {
            triton_backend: TritonBackend::Vllm,
            ..AdapterOptions::default()
        },
    );
    let up = vllm.build(&req, "vllm model").expect("build");
    assert_eq!(up.path, "/v2/models/vllm%20model/generate_stream");
    let body = upstream_json(&up);
    golden_json("triton", "completion.upstream.vllm.json", &body);
    let sp: Value =
        serde_json::from_str(body["body"]["sampling_parameters"].as_str().expect("a JSON string")).expect("json");
    assert_eq!(sp["max_tokens"], 8);

    let d = Dialect::TritonGenerate(TritonBackend::TensorrtLlm);
    let lines = replay(trt, d, &read("triton", "generate_stream.sse"));
    assert_openai_stream(&lines, RequestKind::Completion, false);
    golden_lines("triton", "generate_stream.expected", &lines);

    let dv = Dialect::TritonGenerate(TritonBackend::Vllm);
    let lines = replay(vllm, dv, &read("triton", "generate_stream.vllm.sse"));
    assert_openai_stream(&lines, RequestKind::Completion, true);
    golden_lines("triton", "generate_stream.vllm.expected", &lines);

    let lines = replay(trt, d, &read("triton", "generate_stream.error.sse"));
    golden_lines("triton", "generate_stream.error.expected", &lines);
    let lines = replay(trt, d, &read("triton", "generate_stream.truncated.sse"));
    assert!(
        lines.last().is_some_and(|l| l.starts_with("FINISH-ERR 502")),
        "{lines:?}"
    );

    golden_json(
        "triton",
        "generate.whole.expected.json",
        &whole_json(trt, d, &HeaderMap::new(), &read("triton", "generate.json")),
    );
    golden_json(
        "triton",
        "generate.vllm.whole.expected.json",
        &whole_json(vllm, dv, &HeaderMap::new(), &read("triton", "generate.vllm.json")),
    );
    let e = trt
        .translate_whole(
            d,
            &HeaderMap::new(),
            br#"{"error":"Exceeds maximum queue size"}"#,
            &ctx(),
        )
        .expect_err("an error under a 200");
    assert_eq!(e.status(), 502);
}

#[test]
fn ollama_native_api() {
    let a = adapter(RuntimeKind::Ollama);
    let up = a
        .build(&request("ollama", "chat.request.json", RequestKind::Chat), "llama3.2")
        .expect("build");
    assert_eq!(up.dialect, Dialect::OllamaChat);
    golden_json("ollama", "chat.upstream.json", &upstream_json(&up));
    let up = a
        .build(
            &request("ollama", "generate.request.json", RequestKind::Completion),
            "llama3.2",
        )
        .expect("build");
    golden_json("ollama", "generate.upstream.json", &upstream_json(&up));
    let up = a
        .build(
            &request("ollama", "embed.request.json", RequestKind::Embeddings),
            "nomic-embed-text",
        )
        .expect("build");
    assert_eq!(up.dialect, Dialect::OllamaEmbed { base64: true });
    golden_json("ollama", "embed.upstream.json", &upstream_json(&up));

    let lines = replay(a, Dialect::OllamaChat, &read("ollama", "chat.stream.ndjson"));
    assert_openai_stream(&lines, RequestKind::Chat, true);
    golden_lines("ollama", "chat.stream.expected", &lines);
    let lines = replay(a, Dialect::OllamaChat, &read("ollama", "chat_tools.stream.ndjson"));
    assert_openai_stream(&lines, RequestKind::Chat, true);
    golden_lines("ollama", "chat_tools.stream.expected", &lines);
    let lines = replay(a, Dialect::OllamaGenerate, &read("ollama", "generate.stream.ndjson"));
    assert_openai_stream(&lines, RequestKind::Completion, true);
    golden_lines("ollama", "generate.stream.expected", &lines);
    let lines = replay(a, Dialect::OllamaChat, &read("ollama", "chat.stream.error.ndjson"));
    golden_lines("ollama", "chat.stream.error.expected", &lines);
    let lines = replay(a, Dialect::OllamaChat, &read("ollama", "chat.stream.truncated.ndjson"));
    assert!(
        lines.last().is_some_and(|l| l.starts_with("FINISH-ERR 502")),
        "{lines:?}"
    );
    // The last object without its newline still counts.
    let mut nl = read("ollama", "chat.stream.ndjson");
    nl.pop();
    let lines = replay(a, Dialect::OllamaChat, &nl);
    assert_openai_stream(&lines, RequestKind::Chat, true);

    let h = HeaderMap::new();
    for (d, file, golden) in [
        (Dialect::OllamaChat, "chat.whole.json", "chat.whole.expected.json"),
        (
            Dialect::OllamaChat,
            "chat_tools.whole.json",
            "chat_tools.whole.expected.json",
        ),
        (
            Dialect::OllamaGenerate,
            "generate.whole.json",
            "generate.whole.expected.json",
        ),
    ] {
        golden_json("ollama", golden, &whole_json(a, d, &h, &read("ollama", file)));
    }
    let w = a
        .translate_whole(
            Dialect::OllamaEmbed { base64: true },
            &h,
            &read("ollama", "embed.whole.json"),
            &ctx(),
        )
        .expect("embed");
    let v: Value = serde_json::from_slice(&w.body).expect("json");
    golden_json("ollama", "embed.whole.expected.json", &v);
    let w = a
        .translate_whole(
            Dialect::OllamaEmbed { base64: false },
            &h,
            &read("ollama", "embed.whole.json"),
            &ctx(),
        )
        .expect("embed");
    let v: Value = serde_json::from_slice(&w.body).expect("json");
    assert_eq!(v["data"][1]["embedding"], json!([0.0, 0.125, -1.5]));

    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let with = |k: &str, v: Value| {
        let mut b = chat.clone();
        b[k] = v;
        b
    };
    rejects(
        a,
        RequestKind::Chat,
        with("tool_choice", json!("required")),
        "tool_choice",
    );
    rejects(a, RequestKind::Chat, with("n", json!(3)), "n");
    rejects(
        a,
        RequestKind::Chat,
        with(
            "messages",
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]),
        ),
        "messages[0].content[0].image_url.url",
    );
    rejects(
        a,
        RequestKind::Chat,
        with(
            "messages",
            json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]),
        ),
        "messages[0].tool_calls[0].function.arguments",
    );
    rejects(
        a,
        RequestKind::Embeddings,
        json!({"model": "m", "input": "x", "dimensions": 8}),
        "dimensions",
    );
    rejects(
        a,
        RequestKind::Embeddings,
        json!({"model": "m", "input": [[1, 2]]}),
        "input",
    );
    let none = a
        .build(&parse(RequestKind::Chat, with("tool_choice", json!("none"))), "m")
        .expect("none is fine");
    assert!(
        serde_json::from_slice::<Value>(&none.body)
            .expect("json")
            .get("tools")
            .is_none()
    );
}

#[test]
fn llamacpp_native_completion() {
    let a = adapter_with(
        RuntimeKind::Llamacpp,
        AdapterOptions {
            prefer: Preference::Native,
            ..AdapterOptions::default()
        },
    );
    let up = a
        .build(
            &request("llamacpp", "completion.request.json", RequestKind::Completion),
            "tiny",
        )
        .expect("build");
    assert_eq!(up.dialect, Dialect::LlamaCppCompletion);
    golden_json("llamacpp", "completion.upstream.json", &upstream_json(&up));
    let lines = replay(
        a,
        Dialect::LlamaCppCompletion,
        &read("llamacpp", "completion.stream.sse"),
    );
    assert_openai_stream(&lines, RequestKind::Completion, true);
    golden_lines("llamacpp", "completion.stream.expected", &lines);
    golden_json(
        "llamacpp",
        "completion.whole.expected.json",
        &whole_json(
            a,
            Dialect::LlamaCppCompletion,
            &HeaderMap::new(),
            &read("llamacpp", "completion.whole.json"),
        ),
    );
    let tokens = parse(RequestKind::Completion, json!({"model": "m", "prompt": [[1, 2, 3]]}));
    let up = a.build(&tokens, "tiny").expect("token prompts are fine here");
    assert_eq!(
        serde_json::from_slice::<Value>(&up.body).expect("json")["prompt"],
        json!([1, 2, 3])
    );
}
