//! A lock-free histogram with fixed buckets, and a local accumulator that a stream fills per chunk
//! and merges once, so the per-token path touches no shared memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Most finite bounds a histogram may have (the local accumulator is a fixed array).
pub(crate) const MAX_BOUNDS: usize = 31;

/// Time to first token: interactive chat lives under a second, long prompts queue for more.
pub const TTFT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 40.0,
    80.0,
];
/// Inter-token latency: decode steps of a few to a few hundred milliseconds.
pub const ITL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 2.5, 5.0,
];
/// End-to-end latency: from a short answer to a long generation.
pub const E2E_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
    600.0,
];
/// Time spent in the gateway's admission queue.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One per bound, then the `+Inf` bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

/// Cloning shares the same buckets.
#[derive(Clone, Debug)]
pub(crate) struct AtomicHistogram(Arc<Inner>);

/// Index of the bucket `v` falls in (`le` semantics: `v <= bound`).
fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.partition_point(|b| *b < v)
}

fn add_f64(cell: &AtomicU64, v: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => cur = seen,
        }
    }
}

impl AtomicHistogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let bounds = &bounds[..bounds.len().min(MAX_BOUNDS)];
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        AtomicHistogram(Arc::new(Inner {
            bounds,
            counts,
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }))
    }

    pub(crate) fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = bucket(self.0.bounds, v);
        if let Some(c) = self.0.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        add_f64(&self.0.sum_bits, v);
    }

    pub(crate) fn merge(&self, local: &LocalHistogram) {
        if local.n == 0 {
            return;
        }
        for (cell, n) in self.0.counts.iter().zip(local.counts.iter()) {
            if *n > 0 {
                cell.fetch_add(u64::from(*n), Ordering::Relaxed);
            }
        }
        add_f64(&self.0.sum_bits, local.sum_ns as f64 / 1e9);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.0.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(self.0.counts.len());
        let mut count = 0u64;
        for (i, c) in self.0.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            buckets.push((self.0.bounds.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        // `count` is summed from the buckets read here, so `_count` always equals the `+Inf` bucket.
        let sum = f64::from_bits(self.0.sum_bits.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// [`ITL_BUCKETS`] in nanoseconds, so a stream buckets a chunk gap with integer compares only.
pub(crate) const ITL_BUCKETS_NS: &[u64] = &[
    1_000_000,
    2_500_000,
    5_000_000,
    7_500_000,
    10_000_000,
    15_000_000,
    20_000_000,
    25_000_000,
    30_000_000,
    40_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    150_000_000,
    200_000_000,
    300_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Per-stream bucket counts over nanosecond bounds, merged into an [`AtomicHistogram`] whose
/// bounds are the same in seconds.
#[derive(Debug, Clone)]
pub(crate) struct LocalHistogram {
    counts: [u32; MAX_BOUNDS + 1],
    sum_ns: u64,
    n: u32,
}

impl Default for LocalHistogram {
    fn default() -> Self {
        LocalHistogram {
            counts: [0; MAX_BOUNDS + 1],
            sum_ns: 0,
            n: 0,
        }
    }
}

impl LocalHistogram {
    pub(crate) fn observe_ns(&mut self, bounds_ns: &[u64], ns: u64) {
        let i = bounds_ns.partition_point(|b| *b < ns).min(MAX_BOUNDS);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.n = self.n.saturating_add(1);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub(crate) fn clear(&mut self) {
        *self = LocalHistogram::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_use_le_semantics_and_local_merge_matches_direct_observation() {
        let bounds: &'static [f64] = &[0.1, 1.0];
        let bounds_ns: &[u64] = &[100_000_000, 1_000_000_000];
        assert_eq!(bucket(bounds, 0.1), 0);
        assert_eq!(bucket(bounds, 0.2), 1);
        assert_eq!(bucket(bounds, 5.0), 2);
        let direct = AtomicHistogram::new(bounds);
        let merged = AtomicHistogram::new(bounds);
        let mut local = LocalHistogram::default();
        direct.observe(f64::NAN);
        for ns in [50_000_000u64, 100_000_000, 500_000_000, 3_000_000_000] {
            direct.observe(ns as f64 / 1e9);
            local.observe_ns(bounds_ns, ns);
        }
        merged.merge(&local);
        assert_eq!(direct.count(), 4);
        assert_eq!(merged.count(), 4);
        for (a, b) in direct.0.counts.iter().zip(merged.0.counts.iter()) {
            assert_eq!(a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
        }
        assert!((f64::from_bits(merged.0.sum_bits.load(Ordering::Relaxed)) - 3.65).abs() < 1e-9);
    }

    #[test]
    fn every_bucket_table_fits_the_local_accumulator() {
        for b in [TTFT_BUCKETS, ITL_BUCKETS, E2E_BUCKETS, QUEUE_WAIT_BUCKETS] {
            assert!(b.len() <= MAX_BOUNDS);
            assert!(b.windows(2).all(|w| w[0] < w[1]), "bounds must increase");
        }
        assert_eq!(ITL_BUCKETS.len(), ITL_BUCKETS_NS.len());
        for (s, ns) in ITL_BUCKETS.iter().zip(ITL_BUCKETS_NS) {
            assert_eq!((s * 1e9).round() as u64, *ns);
        }
    }
}
