//! The admission rule, pure: given a tenant's usage, its limits and what a request asks, admit or say why not and
//! for how long. Both backends use it; the Redis script mirrors the same comparisons atomically.

use crate::calendar::Periods;
use crate::limits::{BudgetPeriod, QuotaLimits, Reason, Rejection};

/// Length of the RPM/TPM window.
pub(crate) const WINDOW_S: u64 = 60;

/// Oldest one-second bucket still in the window at `now_s`. The window spans the 61 buckets
/// `now_s - 60 ..= now_s`, so any 60 s interval lies inside one window: admissions in any 60 s interval never exceed
/// the limit, and a request holds its place for between 60 and 61 s.
pub(crate) fn window_oldest(now_s: u64) -> u64 {
    now_s.saturating_sub(WINDOW_S)
}

/// When a bucket leaves the window.
fn bucket_expiry_ms(sec: u64) -> u64 {
    (sec + WINDOW_S + 1).saturating_mul(1000)
}

/// Hint when the limit depends on requests finishing (concurrency, reservations): that can happen at any moment.
const SOON_S: u64 = 1;

/// A tenant's state as admission sees it. Buckets are `(unix second, amount)`; ones older than the window are ignored.
#[derive(Clone, Debug, Default)]
pub(crate) struct UsageView<'a> {
    pub rpm: &'a [(u64, u64)],
    pub tpm: &'a [(u64, u64)],
    /// Requests holding a live slot.
    pub live: u64,
    /// Tokens reserved by those requests.
    pub reserved: u64,
    /// Settled tokens and cost of the current day and month.
    pub day_tokens: u64,
    pub day_cost: f64,
    pub month_tokens: u64,
    pub month_cost: f64,
}

/// Admit, or the rejection that lasts longest among all limits exceeded (so a retry after it is not refused by
/// another limit that was also exceeded).
pub(crate) fn check(u: &UsageView<'_>, limits: &QuotaLimits, ask: u64, now_ms: u64) -> Result<(), Rejection> {
    if limits.is_unlimited() {
        return Ok(());
    }
    let mut worst: Option<Rejection> = None;
    let mut consider = |r: Option<Rejection>| {
        if let Some(r) = r
            && worst.as_ref().is_none_or(|w| r.retry_after_s > w.retry_after_s)
        {
            worst = Some(r);
        }
    };
    let periods = Periods::at(now_ms);
    if let Some(l) = limits.requests_per_minute {
        consider(window(Reason::RequestsPerMinute, u.rpm, u64::from(l), 1, now_ms));
    }
    if let Some(l) = limits.tokens_per_minute {
        consider(window(Reason::TokensPerMinute, u.tpm, l, ask, now_ms));
    }
    if let Some(l) = limits.concurrent_requests {
        let l = u64::from(l);
        if u.live + 1 > l {
            let retry = if l == 0 { WINDOW_S } else { SOON_S };
            consider(Some(rejection(
                Reason::Concurrency,
                retry * 1000,
                l as f64,
                u.live as f64,
                1.0,
                None,
            )));
        }
    }
    let day = (BudgetPeriod::Day, periods.next_day_ms, u.day_tokens, u.day_cost);
    let month = (BudgetPeriod::Month, periods.next_month_ms, u.month_tokens, u.month_cost);
    for ((period, next_ms, tokens, cost), token_limit, cost_limit) in [
        (day, limits.tokens_per_day, limits.cost_per_day),
        (month, limits.tokens_per_month, limits.cost_per_month),
    ] {
        let until_next = next_ms.saturating_sub(now_ms);
        if let Some(l) = token_limit {
            let current = tokens.saturating_add(u.reserved);
            if current.saturating_add(ask) > l {
                // Only reservations in flight stand in the way: they may settle lower at any moment.
                let retry = if tokens.saturating_add(ask) <= l {
                    SOON_S * 1000
                } else {
                    until_next
                };
                consider(Some(rejection(
                    Reason::TokenBudget,
                    retry,
                    l as f64,
                    current as f64,
                    ask as f64,
                    Some(period),
                )));
            }
        }
        if let Some(l) = cost_limit
            && cost >= l
        {
            consider(Some(rejection(
                Reason::CostBudget,
                until_next,
                l,
                cost,
                0.0,
                Some(period),
            )));
        }
    }
    worst.map_or(Ok(()), Err)
}

