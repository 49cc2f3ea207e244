//! The in-process backend: one mutex over every tenant's state, held for a few microseconds per call, which makes
//! check-then-record atomic exactly as the Redis scripts are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::calendar::Periods;
use crate::check::{UsageView, check, window_oldest};
use crate::limits::{QuotaLimits, QuotaUsage, Rejection};
use crate::reservation::Reservation;

#[derive(Default)]
pub(crate) struct MemoryBackend {
    tenants: Mutex<HashMap<String, TenantState>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct TenantState {
    rpm: Buckets,
    tpm: Buckets,
    /// id -> (reserved tokens, lease expiry ms).
    live: HashMap<u128, (u64, u64)>,
    /// Earliest lease expiry in `live`, so reaping scans only when something can have expired.
    next_expiry: u64,
    reserved: u64,
    day: Period,
    month: Period,
}

/// Settled usage of one day or month, identified by its index.
#[derive(Default, Clone, Copy)]
struct Period {
    index: u64,
    tokens: u64,
    cost: f64,
}

impl Period {
    fn roll(&mut self, index: u64) {
        if self.index != index {
            *self = Period {
                index,
                ..Period::default()
            };
        }
    }

    fn current(&self, index: u64) -> Period {
        if self.index == index { *self } else { Period::default() }
    }
}

/// One-second buckets `(unix second, amount)`, sorted; at most 61 live ones.
#[derive(Default)]
struct Buckets(Vec<(u64, u64)>);

impl Buckets {
    fn trim(&mut self, oldest: u64) {
        let keep_from = self.0.partition_point(|(s, _)| *s < oldest);
        self.0.drain(..keep_from);
    }

    fn add(&mut self, sec: u64, n: u64) {
        match self.0.binary_search_by_key(&sec, |(s, _)| *s) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(n),
            Err(i) => self.0.insert(i, (sec, n)),
        }
    }

    /// Replaces `from` by `to` in an existing bucket; a bucket that left the window no longer matters.
    fn replace(&mut self, sec: u64, from: u64, to: u64) {
        if let Ok(i) = self.0.binary_search_by_key(&sec, |(s, _)| *s) {
            self.0[i].1 = self.0[i].1.saturating_sub(from).saturating_add(to);
        }
    }

    fn sum_from(&self, oldest: u64) -> u64 {
        self.0
            .iter()
            .filter(|(s, _)| *s >= oldest)
            .fold(0, |acc, (_, n)| acc.saturating_add(*n))
    }
}

impl TenantState {
    fn reap(&mut self, now_ms: u64) {
        if self.live.is_empty() || now_ms < self.next_expiry {
            return;
        }
        let mut freed = 0u64;
        let mut next = u64::MAX;
        self.live.retain(|_, (tokens, expiry)| {
            if *expiry <= now_ms {
                freed = freed.saturating_add(*tokens);
                false
            } else {
                next = next.min(*expiry);
                true
            }
        });
        self.reserved = self.reserved.saturating_sub(freed);
        self.next_expiry = next;
    }
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, TenantState>> {
        // A panic while holding the lock cannot leave the counters half-written in a way worse than a lost call.
        self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn admit(
        &self,
        tenant: &str,
        limits: &QuotaLimits,
        ask: u64,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Reservation, Rejection> {
        let periods = Periods::at(now_ms);
        let sec = now_ms / 1000;
        let mut tenants = self.lock();
        let st = match tenants.get_mut(tenant) {
            Some(st) => st,
            None => tenants.entry(tenant.to_string()).or_default(),
        };
        st.reap(now_ms);
        let oldest = window_oldest(sec);
        st.rpm.trim(oldest);
        st.tpm.trim(oldest);
        st.day.roll(periods.day);
        st.month.roll(periods.month);
        let view = UsageView {
            rpm: &st.rpm.0,
            tpm: &st.tpm.0,
            live: st.live.len() as u64,
            reserved: st.reserved,
            day_tokens: st.day.tokens,
            day_cost: st.day.cost,
            month_tokens: st.month.tokens,
            month_cost: st.month.cost,
        };
        check(&view, limits, ask, now_ms)?;
        let id = u128::from(self.next_id.fetch_add(1, Ordering::Relaxed));
        let expiry = now_ms.saturating_add(lease_ms);
        st.rpm.add(sec, 1);
        st.tpm.add(sec, ask);
        if st.live.is_empty() || expiry < st.next_expiry {
            st.next_expiry = expiry;
        }
        st.live.insert(id, (ask, expiry));
        st.reserved = st.reserved.saturating_add(ask);
        Ok(Reservation::new(tenant, id, ask, now_ms, true))
    }

    pub fn settle(&self, r: &Reservation, used: u64, cost: f64, now_ms: u64) {
        let periods = Periods::at(now_ms);
        let mut tenants = self.lock();
        let Some(st) = tenants.get_mut(&*r.tenant) else { return };
        if st.live.remove(&r.id).is_some() {
            st.reserved = st.reserved.saturating_sub(r.tokens);
        }
        st.tpm.replace(r.window_second(), r.tokens, used);
        st.day.roll(periods.day);
        st.month.roll(periods.month);
        for p in [&mut st.day, &mut st.month] {
            p.tokens = p.tokens.saturating_add(used);
            p.cost += cost;
        }
    }

    pub fn snapshot(&self, tenant: &str, now_ms: u64) -> QuotaUsage {
        let periods = Periods::at(now_ms);
        let tenants = self.lock();
        let Some(st) = tenants.get(tenant) else {
            return QuotaUsage::default();
        };
        let oldest = window_oldest(now_ms / 1000);
        let live = st.live.values().filter(|(_, expiry)| *expiry > now_ms);
        let (day, month) = (st.day.current(periods.day), st.month.current(periods.month));
        QuotaUsage {
            requests_last_minute: st.rpm.sum_from(oldest),
            tokens_last_minute: st.tpm.sum_from(oldest),
            concurrent_requests: live.clone().count() as u64,
            reserved_tokens: live.fold(0, |acc, (t, _)| acc.saturating_add(*t)),
            tokens_today: day.tokens,
            tokens_this_month: month.tokens,
            cost_today: day.cost,
            cost_this_month: month.cost,
            error: None,
        }
    }
}
