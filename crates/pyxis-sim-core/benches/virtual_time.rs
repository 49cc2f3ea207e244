//! Simulated requests per wall second in virtual time, against a bare event loop as the baseline.
//!
//! `virtual_fleet`: 16 H100 engines serving Llama-3-8B, Poisson arrivals, log-normal prompt and
//! output lengths, 4 tenants with shared prefixes: the full engine model (batching, KV, prefix
//! cache, metrics) under least-loaded routing. `bare_event_loop`: the same number of requests as
//! arrival + completion events through a binary heap with no engine at all: the cost floor of any
//! discrete-event simulation. The ratio says what the engine model costs on top of that floor.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use pyxis_sim_core::rng::SimRng;
use pyxis_sim_core::sim::{SimConfig, run_default};
use pyxis_sim_core::workload::{Arrival, LengthDist, TenantSpec, Workload, WorkloadSpec};
use pyxis_sim_core::{Engine, EngineConfig};

const ENGINES: usize = 16;
const RATE: f64 = 400.0; // requests/s over the fleet: ~70 % of its capacity for this mix
const SECONDS: f64 = 50.0; // → ~20,000 requests per iteration

fn workload() -> Workload {
    let tenant = |name: &str, groups: u32| TenantSpec {
        name: name.into(),
        weight: 1.0,
        prompt_tokens: LengthDist::LogNormal {
            median: 300.0,
            sigma: 0.8,
            min: 8,
            max: 4000,
        },
        output_tokens: LengthDist::LogNormal {
            median: 120.0,
            sigma: 0.7,
            min: 4,
            max: 1000,
        },
        prefix_groups: groups,
        prefix_tokens: 128,
        lora: None,
    };
    Workload::new(
        WorkloadSpec {
            arrival: Arrival::Poisson { rate: RATE },
            duration_s: SECONDS,
            max_requests: None,
            tenants: vec![tenant("a", 4), tenant("b", 8), tenant("c", 0), tenant("d", 16)],
            seed: 42,
        },
        128_256,
    )
}

fn run_fleet() -> u64 {
    let cfg = EngineConfig::for_names("h100", "llama-3-8b").expect("profile");
    let engines = (0..ENGINES).map(|_| Engine::new(cfg.clone())).collect();
    let report = run_default(engines, &mut workload(), SimConfig::default());
    report.overall.completed
}

/// Arrival and completion events of `n` requests through a heap, exponential service times.
fn bare_loop(n: u64) -> u64 {
    let mut rng = SimRng::new(1);
    let mut heap: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut t = 0.0f64;
    let mut done = 0u64;
    let mut issued = 0u64;
    heap.push(Reverse((0, 0)));
    while let Some(Reverse((at, kind))) = heap.pop() {
        if kind == 0 {
            if issued < n {
                issued += 1;
                t += rng.exp(RATE);
                heap.push(Reverse(((t * 1e9) as u64, 0)));
                let service = rng.exp(1.0 / 4.0);
                heap.push(Reverse((at + (service * 1e9) as u64, 1)));
            }
        } else {
            done += 1;
        }
    }
    done
}

fn bench(c: &mut Criterion) {
    let n = run_fleet();
    let mut g = c.benchmark_group("virtual_time");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("virtual_fleet", |b| b.iter(|| black_box(run_fleet())));
    g.bench_function("bare_event_loop", |b| b.iter(|| black_box(bare_loop(n))));
    g.finish();

    // The headline numbers, measured once more outside criterion so they can be printed together.
    let t0 = Instant::now();
    let done = run_fleet();
    let fleet_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    black_box(bare_loop(done));
    let bare_s = t1.elapsed().as_secs_f64();
    let per_s = done as f64 / fleet_s;
    println!(
        "virtual_time: {done} simulated requests ({SECONDS} s of traffic on {ENGINES} engines) in {:.3} s wall \
         = {:.0} req/s = {:.2} M req/min; bare event loop {:.0} req/s; engine model costs {:.0}x the bare loop; \
         simulated/wall time ratio {:.0}x",
        fleet_s,
        per_s,
        per_s * 60.0 / 1e6,
        done as f64 / bare_s,
        fleet_s / bare_s,
        SECONDS / fleet_s
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
