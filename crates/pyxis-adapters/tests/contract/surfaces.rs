//! The per-kind surface choice, and what selecting the other surface changes.

use pyxis_adapters::{AdapterOptions, Preference, Surface, TritonBackend, adapter, adapter_with};
use pyxis_protocol::{InferenceRequest, RequestKind};
use pyxis_resources::RuntimeKind;

use crate::common::request;

#[test]
fn default_surfaces() {
    use RequestKind::{Chat, Completion, Embeddings};
    use Surface::{Native, OpenAi, Unsupported};
    let table = [
        (RuntimeKind::Vllm, [OpenAi, OpenAi, OpenAi]),
        (RuntimeKind::Sglang, [OpenAi, OpenAi, OpenAi]),
        (RuntimeKind::Tgi, [OpenAi, Native, Unsupported]),
        (RuntimeKind::Triton, [Unsupported, Native, Unsupported]),
        (RuntimeKind::TensorrtLlm, [OpenAi, OpenAi, Unsupported]),
        (RuntimeKind::Ollama, [Native, Native, Native]),
        (RuntimeKind::Llamacpp, [OpenAi, OpenAi, OpenAi]),
        (RuntimeKind::Openai, [OpenAi, OpenAi, OpenAi]),
    ];
    for (kind, want) in table {
        let a = adapter(kind);
        assert_eq!(a.kind(), kind);
        let got = [a.surface(Chat), a.surface(Completion), a.surface(Embeddings)];
        assert_eq!(got, want, "{kind}");
    }
}

fn with(kind: RuntimeKind, prefer: Preference) -> &'static dyn pyxis_adapters::Adapter {
    adapter_with(
        kind,
        AdapterOptions {
            prefer,
            ..AdapterOptions::default()
        },
    )
}

#[test]
fn preferences_switch_surfaces() {
    let tgi = with(RuntimeKind::Tgi, Preference::OpenAi);
    assert_eq!(tgi.surface(RequestKind::Completion), Surface::OpenAi);
    let up = tgi
        .build(&request("tgi", "completion.request.json", RequestKind::Completion), "m")
        .expect("build");
    assert_eq!(up.path, "/v1/completions");

    let ollama = with(RuntimeKind::Ollama, Preference::OpenAi);
    let up = ollama
        .build(&request("ollama", "chat.request.json", RequestKind::Chat), "llama3.2")
        .expect("build");
    assert_eq!(up.path, "/v1/chat/completions");
    let body: serde_json::Value = serde_json::from_slice(&up.body).expect("json");
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["stream_options"]["include_usage"], true);

    let llama = with(RuntimeKind::Llamacpp, Preference::Native);
    assert_eq!(llama.surface(RequestKind::Completion), Surface::Native);
    assert_eq!(
        llama.surface(RequestKind::Chat),
        Surface::OpenAi,
        "chat needs the server's template"
    );

    let frontend = with(RuntimeKind::Triton, Preference::OpenAi);
    assert_eq!(frontend.surface(RequestKind::Chat), Surface::OpenAi);
    assert_eq!(frontend.health_path(), "/v1/models");
    assert_eq!(frontend.metrics_path(), None);

    // Kinds without a native API keep their OpenAI surface.
    assert_eq!(
        with(RuntimeKind::Vllm, Preference::Native).surface(RequestKind::Chat),
        Surface::OpenAi
    );
    let vllm_triton = adapter_with(
        RuntimeKind::Triton,
        AdapterOptions {
            triton_backend: TritonBackend::Vllm,
            ..AdapterOptions::default()
        },
    );
    assert_eq!(vllm_triton.surface(RequestKind::Completion), Surface::Native);
}

#[test]
fn unsupported_routes_answer_with_the_reason() {
    let emb = request("vllm", "embeddings.request.json", RequestKind::Embeddings);
    for kind in [RuntimeKind::Tgi, RuntimeKind::Triton, RuntimeKind::TensorrtLlm] {
        let e = adapter(kind).build(&emb, "m").expect_err("no embeddings");
        assert_eq!(
            (e.status(), e.code.as_deref()),
            (404, Some("unsupported_route")),
            "{kind}"
        );
        assert!(e.message.contains(kind.as_str()), "{}", e.message);
    }
    let chat = InferenceRequest::parse(
        RequestKind::Chat,
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .expect("parse");
    let e = adapter(RuntimeKind::Triton).build(&chat, "llama").expect_err("no chat");
    assert_eq!(e.status(), 404);
    assert!(
        e.message.starts_with("This is not a chat model"),
        "OpenAI's own wording: {}",
        e.message
    );
}

#[test]
fn probes_and_paths() {
    for kind in RuntimeKind::ALL {
        let a = adapter(kind);
        assert!(a.health_path().starts_with('/'));
        assert!(!a.identity_probes().is_empty(), "{kind}");
    }
    let triton = adapter(RuntimeKind::Triton);
    assert_eq!(
        triton.metrics_url("http://10.0.0.5:8000"),
        Some("http://10.0.0.5:8002/metrics".into())
    );
    assert_eq!(
        adapter(RuntimeKind::Vllm).metrics_url("http://h:8000/"),
        Some("http://h:8000/metrics".into())
    );
    assert_eq!(
        adapter(RuntimeKind::TensorrtLlm).metrics_path(),
        Some("/prometheus/metrics")
    );
    assert_eq!(adapter(RuntimeKind::Ollama).metrics_path(), None);
    let show = adapter(RuntimeKind::Ollama)
        .identity_probes()
        .iter()
        .find(|p| p.per_model)
        .expect("per-model probe");
    assert_eq!(show.body_for(Some("a\"b")).as_deref(), Some(r#"{"model":"a\"b"}"#));
    assert_eq!(show.label_for(Some("llama3.2")), "/api/show?model=llama3.2");
}
