//! Admission: a tenant's quotas first (`pyxis-quota`), then the fair queue of the model's pool
//! (`pyxis-sched`'s weighted VTC). A request leaves with a [`Permit`] that holds its share of the
//! pool's in-flight token budget until the call ends, or with an OpenAI error (429/503 with
//! `Retry-After`).
//!
//! The pool of a model is the sum of its endpoints' token budgets. While it has room and nobody
//! waits, a request passes straight through (still charged to its tenant's counter, so fairness
//! holds when contention starts). Beyond it, requests wait in per-tenant queues and are dispatched
//! by the scheduler whenever a permit is released. Waiting is bounded: the scheduler's caps and
//! timeouts, and a client that goes away leaves the queue at once (its guard's `Drop`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyxis_protocol::{ErrorKind, OpenAiError};
use pyxis_sched::{ClassConfig, Pending, Rejected, SchedConfig, Scheduler, TenantConfig};
use tokio::sync::oneshot;

use crate::fleet::{Endpoint, FleetView, ModelEntry};

/// Output tokens assumed for a request that sets no `max_tokens`, for its share of the budget.
pub const DEFAULT_MAX_OUTPUT: u32 = 512;
/// Requests waiting at once across all tenants of one pool, unless configured.
pub const DEFAULT_MAX_QUEUED: usize = 10_000;
/// Longest wait for capacity, unless the tenant says otherwise.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request was not admitted (metrics label) and the error the client gets.
pub struct Refusal {
    pub reason: &'static str,
    pub error: OpenAiError,
    pub retry_after_s: u64,
}

impl Refusal {
    fn queue(rej: &Rejected) -> Refusal {
        match rej {
            Rejected::TenantQueueFull { retry_after_ms } => Refusal {
                reason: "tenant_queue_full",
                error: OpenAiError::new(
                    ErrorKind::RateLimit,
                    "Too many of your requests are waiting for capacity; retry after the time in Retry-After, \
                     or send fewer requests at once.",
                )
                .with_code("rate_limit_exceeded"),
                retry_after_s: retry_after_ms.div_ceil(1000).max(1),
            },
            Rejected::QueueFull { retry_after_ms } => Refusal {
                reason: "queue_full",
                error: OpenAiError::new(
                    ErrorKind::Unavailable,
                    "The model's capacity is saturated and its queue is full; retry after the time in Retry-After.",
                )
                .with_code("queue_full"),
                retry_after_s: retry_after_ms.div_ceil(1000).max(1),
            },
        }
    }

    fn timeout(waited: Duration) -> Refusal {
        Refusal {
            reason: "queue_timeout",
            error: OpenAiError::new(
                ErrorKind::Unavailable,
                format!(
                    "No capacity freed up for this request within {} ms of waiting; retry after the time in \
                     Retry-After.",
                    waited.as_millis()
                ),
            )
            .with_code("queue_timeout"),
            retry_after_s: 1,
        }
    }

    fn evicted() -> Refusal {
        Refusal {
            reason: "preempted",
            error: OpenAiError::new(
                ErrorKind::Unavailable,
                "This queued request gave way to higher-priority work (its tier is preemptible); retry after the \
                 time in Retry-After.",
            )
            .with_code("preempted"),
            retry_after_s: 1,
        }
    }
}

/// What a queued request is told when its wait ends.
enum Wake {
    Go(u64),
    Evicted,
    Expired,
}

struct PoolState {
    sched: Scheduler,
    /// Token budget of all endpoints of the pool.
    capacity: u64,
    in_use: u64,
    waiters: HashMap<u64, oneshot::Sender<Wake>>,
}

impl PoolState {
    /// Tokens of the budget not in use. A request larger than the whole budget still runs, alone, when nothing
    /// else is in flight.
    fn free(&self) -> u64 {
        if self.in_use == 0 {
            u64::MAX
        } else {
            self.capacity.saturating_sub(self.in_use)
        }
    }
}

/// One model's share of the fleet: the fair queue in front of its endpoints.
pub struct Pool {
    state: Mutex<PoolState>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Ends the waits that timed out.
    fn expire(st: &mut PoolState, now_ms: u64) {
        for id in st.sched.expire(now_ms) {
            if let Some(tx) = st.waiters.remove(&id) {
                let _ = tx.send(Wake::Expired);
            }
        }
    }

    /// Dispatches whatever now fits, waking each waiter.
    fn pump(st: &mut PoolState, now_ms: u64) {
        Pool::expire(st, now_ms);
        loop {
            let free = st.free();
            let Some(d) = st.sched.next(now_ms, free) else { break };
            if let Some(tx) = st.waiters.remove(&d.id) {
                st.in_use += d.cost_tokens;
                if let Err(Wake::Go(cost)) = tx.send(Wake::Go(d.cost_tokens)) {
                    // The waiter is gone (its guard cancels, but may race with this): give it back.
                    st.in_use = st.in_use.saturating_sub(cost);
                }
            }
        }
    }

