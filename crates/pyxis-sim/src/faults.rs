//! Fault injection: the settable fault set and the per-request decisions drawn from it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyxis_sim_core::rng::SimRng;
use serde::{Deserialize, Serialize};

/// Faults to inject; `Default` injects none. Set by CLI flags, the fleet file, or at run time with
/// `POST /admin/faults` (the body replaces the whole set; `{}` clears it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction (0..=1) of inference requests answered with a 500 in the surface's error shape.
    pub error_rate: f64,
    /// Milliseconds added before an inference request reaches the engine.
    pub latency_ms: u64,
    /// For this many seconds after the faults are set (or the engine starts), `/health` answers 503
    /// and inference requests are refused with 503, as an engine still loading its weights.
    pub slow_start_s: f64,
    /// Accept connections and requests but never answer (admin routes excepted).
    pub hang: bool,
    /// Crash now: close the listener, cut open streams, stop the engine.
    pub crash: bool,
    /// Crash this many seconds after the faults are set (or the engine starts).
    pub crash_after_s: Option<f64>,
    /// Drop the connection of a stream after this many data events (no `[DONE]`, no final chunk).
    pub stream_cut_after: Option<u32>,
    /// Refuse every inference request as overloaded: 429 on the TGI surface, 503 otherwise.
    pub overload: bool,
    /// Refuse as overloaded beyond this many inference requests in flight (TGI's
    /// `--max-concurrent-requests` behaviour).
    pub max_concurrent: Option<u32>,
}

impl FaultConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return Err(format!("error_rate must be within 0..=1, got {}", self.error_rate));
        }
        if self.slow_start_s < 0.0 || self.slow_start_s.is_nan() {
            return Err("slow_start_s must not be negative".into());
        }
        if self.crash_after_s.is_some_and(|s| s < 0.0 || s.is_nan()) {
            return Err("crash_after_s must not be negative".into());
        }
        Ok(())
    }
}

/// The live fault set of one engine.
pub(crate) struct FaultState {
    inner: Mutex<(FaultConfig, Instant)>,
    rng: Mutex<SimRng>,
}

impl FaultState {
    pub(crate) fn new(cfg: FaultConfig, seed: u64) -> Self {
        FaultState {
            inner: Mutex::new((cfg, Instant::now())),
            rng: Mutex::new(SimRng::new(seed ^ 0xfa17)),
        }
    }

    pub(crate) fn get(&self) -> FaultConfig {
        self.inner.lock().map(|g| g.0.clone()).unwrap_or_default()
    }

    /// Replaces the set; timers (slow start, crash after) restart now.
    pub(crate) fn set(&self, cfg: FaultConfig) {
        if let Ok(mut g) = self.inner.lock() {
            *g = (cfg, Instant::now());
        }
    }

    fn since(&self) -> Duration {
        self.inner.lock().map(|g| g.1.elapsed()).unwrap_or_default()
    }

    /// Still "loading".
    pub(crate) fn starting(&self) -> bool {
        let c = self.get();
        c.slow_start_s > 0.0 && self.since().as_secs_f64() < c.slow_start_s
    }

    /// When the engine should crash from now, if it should.
    pub(crate) fn crash_in(&self) -> Option<Duration> {
        let c = self.get();
        if c.crash {
            return Some(Duration::ZERO);
        }
        let after = Duration::from_secs_f64(c.crash_after_s?);
        Some(after.saturating_sub(self.since()))
    }

    /// Draws whether this request fails.
    pub(crate) fn roll_error(&self) -> bool {
        let rate = self.get().error_rate;
        rate > 0.0 && self.rng.lock().map(|mut r| r.next_f64() < rate).unwrap_or(false)
    }
}
