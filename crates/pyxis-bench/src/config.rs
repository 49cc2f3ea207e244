//! What one benchmark run does: target, load points, request set, SLOs. Plain data, validated once.

use std::time::Duration;

use serde::Serialize;

use crate::dataset::DatasetEntry;
use crate::error::BenchError;

/// Which OpenAI route requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /v1/chat/completions` with `messages`.
    #[default]
    Chat,
    /// `POST /v1/completions` with `prompt`.
    Completions,
}

impl Endpoint {
    /// The route under the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
        }
    }
}

/// How requests arrive during one load point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Closed loop: this many requests always in flight; each finished request is replaced at once.
    Concurrency(u32),
    /// Open loop: Poisson arrivals at this many requests per second (`f64::INFINITY`: all at once).
    Rate(f64),
    /// Open loop: `size` requests at once every `interval`.
    Burst { size: u32, interval: Duration },
}

impl Load {
    /// The number a sweep varies, for charts (concurrency, rate, or burst size).
    pub fn value(&self) -> f64 {
        match *self {
            Load::Concurrency(c) => f64::from(c),
            Load::Rate(r) => r,
            Load::Burst { size, .. } => f64::from(size),
        }
    }

    /// Axis label for [`Load::value`].
    pub fn axis_label(&self) -> &'static str {
        match self {
            Load::Concurrency(_) => "concurrency (requests in flight)",
            Load::Rate(_) => "request rate (req/s, Poisson)",
            Load::Burst { .. } => "burst size (requests)",
        }
    }

    /// Short human form: `concurrency 4`, `rate 5 req/s`, `burst 8 every 2s`.
    pub fn describe(&self) -> String {
        match *self {
            Load::Concurrency(c) => format!("concurrency {c}"),
            Load::Rate(r) if r.is_infinite() => "rate inf (all at once)".to_string(),
            Load::Rate(r) => format!("rate {} req/s", trim_float(r)),
            Load::Burst { size, interval } => format!("burst {size} every {}", humantime::format_duration(interval)),
        }
    }
}

/// `5` rather than `5.0`, `2.5` as is.
pub(crate) fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// How long each load point runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Exactly this many requests.
    Requests(u64),
    /// Start requests until this much time has passed, then wait for those in flight.
    Duration(Duration),
}

impl Amount {
    /// Whether request `index`, due at `at` after the start, belongs to the point.
    pub(crate) fn admits(&self, index: u64, at: Duration) -> bool {
        match *self {
            Amount::Requests(n) => index < n,
            Amount::Duration(d) => at < d,
        }
    }
}

/// Shape of synthetic lengths around their mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LenDist {
    /// Always the given length.
    #[default]
    Fixed,
    /// Uniform in `[L·(1−s), L·(1+s)]` (vLLM's `--random-range-ratio`).
    Uniform,
    /// Normal with mean `L` and standard deviation `s·L`, at least 1.
    Normal,
    /// Log-normal with mean `L` and `σ = s` (a long right tail, like real chat traffic).
    Lognormal,
}

/// One API key and the tenant name results are reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// Name in results.
    pub name: String,
    /// Bearer token.
    pub key: String,
    /// Share of requests (weighted round-robin); at least 1.
    pub weight: u32,
}

/// Latency objectives for goodput; a request is good when it meets every one given.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2el_ms: Option<f64>,
}

impl Slo {
    /// True when at least one objective is set.
    pub fn is_set(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some() || self.e2el_ms.is_some()
    }
}

/// The request set: synthetic prompts, or a dataset, optionally behind shared prefixes.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Mean prompt length in tokens (about one word each), not counting a shared prefix.
    pub input_len: u32,
    /// Mean `max_tokens`.
    pub output_len: u32,
    /// Shape of both lengths.
    pub len_dist: LenDist,
    /// Spread `s` of `len_dist` (see [`LenDist`]).
    pub len_spread: f64,
    /// Words of shared prefix in front of every prompt (0: none).
    pub shared_prefix_len: u32,
    /// Number of distinct prefixes; request `i` gets prefix `i mod groups`.
    pub prefix_groups: u32,
    /// Prompts from a file, used in order and cycled; empty means synthetic prompts.
    pub dataset: Vec<DatasetEntry>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            input_len: 256,
            output_len: 128,
            len_dist: LenDist::Fixed,
            len_spread: 0.25,
            shared_prefix_len: 0,
            prefix_groups: 1,
            dataset: Vec::new(),
        }
    }
}

/// Everything one `run_bench` call does.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Base URL (`http://host:port`); `/v1/...` is appended. A trailing `/v1` is tolerated.
    pub url: String,
    /// `model` sent in every request.
    pub model: String,
    pub endpoint: Endpoint,
    /// API keys, used round-robin by weight; empty sends no `Authorization` header.
    pub tenants: Vec<TenantKey>,
    /// Per load point.
    pub amount: Amount,
    /// One entry per point; several make a sweep.
    pub loads: Vec<Load>,
    /// Cap on requests in flight for open-loop loads (vLLM's `--max-concurrency`).
    pub max_concurrency: Option<u32>,
    pub workload: Workload,
    /// Stream responses (SSE) to measure TTFT and ITL.
    pub stream: bool,
    /// Send `ignore_eos: true` (vLLM's extension) so outputs run to `max_tokens`.
    pub ignore_eos: bool,
    pub slo: Slo,
    /// Percentiles reported besides mean and median, e.g. `[90, 99]`.
    pub percentiles: Vec<f64>,
    pub seed: u64,
    /// Per-request limit, whole response included.
    pub timeout: Duration,
    /// Requests sent (and not counted) before the first point.
    pub warmup: u64,
}

