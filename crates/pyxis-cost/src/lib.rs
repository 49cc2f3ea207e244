//! The cost model: turns a runtime's price into a cost per call. Pure: time comes in as seconds
//! from the caller's clock. The formulas are documented in docs/cost.md.
//!
//! Two ways to price an endpoint:
//! - per million tokens (hosted APIs): `cost = (prompt + completion) × price / 10⁶`;
//! - per accelerator-hour (owned or rented GPUs): the endpoint costs
//!   `rate = price × accelerators / 3600` per second while it is busy (at least one request in
//!   flight), and that cost is shared among the tokens it served in the same time:
//!   `cost = tokens × rate / throughput`, where `throughput` is tokens per busy second measured
//!   over a sliding window. Summed over calls, tenants pay exactly for the busy time they shared.
//!   Idle time is not charged to calls; capacity dedicated to one tenant is charged to it by the
//!   hour separately (see docs/cost.md).

#![forbid(unsafe_code)]

use std::collections::VecDeque;

/// How an endpoint is priced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pricing {
    pub per_accelerator_hour: Option<f64>,
    pub accelerators: u32,
    pub per_million_tokens: Option<f64>,
}

impl Pricing {
    /// Dollars per second of the whole endpoint, when priced by the accelerator-hour.
    pub fn rate_per_second(&self) -> Option<f64> {
        self.per_accelerator_hour
            .map(|p| p * f64::from(self.accelerators.max(1)) / 3600.0)
    }
}

/// Measures an endpoint's token throughput per busy second over a sliding window.
#[derive(Debug, Clone)]
pub struct ThroughputMeter {
    window_s: f64,
    /// (finish time, tokens) of recent calls.
    calls: VecDeque<(f64, u64)>,
    /// Closed busy intervals (start, end) within the window.
    busy: VecDeque<(f64, f64)>,
    in_flight: u32,
    busy_since: f64,
    /// Sum of `calls`' tokens and of `busy`'s lengths, kept as they change so the hot path (one
    /// `finish` and one `throughput` per call) does not scan the window.
    tokens_sum: u64,
    busy_sum: f64,
}

impl ThroughputMeter {
    pub fn new(window_s: f64) -> Self {
        ThroughputMeter {
            window_s,
            calls: VecDeque::new(),
            busy: VecDeque::new(),
            in_flight: 0,
            busy_since: 0.0,
            tokens_sum: 0,
            busy_sum: 0.0,
        }
    }

    /// A request started on the endpoint.
    pub fn start(&mut self, now: f64) {
        if self.in_flight == 0 {
            self.busy_since = now;
        }
        self.in_flight += 1;
    }

    /// A request ended; `tokens` it processed (prompt + completion).
    pub fn finish(&mut self, now: f64, tokens: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.busy.push_back((self.busy_since, now));
            self.busy_sum += now - self.busy_since;
        }
        self.calls.push_back((now, tokens));
        self.tokens_sum += tokens;
        self.expire(now);
    }

    fn expire(&mut self, now: f64) {
        let cutoff = now - self.window_s;
        while let Some(&(t, n)) = self.calls.front()
            && t < cutoff
        {
            self.calls.pop_front();
            self.tokens_sum -= n;
        }
        while let Some(&(start, end)) = self.busy.front()
            && end < cutoff
        {
            self.busy.pop_front();
            self.busy_sum -= end - start;
        }
        if self.busy.is_empty() {
            // Keeps float error from accumulating across many intervals.
            self.busy_sum = 0.0;
        }
    }

    /// Busy seconds within the window ending at `now`.
    pub fn busy_seconds(&self, now: f64) -> f64 {
        let cutoff = now - self.window_s;
        // Intervals are disjoint and in order; when none has ended before the cutoff only the first
        // can straddle it, so the running sum needs one correction. Otherwise (asked for a later
        // `now` than the last update) scan.
        let closed: f64 = if self.busy.front().is_none_or(|&(_, e)| e >= cutoff) {
            let clip = self.busy.front().map_or(0.0, |&(s, _)| (cutoff - s).max(0.0));
            (self.busy_sum - clip).max(0.0)
        } else {
            self.busy.iter().map(|&(s, e)| (e - s.max(cutoff)).max(0.0)).sum()
        };
        let open = if self.in_flight > 0 {
            now - self.busy_since.max(cutoff)
        } else {
            0.0
        };
        closed + open.max(0.0)
    }

    /// Tokens per busy second over the window, or `None` before anything was measured.
    pub fn throughput(&self, now: f64) -> Option<f64> {
        let cutoff = now - self.window_s;
        let tokens: u64 = if self.calls.front().is_none_or(|&(t, _)| t >= cutoff) {
            self.tokens_sum
        } else {
            self.calls.iter().filter(|&&(t, _)| t >= cutoff).map(|&(_, n)| n).sum()
        };
        let busy = self.busy_seconds(now);
        (tokens > 0 && busy > 0.0).then(|| tokens as f64 / busy)
    }
}

