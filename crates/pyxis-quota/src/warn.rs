//! Backend failures: counted always, logged at most once per 10 s so an outage does not flood the log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const QUIET_MS: u64 = 10_000;

#[derive(Default)]
pub(crate) struct WarnGate {
    errors: AtomicU64,
    /// (time of the last warning, errors not logged since).
    last: Mutex<Option<(u64, u64)>>,
}

impl WarnGate {
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn error(&self, now_ms: u64, op: &str, err: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.should_log(now_ms) {
            tracing::warn!(
                op,
                error = %err,
                suppressed,
                "quota backend unavailable: admitting requests without quota checks (fail open); unsettled slots \
                 expire with their lease"
            );
        }
    }

    /// `Some(errors suppressed since the last warning)` when this one should be logged.
    fn should_log(&self, now_ms: u64) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some((at, suppressed)) if now_ms >= at && now_ms - at < QUIET_MS => {
                *last = Some((at, suppressed + 1));
                None
            }
            Some((_, suppressed)) => {
                *last = Some((now_ms, 0));
                Some(suppressed)
            }
            None => {
                *last = Some((now_ms, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_ten_seconds_and_counts_the_rest() {
        let g = WarnGate::default();
        assert_eq!(g.should_log(1_000), Some(0));
        assert_eq!(g.should_log(5_000), None);
        assert_eq!(g.should_log(10_999), None);
        assert_eq!(g.should_log(11_000), Some(2));
        assert_eq!(g.should_log(11_001), None);
        // A clock that went backwards does not silence the log for good.
        assert_eq!(g.should_log(500), Some(1));
    }
}
