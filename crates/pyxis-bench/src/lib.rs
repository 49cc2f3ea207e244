//! `pyxis bench`: throughput and latency of any OpenAI-compatible endpoint, measured as vLLM's
//! `benchmark_serving.py` / `vllm bench serve` measures them (see `docs/bench.md`).
//!
//! [`run_bench`] runs a [`BenchConfig`] (one load point, or a sweep) and returns a
//! [`BenchReport`]; [`cli`] holds the `pyxis bench` flags and output; [`table`] and [`plot`]
//! render a report.

pub mod cli;
mod client;
pub mod config;
pub mod dataset;
mod error;
pub mod metrics;
pub mod plot;
mod preflight;
mod progress;
pub mod report;
mod rng;
mod runner;
pub mod schedule;
pub mod table;
mod words;
mod workload;

use std::sync::Arc;
use std::time::Duration;

pub use config::{Amount, BenchConfig, Endpoint, LenDist, Load, Slo, TenantKey, Workload};
pub use error::BenchError;
pub use metrics::{Failure, FailureKind, Metrics, RequestRecord, Summary};
pub use report::{BenchReport, PointReport, TenantReport};

use crate::client::Target;
use crate::metrics::Metrics as M;
use crate::progress::Progress;
use crate::runner::{PointSpec, Shared, run_point};
use crate::workload::{RequestSet, WARMUP};

/// Runs every load point of `cfg` in turn and reports each. Checks the target first (one tiny
/// request per key), so a wrong URL, key or model fails at once with advice. `progress` shows a
/// bar on stderr when it is a terminal.
pub async fn run_bench(cfg: BenchConfig, progress: bool) -> anyhow::Result<BenchReport> {
    cfg.validate()?;
    let base = cfg.base_url()?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10).min(cfg.timeout))
        .build()?;
    preflight::check(&client, &base, &cfg).await?;
    let weights: Vec<u32> = cfg.tenants.iter().map(|t| t.weight).collect();
    let shared = Arc::new(Shared {
        client,
        target: Target {
            url: format!("{base}{}", cfg.endpoint.path()),
            endpoint: cfg.endpoint,
            stream: cfg.stream,
            timeout: cfg.timeout,
        },
        set: RequestSet::new(&cfg),
        tenants: cfg.tenants.clone(),
        cycle: schedule::tenant_cycle(&weights),
    });
    if cfg.warmup > 0 {
        let c = match cfg.loads.first() {
            Some(Load::Concurrency(c)) => *c,
            _ => cfg.max_concurrency.unwrap_or(8),
        };
        let spec = PointSpec {
            load: Load::Concurrency(c.clamp(1, u32::try_from(cfg.warmup).unwrap_or(u32::MAX))),
            amount: Amount::Requests(cfg.warmup),
            max_concurrency: None,
            seed: cfg.seed,
            salt: WARMUP,
        };
        let bar = Progress::new(progress, "warmup".into(), spec.amount);
        run_point(shared.clone(), spec, &bar).await;
    }
    let n = cfg.loads.len();
    let mut points = Vec::with_capacity(n);
    for (p, load) in (0u64..).zip(cfg.loads.iter().copied()) {
        let label = if n > 1 {
            format!("[{}/{n}] {}", p + 1, load.describe())
        } else {
            load.describe()
        };
        let spec = PointSpec {
            load,
            amount: cfg.amount,
            max_concurrency: match load {
                Load::Concurrency(_) => None,
                _ => cfg.max_concurrency,
            },
            seed: cfg.seed.wrapping_add(p),
            salt: p,
        };
        let bar = Progress::new(progress, label, cfg.amount);
        let run = run_point(shared.clone(), spec, &bar).await;
        points.push(point_report(&cfg, &base, load, run));
    }
    Ok(BenchReport { points })
}

fn point_report(cfg: &BenchConfig, base: &str, load: Load, run: runner::PointRun) -> PointReport {
    let secs = run.duration.as_secs_f64();
    let metrics = M::compute(&run.records, secs, &cfg.slo, &cfg.percentiles);
    let tenants = if cfg.tenants.len() > 1 {
        cfg.tenants
            .iter()
            .enumerate()
            .map(|(i, t)| TenantReport {
                tenant: t.name.clone(),
                metrics: M::compute(
                    run.records.iter().filter(|r| r.tenant == i),
                    secs,
                    &cfg.slo,
                    &cfg.percentiles,
                ),
            })
            .collect()
    } else {
        Vec::new()
    };
    PointReport {
        url: base.to_string(),
        model: cfg.model.clone(),
        endpoint: cfg.endpoint,
        stream: cfg.stream,
        load,
        max_concurrency: match load {
            Load::Concurrency(_) => None,
            _ => cfg.max_concurrency,
        },
        peak_in_flight: run.peak_in_flight,
        metrics,
        slo: cfg.slo.is_set().then_some(cfg.slo),
        tenants,
        records: run.records,
    }
}
