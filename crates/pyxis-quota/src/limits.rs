//! The limits a tenant runs under, and what admission answers: a `Reservation`, or a `Rejection` for a 429.

use std::fmt;

use serde::Serialize;

/// A tenant's limits; `None` means unlimited. Field for field the `Tenant` resource's `spec.quotas`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuotaLimits {
    /// `requestsPerMinute`: admissions in any 60 s interval.
    pub requests_per_minute: Option<u32>,
    /// `tokensPerMinute`: tokens (reserved, then actual) of requests admitted in any 60 s interval.
    pub tokens_per_minute: Option<u64>,
    /// `concurrentRequests`: requests admitted and not yet settled or released.
    pub concurrent_requests: Option<u32>,
    /// `tokensPerDay`: settled plus reserved tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// `tokensPerMonth`: settled plus reserved tokens per UTC calendar month.
    pub tokens_per_month: Option<u64>,
    /// `costPerDay` (USD): no admission once the day's settled cost has reached it.
    pub cost_per_day: Option<f64>,
    /// `costPerMonth` (USD).
    pub cost_per_month: Option<f64>,
}

impl QuotaLimits {
    /// No limit set: the caller may skip admission entirely (usage is then not recorded either).
    pub fn is_unlimited(&self) -> bool {
        *self == QuotaLimits::default()
    }
}

/// Which limit turned a request away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    RequestsPerMinute,
    TokensPerMinute,
    Concurrency,
    /// `tokensPerDay` or `tokensPerMonth` (see [`Rejection::period`]).
    TokenBudget,
    /// `costPerDay` or `costPerMonth` (see [`Rejection::period`]).
    CostBudget,
}

impl Reason {
    /// OpenAI's `error.code` for a 429: rate limits are `rate_limit_exceeded`, budgets `insufficient_quota`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::RequestsPerMinute | Reason::TokensPerMinute | Reason::Concurrency => "rate_limit_exceeded",
            Reason::TokenBudget | Reason::CostBudget => "insufficient_quota",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::RequestsPerMinute => "The tenant's requests-per-minute limit has been reached.",
            Reason::TokensPerMinute => "The tenant's tokens-per-minute limit has been reached.",
            Reason::Concurrency => "The tenant has as many requests in flight as it may.",
            Reason::TokenBudget => "The tenant's token budget for the period is used up.",
            Reason::CostBudget => "The tenant's spending budget for the period is used up.",
        })
    }
}

/// The calendar period of a budget rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetPeriod {
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
}

/// Why admission failed and when to come back: the content of a 429 with `Retry-After`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: Reason,
    /// Seconds until the request would be admitted if nothing else happened (at least 1).
    pub retry_after_s: u64,
    /// The limit that was hit (requests, tokens, or USD).
    pub limit: f64,
    /// What counts against it now (for token limits: used plus reserved).
    pub current: f64,
    /// What this request asked for against that limit (1 request, its reserved tokens; 0 for cost).
    pub requested: f64,
    /// For budgets: the day or the month. `None` for rate limits.
    pub period: Option<BudgetPeriod>,
}

impl Rejection {
    /// Whether the request can never pass this limit as configured (it alone asks for more than the limit).
    pub fn never_fits(&self) -> bool {
        self.requested > self.limit
    }

