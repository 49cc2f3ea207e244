//! Helpers shared by the HTTP end-to-end tests: start an engine on a free port, parse SSE.

#![allow(dead_code)]

use std::net::SocketAddr;

use pyxis_sim::{EngineHandle, EngineSpec, Surface};
use serde_json::Value;

/// A fast engine: H100 / Llama-3-8B at 20x real time (a decode step is ~0.3 ms of wall time).
pub fn fast_spec(surface: Surface) -> EngineSpec {
    let mut s = EngineSpec::new("test", "h100", "llama-3-8b");
    s.surface = surface;
    s.speedup = 20.0;
    s.seed = 7;
    s
}

pub async fn start(spec: EngineSpec) -> EngineHandle {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    pyxis_sim::spawn(spec, addr).await.expect("spawn engine")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.trim().strip_prefix("data:").map(|d| d.trim().to_string()))
        .collect()
}

pub fn chat_body(model: &str, content: &str, max_tokens: u32, stream: bool) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
    })
}

/// Parses Prometheus text with `prometheus-parse`. That crate's name pattern is `\w+`, so it
/// skips every line whose metric name has a colon (legal in the exposition format, and in all of
/// vLLM's names, the real ones included); colons become underscores before parsing, after
/// [`check_exposition`] has checked the original text strictly.
pub fn parse_prometheus(text: &str) -> prometheus_parse::Scrape {
    check_exposition(text);
    let mapped: Vec<String> = text.lines().map(|l| l.replace("vllm:", "vllm_")).collect();
    prometheus_parse::Scrape::parse(mapped.into_iter().map(Ok)).expect("prometheus-parse")
}

/// Strict line-by-line check of the text exposition format: HELP/TYPE comments, sample lines
/// `name{k="v",...} value` with a legal name, labels, and a float value; TYPE before samples.
pub fn check_exposition(text: &str) {
    let legal_name = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    };
    let mut typed = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            assert!(legal_name(name), "line {i}: bad name in {line:?}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "line {i}: {line:?}"
                );
                assert!(typed.insert(name.to_string()), "line {i}: TYPE twice for {name}");
            } else {
                assert_eq!(kind, "HELP", "line {i}: {line:?}");
            }
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("line {i}: no value: {line:?}"));
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "line {i}: bad value {value:?}"
        );
        let (name, labels) = match head.split_once('{') {
            Some((n, l)) => (
                n,
                Some(
                    l.strip_suffix('}')
                        .unwrap_or_else(|| panic!("line {i}: unclosed labels")),
                ),
            ),
            None => (head, None),
        };
        assert!(legal_name(name), "line {i}: bad name {name:?}");
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.contains(*f));
        assert!(
            typed.contains(name) || family.is_some(),
            "line {i}: sample before its TYPE: {name}"
        );
        if let Some(l) = labels {
            for pair in l.split("\",").map(|p| p.trim_end_matches('"')) {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("line {i}: bad label {pair:?}"));
                assert!(legal_name(k) && !k.contains(':'), "line {i}: bad label name {k:?}");
                assert!(!v.contains('\n'), "line {i}");
            }
        }
    }
}

/// Scrapes `/metrics` and returns the value of the sample `name` whose labels include `labels`.
pub async fn metric(url: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let scrape = parse_prometheus(&text);
    let name = name.replace("vllm:", "vllm_");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}