    pub fn queued(&self) -> usize {
        self.lock().sched.queued()
    }

    pub fn queued_for(&self, tenant: &str) -> usize {
        self.lock().sched.queued_for(tenant)
    }

    /// Per-tenant queue depth and fair-share counters.
    pub fn stats(&self) -> Vec<pyxis_sched::TenantStats> {
        self.lock().sched.stats()
    }

    /// (tokens in use, capacity).
    pub fn usage(&self) -> (u64, u64) {
        let st = self.lock();
        (st.in_use, st.capacity)
    }
}

/// A request's place in its pool's budget; released (and the next waiter dispatched) on drop.
pub struct Permit {
    pool: Arc<Pool>,
    tenant: String,
    cost: u64,
    /// Output tokens seen but not yet charged to the tenant's counter (charged in small batches).
    pending_output: u32,
    /// Output tokens reported so far.
    output_seen: u32,
    pub waited: Duration,
}

/// Output tokens charged to the scheduler at once while a stream runs (one lock per batch).
const CHARGE_BATCH: u32 = 16;

impl Permit {
    /// Output tokens reported through [`Permit::output_tokens`] so far.
    pub fn charged_output(&self) -> u32 {
        self.output_seen
    }

    /// Output tokens as they stream: charged to the tenant's virtual counter.
    pub fn output_tokens(&mut self, n: u32) {
        self.output_seen = self.output_seen.saturating_add(n);
        self.pending_output = self.pending_output.saturating_add(n);
        if self.pending_output >= CHARGE_BATCH {
            let n = std::mem::take(&mut self.pending_output);
            self.pool.lock().sched.charge_output(&self.tenant, n);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        if self.pending_output > 0 {
            st.sched.charge_output(&self.tenant, self.pending_output);
        }
        st.in_use = st.in_use.saturating_sub(self.cost);
        Pool::pump(&mut st, now_ms());
    }
}

/// Leaves the queue when the waiting request is dropped (client disconnected), giving back a
/// dispatch that raced with the drop.
struct QueuedGuard<'a> {
    pool: &'a Arc<Pool>,
    id: u64,
    rx: oneshot::Receiver<Wake>,
    armed: bool,
}

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.pool.lock();
            st.sched.cancel(self.id);
            st.waiters.remove(&self.id);
            if let Ok(Wake::Go(cost)) = self.rx.try_recv() {
                st.in_use = st.in_use.saturating_sub(cost);
                Pool::pump(&mut st, now_ms());
            }
        }
    }
}

/// Milliseconds on the gateway's monotonic clock (the scheduler's time).
fn now_ms() -> u64 {
    (crate::fleet::clock_s() * 1e3) as u64
}

/// The fair queues of all pools.
pub struct Admission {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    next_id: AtomicU64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            pools: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }
}

/// In-flight token budget of one endpoint serving `model`: the KV cache its accelerators hold after
/// the weights (a rule of thumb of 16 bytes per parameter per 10⁶ tokens for grouped-query attention
/// models, about right for Llama-3-8B), at least one full context.
pub fn endpoint_budget(ep: &Endpoint, model: &ModelEntry) -> u64 {
    if let Some(b) = ep.token_budget {
        return b;
    }
    let free_gib = (ep.memory_gib * 0.9 - model.weights_gib).max(0.0);
    let params = model.weights_gib * f64::from(1u32 << 30) / 2.0;
    let kv_bytes_per_token = (params * 1.6e-5).max(1024.0);
    let tokens = (free_gib * f64::from(1u32 << 30) / kv_bytes_per_token) as u64;
    tokens.max(u64::from(model.context_length))
}

fn classes(view: &FleetView) -> Vec<ClassConfig> {
    view.tiers
        .iter()
        .map(|t| ClassConfig {
            name: t.metadata.name.clone(),
            value: t.spec.value,
            preemptible: t.spec.preemptible,
            min_share: t.spec.min_share,
        })
        .collect()
}

fn tenant_config(p: &crate::fleet::TenantPolicy) -> TenantConfig {
    TenantConfig {
        weight: p.weight,
        class: p.tier.clone().unwrap_or_default(),
        max_queued: p.queue.as_ref().and_then(|q| q.max_queued).map(|n| n as usize),
        timeout_ms: p.queue.as_ref().and_then(|q| q.timeout_ms),
    }
}

