//! Per-endpoint time-to-first-token model, learned online by recursive least squares.
//!
//! `ttft_ms ≈ θ₀ + θ₁·(uncached prompt tokens / 1000) + θ₂·(prefill tokens queued ahead / 1000)`: a fixed cost
//! (front end, one step), the endpoint's prefill speed, and its load as the prompts sent before this one that
//! have not produced their first token yet (engines prefill first come, first served, so that queue is what a
//! new request waits behind). On an endpoint whose queue is bounded by its KV cache rather than by prefill
//! (a small GPU), θ₂ simply learns a larger cost per queued token. RLS with a forgetting factor tracks an
//! endpoint whose speed changes within a few dozen requests; the prior stands in until then. Coefficients are
//! kept non-negative (projected after each update): a negative one would make a saturated endpoint look
//! instant. The features are well separated (prompt lengths vary, the queue comes and goes), which the
//! projection needs: with a near-constant feature beside the intercept it would stall.

/// Smallest coefficients: prefill is never free.
const THETA_MIN: [f64; 3] = [0.0, 0.1, 0.0];
/// Prior: 50 ms fixed, 60 ms per 1k prompt tokens (an A100-class prefill of an 8B model), the same per 1k
/// tokens queued. Only the order of magnitude matters: a handful of observations replace it.
const PRIOR: [f64; 3] = [50.0, 60.0, 60.0];
/// Prior variances: how far the data may pull each coefficient quickly.
const PRIOR_VAR: [f64; 3] = [50.0 * 50.0, 100.0 * 100.0, 100.0 * 100.0];
/// Forgetting factor: an observation's weight halves after ~70 newer ones.
const LAMBDA: f64 = 0.99;
/// Covariance entries are capped at this multiple of the prior's: with forgetting and a feature that stops
/// varying (no queue for a while), P would otherwise grow without bound and one outlier would swing θ.
const P_CAP: f64 = 4.0;
/// Predictions are kept in this range, ms.
const MIN_MS: f64 = 1.0;
const MAX_MS: f64 = 600_000.0;

/// The learned model of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TtftModel {
    theta: [f64; 3],
    p: [[f64; 3]; 3],
    samples: u64,
}

impl Default for TtftModel {
    fn default() -> Self {
        let mut p = [[0.0; 3]; 3];
        for (i, row) in p.iter_mut().enumerate() {
            row[i] = PRIOR_VAR[i];
        }
        TtftModel {
            theta: PRIOR,
            p,
            samples: 0,
        }
    }
}

#[inline]
fn features(own_tokens: f64, queued_tokens: f64) -> [f64; 3] {
    [1.0, own_tokens / 1000.0, queued_tokens / 1000.0]
}

impl TtftModel {
    /// Predicted TTFT, ms, for a prompt of `own_tokens` uncached tokens behind `queued_tokens` of prefill.
    #[inline]
    pub(crate) fn predict(&self, own_tokens: f64, queued_tokens: f64) -> f64 {
        let x = features(own_tokens, queued_tokens);
        let y = self.theta[0] * x[0] + self.theta[1] * x[1] + self.theta[2] * x[2];
        if y.is_finite() { y.clamp(MIN_MS, MAX_MS) } else { MAX_MS }
    }

