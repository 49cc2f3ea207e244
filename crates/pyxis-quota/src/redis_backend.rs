//! The shared backend: every replica runs the same Lua scripts on one Redis, so check-then-record is atomic across
//! the whole fleet of gateways.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, Value};

use crate::QuotaError;
use crate::calendar::Periods;
use crate::check::{UsageView, WINDOW_S, check, window_oldest};
use crate::limits::{QuotaLimits, QuotaUsage, Reason, Rejection};
use crate::reservation::Reservation;

/// Window hashes outlive their last bucket by a minute, so a replica whose clock is behind still finds them.
const WINDOW_TTL_MS: u64 = (WINDOW_S + 1 + 60) * 1000;
/// Live-slot keys outlive the last lease by this much; period keys outlive their period by this much.
const LEASE_MARGIN_MS: u64 = 60_000;
const PERIOD_MARGIN_MS: u64 = 86_400_000;

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    prefix: String,
    admit: Script,
    settle: Script,
    snapshot: Script,
}

/// What the admit script answered.
pub(crate) enum Admitted {
    Yes(Reservation),
    No(Rejection),
}

impl RedisBackend {
    pub async fn connect(url: &str, prefix: &str, connect_timeout: Duration) -> Result<Self, QuotaError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let connecting = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            let (admit, settle, snapshot) = (
                Script::new(include_str!("scripts/admit.lua")),
                Script::new(include_str!("scripts/settle.lua")),
                Script::new(include_str!("scripts/snapshot.lua")),
            );
            for s in [&admit, &settle, &snapshot] {
                s.prepare_invoke().load_async(&mut conn).await?;
            }
            Ok::<_, RedisError>(RedisBackend {
                conn,
                // "pyxis:quota" and "pyxis:quota:" name the same keys.
                prefix: prefix.trim_end_matches(':').to_string(),
                admit,
                settle,
                snapshot,
            })
        };
        match tokio::time::timeout(connect_timeout * 2, connecting).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QuotaError::Timeout(connect_timeout * 2)),
        }
    }

    /// `{prefix}:{tenant}:{what}`; the braces make every key of a tenant one Redis Cluster hash slot.
    fn key(&self, tenant: &str, what: &str) -> String {
        format!("{}:{{{}}}:{what}", self.prefix, escape(tenant))
    }

    pub async fn admit(
        &self,
        tenant: &str,
        limits: &QuotaLimits,
        ask: u64,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Admitted, RedisError> {
        let periods = Periods::at(now_ms);
        let sec = now_ms / 1000;
        let r = Reservation::new(tenant, uuid::Uuid::new_v4().as_u128(), ask, now_ms, true);
        let opt = |v: Option<String>| v.unwrap_or_default();
        let reply: Vec<Value> = self
            .admit
            .key(self.key(tenant, "rpm"))
            .key(self.key(tenant, "tpm"))
            .key(self.key(tenant, "live"))
            .key(self.key(tenant, "reserved"))
            .key(self.key(tenant, &format!("d:{}", periods.day_label())))
            .key(self.key(tenant, &format!("m:{}", periods.month_label())))
            .arg(now_ms)
            .arg(sec)
            .arg(window_oldest(sec))
            .arg(r.member())
            .arg(ask)
            .arg(now_ms.saturating_add(lease_ms))
            .arg(lease_ms.saturating_add(LEASE_MARGIN_MS))
            .arg(WINDOW_TTL_MS)
            .arg(opt(limits.requests_per_minute.map(|v| v.to_string())))
            .arg(opt(limits.tokens_per_minute.map(|v| v.to_string())))
            .arg(opt(limits.concurrent_requests.map(|v| v.to_string())))
            .arg(opt(limits.tokens_per_day.map(|v| v.to_string())))
            .arg(opt(limits.tokens_per_month.map(|v| v.to_string())))
            .arg(opt(limits.cost_per_day.map(|v| v.to_string())))
            .arg(opt(limits.cost_per_month.map(|v| v.to_string())))
            .invoke_async(&mut self.conn.clone())
            .await?;
        let Some(first) = reply.first().map(text) else {
            return Err(unexpected("empty admit reply"));
        };
        if first == "ok" {
            return Ok(Admitted::Yes(r));
        }
        // The script decided; the pure rule computes the same verdict with its retry time and numbers.
        let field = |i: usize| reply.get(i).map(text).unwrap_or_default();
        let (rpm, tpm) = (buckets(reply.get(1)), buckets(reply.get(2)));
        let view = UsageView {
            rpm: &rpm,
            tpm: &tpm,
            live: int(&field(3)),
            reserved: int(&field(4)),
            day_tokens: int(&field(5)),
            day_cost: float(&field(6)),
            month_tokens: int(&field(7)),
            month_cost: float(&field(8)),
        };
        Ok(Admitted::No(
            check(&view, limits, ask, now_ms)
                .err()
                .unwrap_or_else(|| fallback(&first, ask)),
        ))
    }

    pub async fn settle(&self, r: &Reservation, used: u64, cost: f64, now_ms: u64) -> Result<(), RedisError> {
        let periods = Periods::at(now_ms);
        let tenant = &*r.tenant;
        let _: Value = self
            .settle
            .key(self.key(tenant, "tpm"))
            .key(self.key(tenant, "live"))
            .key(self.key(tenant, "reserved"))
            .key(self.key(tenant, &format!("d:{}", periods.day_label())))
            .key(self.key(tenant, &format!("m:{}", periods.month_label())))
            .arg(r.member())
            .arg(r.tokens)
            .arg(r.window_second())
            .arg(window_oldest(now_ms / 1000))
            .arg(used)
            .arg(cost.to_string())
            .arg((periods.next_day_ms.saturating_sub(now_ms)).saturating_add(PERIOD_MARGIN_MS))
            .arg((periods.next_month_ms.saturating_sub(now_ms)).saturating_add(PERIOD_MARGIN_MS))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    pub async fn snapshot(&self, tenant: &str, now_ms: u64) -> Result<QuotaUsage, RedisError> {
        let periods = Periods::at(now_ms);
        let reply: Vec<Value> = self
            .snapshot
            .key(self.key(tenant, "rpm"))
            .key(self.key(tenant, "tpm"))
            .key(self.key(tenant, "live"))
            .key(self.key(tenant, &format!("d:{}", periods.day_label())))
            .key(self.key(tenant, &format!("m:{}", periods.month_label())))
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let oldest = window_oldest(now_ms / 1000);
        let sum = |b: Vec<(u64, u64)>| {
            b.iter()
                .filter(|(s, _)| *s >= oldest)
                .fold(0u64, |a, (_, n)| a.saturating_add(*n))
        };
        let live = list(reply.get(2));
        let pair = |v: Option<&Value>| {
            let l = list(v);
            (
                int(l.first().map(String::as_str).unwrap_or("0")),
                float(l.get(1).map(String::as_str).unwrap_or("0")),
            )
        };
        let ((tokens_today, cost_today), (tokens_this_month, cost_this_month)) =
            (pair(reply.get(3)), pair(reply.get(4)));
        Ok(QuotaUsage {
            requests_last_minute: sum(buckets(reply.first())),
            tokens_last_minute: sum(buckets(reply.get(1))),
            concurrent_requests: live.len() as u64,
            reserved_tokens: live.iter().map(|m| int(m.rsplit('|').next().unwrap_or("0"))).sum(),
            tokens_today,
            tokens_this_month,
            cost_today,
            cost_this_month,
            error: None,
        })
    }
}

/// A tenant name made safe inside a key: anything but `[A-Za-z0-9._-]` is percent-encoded, so no name can forge
/// another tenant's keys or break the hash tag.
fn escape(tenant: &str) -> String {
    let mut out = String::with_capacity(tenant.len());
    for b in tenant.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        _ => String::new(),
    }
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        _ => Vec::new(),
    }
}

