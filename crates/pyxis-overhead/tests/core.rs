//! The measurement core and the static upstream over real sockets: both targets are the same upstream, so the
//! "proxy" adds nothing and the figures must say so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pyxis_overhead::client::{Conn, Endpoint};
use pyxis_overhead::memory::ramp;
use pyxis_overhead::procs::fleet_yaml;
use pyxis_overhead::report::Overhead;
use pyxis_overhead::upstream::{FAST_MODEL, HOLD_MODEL};
use pyxis_overhead::{Plan, Progress, Target, Upstream, UpstreamConfig, measure_pair};

fn target(name: &str, up: &Upstream) -> Target {
    Target {
        name: name.into(),
        base_url: up.url(),
        api_key: Some("ignored".into()),
        model: FAST_MODEL.into(),
        hold_model: HOLD_MODEL.into(),
    }
}

fn upstream(chunks: usize) -> Upstream {
    Upstream::start(
        UpstreamConfig {
            chunks,
            hold: Duration::from_secs(30),
        },
        0,
    )
    .unwrap()
}

/// A plain HTTP/1.1 exchange over a TCP socket, independent of the crate's client: status and body as sent
/// (chunked framing left in).
async fn post(addr: SocketAddr, body: serde_json::Value) -> (u16, String) {
    let (status, _, body) = exchange(addr, body).await;
    (status, body)
}

/// [`post`], with the response head.
async fn exchange(addr: SocketAddr, body: serde_json::Value) -> (u16, String, String) {
    let body = body.to_string();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The body of a response as sent, without chunked framing if it has it.
fn payload(head: &str, body: &str) -> String {
    if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    }
}

/// Removes HTTP/1.1 chunked framing.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
}

#[tokio::test]
async fn static_upstream_answers_valid_openai() {
    let up = upstream(5);
    let (st, body) = post(
        up.addr,
        serde_json::json!({"model": "m", "messages": [], "stream": false}),
    )
    .await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["model"], "m");
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some());

    let (st, body) = post(
        up.addr,
        serde_json::json!({"model": "m", "messages": [], "stream": true}),
    )
    .await;
    assert_eq!(st, 200);
    let sse = dechunk(&body);
    let mut framer = pyxis_protocol::sse::SseFramer::new();
    let mut events = Vec::new();
    framer.push(sse.as_bytes(), &mut events);
    assert!(!framer.has_partial(), "SSE ends mid-event: {sse:?}");
    assert_eq!(events.len(), 5 + 2, "{sse}");
    assert!(events.last().unwrap().is_done());
    for e in &events[..6] {
        let v: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
    }
    assert!(sse.ends_with("data: [DONE]\n\n"));

    let (st, _) = post(up.addr, serde_json::json!({"messages": []})).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn measuring_the_upstream_against_itself_finds_no_overhead() {
    let up = upstream(8);
    let plan = Plan {
        warmup: 20,
        latency_requests: 200,
        stream_requests: 50,
        phase_limit: Duration::from_secs(5),
        concurrency: 4,
        saturation: Duration::from_millis(400),
        rounds: 2,
    };
    let t0 = Instant::now();
    let c = measure_pair(&target("direct", &up), &target("same", &up), &plan, &Progress::hidden())
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!((c.direct.name.as_str(), c.through.name.as_str()), ("direct", "same"));
    for f in [&c.direct, &c.through] {
        assert_eq!(f.errors, 0, "{:?}", f.first_error);
        // All of them, unless the 5 s phase limit cut a phase short on a very busy machine.
        assert!(
            f.latency_ms.count > 20 && f.latency_ms.count <= 200,
            "{:?}",
            f.latency_ms
        );
        assert!(f.ttft_ms.count > 5 && f.ttft_ms.count <= 50, "{:?}", f.ttft_ms);
        assert_eq!(f.chunks, 8);
        assert!(f.latency_ms.p50 > 0.0 && f.latency_ms.p50 < 50.0, "{:?}", f.latency_ms);
        assert!(f.first_to_last_ms.mean <= f.stream_total_ms.mean);
        assert!(f.rps_whole > 50.0 && f.rps_stream > 10.0, "{f:?}");
    }
    let o = Overhead::between(&c.direct, &c.through, 8);
    // Same server both ways: the difference is noise, small next to a request (tests share 2 CPUs).
    assert!(o.added_p50_ms.abs() < 1.0, "{o:?}");
    assert!(
        o.throughput_ratio_whole > 0.3 && o.throughput_ratio_whole < 3.0,
        "{o:?}"
    );
}