    /// Learns from one observation.
    pub(crate) fn observe(&mut self, own_tokens: f64, queued_tokens: f64, ttft_ms: f64) {
        if !ttft_ms.is_finite() || ttft_ms < 0.0 || !own_tokens.is_finite() || !queued_tokens.is_finite() {
            return;
        }
        let x = features(own_tokens.max(0.0), queued_tokens.max(0.0));
        let y = ttft_ms.min(MAX_MS);
        let mut px = [0.0; 3];
        for (i, v) in px.iter_mut().enumerate() {
            *v = self.p[i][0] * x[0] + self.p[i][1] * x[1] + self.p[i][2] * x[2];
        }
        let denom = LAMBDA + x[0] * px[0] + x[1] * px[1] + x[2] * px[2];
        if !denom.is_finite() || denom <= 0.0 {
            *self = TtftModel::default();
            return;
        }
        let err = y - (self.theta[0] * x[0] + self.theta[1] * x[1] + self.theta[2] * x[2]);
        for (t, g) in self.theta.iter_mut().zip(px) {
            *t += g / denom * err;
        }
        for (row, gi) in self.p.iter_mut().zip(px) {
            for (v, gj) in row.iter_mut().zip(px) {
                *v = (*v - gi * gj / denom) / LAMBDA;
            }
        }
        // Keep P bounded: shrink only the coordinates whose variance outgrew its cap, as D·P·D with D diagonal,
        // so P stays symmetric positive definite and well-excited directions keep their gain.
        let mut d = [1.0; 3];
        for (i, di) in d.iter_mut().enumerate() {
            let cap = PRIOR_VAR[i] * P_CAP;
            if self.p[i][i] > cap {
                *di = (cap / self.p[i][i]).sqrt();
            }
        }
        if d.iter().any(|v| *v < 1.0) {
            for (i, row) in self.p.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v *= d[i] * d[j];
                }
            }
        }
        self.project();
        if self.theta.iter().any(|t| !t.is_finite()) {
            *self = TtftModel::default();
            return;
        }
        self.samples += 1;
    }

    /// Moves θ onto its bounds in P's metric: a coefficient pushed below its floor is set to the floor and the
    /// others absorb the difference along their covariance with it, as a least-squares fit with that
    /// coefficient fixed would. Clipping it alone would leave the fit wrong and let the others run away.
    fn project(&mut self) {
        for _ in 0..3 {
            let Some(i) = (0..3).find(|&i| self.theta[i] < THETA_MIN[i]) else {
                return;
            };
            let pii = self.p[i][i];
            let delta = self.theta[i] - THETA_MIN[i];
            if pii > 0.0 && pii.is_finite() {
                for (t, row) in self.theta.iter_mut().zip(&self.p) {
                    *t -= row[i] / pii * delta;
                }
            }
            self.theta[i] = THETA_MIN[i];
        }
        for (t, min) in self.theta.iter_mut().zip(THETA_MIN) {
            *t = t.max(min);
        }
    }

    /// Observations learned from.
    pub(crate) fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(k: &mut u64) -> u64 {
        *k = k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *k >> 33
    }

    #[test]
    fn learns_a_linear_endpoint_from_the_prior() {
        let truth = |u: f64, w: f64| 12.0 + 30.0 * u / 1000.0 + 35.0 * w / 1000.0;
        let mut m = TtftModel::default();
        assert_eq!(m.predict(1000.0, 0.0), 110.0);
        let mut k = 7u64;
        for _ in 0..400 {
            let u = (lcg(&mut k) % 4000) as f64;
            let w = if lcg(&mut k).is_multiple_of(3) {
                (lcg(&mut k) % 20_000) as f64
            } else {
                0.0
            };
            m.observe(u, w, truth(u, w));
        }
        for (u, w) in [(100.0, 0.0), (2000.0, 0.0), (3500.0, 15_000.0)] {
            let (p, t) = (m.predict(u, w), truth(u, w));
            assert!((p - t).abs() < 0.05 * t + 1.0, "{u} {w}: {p} vs {t}");
        }
        assert_eq!(m.samples(), 400);
    }

    #[test]
    fn an_idle_fast_endpoint_converges_without_a_queue() {
        // The prior overestimates; the data never show a queue. The intercept must not stick at zero.
        let mut m = TtftModel::default();
        let mut k = 3u64;
        for _ in 0..200 {
            let u = (lcg(&mut k) % 2500) as f64;
            m.observe(u, 0.0, 20.0 + 40.0 * u / 1000.0);
        }
        let p = m.predict(1500.0, 0.0);
        assert!((p - 80.0).abs() < 4.0, "{p}");
    }

    #[test]
    fn tracks_a_slowdown() {
        let mut m = TtftModel::default();
        for i in 0..300 {
            let u = f64::from(i % 7) * 300.0;
            m.observe(u, 0.0, 20.0 + u / 100.0);
        }
        let before = m.predict(1000.0, 0.0);
        for i in 0..300 {
            let u = f64::from(i % 7) * 300.0;
            m.observe(u, 0.0, 3.0 * (20.0 + u / 100.0));
        }
        let after = m.predict(1000.0, 0.0);
        assert!((before - 30.0).abs() < 3.0, "{before}");
        assert!((after - 90.0).abs() < 9.0, "{after}");
    }

    #[test]
    fn ignores_garbage_stays_bounded_and_non_negative() {
        let mut m = TtftModel::default();
        m.observe(f64::NAN, 1.0, 10.0);
        m.observe(1.0, 1.0, f64::INFINITY);
        m.observe(1.0, 1.0, -5.0);
        assert_eq!(m, TtftModel::default());
        for _ in 0..10_000 {
            m.observe(500.0, 3000.0, 40.0);
        }
        let p = m.predict(500.0, 3000.0);
        assert!((p - 40.0).abs() < 1.0, "{p}");
        assert!(m.predict(1e12, 1e12) <= MAX_MS && m.predict(0.0, 0.0) >= MIN_MS);
        // Data that would want a negative queue cost: the coefficient stops at zero.
        for i in 0..500 {
            let w = f64::from(i % 10) * 1000.0;
            m.observe(1000.0, w, 100.0 - w / 200.0);
        }
        assert!(m.predict(1000.0, 50_000.0) >= m.predict(1000.0, 0.0) - 1e-9);
    }
}