/// The cost of one call of `tokens` (prompt + completion) that took `latency_s`, on an endpoint
/// with `pricing` whose measured throughput is `throughput` tokens per busy second.
///
/// Without a measured throughput yet (the first call), the call is charged its own time on the
/// endpoint: `rate × latency_s`.
pub fn call_cost(pricing: &Pricing, tokens: u64, latency_s: f64, throughput: Option<f64>) -> f64 {
    if let Some(p) = pricing.per_million_tokens {
        return tokens as f64 * p / 1e6;
    }
    let Some(rate) = pricing.rate_per_second() else {
        return 0.0;
    };
    match throughput {
        Some(tps) if tps > 0.0 => tokens as f64 * rate / tps,
        _ => rate * latency_s.max(0.0),
    }
}

/// What capacity dedicated to one tenant costs it for a period, used or not.
pub fn dedicated_cost(pricing: &Pricing, seconds: f64) -> f64 {
    pricing.rate_per_second().unwrap_or(0.0) * seconds.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(price: f64, n: u32) -> Pricing {
        Pricing {
            per_accelerator_hour: Some(price),
            accelerators: n,
            per_million_tokens: None,
        }
    }

    #[test]
    fn per_token_pricing() {
        let p = Pricing {
            per_million_tokens: Some(2.0),
            ..Pricing::default()
        };
        assert!((call_cost(&p, 500_000, 1.0, None) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn busy_time_is_shared_by_tokens() {
        // $3.60/h × 2 GPUs = $0.002/s. Two overlapping calls keep the endpoint busy 0..10 s.
        let p = gpu(3.6, 2);
        let mut m = ThroughputMeter::new(60.0);
        m.start(0.0);
        m.start(2.0);
        m.finish(6.0, 300);
        m.finish(10.0, 700);
        let tps = m.throughput(10.0).unwrap();
        assert!((tps - 100.0).abs() < 1e-9, "1000 tokens over 10 busy seconds");
        let total = call_cost(&p, 300, 4.0, Some(tps)) + call_cost(&p, 700, 10.0, Some(tps));
        assert!(
            (total - 0.02).abs() < 1e-12,
            "calls pay exactly for the busy time: {total}"
        );
        // Idle time does not count: a later burst measures its own busy time.
        m.start(100.0);
        m.finish(101.0, 50);
        assert!(
            (m.busy_seconds(101.0) - 1.0).abs() < 1e-9,
            "the old interval left the window"
        );
        assert!((m.throughput(101.0).unwrap() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn first_call_pays_its_own_time_and_unpriced_is_free() {
        assert!((call_cost(&gpu(3.6, 1), 10, 2.0, None) - 0.002).abs() < 1e-12);
        assert_eq!(call_cost(&Pricing::default(), 10, 2.0, Some(5.0)), 0.0);
        assert!((dedicated_cost(&gpu(2.0, 4), 3600.0) - 8.0).abs() < 1e-12);
    }
}

#[cfg(test)]
mod running_sums {
    use super::ThroughputMeter;

    /// The window's tokens per busy second by a full scan, for comparison with the running sums.
    fn scan(calls: &[(f64, u64)], busy: &[(f64, f64)], now: f64, window: f64) -> Option<f64> {
        let cutoff = now - window;
        let tokens: u64 = calls.iter().filter(|c| c.0 >= cutoff).map(|c| c.1).sum();
        let b: f64 = busy.iter().map(|&(s, e)| (e - s.max(cutoff)).max(0.0)).sum();
        (tokens > 0 && b > 0.0).then(|| tokens as f64 / b)
    }

    #[test]
    fn running_sums_match_a_full_scan() {
        let window = 5.0;
        let mut m = ThroughputMeter::new(window);
        let (mut calls, mut busy) = (Vec::new(), Vec::new());
        let mut t = 0.0;
        let mut seed = 7u64;
        for i in 0..2000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let gap = (seed >> 40) as f64 / (1u64 << 24) as f64; // 0..1 s
            m.start(t);
            let start = t;
            t += gap * 0.3;
            let tokens = 1 + (seed >> 50) % 500;
            m.finish(t, tokens);
            calls.push((t, tokens));
            busy.push((start, t));
            t += gap * 0.7;
            let (got, want) = (m.throughput(t), scan(&calls, &busy, t, window));
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-6 * w.max(1.0), "call {i}: {g} vs {w}"),
                (g, w) => assert_eq!(g.is_some(), w.is_some(), "call {i}"),
            }
        }
    }
}
