//! Latency percentiles at 1 % resolution in constant memory, and the virtual-run report.

use serde::Serialize;

/// Mantissa bits kept per power of two: 128 sub-buckets, each at most 0.8 % wide.
const SUB_BITS: u32 = 7;
/// Smallest exponent kept (2^-24 s ≈ 60 ns); smaller values share the first bucket.
const MIN_EXP: i64 = -24;
/// Largest exponent kept (2^20 s ≈ 12 days).
const MAX_EXP: i64 = 20;
const BUCKETS: usize = ((MAX_EXP - MIN_EXP + 1) as usize) << SUB_BITS;

/// Bucket of a positive value from its IEEE-754 bits: exponent and top mantissa bits, no `ln`
/// (the histogram sits on the per-token path of virtual runs).
#[inline]
fn bucket_of(v: f64) -> usize {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    if exp < MIN_EXP {
        return 0;
    }
    if exp > MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = (bits >> (52 - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    (((exp - MIN_EXP) as usize) << SUB_BITS) | sub as usize
}

/// Lower edge of a bucket.
fn bucket_low(i: usize) -> f64 {
    let exp = (i >> SUB_BITS) as i64 + MIN_EXP;
    let sub = (i & ((1 << SUB_BITS) - 1)) as f64;
    (1.0 + sub / f64::from(1u32 << SUB_BITS)) * 2f64.powi(exp as i32)
}

/// Log-bucketed histogram: each bucket is under 1 % wide, so any percentile is within 1 % of the
/// true sample value, however many samples (millions of inter-token gaps) go in.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHist {
    counts: Vec<u64>,
    n: u64,
    sum: f64,
    max: f64,
}

impl Default for LogHist {
    fn default() -> Self {
        Self::new()
    }
}

impl LogHist {
    /// Empty.
    pub fn new() -> Self {
        LogHist {
            counts: vec![0; BUCKETS],
            n: 0,
            sum: 0.0,
            max: 0.0,
        }
    }

    /// Records one sample (seconds, clamped to ≥ 0).
    #[inline]
    pub fn record(&mut self, v: f64) {
        let v = v.max(0.0);
        self.counts[bucket_of(v)] += 1;
        self.n += 1;
        self.sum += v;
        if v > self.max {
            self.max = v;
        }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.sum / self.n as f64 }
    }

    /// The `q`-quantile (0..=1), the geometric middle of its bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= rank {
                let (lo, hi) = (bucket_low(i), bucket_low(i + 1));
                return ((lo + hi) / 2.0).min(self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &LogHist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }

    /// p50/p90/p99/mean/max.
    pub fn summary(&self) -> Percentiles {
        Percentiles {
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            mean: self.mean(),
            max: self.max,
        }
    }
}

/// Percentiles of a latency, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
}

/// Latencies and volume for one group of requests (all, or one tenant).
#[derive(Debug, Clone, Default)]
pub struct Collector {
    /// Time to first token.
    pub ttft: LogHist,
    /// Gap between consecutive tokens of a request.
    pub itl: LogHist,
    /// Arrival to last token.
    pub e2e: LogHist,
    /// Time in the gateway queue before reaching an engine.
    pub gateway_queue: LogHist,
    /// Requests completed.
    pub completed: u64,
    /// Requests refused (no engine, context too long).
    pub rejected: u64,
    /// Prompt tokens of completed requests.
    pub prompt_tokens: u64,
    /// Of which served from the prefix cache.
    pub cached_tokens: u64,
    /// Output tokens of completed requests.
    pub output_tokens: u64,
}

impl Collector {
    /// Summarises over a window of `window_s` simulated seconds.
    pub fn summarize(&self, name: &str, window_s: f64) -> GroupReport {
        let w = window_s.max(1e-9);
        GroupReport {
            name: name.to_string(),
            completed: self.completed,
            rejected: self.rejected,
            ttft: self.ttft.summary(),
            itl: self.itl.summary(),
            e2e: self.e2e.summary(),
            gateway_queue: self.gateway_queue.summary(),
            requests_per_s: self.completed as f64 / w,
            output_tokens_per_s: self.output_tokens as f64 / w,
            prompt_tokens_per_s: self.prompt_tokens as f64 / w,
            prefix_hit_rate: if self.prompt_tokens == 0 {
                0.0
            } else {
                self.cached_tokens as f64 / self.prompt_tokens as f64
            },
            prompt_tokens: self.prompt_tokens,
            output_tokens: self.output_tokens,
        }
    }
}

/// Results for a group of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// `all` or the tenant's name.
    pub name: String,
    /// Requests completed in the measured window.
    pub completed: u64,
    /// Requests refused.
    pub rejected: u64,
    /// Time to first token, s.
    pub ttft: Percentiles,
    /// Inter-token latency, s.
    pub itl: Percentiles,
    /// End-to-end latency, s.
    pub e2e: Percentiles,
    /// Wait in the gateway queue, s.
    pub gateway_queue: Percentiles,
    /// Completed requests per simulated second.
    pub requests_per_s: f64,
    /// Output tokens per simulated second.
    pub output_tokens_per_s: f64,
    /// Prompt tokens per simulated second.
    pub prompt_tokens_per_s: f64,
    /// Share of prompt tokens served from the prefix cache.
    pub prefix_hit_rate: f64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// One engine's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineReport {
    /// Index in the fleet.
    pub index: usize,
    /// Hardware key.
    pub hardware: String,
    /// Model key.
    pub model: String,
    /// Requests it completed.
    pub completed: u64,
    /// Share of the run it spent in steps.
    pub busy_fraction: f64,
    /// Steps run.
    pub steps: u64,
    /// Preemptions.
    pub preemptions: u64,
    /// Prefix-cache hit rate (tokens).
    pub prefix_hit_rate: f64,
    /// Largest waiting queue seen at a step boundary.
    pub max_waiting: u32,
    /// Largest KV usage seen at a step boundary.
    pub max_kv_usage: f64,
}

/// The result of a virtual-time run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Simulated seconds from the first arrival to the last completion.
    pub simulated_s: f64,
    /// Seconds measured (after warm-up).
    pub measured_s: f64,
    /// Requests issued (whole run).
    pub issued: u64,
    /// Everything measured.
    pub overall: GroupReport,
    /// Per tenant.
    pub tenants: Vec<GroupReport>,
    /// Per engine.
    pub engines: Vec<EngineReport>,
    /// Engine steps simulated.
    pub steps: u64,
    /// Tokens generated (whole run).
    pub tokens_generated: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut h = LogHist::new();
        for i in 1..=10_000 {
            h.record(f64::from(i) * 1e-3);
        }
        for (q, want) in [(0.5, 5.0), (0.9, 9.0), (0.99, 9.9)] {
            let got = h.quantile(q);
            assert!((got - want).abs() / want < 0.011, "q{q}: {got} vs {want}");
        }
        assert!((h.mean() - 5.0005).abs() < 1e-9);
        let mut g = LogHist::new();
        g.merge(&h);
        assert_eq!(g.count(), 10_000);
        assert_eq!(LogHist::new().quantile(0.5), 0.0);
    }
}
