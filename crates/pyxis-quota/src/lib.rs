//! Per-tenant quotas for the gateway: requests and tokens per sliding minute, concurrent requests, token and cost
//! budgets per UTC day and month; enforced exactly under concurrency, in memory or shared by replicas through Redis.
//!
//! Tokens are reserved at admission and settled with the actual usage at the end, so parallel requests cannot
//! overshoot. Time is passed in (`now_ms`, unix milliseconds). Semantics and the Redis data model: `docs/quotas.md`.

mod calendar;
mod check;
mod limits;
mod memory;
mod redis_backend;
mod reservation;
mod warn;

use std::sync::Arc;
use std::time::Duration;

pub use limits::{BudgetPeriod, QuotaLimits, QuotaUsage, Reason, Rejection};
pub use reservation::Reservation;

use memory::MemoryBackend;
use redis_backend::{Admitted, RedisBackend};
use warn::WarnGate;

/// How long a concurrency slot (and its reserved tokens) is held when nobody settles or releases it, e.g. because
/// the replica holding it died.
pub const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(600);
/// The longest a Redis call may hold up a request before admission fails open.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors setting up a backend. Errors while serving are not returned: admission fails open (see [`Quotas::admit`]).
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// The quota service; cheap to clone (an `Arc` inside), shared by every request handler.
#[derive(Clone)]
pub struct Quotas {
    inner: Arc<Inner>,
    lease_ms: u64,
    redis_timeout: Duration,
}

struct Inner {
    backend: Backend,
    warn: WarnGate,
}

enum Backend {
    Memory(MemoryBackend),
    Redis(RedisBackend),
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Quotas")
            .field("backend", &kind)
            .field("lease_ms", &self.lease_ms)
            .finish()
    }
}

impl Quotas {
    /// Limits held in this process: exact for one gateway, not shared with others.
    pub fn memory() -> Self {
        Quotas::new(Backend::Memory(MemoryBackend::default()))
    }

    /// Limits shared by every replica that uses the same Redis and `key_prefix`. Connects (a `ConnectionManager`,
    /// which reconnects by itself later) and loads the scripts; fails if Redis cannot be reached now.
    pub async fn redis(url: &str, key_prefix: &str) -> Result<Self, QuotaError> {
        Ok(Quotas::new(Backend::Redis(
            RedisBackend::connect(url, key_prefix, CONNECT_TIMEOUT).await?,
        )))
    }

    fn new(backend: Backend) -> Self {
        Quotas {
            inner: Arc::new(Inner {
                backend,
                warn: WarnGate::default(),
            }),
            lease_ms: duration_ms(DEFAULT_SLOT_LEASE),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
        }
    }

    /// Sets the slot lease ([`DEFAULT_SLOT_LEASE`]); set it longer than the longest request you serve.
    pub fn with_slot_lease(mut self, lease: Duration) -> Self {
        self.lease_ms = duration_ms(lease).max(1);
        self
    }

    /// Sets how long a Redis call may take before it counts as failed ([`DEFAULT_REDIS_TIMEOUT`]).
    pub fn with_redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// Backend failures so far (each one let a request through unrecorded, or lost a settlement); for metrics.
    pub fn backend_errors(&self) -> u64 {
        self.inner.warn.errors()
    }

    /// Admits a request that may use up to `reserve_tokens` (prompt + max_tokens, or a default), or says why not.
    ///
    /// With Redis unreachable or too slow, the request is admitted unrecorded ([`Reservation::is_recorded`] is
    /// false) and a warning is logged at most every 10 s: an outage of the quota store does not take the gateway
    /// down with it.
    pub async fn admit(
        &self,
        tenant: &str,
        limits: &QuotaLimits,
        reserve_tokens: u64,
        now_ms: u64,
    ) -> Result<Reservation, Rejection> {
        match &self.inner.backend {
            Backend::Memory(m) => m.admit(tenant, limits, reserve_tokens, now_ms, self.lease_ms),
            Backend::Redis(r) => {
                let call = r.admit(tenant, limits, reserve_tokens, now_ms, self.lease_ms);
                match self.timed(call).await {
                    Ok(Admitted::Yes(res)) => Ok(res),
                    Ok(Admitted::No(rejection)) => Err(rejection),
                    Err(e) => {
                        self.inner.warn.error(now_ms, "admit", &e);
                        Ok(Reservation::new(tenant, 0, reserve_tokens, now_ms, false))
                    }
                }
            }
        }
    }

    /// Ends a request: its reservation is replaced by what it used, its slot freed, and its tokens and cost charged
    /// to the current UTC day and month. A second call for the same reservation does nothing.
    pub async fn settle(&self, r: Reservation, used_tokens: u64, cost_usd: f64, now_ms: u64) {
        if !r.claim() || !r.recorded {
            return;
        }
        let cost = if cost_usd.is_finite() && cost_usd > 0.0 {
            cost_usd.min(1e12)
        } else {
            0.0
        };
        match &self.inner.backend {
            Backend::Memory(m) => m.settle(&r, used_tokens, cost, now_ms),
            Backend::Redis(b) => {
                if let Err(e) = self.timed(b.settle(&r, used_tokens, cost, now_ms)).await {
                    self.inner.warn.error(now_ms, "settle", &e);
                }
            }
        }
    }

    /// [`Quotas::settle`] without waiting: done at once when the state is in memory, else (Redis)
    /// handed to the current tokio runtime. Call it from a `Drop` or other synchronous code.
    pub fn settle_in_background(&self, r: Reservation, used_tokens: u64, cost_usd: f64, now_ms: u64) {
        match &self.inner.backend {
            Backend::Memory(_) => {
                // The memory backend never waits: the future is ready at its first poll.
                let _ = futures_ready(self.settle(r, used_tokens, cost_usd, now_ms));
            }
            Backend::Redis(_) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let q = self.clone();
                    rt.spawn(async move { q.settle(r, used_tokens, cost_usd, now_ms).await });
                }
            }
        }
    }

    /// Ends a request that failed before producing any token: frees its reservation and slot. It still counts as a
    /// request for the requests-per-minute limit.
    pub async fn release(&self, r: Reservation, now_ms: u64) {
        self.settle(r, 0, 0.0, now_ms).await;
    }

    /// A tenant's usage now. With Redis unreachable: zeros, and `error` says why.
    pub async fn snapshot(&self, tenant: &str, now_ms: u64) -> QuotaUsage {
        match &self.inner.backend {
            Backend::Memory(m) => m.snapshot(tenant, now_ms),
            Backend::Redis(r) => match self.timed(r.snapshot(tenant, now_ms)).await {
                Ok(usage) => usage,
                Err(e) => {
                    self.inner.warn.error(now_ms, "snapshot", &e);
                    QuotaUsage {
                        error: Some(e.to_string()),
                        ..QuotaUsage::default()
                    }
                }
            },
        }
    }

    async fn timed<T>(&self, call: impl Future<Output = Result<T, redis::RedisError>>) -> Result<T, QuotaError> {
        match tokio::time::timeout(self.redis_timeout, call).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QuotaError::Timeout(self.redis_timeout)),
        }
    }
}

/// Polls a future once; `Some` with its output when it was ready.
fn futures_ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
