//! Per-decision latency percentiles of enqueue + next (+ one output charge) at 10 and 10,000 backlogged
//! tenants: `cargo run --release -p pyxis-sched --example sched_latency`.

use std::time::Instant;

use pyxis_sched::{Pending, SchedConfig, Scheduler};

const OPS: usize = 100_000;

fn pending(id: u64, tenant: &str) -> Pending {
    Pending {
        id,
        tenant: tenant.to_owned(),
        input_tokens: 200 + (id % 300) as u32,
        max_output_tokens: 256,
    }
}

fn main() {
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "tenants", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "decisions/s"
    );
    for tenants in [10usize, 1_000, 10_000, 100_000] {
        let mut s = Scheduler::new(
            SchedConfig {
                max_queued_total: usize::MAX,
                default_timeout_ms: 60_000,
                ..SchedConfig::default()
            },
            Vec::new(),
        );
        let names: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:06}")).collect();
        let mut id = 0u64;
        for _ in 0..4 {
            for n in &names {
                id += 1;
                let _ = s.enqueue(0, pending(id, n));
            }
        }
        let mut samples = Vec::with_capacity(OPS);
        let mut k = 0usize;
        let all = Instant::now();
        for i in 0..OPS {
            id += 1;
            k = (k + 7919) % names.len();
            let now = 1 + i as u64;
            let p = pending(id, &names[k]);
            let t0 = Instant::now();
            let _ = s.enqueue(now, p);
            if let Some(d) = s.next(now, u64::MAX) {
                s.charge_output(&d.tenant, 16);
            }
            samples.push(t0.elapsed().as_nanos() as u64);
        }
        let total = all.elapsed().as_secs_f64();
        samples.sort_unstable();
        let q = |p: f64| samples[((p * OPS as f64) as usize).min(OPS - 1)];
        println!(
            "{tenants:>8} {:>10} {:>10} {:>10} {:>10} {:>12.0}",
            q(0.50),
            q(0.99),
            q(0.999),
            samples[OPS - 1],
            OPS as f64 / total
        );
    }
}
