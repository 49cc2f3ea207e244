//! `/metrics` over real HTTP after real traffic: parsed by a Prometheus parser, checked by
//! `promtool check metrics` (required when `PYXIS_REQUIRE_PROMTOOL=1`, as in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use pyxis_gateway::{Gateway, ServeConfig};
use serde_json::json;

const KEY: &str = "pyx-metrics";

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_after_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.demo_api_key = Some(KEY.into());
    let gw = Gateway::start(cfg).await.unwrap();
    let c = reqwest::Client::new();
    for stream in [false, true, true] {
        let r = c
            .post(format!("{}/v1/chat/completions", gw.url()))
            .bearer_auth(KEY)
            .json(&json!({"model": "llama-3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": stream}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = c
        .post(format!("{}/v1/chat/completions", gw.url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    tokio::time::sleep(Duration::from_millis(2500)).await; // one health round: load signals scraped

    let r = c.get(format!("{}/metrics", gw.url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let s = &scrape.samples;
    let ok: f64 = s
        .iter()
        .filter(|x| x.metric == "pyxis_requests_total" && x.labels.get("status") == Some("200"))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(ok, 3.0, "{text}");
    assert_eq!(
        value(s, "pyxis_requests_total", &[("model", "unresolved"), ("status", "404")]),
        Some(1.0),
        "an unknown model name does not become a label value"
    );
    assert_eq!(
        value(
            s,
            "pyxis_time_to_first_token_seconds",
            &[("tenant", "default"), ("model", "llama-3-8b")]
        ),
        Some(2.0),
        "time to first token is measured on the two streamed calls"
    );
    assert!(value(s, "pyxis_completion_tokens_total", &[("tenant", "default")]).unwrap() >= 3.0);
    let eps = gw.state.view().endpoints.len();
    assert_eq!(s.iter().filter(|x| x.metric == "pyxis_endpoint_healthy").count(), eps);
    assert!(
        s.iter().any(|x| x.metric == "pyxis_endpoint_running_requests"),
        "load signal from vLLM metrics"
    );
    assert_eq!(value(s, "pyxis_queue_depth", &[("tenant", "default")]), Some(0.0));
    let io: Vec<f64> = s
        .iter()
        .filter(|x| x.metric == "pyxis_io_thread_connections")
        .map(|x| match x.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => -1.0,
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(io.len(), threads, "one series per I/O thread: {text}");
    assert!(
        io.iter().sum::<f64>() >= 1.0,
        "the scrape's own connection is open: {io:?}"
    );

    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => {
            assert!(
                std::env::var("PYXIS_REQUIRE_PROMTOOL").is_err(),
                "promtool is required (PYXIS_REQUIRE_PROMTOOL) but cannot run: {e}"
            );
            eprintln!("NOT RUN: promtool is not installed ({e}); the metrics were only parsed");
        }
    }
    gw.shutdown().await.unwrap();
}
