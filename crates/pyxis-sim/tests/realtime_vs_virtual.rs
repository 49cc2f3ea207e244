//! The same trace through the real-time HTTP server and the virtual-time runner: TTFT
//! percentiles agree within 10 %.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use pyxis_sim::Surface;
use pyxis_sim::pyxis_sim_core::report::{LogHist, Percentiles};
use pyxis_sim::pyxis_sim_core::rng::SimRng;
use pyxis_sim::pyxis_sim_core::sim::{SimConfig, run_default};
use pyxis_sim::pyxis_sim_core::tokenizer::render_chat;
use pyxis_sim::pyxis_sim_core::workload::{LoadSource, NewRequest, OPEN_LOOP};
use pyxis_sim::pyxis_sim_core::{Engine, EngineConfig, Time, Tokenizer};
use serde_json::json;

/// Real time (1x): the HTTP round trip (~1–4 ms of wall time in a debug build) then counts once,
/// not multiplied by the speed-up, against TTFTs of ~100 ms.
const SPEEDUP: f64 = 1.0;

struct Item {
    at: f64,
    system: String,
    user: String,
    max_tokens: u32,
}

/// 48 chat requests to an H100, Poisson at 8/s, three shared system prompts and long unique user
/// parts (prefill dominates TTFT, so the 6.5 ms decode step is a fine grain), 20–40 output tokens.
fn trace() -> Vec<Item> {
    let mut rng = SimRng::new(11);
    let systems: Vec<String> = (0..3)
        .map(|i| format!("system prompt {i} ") + &"policy rule clause ".repeat(60))
        .collect();
    let mut t = 0.0;
    (0..48)
        .map(|i| {
            t += rng.exp(8.0);
            let words = rng.range_u32(800, 2400);
            Item {
                at: t,
                system: systems[(i % 3) as usize].clone(),
                user: (0..words)
                    .map(|k| format!("w{}", (k * 7 + i) % 97))
                    .collect::<Vec<_>>()
                    .join(" "),
                max_tokens: rng.range_u32(20, 40),
            }
        })
        .collect()
}

struct Replay {
    items: Vec<NewRequest>,
    next: usize,
}

impl LoadSource for Replay {
    fn tenants(&self) -> Vec<String> {
        vec!["t".into()]
    }
    fn loras(&self) -> Vec<String> {
        Vec::new()
    }
    fn start(&mut self) -> Vec<NewRequest> {
        Vec::new()
    }
    fn next_open(&mut self) -> Option<NewRequest> {
        let r = self.items.get(self.next).cloned();
        self.next += 1;
        r
    }
    fn on_finish(&mut self, _now: Time, _client: u32) -> Option<NewRequest> {
        None
    }
}

