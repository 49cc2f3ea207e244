//! Per-stream inter-token latency: chunks are bucketed locally and merged once when the stream ends.

use std::sync::Arc;
use std::time::Instant;

use crate::histogram::{ITL_BUCKETS_NS, LocalHistogram};
use crate::metrics::TmHandles;

/// Made by [`crate::Metrics::stream_recorder`]. `on_chunk` touches only this value (no lock, no
/// allocation, no atomic); `finish` or `Drop` merges the samples into the shared histogram.
pub struct StreamRecorder {
    handles: Arc<TmHandles>,
    local: LocalHistogram,
    last: Option<Instant>,
}

impl StreamRecorder {
    pub(crate) fn new(handles: Arc<TmHandles>) -> Self {
        StreamRecorder {
            handles,
            local: LocalHistogram::default(),
            last: None,
        }
    }

    /// A content chunk arrived at `now`; the gap since the previous chunk is one ITL sample.
    pub fn on_chunk(&mut self, now: Instant) {
        if let Some(prev) = self.last {
            let gap = now.saturating_duration_since(prev).as_nanos();
            self.local
                .observe_ns(ITL_BUCKETS_NS, u64::try_from(gap).unwrap_or(u64::MAX));
        }
        self.last = Some(now);
    }

    /// Samples recorded and not yet merged.
    pub fn pending(&self) -> bool {
        !self.local.is_empty()
    }

    /// Merges the samples now (dropping the recorder does the same).
    pub fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if !self.local.is_empty() {
            self.handles.itl().merge(&self.local);
            self.local.clear();
        }
    }
}

impl Drop for StreamRecorder {
    fn drop(&mut self) {
        self.flush();
    }
}