    /// A message for the client: the limit, what is used, when to retry, what to do.
    pub fn message(&self) -> String {
        let retry = self.retry_after_s;
        let (limit, current, requested) = (num(self.limit), num(self.current), num(self.requested));
        let per = match self.period {
            Some(BudgetPeriod::Month) => "month",
            _ => "day",
        };
        let field = |daily: &str, monthly: &str| match self.period {
            Some(BudgetPeriod::Month) => monthly.to_string(),
            _ => daily.to_string(),
        };
        match self.reason {
            Reason::RequestsPerMinute if self.never_fits() => {
                "This tenant may make no requests (requestsPerMinute is 0); ask an administrator to raise it.".into()
            }
            Reason::RequestsPerMinute => format!(
                "Rate limit reached: {limit} requests per minute allowed, {current} made in the last minute. \
                 Retry after {retry} s, send requests more slowly, or ask an administrator to raise the tenant's \
                 requestsPerMinute."
            ),
            Reason::TokensPerMinute if self.never_fits() => format!(
                "This request reserves {requested} tokens (prompt + max_tokens), more than the tenant's limit of \
                 {limit} tokens per minute, so it can never be admitted: shorten the prompt or lower max_tokens."
            ),
            Reason::TokensPerMinute => format!(
                "Rate limit reached: {limit} tokens per minute allowed, {current} used or reserved in the last \
                 minute, and this request reserves {requested} (prompt + max_tokens). Retry after {retry} s, lower \
                 max_tokens, or ask an administrator to raise the tenant's tokensPerMinute."
            ),
            Reason::Concurrency if self.never_fits() => {
                "This tenant may have no requests in flight (concurrentRequests is 0); ask an administrator to raise \
                 it."
                .into()
            }
            Reason::Concurrency => format!(
                "Too many concurrent requests: {limit} allowed in flight and {current} running. Retry after \
                 {retry} s, when one has finished, lower the client's concurrency, or ask an administrator to raise \
                 the tenant's concurrentRequests."
            ),
            Reason::TokenBudget if self.never_fits() => format!(
                "This request reserves {requested} tokens (prompt + max_tokens), more than the tenant's whole budget \
                 of {limit} tokens per {per}, so it can never be admitted: shorten the prompt or lower max_tokens."
            ),
            Reason::TokenBudget => format!(
                "Token budget exhausted: {limit} tokens per {per} (UTC) allowed, {current} used or reserved, and \
                 this request reserves {requested}. Retry after {retry} s, lower max_tokens, or ask an \
                 administrator to raise the tenant's {}.",
                field("tokensPerDay", "tokensPerMonth")
            ),
            Reason::CostBudget => format!(
                "Spending budget exhausted: ${} per {per} (UTC) allowed, ${} spent. Retry after {retry} s, when \
                 the next {per} starts, or ask an administrator to raise the tenant's {}.",
                money(self.limit),
                money(self.current),
                field("costPerDay", "costPerMonth")
            ),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Rejection {}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn money(v: f64) -> String {
    if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A tenant's usage right now, for the admin API and metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QuotaUsage {
    /// Requests admitted in the current 60 s window.
    pub requests_last_minute: u64,
    /// Tokens (reserved or settled) of requests admitted in the current window.
    pub tokens_last_minute: u64,
    /// Requests admitted and not yet settled, released or expired.
    pub concurrent_requests: u64,
    /// Tokens reserved by those requests; they count against the day and month budgets until settled.
    pub reserved_tokens: u64,
    /// Settled tokens in the current UTC day.
    pub tokens_today: u64,
    pub tokens_this_month: u64,
    /// Settled cost (USD) in the current UTC day.
    pub cost_today: f64,
    pub cost_this_month: f64,
    /// Set when the backend could not be read; the numbers are then zeros, not the tenant's usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(reason: Reason, period: Option<BudgetPeriod>, requested: f64) -> Rejection {
        Rejection {
            reason,
            retry_after_s: 7,
            limit: 100.0,
            current: 95.0,
            requested,
            period,
        }
    }

    #[test]
    fn codes_and_unlimited() {
        assert_eq!(Reason::Concurrency.code(), "rate_limit_exceeded");
        assert_eq!(Reason::CostBudget.code(), "insufficient_quota");
        assert!(QuotaLimits::default().is_unlimited());
        assert!(
            !QuotaLimits {
                cost_per_month: Some(1.0),
                ..Default::default()
            }
            .is_unlimited()
        );
    }

    #[test]
    fn messages_name_limit_usage_retry_and_field() {
        let m = rejection(Reason::TokensPerMinute, None, 10.0).message();
        assert!(
            m.contains("100 tokens per minute") && m.contains("95 used") && m.contains("after 7 s"),
            "{m}"
        );
        assert!(m.contains("tokensPerMinute"), "{m}");
        let m = rejection(Reason::TokenBudget, Some(BudgetPeriod::Month), 10.0).message();
        assert!(m.contains("per month") && m.contains("tokensPerMonth"), "{m}");
        let m = rejection(Reason::TokensPerMinute, None, 500.0).message();
        assert!(m.contains("never be admitted"), "{m}");
        let m = Rejection {
            limit: 5.0,
            current: 5.25,
            ..rejection(Reason::CostBudget, Some(BudgetPeriod::Day), 0.0)
        };
        assert!(
            m.message().contains("$5.00 per day") && m.message().contains("costPerDay"),
            "{}",
            m.message()
        );
    }
}
