//! Cost of one admit + settle pair, in memory and on Redis (`REDIS_URL`; skipped when unset).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use pyxis_quota::{QuotaLimits, Quotas};

const T0: u64 = 1_700_000_000_000;

fn limits() -> QuotaLimits {
    // Every limit set, high enough never to reject: the bench measures the full check and record.
    QuotaLimits {
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(u64::MAX / 4),
        concurrent_requests: Some(u32::MAX),
        tokens_per_day: Some(u64::MAX / 4),
        tokens_per_month: Some(u64::MAX / 4),
        cost_per_day: Some(1e12),
        cost_per_month: Some(1e12),
    }
}

fn bench(c: &mut Criterion, name: &str, rt: &tokio::runtime::Runtime, q: &Quotas) {
    let l = limits();
    // Time advances 1 ms per iteration so the window buckets roll as in real traffic.
    let clock = AtomicU64::new(T0);
    c.bench_function(name, |b| {
        b.iter(|| {
            let now = clock.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async {
                if let Ok(r) = q.admit(black_box("tenant-a"), &l, 1_000, now).await {
                    q.settle(r, 700, 0.001, now).await;
                }
            })
        })
    });
}

fn quota(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return;
    };
    bench(c, "memory admit+settle", &rt, &Quotas::memory());
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("pyxis-quota-bench:{}", std::process::id());
            match rt.block_on(Quotas::redis(&url, &prefix)) {
                Ok(q) => bench(c, "redis admit+settle", &rt, &q),
                Err(e) => println!("SKIPPED redis bench: {e}"),
            }
        }
        _ => println!("SKIPPED redis bench: REDIS_URL is not set"),
    }
}

criterion_group!(benches, quota);
criterion_main!(benches);