impl Admission {
    fn pools(&self) -> MutexGuard<'_, HashMap<String, Arc<Pool>>> {
        match self.pools.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Brings every pool in line with a (new) fleet view: capacity, tenants' weights and tiers.
    pub fn sync(&self, view: &FleetView) {
        let classes = classes(view);
        let mut pools = self.pools();
        pools.retain(|name, _| view.models.contains_key(name));
        for (name, model) in &view.models {
            let capacity: u64 = model.endpoints.iter().map(|ep| endpoint_budget(ep, model)).sum();
            let pool = pools.entry(name.clone()).or_insert_with(|| {
                Arc::new(Pool {
                    state: Mutex::new(PoolState {
                        sched: Scheduler::new(
                            SchedConfig {
                                input_weight: 1.0,
                                output_weight: 2.0,
                                max_queued_total: DEFAULT_MAX_QUEUED,
                                default_timeout_ms: DEFAULT_QUEUE_TIMEOUT.as_millis() as u64,
                            },
                            Vec::new(),
                        ),
                        capacity,
                        in_use: 0,
                        waiters: HashMap::new(),
                    }),
                })
            });
            let mut st = pool.lock();
            st.capacity = capacity;
            st.sched.set_classes(classes.clone());
            for (tenant, policy) in &view.tenants {
                st.sched.set_tenant(tenant, tenant_config(policy));
            }
            Pool::pump(&mut st, now_ms());
        }
    }

    pub fn pool(&self, model: &str) -> Option<Arc<Pool>> {
        self.pools().get(model).cloned()
    }

    /// Waits for room in `model`'s pool under fair share. `cost` is prompt tokens plus the output asked for.
    pub async fn admit(
        &self,
        model: &str,
        tenant: &str,
        prompt_tokens: u32,
        max_output: u32,
        timeout: Duration,
    ) -> Result<Permit, Refusal> {
        let Some(pool) = self.pool(model) else {
            // A model added since the last sync: no queue yet, so no limit to apply.
            return Err(Refusal {
                reason: "no_pool",
                error: OpenAiError::new(ErrorKind::Unavailable, "The model is being configured; retry shortly.")
                    .with_code("model_not_ready"),
                retry_after_s: 1,
            });
        };
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pending = Pending {
            id,
            tenant: tenant.to_string(),
            input_tokens: prompt_tokens,
            max_output_tokens: max_output,
        };
        {
            // Nobody queued and room in the pool: dispatched at once, with no channel, waiter entry or guard.
            let mut st = pool.lock();
            let now = now_ms();
            Pool::expire(&mut st, now);
            let free = st.free();
            if let Some(d) = st.sched.dispatch_now(now, &pending, free) {
                st.in_use += d.cost_tokens;
                drop(st);
                return Ok(Permit {
                    pool,
                    tenant: pending.tenant,
                    cost: d.cost_tokens,
                    pending_output: 0,
                    output_seen: 0,
                    waited: started.elapsed(),
                });
            }
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut st = pool.lock();
            let now = now_ms();
            let evicted = st.sched.enqueue(now, pending).map_err(|r| Refusal::queue(&r))?;
            for e in evicted {
                if let Some(w) = st.waiters.remove(&e) {
                    let _ = w.send(Wake::Evicted);
                }
            }
            st.waiters.insert(id, tx);
            Pool::pump(&mut st, now);
        }
        let mut guard = QueuedGuard {
            pool: &pool,
            id,
            rx,
            armed: true,
        };
        // Dispatched by the pump above (room in the pool, nobody ahead): no timer to arm.
        let now = match guard.rx.try_recv() {
            Ok(w) => Some(Some(w)),
            Err(oneshot::error::TryRecvError::Closed) => Some(None),
            Err(oneshot::error::TryRecvError::Empty) => None,
        };
        let wake = match now {
            Some(w) => w,
            None => match tokio::time::timeout(timeout, &mut guard.rx).await {
                Ok(w) => w.ok(),
                Err(_) => {
                    let mut st = pool.lock();
                    st.sched.cancel(id);
                    st.waiters.remove(&id);
                    drop(st);
                    // Dispatched in the instant between the timer and the lock: take it.
                    guard.rx.try_recv().ok()
                }
            },
        };
        guard.armed = false;
        drop(guard);
        match wake {
            Some(Wake::Go(cost)) => Ok(Permit {
                pool: pool.clone(),
                tenant: tenant.to_string(),
                cost,
                pending_output: 0,
                output_seen: 0,
                waited: started.elapsed(),
            }),
            Some(Wake::Evicted) => Err(Refusal::evicted()),
            Some(Wake::Expired) | None => Err(Refusal::timeout(started.elapsed())),
        }
    }
}