impl BenchConfig {
    /// Defaults: chat, streaming, 100 requests at concurrency 8, 256 → 128 fixed lengths, p90/p99.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        BenchConfig {
            url: url.into(),
            model: model.into(),
            endpoint: Endpoint::Chat,
            tenants: Vec::new(),
            amount: Amount::Requests(100),
            loads: vec![Load::Concurrency(8)],
            max_concurrency: None,
            workload: Workload::default(),
            stream: true,
            ignore_eos: false,
            slo: Slo::default(),
            percentiles: vec![90.0, 99.0],
            seed: 0,
            timeout: Duration::from_secs(300),
            warmup: 0,
        }
    }

    /// The base URL without trailing `/` or `/v1`; errors name the flag to fix.
    pub(crate) fn base_url(&self) -> Result<String, BenchError> {
        let mut u = self.url.trim().trim_end_matches('/').to_string();
        if let Some(stripped) = u.strip_suffix("/v1") {
            u = stripped.to_string();
        }
        if u.starts_with("https://") {
            return Err(BenchError::Config(format!(
                "--url {u}: this build speaks plain HTTP only; use an http:// URL (or a local TLS-terminating proxy)"
            )));
        }
        if !u.starts_with("http://") || u.len() <= "http://".len() {
            return Err(BenchError::Config(format!(
                "--url {:?}: expected a base URL such as http://127.0.0.1:8080",
                self.url
            )));
        }
        Ok(u)
    }

    /// Checks ranges once, so the run itself has no invalid states to handle.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Config(m));
        self.base_url()?;
        if self.model.trim().is_empty() {
            return bad("--model must not be empty".into());
        }
        if self.loads.is_empty() {
            return bad("no load point: give --concurrency, --request-rate, --burst or a sweep".into());
        }
        for l in &self.loads {
            match *l {
                Load::Concurrency(0) => return bad("--concurrency must be at least 1".into()),
                Load::Rate(r) if r.is_nan() || r <= 0.0 => {
                    return bad(format!("--request-rate must be positive, got {r}"));
                }
                Load::Burst { size: 0, .. } => return bad("--burst must be at least 1".into()),
                Load::Burst { interval, .. } if interval.is_zero() => {
                    return bad("--burst-interval must be positive".into());
                }
                _ => {}
            }
        }
        match self.amount {
            Amount::Requests(0) => return bad("--num-requests must be at least 1".into()),
            Amount::Duration(d) if d.is_zero() => return bad("--duration must be positive".into()),
            _ => {}
        }
        if matches!(self.amount, Amount::Duration(_))
            && self.loads.iter().any(|l| matches!(l, Load::Rate(r) if r.is_infinite()))
        {
            return bad("--request-rate inf sends every request at once: give --num-requests, not --duration".into());
        }
        if self.max_concurrency == Some(0) {
            return bad("--max-concurrency must be at least 1".into());
        }
        let w = &self.workload;
        if w.dataset.is_empty() && w.input_len == 0 && w.shared_prefix_len == 0 {
            return bad("--input-len must be at least 1".into());
        }
        if w.output_len == 0 {
            return bad("--output-len must be at least 1".into());
        }
        if !(w.len_spread.is_finite() && w.len_spread >= 0.0) {
            return bad(format!("--len-spread must be ≥ 0, got {}", w.len_spread));
        }
        if w.len_dist == LenDist::Uniform && w.len_spread > 1.0 {
            return bad(format!(
                "--len-spread must be ≤ 1 for uniform lengths, got {}",
                w.len_spread
            ));
        }
        if w.prefix_groups == 0 {
            return bad("--prefix-groups must be at least 1".into());
        }
        if let Some(p) = self.percentiles.iter().find(|p| !(**p > 0.0 && **p <= 100.0)) {
            return bad(format!("--percentiles: {p} is not in (0, 100]"));
        }
        for (flag, v) in [
            ("--slo-ttft-ms", self.slo.ttft_ms),
            ("--slo-tpot-ms", self.slo.tpot_ms),
            ("--slo-e2e-ms", self.slo.e2el_ms),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return bad(format!("{flag} must be a non-negative number of milliseconds, got {v}"));
            }
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be positive".into());
        }
        if let Some(t) = self.tenants.iter().find(|t| t.key.is_empty() || t.weight == 0) {
            return bad(format!(
                "--api-key for {:?}: the key is empty or its weight is 0",
                t.name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_normalised_and_https_is_refused_with_advice() {
        let mut c = BenchConfig::new("http://127.0.0.1:8080/v1/", "m");
        assert_eq!(c.base_url().ok().as_deref(), Some("http://127.0.0.1:8080"));
        c.url = "https://api.example.com".into();
        let e = c.base_url().map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("http://"), "{e}");
        c.url = "localhost:8080".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn validation_names_the_flag() {
        let mut c = BenchConfig::new("http://h:1", "m");
        assert!(c.validate().is_ok());
        c.loads = vec![Load::Concurrency(0)];
        assert!(c.validate().unwrap_err().to_string().contains("--concurrency"));
        c.loads = vec![Load::Rate(1.0)];
        c.percentiles = vec![150.0];
        assert!(c.validate().unwrap_err().to_string().contains("--percentiles"));
    }

    #[test]
    fn amount_admits_by_count_or_time() {
        assert!(Amount::Requests(2).admits(1, Duration::from_secs(99)));
        assert!(!Amount::Requests(2).admits(2, Duration::ZERO));
        let d = Amount::Duration(Duration::from_secs(1));
        assert!(d.admits(1000, Duration::from_millis(999)));
        assert!(!d.admits(0, Duration::from_secs(1)));
    }
}
