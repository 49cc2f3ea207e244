//! What the router remembers about one endpoint: its TTFT model, ejection state, prefix index, and the
//! requests sent to it that await their first token (the prefill queue a new request would wait behind).

use std::collections::VecDeque;

use crate::eject::Ejection;
use crate::hash::Keyed;
use crate::lru::GenMap;
use crate::ttft::TtftModel;

/// Prefix-index blocks of an endpoint whose memory is unknown.
pub(crate) const DEFAULT_PREFIX_BLOCKS: usize = 4096;
/// Dispatches remembered per endpoint while they wait for their first token.
const MAX_AWAITING: usize = 4096;
/// A dispatch with no first token after this long is forgotten (it failed or was cancelled), ms.
const AWAITING_EXPIRY_MS: u64 = 120_000;

/// A request sent to an endpoint that has not produced its first token yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Awaiting {
    prompt_tokens: u32,
    uncached: u32,
    /// Prefill tokens queued ahead of it at dispatch.
    queued: u64,
    at_ms: u64,
}

/// What the router remembers about one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct EndpointState {
    pub(crate) key: Box<str>,
    /// Bumped when the slot is reused, so session entries naming the old occupant go stale.
    pub(crate) generation: u32,
    pub(crate) model: TtftModel,
    pub(crate) ejection: Ejection,
    pub(crate) blocks: GenMap<u64, ()>,
    /// Dispatches awaiting their first token, oldest first: the features each TTFT observation is learned
    /// against, and the prefill queue a new request would wait behind.
    pub(crate) awaiting: VecDeque<Awaiting>,
    /// Sum of `awaiting`'s uncached prompt tokens.
    pub(crate) queued_tokens: u64,
}

impl EndpointState {
    pub(crate) fn new(key: &str, generation: u32, hasher: Keyed) -> Self {
        EndpointState {
            key: key.into(),
            generation,
            model: TtftModel::default(),
            ejection: Ejection::default(),
            blocks: GenMap::new(DEFAULT_PREFIX_BLOCKS, hasher),
            awaiting: VecDeque::new(),
            queued_tokens: 0,
        }
    }

    pub(crate) fn clear_awaiting(&mut self) {
        self.awaiting.clear();
        self.queued_tokens = 0;
    }

    /// Forgets dispatches too old to still be waiting (failed or cancelled without our hearing of it).
    pub(crate) fn expire_awaiting(&mut self, now_ms: u64) {
        while self.awaiting.len() > MAX_AWAITING
            || self
                .awaiting
                .front()
                .is_some_and(|a| a.at_ms.saturating_add(AWAITING_EXPIRY_MS) < now_ms)
        {
            self.pop_awaiting(0);
        }
    }

    pub(crate) fn pop_awaiting(&mut self, i: usize) -> Option<Awaiting> {
        let a = self.awaiting.remove(i)?;
        self.queued_tokens = self.queued_tokens.saturating_sub(u64::from(a.uncached));
        Some(a)
    }

    /// A request of `prompt_tokens` with `blocks` was sent here: it awaits its first token behind what was
    /// queued before it, and its blocks are now probably cached here.
    pub(crate) fn record_dispatch(&mut self, now_ms: u64, prompt_tokens: u32, blocks: &[u64]) {
        let n = blocks.len();
        let depth = prefix_depth(&self.blocks, blocks);
        let prompt = f64::from(prompt_tokens);
        let uncached = if n == 0 {
            prompt
        } else {
            prompt * (1.0 - depth as f64 / n as f64)
        };
        let uncached = uncached.round() as u32;
        self.expire_awaiting(now_ms);
        self.awaiting.push_back(Awaiting {
            prompt_tokens,
            uncached,
            queued: self.queued_tokens,
            at_ms: now_ms,
        });
        self.queued_tokens += u64::from(uncached);
        // Deepest first, so the first blocks are the freshest and age out last: a cached block then always
        // has its predecessors, as in the engine's own cache.
        for &b in blocks.iter().rev() {
            self.blocks.insert(b, ());
        }
    }

    /// A first token after `ttft_ms`: learn against the oldest awaiting dispatch of that prompt length.
    pub(crate) fn learn(&mut self, prompt_tokens: u32, load_at_dispatch: u32, ttft_ms: f64) {
        let found = self.awaiting.iter().position(|a| a.prompt_tokens == prompt_tokens);
        match found.and_then(|i| self.pop_awaiting(i)) {
            Some(a) => self.model.observe(f64::from(a.uncached), a.queued as f64, ttft_ms),
            // Without the dispatch there is no telling how much of the wait was queueing, unless nothing
            // else was in flight.
            None if load_at_dispatch == 0 => self.model.observe(f64::from(prompt_tokens), 0.0, ttft_ms),
            None => {}
        }
    }
}

/// Leading blocks of `blocks` present in `index`. Blocks are inserted deepest first, so presence is
/// (nearly) monotone in depth: test the last block, then binary-search the boundary.
#[inline]
pub(crate) fn prefix_depth(index: &GenMap<u64, ()>, blocks: &[u64]) -> usize {
    let n = blocks.len();
    if n == 0 || !index.contains(&blocks[0]) {
        return 0;
    }
    if index.contains(&blocks[n - 1]) {
        return n;
    }
    // Invariant: blocks[lo - 1] present, blocks[hi] absent.
    let (mut lo, mut hi) = (1, n - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if index.contains(&blocks[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