/// The trace in virtual time, with arrivals at `arrivals` (simulated seconds): the exact prompts
/// the HTTP server builds from the same messages.
fn virtual_run(items: &[Item], arrivals: &[f64]) -> Percentiles {
    let cfg = EngineConfig::for_names("h100", "llama-3-8b").expect("profile");
    let tok = Tokenizer::new(cfg.vocab);
    let mut reqs: Vec<NewRequest> = items
        .iter()
        .zip(arrivals)
        .map(|(it, at)| NewRequest {
            at: *at,
            tenant: 0,
            client: OPEN_LOOP,
            prompt: tok.encode_prompt(&render_chat(
                [("system", it.system.as_str()), ("user", it.user.as_str())],
                true,
            )),
            max_tokens: it.max_tokens,
            ignore_eos: true,
            lora: None,
        })
        .collect();
    reqs.sort_by(|a, b| a.at.total_cmp(&b.at));
    let report = run_default(
        vec![Engine::new(cfg)],
        &mut Replay { items: reqs, next: 0 },
        SimConfig::default(),
    );
    assert_eq!(report.overall.completed, items.len() as u64);
    report.overall.ttft
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_and_virtual_time_agree_on_ttft() {
    let items = trace();
    let planned: Vec<f64> = items.iter().map(|it| it.at).collect();
    let v_planned = virtual_run(&items, &planned);
    // The wall-clock side can be disturbed by other processes on a shared 2-core CI machine
    // (every client-side delay counts); a real disagreement fails every attempt, a disturbed run
    // is retried (at most twice). The engine-side check must hold every time.
    let mut last = String::new();
    for attempt in 1..=3 {
        let (sent, r, engine_mean) = real_time_run(&items).await;
        // The virtual run replays the arrivals as they happened: a client task wakes up to a
        // millisecond late, and which engine step a request joins hinges on such shifts.
        let v = virtual_run(&items, &sent);
        let d = (engine_mean - v.mean).abs() / v.mean;
        assert!(
            d < 0.05,
            "engine-side TTFT mean {:.1} ms vs virtual {:.1} ms",
            engine_mean * 1e3,
            v.mean * 1e3
        );
        let diffs: Vec<(&str, f64, f64, f64)> =
            [("p50", r.p50, v.p50), ("p90", r.p90, v.p90), ("mean", r.mean, v.mean)]
                .iter()
                .map(|(n, a, b)| (*n, *a, *b, (a - b).abs() / b))
                .collect();
        last = diffs
            .iter()
            .map(|(n, a, b, d)| {
                format!(
                    "{n}: real time {:.1} ms vs virtual {:.1} ms ({:.1} %)",
                    a * 1e3,
                    b * 1e3,
                    d * 100.0
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        eprintln!(
            "attempt {attempt}: {last}; engine-side mean {:.1} ms; virtual at the planned times: p50 {:.1} p90 {:.1} ms",
            engine_mean * 1e3,
            v_planned.p50 * 1e3,
            v_planned.p90 * 1e3
        );
        if diffs.iter().all(|(_, _, _, d)| *d < 0.10) {
            return;
        }
    }
    panic!("TTFT at the client disagrees beyond 10 % in 3 attempts; last: {last}");
}

/// One real-time run of the trace: when each request was actually sent (simulated seconds from
/// the start), client-side TTFT percentiles, and the engine's own mean TTFT from `/metrics`.
async fn real_time_run(items: &[Item]) -> (Vec<f64>, Percentiles, f64) {
    // One engine over HTTP, requests sent at the trace's times.
    let mut spec = fast_spec(Surface::Vllm);
    spec.speedup = SPEEDUP;
    let h = start(spec).await;
    let url = h.url();
    let http = client();
    // Warm the connection pool so the first requests do not pay for connecting.
    let _ = http.get(format!("{url}/health")).send().await.expect("warm");
    let t0 = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for it in items {
        let http = http.clone();
        let body = json!({"model": "llama-3-8b", "max_tokens": it.max_tokens, "ignore_eos": true, "stream": true,
                          "messages": [{"role": "system", "content": it.system}, {"role": "user", "content": it.user}]});
        let url = url.clone();
        let at = t0 + Duration::from_secs_f64(it.at / SPEEDUP);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let sent = Instant::now();
            let r = http
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .expect("send");
            let mut s = r.bytes_stream();
            let mut buf = String::new();
            let mut ttft = None;
            while let Some(c) = s.next().await {
                buf.push_str(&String::from_utf8_lossy(&c.expect("chunk")));
                // The role chunk comes first; the second event carries the first token.
                if ttft.is_none() && sse_data(&buf).len() >= 2 {
                    ttft = Some(sent.elapsed().as_secs_f64() * SPEEDUP);
                }
            }
            ((sent - t0).as_secs_f64() * SPEEDUP, ttft.expect("first token"))
        }));
    }
    let mut real = LogHist::new();
    let mut sent = Vec::new();
    for t in tasks {
        let (at, ttft) = t.await.expect("task");
        sent.push(at);
        real.record(ttft);
    }
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let grab = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(n))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // The engine's own TTFT histogram (no HTTP in it).
    let engine_mean = grab("vllm:time_to_first_token_seconds_sum") / grab("vllm:time_to_first_token_seconds_count");
    h.shutdown().await;
    (sent, real.summary(), engine_mean)
}