#[tokio::test]
async fn held_streams_stay_open_until_released_and_are_counted() {
    let up = upstream(4);
    let t = target("self", &up);
    // The "proxy" is this process: its RSS grows with the held streams on both ends.
    let m = ramp(
        &t,
        std::process::id(),
        &[10, 20],
        Duration::from_secs(10),
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(m.errors, 0);
    assert!(m.stopped.is_none(), "{:?}", m.stopped);
    let streams: Vec<usize> = m.points.iter().map(|p| p.streams).collect();
    assert_eq!(streams, vec![0, 10, 20]);
    assert!(m.fit.is_some() && m.kib_per_stream().is_some());
    // The ramp closed its streams; the upstream notices when it writes after the release.
    up.release_held();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.held() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.held(), 0);

    // A held stream delivers its first chunk, then nothing until released, then the rest.
    let ep = Endpoint::resolve(&t).await.unwrap();
    let held = Conn::open(ep.clone()).await.unwrap().open_held().await.unwrap();
    assert_eq!(up.held(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(up.held(), 1);
    up.release_held();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.held() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.held(), 0);
    drop(held);
}

#[test]
fn generated_fleet_parses() {
    let f = pyxis_resources::Fleet::parse(&fleet_yaml("http://127.0.0.1:18080"), "fleet.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.tenants.len(), 1);
    let q = f.tenants[0].spec.quotas.as_ref().unwrap();
    assert_eq!(q.concurrent_requests, Some(100_000));
    assert_eq!(f.tenants[0].spec.queue.as_ref().unwrap().max_queued, Some(100_000));
}

#[tokio::test]
async fn the_phase_limit_bounds_a_slow_or_long_phase() {
    let up = upstream(2);
    let plan = Plan {
        warmup: 1,
        latency_requests: 1_000_000,
        stream_requests: 1_000_000,
        phase_limit: Duration::from_millis(200),
        concurrency: 1,
        saturation: Duration::from_millis(100),
        rounds: 1,
    };
    let t0 = Instant::now();
    let c = measure_pair(&target("direct", &up), &target("same", &up), &plan, &Progress::hidden())
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(c.direct.latency_ms.count > 0 && c.direct.latency_ms.count < 1_000_000);
    assert!(c.through.ttft_ms.count > 0 && c.through.ttft_ms.count < 1_000_000);
}

/// The null proxy's answers are the upstream's, byte for byte, non-streamed and streamed (held streams
/// included: relayed as they come, not when they end), and it survives the benchmark's load.
async fn check_null_proxy(up: &Upstream, proxy: SocketAddr) {
    for (model, stream) in [("m", false), ("m", true)] {
        let req = serde_json::json!({"model": model, "messages": [], "stream": stream});
        let (st_d, head_d, body_d) = exchange(up.addr, req.clone()).await;
        let (st_p, head_p, body_p) = exchange(proxy, req).await;
        assert_eq!((st_d, st_p), (200, 200), "{head_p}\n{body_p}");
        assert_eq!(payload(&head_p, &body_p), payload(&head_d, &body_d));
        let ct = if stream {
            "content-type: text/event-stream"
        } else {
            "content-type: application/json"
        };
        assert!(head_p.contains(ct), "{head_p}");
    }
    // The upstream's 400 comes back as it is.
    let (st, _) = post(proxy, serde_json::json!({"messages": []})).await;
    assert_eq!(st, 400);

    let through = Target {
        name: "null-proxy".into(),
        base_url: format!("http://{proxy}"),
        api_key: None,
        model: FAST_MODEL.into(),
        hold_model: HOLD_MODEL.into(),
    };
    // A held stream's first chunk reaches the client while the upstream still holds the rest.
    let ep = Endpoint::resolve(&through).await.unwrap();
    let held = Conn::open(ep).await.unwrap().open_held().await.unwrap();
    assert_eq!(up.held(), 1);
    drop(held);
    up.release_held();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.held() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let plan = Plan {
        warmup: 5,
        latency_requests: 50,
        stream_requests: 20,
        phase_limit: Duration::from_secs(5),
        concurrency: 2,
        saturation: Duration::from_millis(200),
        rounds: 1,
    };
    let c = measure_pair(&target("direct", up), &through, &plan, &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(c.through.errors, 0, "{:?}", c.through.first_error);
    assert_eq!(c.through.chunks, 6);
    assert!(c.through.rps_whole > 0.0 && c.through.rps_stream > 0.0);
}

#[tokio::test]
async fn the_null_proxy_forwards_whole_and_streamed_answers() {
    let up = upstream(6);
    let np = pyxis_overhead::nullproxy::NullProxy::start(&up.url()).await.unwrap();
    check_null_proxy(&up, np.addr).await;
}

/// `target/<profile>/examples/overhead`, which `cargo test` builds beside this test's executable
/// (`target/<profile>/deps/core-<hash>`).
fn example_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join("overhead");
    p.is_file().then_some(p)
}

#[tokio::test]
async fn the_null_proxy_runs_as_a_child_process_of_the_example() {
    let Some(exe) = example_binary() else {
        eprintln!("skipped: the example binary is not built (run `cargo test -p pyxis-overhead`, not one test target)");
        return;
    };
    let up = upstream(6);
    // `overhead --null-proxy-only --port P --upstream URL`, as `pyxis overhead --null-proxy` starts it.
    let np = pyxis_overhead::procs::start_null_proxy(&exe, &up.url())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(np.pid, std::process::id());
    assert!(pyxis_overhead::memory::tree_rss_kib(np.pid).is_some_and(|k| k > 0));
    let addr: SocketAddr = np.target.base_url.trim_start_matches("http://").parse().unwrap();
    check_null_proxy(&up, addr).await;
    let pid = np.pid;
    drop(np);
    assert!(
        pyxis_overhead::memory::rss_kib(pid).is_none(),
        "the child is killed and reaped on drop"
    );
}
