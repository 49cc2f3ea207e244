//! When open-loop requests are due and which key each request uses. Pure: offsets from the start,
//! no clock.

use std::time::Duration;

use crate::config::Load;
use crate::rng::Rng;

/// Send offsets of an open-loop load: Poisson (exponential gaps, first request at 0, as vLLM's
/// `get_request`), or bursts of `size` every `interval`. A closed loop has no schedule: it yields
/// zeros, and the runner paces it by completions instead.
#[derive(Debug, Clone)]
pub struct Arrivals {
    load: Load,
    rng: Rng,
    next_s: f64,
    index: u64,
}

impl Arrivals {
    pub fn new(load: Load, seed: u64) -> Self {
        Arrivals {
            load,
            rng: Rng::derive(seed, &[u64::MAX - 1]),
            next_s: 0.0,
            index: 0,
        }
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let i = self.index;
        self.index += 1;
        let at = match self.load {
            Load::Concurrency(_) => 0.0,
            Load::Rate(r) if r.is_infinite() => 0.0,
            Load::Rate(r) => {
                let at = self.next_s;
                self.next_s += self.rng.exp(r);
                at
            }
            Load::Burst { size, interval } => (i / u64::from(size.max(1))) as f64 * interval.as_secs_f64(),
        };
        Some(Duration::from_secs_f64(at.min(1e9)))
    }
}

/// The first `n` send offsets of `load` under `seed` (what a run with `--num-requests n` uses).
pub fn arrival_offsets(load: Load, seed: u64, n: usize) -> Vec<Duration> {
    Arrivals::new(load, seed).take(n).collect()
}

/// Smooth weighted round-robin (nginx's): over any window of `Σw` requests each key gets exactly
/// its weight, spread out rather than in runs. Returns one cycle of tenant indices.
pub(crate) fn tenant_cycle(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    if weights.is_empty() || total == 0 {
        return vec![0];
    }
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let mut best = 0;
        for (i, &c) in current.iter().enumerate() {
            if c > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_gaps_average_one_over_rate() {
        let offs = arrival_offsets(Load::Rate(50.0), 3, 5001);
        assert_eq!(offs[0], Duration::ZERO);
        assert!(offs.windows(2).all(|w| w[0] <= w[1]));
        let mean_gap = offs[5000].as_secs_f64() / 5000.0;
        assert!((mean_gap - 0.02).abs() < 0.001, "{mean_gap}");
        // Exponential gaps: about 63% are shorter than the mean.
        let short = offs.windows(2).filter(|w| (w[1] - w[0]).as_secs_f64() < 0.02).count();
        assert!((2950..3350).contains(&short), "{short}");
        assert_eq!(
            arrival_offsets(Load::Rate(50.0), 3, 10),
            arrival_offsets(Load::Rate(50.0), 3, 10)
        );
        assert!(
            arrival_offsets(Load::Rate(f64::INFINITY), 3, 5)
                .iter()
                .all(|d| d.is_zero())
        );
    }

    #[test]
    fn bursts_come_in_groups() {
        let offs = arrival_offsets(
            Load::Burst {
                size: 3,
                interval: Duration::from_millis(500),
            },
            0,
            7,
        );
        let ms: Vec<u128> = offs.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 500, 500, 500, 1000]);
    }

    #[test]
    fn weighted_round_robin_is_exact_and_spread() {
        assert_eq!(tenant_cycle(&[1, 1]), [0, 1]);
        let c = tenant_cycle(&[3, 1]);
        assert_eq!(c.len(), 4);
        assert_eq!(c.iter().filter(|&&t| t == 0).count(), 3);
        assert_eq!(tenant_cycle(&[5, 1]), [0, 0, 0, 1, 0, 0]);
        assert_eq!(tenant_cycle(&[]), [0]);
    }
}
