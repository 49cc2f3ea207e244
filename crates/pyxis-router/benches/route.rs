//! Cost of one routing decision over 12 endpoints: `Router::decide` without a prompt prefix and with a
//! 2k-token one (16 blocks of 512 bytes, a shared system prompt held by some endpoints), against the old
//! least-in-flight `pick` as the baseline; plus hashing the 2k-token prompt into blocks.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pyxis_router::{
    Candidate, DEFAULT_BLOCK_BYTES, EndpointView, LoadSignal, RouteRequest, Router, RoutingConfig, pick, prefix_blocks,
};

const N: usize = 12;

struct Fleet {
    keys: Vec<String>,
    hardware: Vec<&'static str>,
    adapters: Vec<String>,
}

impl Fleet {
    fn new() -> Self {
        Fleet {
            keys: (0..N).map(|i| format!("http://10.0.{}.{}:8000/v1", i / 4, i)).collect(),
            hardware: (0..N).map(|i| ["h100", "a100", "l4"][i % 3]).collect(),
            adapters: vec!["sql-lora".into()],
        }
    }

    fn views(&self) -> Vec<EndpointView<'_>> {
        (0..N)
            .map(|i| EndpointView {
                key: &self.keys[i],
                healthy: i != 7,
                hardware: self.hardware[i],
                region: Some("eu-west"),
                memory_gib: [80.0, 80.0, 24.0][i % 3],
                in_flight: (i as u32 * 7) % 11,
                load: Some(LoadSignal {
                    waiting: (i as u32) % 3,
                    running: 8 + i as u32,
                    kv_use: 0.1 * (i % 9) as f64,
                    tokens_per_s: 1500.0,
                    age_ms: 150 * i as u64,
                }),
                price_per_mtok: Some(0.1 + 0.05 * (i % 3) as f64),
                adapters: &self.adapters,
            })
            .collect()
    }
}

/// A 2k-token prompt (about 8 KB of text): 12 blocks of shared system prompt, then the user's turn.
fn prompt() -> Vec<u8> {
    let mut p: Vec<u8> = b"You are a helpful assistant for ACME Corp. Answer briefly. ".repeat(105);
    p.truncate(12 * DEFAULT_BLOCK_BYTES);
    p.extend((0..4 * DEFAULT_BLOCK_BYTES).map(|i| b'a' + (i % 26) as u8));
    p
}

fn warmed(f: &Fleet, blocks: &[u64]) -> Router {
    let mut r = Router::new(RoutingConfig::default());
    let rq = RouteRequest {
        model_weights_gib: 15.0,
        prompt_tokens: 2048,
        prefix_blocks: blocks,
        ..RouteRequest::default()
    };
    for i in 0..N {
        for k in 0..40u32 {
            r.on_first_token(
                0,
                &f.keys[i],
                500 + 40 * k,
                0,
                20.0 + 10.0 * (i % 3) as f64 + f64::from(k),
            );
        }
        // A third of the fleet holds the whole prompt, a third the system prompt only.
        let held = match i % 3 {
            0 => blocks.len(),
            1 => 12,
            _ => 0,
        };
        r.on_dispatch(
            0,
            &f.keys[i],
            &RouteRequest {
                prefix_blocks: &blocks[..held],
                ..rq
            },
        );
        // Other prompts in the index, as in a live gateway.
        for j in 0..200u32 {
            let other = prefix_blocks(&[(j % 251) as u8; 2048], DEFAULT_BLOCK_BYTES);
            r.on_dispatch(
                0,
                &f.keys[i],
                &RouteRequest {
                    prefix_blocks: &other,
                    ..rq
                },
            );
        }
    }
    r
}

fn bench(c: &mut Criterion) {
    let f = Fleet::new();
    let views = f.views();
    let p = prompt();
    let blocks = prefix_blocks(&p, DEFAULT_BLOCK_BYTES);
    assert_eq!(blocks.len(), 16);
    let mut r = warmed(&f, &blocks);
    let with = RouteRequest {
        model_weights_gib: 15.0,
        prompt_tokens: 2048,
        prefix_blocks: &blocks,
        session: Some("conversation-1234"),
        ..RouteRequest::default()
    };
    let without = RouteRequest {
        prefix_blocks: &[],
        session: None,
        ..with
    };
    let d = r.decide(1, &with, &views, &[]);
    assert!(d.chosen.is_some());
    assert!(d.candidates.iter().any(|c| c.prefix_depth == 16), "{}", d.explain());

    let cands: Vec<Candidate> = views
        .iter()
        .map(|v| Candidate {
            healthy: v.healthy,
            in_flight: v.in_flight,
        })
        .collect();
    let mut g = c.benchmark_group("route_12_endpoints");
    let mut rot = 0usize;
    g.bench_function("pick_least_in_flight_baseline", |b| {
        b.iter(|| {
            rot = rot.wrapping_add(1);
            pick(black_box(&cands), rot)
        })
    });
    let mut now = 2u64;
    g.bench_function("decide_no_prefix", |b| {
        b.iter(|| {
            now += 1;
            r.decide(now, black_box(&without), black_box(&views), &[]).chosen
        })
    });
    g.bench_function("decide_2k_token_prefix", |b| {
        b.iter(|| {
            now += 1;
            r.decide(now, black_box(&with), black_box(&views), &[]).chosen
        })
    });
    g.bench_function("decide_2k_token_prefix_and_explain", |b| {
        b.iter(|| {
            now += 1;
            r.decide(now, black_box(&with), black_box(&views), &[]).explain().len()
        })
    });
    g.bench_function("prefix_blocks_2k_tokens", |b| {
        b.iter(|| prefix_blocks(black_box(&p), DEFAULT_BLOCK_BYTES))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
