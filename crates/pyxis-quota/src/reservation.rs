//! An admitted request's hold on its tenant's quotas, until it is settled or released.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What admission recorded for one request: a concurrency slot (with a lease), its reserved tokens, and the
/// one-second window bucket they were counted in. Settle or release it exactly once; clones share one "done" flag,
/// so a second settle or release, from any clone, does nothing.
#[derive(Clone, Debug)]
pub struct Reservation {
    pub(crate) tenant: Arc<str>,
    pub(crate) id: u128,
    pub(crate) tokens: u64,
    pub(crate) admitted_ms: u64,
    pub(crate) recorded: bool,
    done: Arc<AtomicBool>,
}

impl Reservation {
    pub(crate) fn new(tenant: &str, id: u128, tokens: u64, admitted_ms: u64, recorded: bool) -> Self {
        Reservation {
            tenant: tenant.into(),
            id,
            tokens,
            admitted_ms,
            recorded,
            done: Arc::default(),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Unique among all replicas (random 128 bits with Redis).
    pub fn id(&self) -> u128 {
        self.id
    }

    pub fn reserved_tokens(&self) -> u64 {
        self.tokens
    }

    /// The `now_ms` admission was given.
    pub fn admitted_at_ms(&self) -> u64 {
        self.admitted_ms
    }

    /// The unix second whose window bucket holds this request's tokens; settling adjusts that bucket.
    pub fn window_second(&self) -> u64 {
        self.admitted_ms / 1000
    }

    /// False when the backend was unreachable and the request was let through unrecorded (fail open).
    pub fn is_recorded(&self) -> bool {
        self.recorded
    }

    /// Claims the right to settle or release: true only the first time, over all clones.
    pub(crate) fn claim(&self) -> bool {
        !self.done.swap(true, Ordering::AcqRel)
    }

    /// The Redis sorted-set member: id and tokens, so whoever reaps an expired lease knows what to give back.
    pub(crate) fn member(&self) -> String {
        format!("{:032x}|{}", self.id, self.tokens)
    }
}
