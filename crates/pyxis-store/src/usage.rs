//! Usage reports: requests, tokens, cost and latency percentiles grouped by tenant, model,
//! runtime and hardware over a time range, computed from the audit log.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Result, Store};

/// A dimension to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageKey {
    Tenant,
    Model,
    Runtime,
    Hardware,
}

impl std::str::FromStr for UsageKey {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tenant" => Ok(UsageKey::Tenant),
            "model" => Ok(UsageKey::Model),
            "runtime" => Ok(UsageKey::Runtime),
            "hardware" => Ok(UsageKey::Hardware),
            other => Err(format!(
                "cannot group by `{other}`: use tenant, model, runtime or hardware"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The group's values, in the order of `by`.
    pub group: BTreeMap<String, String>,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Capacity dedicated to one tenant: charged to it by the second, whether used or not.
#[derive(Debug, Clone, PartialEq)]
pub struct DedicatedCapacity {
    pub tenant: String,
    pub runtime: String,
    pub hardware: String,
    /// Dollars per second of the whole runtime (price per accelerator-hour × accelerators × endpoints / 3600).
    pub rate_per_second: f64,
}

/// The `model` value of usage rows that are dedicated-capacity charges rather than calls.
pub const DEDICATED_MODEL: &str = "(dedicated capacity)";

type Raw = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    f64,
    f64,
    Option<f64>,
    i64,
);

impl Store {
    /// Aggregates calls started in `[since_ms, until_ms)`, optionally of one tenant.
    pub async fn usage(
        &self,
        by: &[UsageKey],
        since_ms: i64,
        until_ms: i64,
        tenant: Option<&str>,
        dedicated: &[DedicatedCapacity],
    ) -> Result<Vec<UsageRow>> {
        let rows: Vec<Raw> = sqlx::query_as(
            "SELECT tenant, model, runtime, hardware, prompt_tokens, completion_tokens, cost_usd, latency_ms, ttft_ms, status \
             FROM audit_log WHERE started_at_ms >= $1 AND started_at_ms < $2 AND ($3 IS NULL OR tenant = $3)",
        )
        .bind(since_ms)
        .bind(until_ms)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        struct Acc {
            row: UsageRow,
            lat: Vec<f64>,
            ttft: Vec<f64>,
        }
        let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
        let end = until_ms.min(crate::now_ms());
        let seconds = (end - since_ms).max(0) as f64 / 1000.0;
        let charges = dedicated
            .iter()
            .filter(|d| tenant.is_none_or(|t| t == d.tenant))
            .map(|d| {
                (
                    d.tenant.clone(),
                    DEDICATED_MODEL.to_string(),
                    Some(d.runtime.clone()),
                    Some(d.hardware.clone()),
                    d.rate_per_second * seconds,
                )
            });
        let calls = rows.into_iter().map(|(t, m, rt, hw, pt, ct, cost, lat, ttft, status)| {
            (t, m, rt, hw, cost, Some((pt, ct, lat, ttft, status)))
        });
        let all = calls.chain(charges.map(|(t, m, rt, hw, cost)| (t, m, rt, hw, cost, None)));
        for (t, m, rt, hw, cost, call) in all {
            let vals: Vec<String> = by
                .iter()
                .map(|k| match k {
                    UsageKey::Tenant => t.clone(),
                    UsageKey::Model => m.clone(),
                    UsageKey::Runtime => rt.clone().unwrap_or_else(|| "-".into()),
                    UsageKey::Hardware => hw.clone().unwrap_or_else(|| "-".into()),
                })
                .collect();
            let acc = groups.entry(vals.clone()).or_insert_with(|| Acc {
                row: UsageRow {
                    group: by
                        .iter()
                        .zip(vals)
                        .map(|(k, v)| (format!("{k:?}").to_lowercase(), v))
                        .collect(),
                    requests: 0,
                    errors: 0,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    cost_usd: 0.0,
                    latency_p50_ms: 0.0,
                    latency_p95_ms: 0.0,
                    ttft_p50_ms: None,
                    ttft_p95_ms: None,
                },
                lat: Vec::new(),
                ttft: Vec::new(),
            });
            acc.row.cost_usd += cost;
            let Some((pt, ct, lat, ttft, status)) = call else {
                continue;
            };
            acc.row.requests += 1;
            if status >= 400 {
                acc.row.errors += 1;
            }
            acc.row.prompt_tokens += pt;
            acc.row.completion_tokens += ct;
            acc.lat.push(lat);
            if let Some(t) = ttft {
                acc.ttft.push(t);
            }
        }
        Ok(groups
            .into_values()
            .map(|mut a| {
                a.lat.sort_by(f64::total_cmp);
                a.ttft.sort_by(f64::total_cmp);
                a.row.latency_p50_ms = percentile(&a.lat, 50.0);
                a.row.latency_p95_ms = percentile(&a.lat, 95.0);
                if !a.ttft.is_empty() {
                    a.row.ttft_p50_ms = Some(percentile(&a.ttft, 50.0));
                    a.row.ttft_p95_ms = Some(percentile(&a.ttft, 95.0));
                }
                a.row
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditRecord;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
    }

    #[tokio::test]
    async fn groups_sums_and_percentiles() {
        for (_, store) in crate::testing::stores().await.stores {
            let mut recs: Vec<AuditRecord> = (0..40)
                .map(|i| AuditRecord {
                    request_id: format!("r{i}"),
                    started_at_ms: 1000 + i,
                    tenant: if i % 4 == 0 { "a".into() } else { "b".into() },
                    requested_model: "m".into(),
                    model: "m".into(),
                    hardware: Some(if i % 2 == 0 { "h100".into() } else { "l4".into() }),
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    cost_usd: 0.5,
                    latency_ms: (i + 1) as f64,
                    status: if i == 3 { 500 } else { 200 },
                    ..AuditRecord::default()
                })
                .collect();
            store.append_audit(&mut recs, None).await.unwrap();
            let rows = store.usage(&[UsageKey::Tenant], 0, i64::MAX, None, &[]).await.unwrap();
            assert_eq!(rows.len(), 2);
            let a = &rows[0];
            assert_eq!(a.group["tenant"], "a");
            assert_eq!((a.requests, a.prompt_tokens, a.completion_tokens), (10, 100, 50));
            assert!((a.cost_usd - 5.0).abs() < 1e-9);
            assert_eq!(rows[1].errors, 1);
            let by2 = store
                .usage(&[UsageKey::Tenant, UsageKey::Hardware], 0, i64::MAX, None, &[])
                .await
                .unwrap();
            assert_eq!(by2.len(), 3, "a only runs on h100 (i % 4 == 0), b on both");
            let only_b = store
                .usage(&[UsageKey::Tenant], 0, i64::MAX, Some("b"), &[])
                .await
                .unwrap();
            assert_eq!(only_b.len(), 1);
            let window = store.usage(&[UsageKey::Tenant], 1020, 1030, None, &[]).await.unwrap();
            assert_eq!(window.iter().map(|r| r.requests).sum::<u64>(), 10);
            // Latencies of tenant a are 1, 5, 9, …, 37: p50 is the 5th of 10, p95 the 10th.
            assert_eq!((a.latency_p50_ms, a.latency_p95_ms), (17.0, 37.0));
            // Dedicated capacity: 1 hour at $2/s... charged to its tenant whether used or not.
            let ded = [DedicatedCapacity {
                tenant: "c".into(),
                runtime: "r".into(),
                hardware: "a100".into(),
                rate_per_second: 2.0,
            }];
            let rows = store
                .usage(&[UsageKey::Tenant, UsageKey::Model], 0, 3_600_000, None, &ded)
                .await
                .unwrap();
            let c = rows.iter().find(|r| r.group["tenant"] == "c").unwrap();
            assert_eq!(c.group["model"], DEDICATED_MODEL);
            assert_eq!(c.requests, 0);
            assert!((c.cost_usd - 7200.0).abs() < 1e-6, "{}", c.cost_usd);
            let only_b = store
                .usage(&[UsageKey::Tenant], 0, 3_600_000, Some("b"), &ded)
                .await
                .unwrap();
            assert!(
                only_b.iter().all(|r| r.group["tenant"] == "b"),
                "another tenant's dedicated capacity stays out"
            );
        }
    }
}
