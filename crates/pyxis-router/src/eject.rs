//! Outlier ejection of one endpoint: consecutive failures eject it with exponential back-off; after the
//! back-off it stays out until a probe passes.

use crate::config::EjectionConfig;

/// Ejection state of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ejection {
    /// Failures since the last success.
    failures: u32,
    /// Ejections so far in the current streak (sets the next back-off).
    ejections: u32,
    /// Ejected until a probe passes; the probe is due at this time, ms.
    until: Option<u64>,
    /// When the endpoint was last re-admitted, ms (a long healthy stretch forgives past ejections).
    readmitted_at: u64,
}

/// Back-off of the `n`-th ejection of a streak (1-based): `base · 2^(n-1)`, capped at `max`.
pub fn backoff_ms(cfg: &EjectionConfig, n: u32) -> u64 {
    let doublings = n.saturating_sub(1).min(63);
    cfg.base_ms
        .saturating_mul(1u64 << doublings)
        .min(cfg.max_ms.max(cfg.base_ms))
}

impl Ejection {
    pub(crate) fn is_ejected(&self) -> bool {
        self.until.is_some()
    }

    /// Ejected and its back-off has run out: time to probe.
    pub(crate) fn probe_due(&self, now_ms: u64) -> bool {
        self.until.is_some_and(|u| now_ms >= u)
    }

    /// When the probe is due, if ejected.
    pub(crate) fn until(&self) -> Option<u64> {
        self.until
    }

    pub(crate) fn on_success(&mut self, now_ms: u64) {
        self.failures = 0;
        match self.until {
            // A success after the back-off is the probe (or traffic the probe let through): re-admit.
            Some(u) if now_ms >= u => {
                self.until = None;
                self.readmitted_at = now_ms;
            }
            // A request dispatched before the ejection finishing well proves little: stay out.
            Some(_) => {}
            None => {}
        }
    }

    pub(crate) fn on_failure(&mut self, now_ms: u64, cfg: &EjectionConfig) {
        if cfg.consecutive_failures == 0 {
            return;
        }
        match self.until {
            // A failed probe: eject again, longer.
            Some(u) if now_ms >= u => self.eject(now_ms, cfg),
            // Stragglers dispatched before the ejection: already counted.
            Some(_) => {}
            None => {
                self.failures = self.failures.saturating_add(1);
                if self.failures >= cfg.consecutive_failures {
                    if self.ejections > 0 && now_ms.saturating_sub(self.readmitted_at) > cfg.max_ms {
                        self.ejections = 0;
                    }
                    self.eject(now_ms, cfg);
                }
            }
        }
    }

    fn eject(&mut self, now_ms: u64, cfg: &EjectionConfig) {
        self.ejections = self.ejections.saturating_add(1);
        self.failures = 0;
        self.until = Some(now_ms.saturating_add(backoff_ms(cfg, self.ejections)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = EjectionConfig::default();
        let got: Vec<u64> = (1..=6).map(|n| backoff_ms(&cfg, n)).collect();
        assert_eq!(got, vec![30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
        assert_eq!(backoff_ms(&cfg, u32::MAX), 300_000);
    }

    #[test]
    fn ejects_after_consecutive_failures_and_probes_back() {
        let cfg = EjectionConfig::default();
        let mut e = Ejection::default();
        for _ in 0..4 {
            e.on_failure(0, &cfg);
        }
        e.on_success(0);
        for _ in 0..4 {
            e.on_failure(0, &cfg);
        }
        assert!(!e.is_ejected(), "a success in between resets the count");
        e.on_failure(1_000, &cfg);
        assert_eq!(e.until(), Some(31_000));
        e.on_success(2_000);
        assert!(e.is_ejected(), "a straggler's success does not re-admit");
        assert!(!e.probe_due(30_999) && e.probe_due(31_000));
        e.on_failure(31_000, &cfg);
        assert_eq!(e.until(), Some(91_000), "a failed probe doubles the back-off");
        e.on_success(91_000);
        assert!(!e.is_ejected());
    }

    #[test]
    fn disabled_with_zero_failures() {
        let cfg = EjectionConfig {
            consecutive_failures: 0,
            ..EjectionConfig::default()
        };
        let mut e = Ejection::default();
        for _ in 0..100 {
            e.on_failure(0, &cfg);
        }
        assert!(!e.is_ejected());
    }
}