/// A sliding-window limit: reject when `used + ask > limit`, retrying when the oldest buckets have freed enough.
fn window(reason: Reason, buckets: &[(u64, u64)], limit: u64, ask: u64, now_ms: u64) -> Option<Rejection> {
    let oldest = window_oldest(now_ms / 1000);
    let mut live: Vec<(u64, u64)> = buckets.iter().copied().filter(|(s, _)| *s >= oldest).collect();
    live.sort_unstable();
    let used = live.iter().fold(0u64, |acc, (_, n)| acc.saturating_add(*n));
    if used.saturating_add(ask) <= limit {
        return None;
    }
    let retry_ms = if ask > limit {
        WINDOW_S * 1000
    } else {
        let need = used.saturating_add(ask) - limit;
        let mut freed = 0u64;
        let mut at = bucket_expiry_ms(now_ms / 1000);
        for (sec, n) in &live {
            freed = freed.saturating_add(*n);
            if freed >= need {
                at = bucket_expiry_ms(*sec);
                break;
            }
        }
        at.saturating_sub(now_ms)
    };
    Some(rejection(reason, retry_ms, limit as f64, used as f64, ask as f64, None))
}

fn rejection(
    reason: Reason,
    retry_ms: u64,
    limit: f64,
    current: f64,
    requested: f64,
    period: Option<BudgetPeriod>,
) -> Rejection {
    Rejection {
        reason,
        retry_after_s: retry_ms.div_ceil(1000).max(1),
        limit,
        current,
        requested,
        period,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn rpm(n: u32) -> QuotaLimits {
        QuotaLimits {
            requests_per_minute: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn window_retry_is_when_enough_leaves() {
        let s = T0 / 1000;
        let buckets = [(s, 2), (s + 10, 3)];
        let u = UsageView {
            rpm: &buckets,
            ..Default::default()
        };
        let now = T0 + 20_500;
        assert!(check(&u, &rpm(6), 1, now).is_ok());
        // Limit 5, 5 used: one must leave; the first bucket leaves the window 61 s after its second began.
        let r = check(&u, &rpm(5), 1, now).expect_err("full");
        assert_eq!(
            (r.reason, r.retry_after_s, r.current),
            (Reason::RequestsPerMinute, 41, 5.0)
        );
        // Limit 3: the first bucket frees 2, not enough; the second frees the rest at s + 71.
        let r = check(&u, &rpm(3), 1, now).expect_err("full");
        assert_eq!(r.retry_after_s, 51);
        // Out of the window: ignored.
        assert!(check(&u, &rpm(3), 1, T0 + 61_000 + 10_000).is_ok());
    }

    #[test]
    fn longest_rejection_wins() {
        let buckets = [(T0 / 1000, 1)];
        let u = UsageView {
            rpm: &buckets,
            day_cost: 2.0,
            ..Default::default()
        };
        let limits = QuotaLimits {
            cost_per_day: Some(1.0),
            ..rpm(1)
        };
        let r = check(&u, &limits, 0, T0).expect_err("over");
        assert_eq!(r.reason, Reason::CostBudget);
        let to_midnight = Periods::at(T0).next_day_ms - T0;
        assert_eq!(r.retry_after_s, to_midnight.div_ceil(1000));
    }

    #[test]
    fn reservations_alone_give_a_short_retry() {
        let u = UsageView {
            reserved: 60,
            day_tokens: 30,
            ..Default::default()
        };
        let limits = QuotaLimits {
            tokens_per_day: Some(100),
            ..Default::default()
        };
        assert!(check(&u, &limits, 10, T0).is_ok());
        let r = check(&u, &limits, 20, T0).expect_err("over");
        assert_eq!(
            (r.reason, r.retry_after_s, r.current, r.period),
            (Reason::TokenBudget, 1, 90.0, Some(BudgetPeriod::Day))
        );
        let u = UsageView { day_tokens: 90, ..u };
        assert!(check(&u, &limits, 20, T0).expect_err("over").retry_after_s > 1000);
    }

    #[test]
    fn a_request_larger_than_the_limit_never_fits() {
        let limits = QuotaLimits {
            tokens_per_minute: Some(100),
            ..Default::default()
        };
        let r = check(&UsageView::default(), &limits, 101, T0).expect_err("too big");
        assert!(r.never_fits());
        assert_eq!(r.retry_after_s, 60);
    }
}
