//! Hot paths of request handling: parsing a chat body and re-framing an SSE stream.

use criterion::{Criterion, criterion_group, criterion_main};
use pyxis_protocol::{InferenceRequest, RequestKind, SseFramer};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let body = br#"{"model":"llama-3-8b","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about GPUs and the people who share them."}],"max_tokens":128,"temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}"#;
    // Baseline: plain JSON parse of the same bytes, so the figure to read is the ratio.
    c.bench_function("baseline/serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)))
    });
    c.bench_function("parse/chat_request", |b| {
        b.iter(|| InferenceRequest::parse_bytes(RequestKind::Chat, bytes::Bytes::from_static(black_box(body))))
    });
    // A long conversation: 24 messages, about 16 KiB of text.
    let turn = "Explain how the fair queue shares a contended GPU between tenants by weight. ".repeat(8);
    let messages: Vec<serde_json::Value> = (0..24)
        .map(|i| serde_json::json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": turn}))
        .collect();
    let long = bytes::Bytes::from(
        serde_json::to_vec(&serde_json::json!({"model": "llama-3-8b", "messages": messages, "max_tokens": 256}))
            .expect("json"),
    );
    c.bench_function("baseline/serde_json_value_16k", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&long)))
    });
    c.bench_function("parse/chat_request_16k", |b| {
        b.iter(|| InferenceRequest::parse_bytes(RequestKind::Chat, black_box(long.clone())))
    });
    let long_req = InferenceRequest::parse_bytes(RequestKind::Chat, long.clone()).expect("valid");
    let long_tree: serde_json::Value = serde_json::from_slice(&long).expect("json");
    c.bench_function("parse/upstream_body_16k", |b| {
        b.iter(|| long_req.upstream_body(black_box("served")))
    });
    c.bench_function("baseline/serialize_value_tree_16k", |b| {
        b.iter(|| serde_json::to_vec(black_box(&long_tree)).unwrap_or_default())
    });
    let req = InferenceRequest::parse(RequestKind::Chat, body).expect("valid");
    c.bench_function("parse/upstream_body", |b| {
        b.iter(|| req.upstream_body(black_box("served")))
    });
    // Baseline: the least the tree-building parser did for the upstream body, writing the tree out.
    let tree: serde_json::Value = serde_json::from_slice(body).expect("json");
    c.bench_function("baseline/serialize_value_tree", |b| {
        b.iter(|| serde_json::to_vec(black_box(&tree)).unwrap_or_default())
    });

    // A whole reply's usage, as the gateway reads it on every non-streamed call.
    let reply = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1733500000,"model":"llama-3-8b","choices":[{"index":0,"message":{"role":"assistant","content":"Silicon rivers hum, / many hands on one warm card, / tokens fall like rain."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":19,"total_tokens":50}}"#;
    // Baseline: how it was read before, `usage` built as a `Value` tree and converted.
    c.bench_function("baseline/usage_via_value", |b| {
        #[derive(serde::Deserialize)]
        struct UsageOnly {
            #[serde(default)]
            usage: Option<serde_json::Value>,
        }
        b.iter(|| {
            let u: UsageOnly = serde_json::from_slice(black_box(reply)).expect("json");
            u.usage
                .and_then(|v| serde_json::from_value::<pyxis_protocol::Usage>(v).ok())
        })
    });
    c.bench_function("usage/read_usage", |b| {
        b.iter(|| pyxis_protocol::usage::read_usage(black_box(reply)))
    });

    let mut wire = Vec::new();
    for i in 0..128 {
        wire.extend_from_slice(format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok{i}\"}}}}]}}\n\n").as_bytes());
    }
    let chunks: Vec<&[u8]> = wire.chunks(97).collect();
    c.bench_function("baseline/memchr_newlines_128_events", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| c.iter().filter(|&&x| x == b'\n').count())
                .sum::<usize>()
        })
    });
    c.bench_function("sse/frame_128_events", |b| {
        b.iter(|| {
            let mut f = SseFramer::new();
            let mut out = Vec::with_capacity(8);
            let mut n = 0;
            for c in &chunks {
                f.push(black_box(c), &mut out);
                n += out.len();
                out.clear();
            }
            n
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
