//! An exponentially decayed sum, updated lazily: the "recent service" window of class floors and rate estimates.

/// Sum of amounts, each weighted by `exp(-age / tau)`; its steady value is rate × tau.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Decayed {
    value: f64,
    at_ms: u64,
}

impl Decayed {
    /// The sum as seen at `now_ms` (times before the last update count as the last update).
    pub(crate) fn get(&self, now_ms: u64, tau_ms: f64) -> f64 {
        let dt = now_ms.saturating_sub(self.at_ms) as f64;
        if dt == 0.0 || self.value == 0.0 {
            self.value
        } else {
            self.value * (-dt / tau_ms).exp()
        }
    }

    /// Adds `x` at `now_ms`.
    pub(crate) fn add(&mut self, now_ms: u64, tau_ms: f64, x: f64) {
        let now = now_ms.max(self.at_ms);
        self.value = self.get(now, tau_ms) + x;
        self.at_ms = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decays_by_e_per_tau_and_converges_to_rate_times_tau() {
        let mut d = Decayed::default();
        d.add(0, 1000.0, 10.0);
        assert!((d.get(1000, 1000.0) - 10.0 / std::f64::consts::E).abs() < 1e-9);
        let mut r = Decayed::default();
        for t in 0..100_000u64 {
            r.add(t, 1000.0, 1.0); // one per ms
        }
        let v = r.get(100_000, 1000.0);
        assert!((v - 1000.0).abs() < 5.0, "{v}");
    }
}
