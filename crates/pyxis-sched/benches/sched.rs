//! enqueue + next (+ one output charge) per decision, at 10 and at 10,000 backlogged tenants, against a
//! baseline of the same work through a plain VecDeque (FCFS); and an arrival that finds the queue empty,
//! `dispatch_now` against the `enqueue` + `next` it stands for.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pyxis_sched::{Pending, SchedConfig, Scheduler};

/// A scheduler with `tenants` backlogged tenants, `depth` requests each, and a counter spread.
fn loaded(tenants: usize, depth: usize) -> (Scheduler, Vec<String>, u64) {
    let mut s = Scheduler::new(
        SchedConfig {
            max_queued_total: usize::MAX,
            default_timeout_ms: 60_000,
            ..SchedConfig::default()
        },
        Vec::new(),
    );
    let names: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:05}")).collect();
    let mut id = 0;
    for _ in 0..depth {
        for n in &names {
            id += 1;
            let _ = s.enqueue(0, pending(id, n));
        }
    }
    (s, names, id)
}

fn pending(id: u64, tenant: &str) -> Pending {
    Pending {
        id,
        tenant: tenant.to_owned(),
        input_tokens: 200 + (id % 300) as u32,
        max_output_tokens: 256,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("enqueue_next");
    for tenants in [10usize, 10_000] {
        let (mut s, names, mut id) = loaded(tenants, 4);
        let mut k = 0usize;
        let mut now = 1u64;
        g.bench_function(BenchmarkId::new("vtc", tenants), |b| {
            b.iter(|| {
                id += 1;
                k = (k + 7919) % names.len();
                now += 1;
                let _ = s.enqueue(now, pending(id, &names[k]));
                if let Some(d) = s.next(now, u64::MAX) {
                    s.charge_output(&d.tenant, 16);
                    black_box(d);
                }
            })
        });
        let mut q: VecDeque<Pending> = (0..tenants * 4)
            .map(|i| pending(i as u64, &names[i % tenants]))
            .collect();
        g.bench_function(BenchmarkId::new("fifo_baseline", tenants), |b| {
            b.iter(|| {
                id += 1;
                k = (k + 7919) % names.len();
                q.push_back(pending(id, &names[k]));
                black_box(q.pop_front());
            })
        });
    }
    g.finish();

    // An arrival that finds nobody queued and room in the budget (the gateway's common case): the fast path
    // against the queue path it replaces (`enqueue` then `next`), ending in the same state.
    let mut g = c.benchmark_group("uncontended_arrival");
    let (mut s, names, mut id) = loaded(10, 0);
    let mut now = 1u64;
    g.bench_function("enqueue_then_next_baseline", |b| {
        b.iter(|| {
            id += 1;
            now += 1;
            let _ = s.enqueue(now, pending(id, &names[id as usize % names.len()]));
            black_box(s.next(now, u64::MAX))
        })
    });
    g.bench_function("dispatch_now", |b| {
        b.iter(|| {
            id += 1;
            now += 1;
            black_box(s.dispatch_now(now, &pending(id, &names[id as usize % names.len()]), u64::MAX))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
