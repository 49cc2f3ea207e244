//! `run_bench` against a simulated vLLM engine on loopback: loads, metrics, outputs, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use pyxis_bench::{Amount, BenchConfig, BenchReport, Endpoint, Load, Slo, TenantKey, plot, run_bench, schedule, table};
use pyxis_sim::{EngineHandle, EngineSpec};

async fn engine() -> EngineHandle {
    let mut spec = EngineSpec::new("bench-test", "h100", "llama-3-8b");
    spec.speedup = 8.0;
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    pyxis_sim::spawn(spec, addr).await.unwrap()
}

/// Small, exact requests: 32 words in, 16 tokens out (ignore_eos).
fn cfg(url: &str, n: u64, load: Load) -> BenchConfig {
    let mut c = BenchConfig::new(url, "llama-3-8b");
    c.amount = Amount::Requests(n);
    c.loads = vec![load];
    c.workload.input_len = 32;
    c.workload.output_len = 16;
    c.ignore_eos = true;
    c.timeout = Duration::from_secs(20);
    c
}

fn only(r: &BenchReport) -> &pyxis_bench::PointReport {
    assert_eq!(r.points.len(), 1);
    &r.points[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_measures_every_request() {
    let e = engine().await;
    let r = run_bench(cfg(&e.url(), 20, Load::Concurrency(4)), false).await.unwrap();
    let p = only(&r);
    let m = &p.metrics;
    assert_eq!((m.completed, m.failed), (20, 0), "{:?}", m.errors);
    assert_eq!(p.records.len(), 20);
    assert_eq!(p.peak_in_flight, 4);
    for rec in &p.records {
        assert_eq!(rec.output_tokens, 16, "usage reports max_tokens under ignore_eos");
        assert!(rec.input_tokens >= 32, "prompt tokens from usage: {}", rec.input_tokens);
        let ttft = rec.ttft.unwrap();
        assert!(ttft > 0.0 && ttft < rec.e2el, "{ttft} {}", rec.e2el);
        assert_eq!(rec.itl.len(), 15, "one gap between each of the 16 token chunks");
        let tpot = rec.tpot().unwrap();
        assert!((tpot * 15.0 - (rec.e2el - ttft)).abs() < 1e-9);
    }
    assert_eq!(m.total_output_tokens, 320);
    assert!(m.request_throughput > 0.0 && m.output_throughput > m.request_throughput);
    assert!((m.request_throughput - 20.0 / m.duration_s).abs() < 1e-9);
    let (ttft, e2el) = (m.ttft_ms.as_ref().unwrap(), m.e2el_ms.as_ref().unwrap());
    assert!(ttft.median < e2el.median);
    assert!(ttft.at(99.0).unwrap() >= ttft.at(90.0).unwrap());
    assert_eq!(m.itl_ms.as_ref().unwrap().count, 300);
    assert!(m.request_goodput.is_none());
    assert!(p.tenants.is_empty());
    let t = table::render(&r);
    assert!(
        t.contains("request throughput") && t.contains("TTFT") && t.contains("p99"),
        "{t}"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisson_arrivals_follow_the_schedule() {
    let e = engine().await;
    let mut c = cfg(&e.url(), 20, Load::Rate(40.0));
    c.seed = 11;
    let offsets = schedule::arrival_offsets(Load::Rate(40.0), 11, 20);
    let last = offsets[19].as_secs_f64();
    assert!(
        last > 0.1,
        "20 Poisson arrivals at 40/s span about half a second: {last}"
    );
    let r = run_bench(c, false).await.unwrap();
    let m = &only(&r).metrics;
    assert_eq!(m.completed, 20);
    // The last request cannot start before its arrival, and the run does not linger long after.
    assert!(m.duration_s >= last, "{} < {last}", m.duration_s);
    assert!(m.duration_s < last + 3.0, "{} vs {last}", m.duration_s);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_and_duration_bound_the_run() {
    let e = engine().await;
    let mut c = cfg(
        &e.url(),
        0,
        Load::Burst {
            size: 4,
            interval: Duration::from_millis(300),
        },
    );
    c.amount = Amount::Duration(Duration::from_millis(700));
    let r = run_bench(c, false).await.unwrap();
    let p = only(&r);
    // Bursts at 0, 300 and 600 ms.
    assert_eq!(p.metrics.completed, 12, "{:?}", p.metrics);
    assert!(p.peak_in_flight >= 4);
    assert!(p.metrics.duration_s >= 0.6);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_gives_one_point_per_load_and_a_json_array() {
    let e = engine().await;
    let mut c = cfg(&e.url(), 8, Load::Concurrency(1));
    c.loads = vec![Load::Concurrency(1), Load::Concurrency(4)];
    let r = run_bench(c, false).await.unwrap();
    assert!(r.is_sweep());
    assert_eq!(r.points.len(), 2);
    assert!(r.points.iter().all(|p| p.metrics.completed == 8));
    assert_eq!(r.points[0].peak_in_flight, 1);
    assert_eq!(r.points[1].peak_in_flight, 4);
    let text = serde_json::to_string(&r.to_json()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[1]["load"]["kind"], "concurrency");
    assert_eq!(arr[1]["load"]["concurrency"], 4);
    assert_eq!(arr[0]["completed"], 8);
    let svg = plot::render_svg(&r);
    assert!(svg.contains("<polyline") && svg.contains("concurrency 4"));
    let t = table::render(&r);
    assert!(t.contains("concurrency 1") && t.contains("concurrency 4"), "{t}");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_has_no_ttft_but_counts_tokens() {
    let e = engine().await;
    let mut c = cfg(&e.url(), 6, Load::Concurrency(2));
    c.stream = false;
    c.endpoint = Endpoint::Completions;
    let r = run_bench(c, false).await.unwrap();
    let p = only(&r);
    assert_eq!(p.metrics.completed, 6, "{:?}", p.metrics.error_examples);
    assert!(p.metrics.ttft_ms.is_none() && p.metrics.itl_ms.is_none());
    assert!(p.metrics.tpot_ms.is_some());
    for rec in &p.records {
        assert_eq!(rec.output_tokens, 16);
        assert!(rec.ttft.is_none() && rec.itl.is_empty() && rec.e2el > 0.0);
    }
    let svg = plot::render_svg(&r);
    assert!(svg.contains("E2E latency distribution") && svg.contains("--no-stream"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_counts_requests_meeting_the_slo() {
    let e = engine().await;
    let mut strict = cfg(&e.url(), 8, Load::Concurrency(4));
    strict.slo = Slo {
        ttft_ms: Some(0.001),
        ..Default::default()
    };
    let m = only(&run_bench(strict, false).await.unwrap()).metrics.clone();
    assert_eq!(m.good_requests, Some(0));
    assert_eq!(m.request_goodput, Some(0.0));
    let mut loose = cfg(&e.url(), 8, Load::Concurrency(4));
    loose.slo = Slo {
        ttft_ms: Some(60_000.0),
        tpot_ms: Some(60_000.0),
        e2el_ms: Some(60_000.0),
    };
    let r = run_bench(loose, false).await.unwrap();
    let m = &only(&r).metrics;
    assert_eq!(m.good_requests, Some(8));
    assert!((m.request_goodput.unwrap() - m.request_throughput).abs() < 1e-9);
    assert!(table::render(&r).contains("goodput"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_svg_outputs() {
    let e = engine().await;
    let r = run_bench(cfg(&e.url(), 10, Load::Concurrency(2)), false).await.unwrap();
    let text = r.to_json_string().unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&v), keys(&r.to_json()));
    assert!(v.is_object(), "a single point is one object");
    assert_eq!(v["completed"], 10);
    assert_eq!(v["load"]["kind"], "concurrency");
    assert!(v["ttft_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(v["ttft_ms"]["median"].as_f64().unwrap() > 0.0);
    assert!(v["output_throughput"].as_f64().unwrap() > 0.0);
    assert_eq!(v["total_output_tokens"], 160);
    assert!(v["request_goodput"].is_null());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chart.svg");
    std::fs::write(&path, plot::render_svg(&r)).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("TTFT distribution") && svg.contains("TTFT against load"));
    assert!(svg.contains("p99 ="), "single point marks its p99");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_results_with_two_keys() {
    let e = engine().await;
    let mut c = cfg(&e.url(), 12, Load::Concurrency(3));
    let key = |name: &str, weight| TenantKey {
        name: name.into(),
        key: format!("sk-{name}"),
        weight,
    };
    c.tenants = vec![key("gold", 2), key("free", 1)];
    let r = run_bench(c, false).await.unwrap();
    let p = only(&r);
    assert_eq!(p.tenants.len(), 2);
    assert_eq!(p.tenants[0].tenant, "gold");
    assert_eq!(p.tenants[0].metrics.completed, 8);
    assert_eq!(p.tenants[1].metrics.completed, 4);
    assert_eq!(p.metrics.completed, 12);
    let v = r.to_json();
    assert_eq!(v["tenants"][1]["tenant"], "free");
    assert!(table::render(&r).contains("per tenant"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_and_shared_prefix_requests() {
    let e = engine().await;
    let mut c = cfg(&e.url(), 6, Load::Concurrency(2));
    c.workload.dataset = pyxis_bench::dataset::parse(
        "{\"prompt\": \"tell me a story\", \"max_tokens\": 5}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 7}\n",
    )
    .unwrap();
    c.workload.shared_prefix_len = 50;
    c.workload.prefix_groups = 2;
    let r = run_bench(c, false).await.unwrap();
    let p = only(&r);
    assert_eq!(p.metrics.completed, 6);
    let outs: Vec<u64> = p.records.iter().map(|r| r.output_tokens).collect();
    assert_eq!(outs.iter().filter(|&&o| o == 5).count(), 3, "{outs:?}");
    assert_eq!(outs.iter().filter(|&&o| o == 7).count(), 3, "{outs:?}");
    assert!(p.records.iter().all(|r| r.input_tokens > 50));
    e.shutdown().await;
}

#[tokio::test]
async fn closed_port_gives_a_clear_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let e = run_bench(cfg(&format!("http://127.0.0.1:{port}"), 2, Load::Concurrency(1)), false)
        .await
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(e.contains("cannot reach") && e.contains("--url"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_lists_the_served_ones() {
    let e = engine().await;
    let mut c = cfg(&e.url(), 2, Load::Concurrency(1));
    c.model = "no-such-model".into();
    let err = run_bench(c, false).await.unwrap_err().to_string();
    eprintln!("{err}");
    assert!(
        err.contains("no-such-model") && err.contains("llama-3-8b") && err.contains("--model"),
        "{err}"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn refused_key_says_check_api_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let body = r#"{"error":{"message":"Invalid API key","type":"authentication_error"}}"#;
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let mut c = cfg(&format!("http://{addr}"), 2, Load::Concurrency(1));
    c.tenants = vec![TenantKey {
        name: "default".into(),
        key: "wrong".into(),
        weight: 1,
    }];
    let e = run_bench(c, false).await.unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains("--api-key") && e.contains("Invalid API key") && e.contains("401"),
        "{e}"
    );
}
