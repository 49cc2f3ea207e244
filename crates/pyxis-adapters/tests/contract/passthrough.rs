//! The OpenAI surface: bodies built by `upstream_body`, payloads passed through byte for byte,
//! `[DONE]`, in-band errors and truncation recognised.

use pyxis_adapters::{Dialect, adapter};
use pyxis_protocol::RequestKind;
use pyxis_resources::RuntimeKind;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::{PUBLIC, assert_untouched, ctx, golden_lines, read, replay, request};

const CHAT: Dialect = Dialect::OpenAi(RequestKind::Chat);

#[test]
fn build_is_upstream_body() {
    let req = request("vllm", "chat.request.json", RequestKind::Chat);
    for kind in [
        RuntimeKind::Vllm,
        RuntimeKind::Sglang,
        RuntimeKind::TensorrtLlm,
        RuntimeKind::Llamacpp,
        RuntimeKind::Openai,
        RuntimeKind::Tgi,
    ] {
        let up = adapter(kind).build(&req, "tiny").expect("build");
        assert_eq!(up.dialect, CHAT, "{kind}");
        assert_eq!(up.path, "/v1/chat/completions");
        assert!(up.stream);
        assert_eq!(
            &up.body[..],
            &req.upstream_body("tiny")[..],
            "{kind}: the existing fast path, unchanged"
        );
        let v: Value = serde_json::from_slice(&up.body).expect("json");
        assert_eq!(v["top_k"], 5, "unknown parameters are forwarded");
    }
    let emb = request("vllm", "embeddings.request.json", RequestKind::Embeddings);
    let up = adapter(RuntimeKind::Vllm).build(&emb, "e5-served").expect("build");
    assert_eq!((up.path.as_str(), up.stream), ("/v1/embeddings", false));
    let v: Value = serde_json::from_slice(&up.body).expect("json");
    assert_eq!(
        v,
        json!({"model": "e5-served", "input": ["hello", "world"], "encoding_format": "float"})
    );
}

#[test]
fn streams_pass_through_untouched() {
    for (kind, dir) in [
        (RuntimeKind::Vllm, "vllm"),
        (RuntimeKind::Sglang, "sglang"),
        (RuntimeKind::Tgi, "tgi"),
        (RuntimeKind::Llamacpp, "llamacpp"),
    ] {
        let input = read(dir, "chat.stream.sse");
        let lines = replay(adapter(kind), CHAT, &input);
        assert_untouched(&input, &lines);
        assert_eq!(&lines[lines.len() - 2..], ["DONE", "FINISH ok"], "{kind}");
        golden_lines(dir, "chat.stream.expected", &lines);
    }
}

#[test]
fn in_band_errors_and_truncation() {
    let vllm = adapter(RuntimeKind::Vllm);
    let lines = replay(vllm, CHAT, &read("vllm", "chat.stream.error.sse"));
    golden_lines("vllm", "chat.stream.error.expected", &lines);
    assert!(lines[2].starts_with("ERROR 502 "), "{}", lines[2]);
    assert_eq!(lines.last().map(String::as_str), Some("FINISH ok"));

    let lines = replay(vllm, CHAT, &read("vllm", "chat.stream.truncated.sse"));
    assert!(
        lines.last().is_some_and(|l| l.starts_with("FINISH-ERR 502 ")),
        "{lines:?}"
    );
    assert!(lines.last().is_some_and(|l| l.contains("upstream_stream_broken")));

    // A stream that ends cleanly but never said [DONE] is also cut short.
    let mut t = vllm.stream_translator(CHAT, &ctx());
    t.feed(b"data: {\"id\":\"x\",\"choices\":[]}\n\n");
    assert!(t.finish().is_err());

    // TGI's chat stream reports validation errors in-band with `http_status_code`, then `[DONE]`.
    let lines = replay(adapter(RuntimeKind::Tgi), CHAT, &read("tgi", "chat.stream.error.sse"));
    golden_lines("tgi", "chat.stream.error.expected", &lines);
    assert!(
        lines[1].starts_with("ERROR 400 ") && lines[1].contains("context_length_exceeded"),
        "{}",
        lines[1]
    );
    assert_eq!(lines.len(), 3, "nothing after the error, not even [DONE]: {lines:?}");
}

#[test]
fn whole_reply_renamed_and_usage_read() {
    let body = read("vllm", "chat.whole.json");
    let w = adapter(RuntimeKind::Vllm)
        .translate_whole(CHAT, &HeaderMap::new(), &body, &ctx())
        .expect("whole");
    let v: Value = serde_json::from_slice(&w.body).expect("json");
    assert_eq!(v["model"], PUBLIC);
    assert_eq!(v["choices"][0]["message"]["content"], "Errorstructorstructor");
    let u = w.usage.expect("usage");
    assert_eq!((u.prompt_tokens, u.completion_tokens, u.total_tokens), (14, 3, 17));

    // Same name: the bytes are returned as they came.
    let mut same = ctx();
    same.public_model = "tiny";
    let w = adapter(RuntimeKind::Vllm)
        .translate_whole(CHAT, &HeaderMap::new(), &body, &same)
        .expect("whole");
    assert_eq!(&w.body[..], &body[..]);

    let e = adapter(RuntimeKind::Vllm)
        .translate_whole(CHAT, &HeaderMap::new(), b"<html>", &ctx())
        .expect_err("not JSON");
    assert_eq!((e.status(), e.code.as_deref()), (502, Some("upstream_malformed")));
}