/// A flat `HGETALL` reply of `second -> amount`.
fn buckets(v: Option<&Value>) -> Vec<(u64, u64)> {
    list(v).chunks_exact(2).map(|kv| (int(&kv[0]), int(&kv[1]))).collect()
}

fn int(s: &str) -> u64 {
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

fn float(s: &str) -> f64 {
    s.parse::<f64>().unwrap_or(0.0)
}

fn unexpected(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Client, what))
}

/// Only if the script and the pure rule disagree, which they should not: keep the script's verdict.
fn fallback(code: &str, ask: u64) -> Rejection {
    let reason = match code {
        "rpm" => Reason::RequestsPerMinute,
        "tpm" => Reason::TokensPerMinute,
        "concurrency" => Reason::Concurrency,
        "cost_day" | "cost_month" => Reason::CostBudget,
        _ => Reason::TokenBudget,
    };
    tracing::debug!(code, "quota script rejected what the local rule admits");
    Rejection {
        reason,
        retry_after_s: 1,
        limit: 0.0,
        current: 0.0,
        requested: ask as f64,
        period: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_cannot_collide_or_break_the_hash_tag() {
        assert_eq!(escape("team-a.prod_1"), "team-a.prod_1");
        assert_eq!(escape("a}:rpm:{b"), "a%7D%3Arpm%3A%7Bb");
        assert_ne!(escape("a%7D"), escape("a}"));
    }

    #[test]
    fn replies_parse_leniently() {
        let v = Value::Array(vec![
            Value::BulkString(b"1700000000".to_vec()),
            Value::BulkString(b"3".to_vec()),
            Value::BulkString(b"1700000001".to_vec()),
        ]);
        assert_eq!(buckets(Some(&v)), vec![(1_700_000_000, 3)]);
        assert_eq!(int("12"), 12);
        assert_eq!(int("1.5e3"), 1500);
        assert_eq!(int("junk"), 0);
    }
}
