//! Load per kind from fixture metrics: queue, running batch, KV fraction, and tokens per second
//! from the generated-tokens counter between two samples.

use pyxis_adapters::{AdapterOptions, LoadSample, TritonBackend, adapter, adapter_with};
use pyxis_resources::RuntimeKind;

use crate::common::read;

fn text(kind: &str, name: &str) -> String {
    String::from_utf8(read(kind, name)).expect("utf8")
}

fn sample(kind: RuntimeKind, name: &str, prev: Option<&LoadSample>, now_ms: u64) -> LoadSample {
    adapter(kind)
        .parse_load(&text(kind.as_str(), name), prev, now_ms)
        .unwrap_or_else(|| panic!("{kind}/{name}: no load"))
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn vllm_real_scrape_then_busy() {
    // metrics.prom is a real vLLM 0.32 scrape (idle); metrics_busy.prom two seconds later.
    let idle = sample(RuntimeKind::Vllm, "metrics.prom", None, 10_000);
    assert_eq!((idle.waiting, idle.running), (0, 0));
    assert!(close(idle.kv_use, 0.0));
    assert!(close(idle.generated_tokens, 21.0));
    assert_eq!(idle.tokens_per_s, None, "a rate needs two samples");
    let busy = sample(RuntimeKind::Vllm, "metrics_busy.prom", Some(&idle), 12_000);
    assert_eq!(
        (busy.waiting, busy.running),
        (3, 8),
        "summed over data-parallel engines"
    );
    assert!(close(busy.kv_use, 0.6), "mean over engines: {:?}", busy.kv_use);
    assert!(
        close(busy.tokens_per_s, 500.0),
        "(1021 - 21) / 2 s: {:?}",
        busy.tokens_per_s
    );
    // A restarted runtime (counter went down) gives no rate, not a negative one.
    let after_restart = sample(RuntimeKind::Vllm, "metrics.prom", Some(&busy), 14_000);
    assert_eq!(after_restart.tokens_per_s, None);
}

#[test]
fn every_kind_with_metrics() {
    let s = sample(RuntimeKind::Sglang, "metrics.prom", None, 0);
    assert_eq!((s.waiting, s.running), (4, 12));
    assert!(close(s.kv_use, 0.37));

    let t0 = sample(RuntimeKind::Tgi, "metrics.prom", None, 0);
    assert_eq!(
        (t0.waiting, t0.running, t0.kv_use),
        (2, 30, None),
        "TGI exports no KV gauge"
    );
    let t1 = sample(RuntimeKind::Tgi, "metrics_busy.prom", Some(&t0), 4_000);
    assert_eq!((t1.waiting, t1.running), (9, 32));
    assert!(close(t1.tokens_per_s, 500.0), "{:?}", t1.tokens_per_s);

    let tr = sample(RuntimeKind::Triton, "metrics.prom", None, 0);
    assert_eq!((tr.waiting, tr.running), (3, 6), "TRT-LLM waiting / scheduled");
    assert!(close(tr.kv_use, 0.75));
    assert!(close(tr.generated_tokens, 183_000.0));
    let tv = adapter_with(
        RuntimeKind::Triton,
        AdapterOptions {
            triton_backend: TritonBackend::Vllm,
            ..AdapterOptions::default()
        },
    )
    .parse_load(&text("triton", "metrics_vllm_backend.prom"), None, 0)
    .expect("load");
    assert_eq!(
        (tv.waiting, tv.running),
        (5, 4),
        "the vLLM backend's re-exported gauges"
    );
    assert!(close(tv.kv_use, 0.25));

    let trt = sample(RuntimeKind::TensorrtLlm, "metrics.prom", None, 0);
    assert_eq!((trt.waiting, trt.running), (2, 10));
    assert!(close(trt.kv_use, 0.42));

    let l = sample(RuntimeKind::Llamacpp, "metrics.prom", None, 0);
    assert_eq!(
        (l.waiting, l.running, l.kv_use),
        (2, 4, None),
        "deferred / processing; no KV gauge now"
    );
    assert!(close(l.generated_tokens, 30_500.0));
}

#[test]
fn no_metrics_no_load() {
    assert_eq!(adapter(RuntimeKind::Ollama).parse_load("anything 1\n", None, 0), None);
    assert_eq!(adapter(RuntimeKind::Openai).parse_load("anything 1\n", None, 0), None);
    // Another runtime's scrape (or metrics switched off) shows none of this kind's gauges.
    assert_eq!(
        adapter(RuntimeKind::Sglang).parse_load(&text("vllm", "metrics.prom"), None, 0),
        None
    );
}
