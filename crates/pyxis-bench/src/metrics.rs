//! Metric definitions, as vLLM's `benchmark_serving.py` / `vllm bench serve` compute them, over
//! per-request records. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::config::Slo;

/// Why one request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// No connection (refused, reset before a response, DNS).
    Connect,
    /// `--timeout` passed before the response ended.
    Timeout,
    /// A non-2xx status.
    Http(u16),
    /// The stream broke or carried an error event.
    Stream,
    /// The response had no token-bearing chunk.
    NoTokens,
    /// A body that is not the expected JSON.
    BadResponse,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Connect => f.write_str("connect error"),
            FailureKind::Timeout => f.write_str("timeout"),
            FailureKind::Http(s) => write!(f, "HTTP {s}"),
            FailureKind::Stream => f.write_str("stream error"),
            FailureKind::NoTokens => f.write_str("no tokens"),
            FailureKind::BadResponse => f.write_str("bad response"),
        }
    }
}

/// A failed request: kind (for the breakdown) and the server's or client's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// What was measured for one request. Times in seconds from the moment the request was sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestRecord {
    /// Index into the tenant list (0 when there is one key or none).
    pub tenant: usize,
    /// Prompt tokens: `usage.prompt_tokens`, else the request set's estimate.
    pub input_tokens: u64,
    /// Output tokens: `usage.completion_tokens`, else the number of token-bearing chunks.
    pub output_tokens: u64,
    /// Time to the first token-bearing chunk; `None` when not streaming.
    pub ttft: Option<f64>,
    /// Gaps between successive token-bearing chunks.
    pub itl: Vec<f64>,
    /// Time to the last chunk (streaming) or to the end of the body.
    pub e2el: f64,
    /// Set when the request failed; a failed request counts nowhere but in the error breakdown.
    pub failure: Option<Failure>,
}

impl RequestRecord {
    /// vLLM's TPOT: `(e2el − ttft) / (output_tokens − 1)`, only defined for more than one token.
    /// Without streaming TTFT is taken as 0, as vLLM does for backends that do not stream.
    pub fn tpot(&self) -> Option<f64> {
        (self.output_tokens > 1).then(|| (self.e2el - self.ttft.unwrap_or(0.0)) / (self.output_tokens - 1) as f64)
    }

    /// Whether the request meets every objective set (vLLM: TPOT counts as 0 for ≤ 1 token;
    /// without streaming, the first token reaches the client with the whole body, so E2E stands for TTFT).
    pub fn meets(&self, slo: &Slo) -> bool {
        let ok = |limit_ms: Option<f64>, secs: f64| limit_ms.is_none_or(|l| secs * 1000.0 <= l);
        self.failure.is_none()
            && ok(slo.ttft_ms, self.ttft.unwrap_or(self.e2el))
            && ok(slo.tpot_ms, self.tpot().unwrap_or(0.0))
            && ok(slo.e2el_ms, self.e2el)
    }
}

/// `p`-th percentile of sorted values with linear interpolation between closest ranks
/// (numpy's default, which vLLM uses).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted {
        [] => 0.0,
        [x] => *x,
        _ => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// Mean, median, population standard deviation and chosen percentiles of one metric, in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// `(p, value)` for each requested percentile.
    pub percentiles: Vec<(f64, f64)>,
}

impl Summary {
    /// Summarises values given in seconds, reporting milliseconds; `None` for no values.
    pub fn of_seconds(values: &[f64], percentiles: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = values.iter().map(|s| s * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        Some(Summary {
            count: v.len(),
            mean,
            median: percentile(&v, 50.0),
            std,
            min: v[0],
            max: v[v.len() - 1],
            percentiles: percentiles.iter().map(|&p| (p, percentile(&v, p))).collect(),
        })
    }

    /// The value at percentile `p` if it was asked for (50 is always there as the median).
    pub fn at(&self, p: f64) -> Option<f64> {
        if p == 50.0 {
            return Some(self.median);
        }
        self.percentiles.iter().find(|(q, _)| *q == p).map(|(_, v)| *v)
    }
}

/// `p99`, `p99.9`.
pub fn percentile_label(p: f64) -> String {
    format!("p{}", crate::config::trim_float(p))
}

/// Milliseconds to the microsecond: clocks are no finer, and JSON stays readable.
fn us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

impl Serialize for Summary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6 + self.percentiles.len()))?;
        m.serialize_entry("count", &self.count)?;
        m.serialize_entry("mean", &us(self.mean))?;
        m.serialize_entry("median", &us(self.median))?;
        m.serialize_entry("std", &us(self.std))?;
        m.serialize_entry("min", &us(self.min))?;
        m.serialize_entry("max", &us(self.max))?;
        for (p, v) in &self.percentiles {
            m.serialize_entry(&percentile_label(*p), &us(*v))?;
        }
        m.end()
    }
}

/// vLLM's `BenchmarkMetrics` over one set of records and the run's duration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Successful requests.
    pub completed: u64,
    pub failed: u64,
    /// Failures by kind (`HTTP 503`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each kind of failure.
    pub error_examples: BTreeMap<String, String>,
    /// Wall time of the load point, first request sent to last response ended.
    pub duration_s: f64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Requests meeting every SLO per second; `None` when no SLO was given.
    pub request_goodput: Option<f64>,
    /// Requests meeting every SLO; `None` when no SLO was given.
    pub good_requests: Option<u64>,
    /// Output tokens per second.
    pub output_throughput: f64,
    /// Input plus output tokens per second.
    pub total_token_throughput: f64,
    pub ttft_ms: Option<Summary>,
    pub tpot_ms: Option<Summary>,
    pub itl_ms: Option<Summary>,
    pub e2el_ms: Option<Summary>,
}

impl Metrics {
    /// Computes every metric over `records` for a point that lasted `duration_s`.
    pub fn compute<'a>(
        records: impl IntoIterator<Item = &'a RequestRecord>,
        duration_s: f64,
        slo: &Slo,
        percentiles: &[f64],
    ) -> Metrics {
        let (mut completed, mut failed, mut good) = (0u64, 0u64, 0u64);
        let (mut input, mut output) = (0u64, 0u64);
        let mut errors = BTreeMap::new();
        let mut error_examples = BTreeMap::new();
        let (mut ttfts, mut tpots, mut itls, mut e2els) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in records {
            if let Some(f) = &r.failure {
                failed += 1;
                let k = f.kind.to_string();
                *errors.entry(k.clone()).or_insert(0) += 1;
                error_examples.entry(k).or_insert_with(|| f.message.clone());
                continue;
            }
            completed += 1;
            input += r.input_tokens;
            output += r.output_tokens;
            ttfts.extend(r.ttft);
            tpots.extend(r.tpot());
            itls.extend_from_slice(&r.itl);
            e2els.push(r.e2el);
            if r.meets(slo) {
                good += 1;
            }
        }
        let per_s = |x: u64| if duration_s > 0.0 { x as f64 / duration_s } else { 0.0 };
        Metrics {
            completed,
            failed,
            errors,
            error_examples,
            duration_s,
            total_input_tokens: input,
            total_output_tokens: output,
            request_throughput: per_s(completed),
            request_goodput: slo.is_set().then(|| per_s(good)),
            good_requests: slo.is_set().then_some(good),
            output_throughput: per_s(output),
            total_token_throughput: per_s(input + output),
            ttft_ms: Summary::of_seconds(&ttfts, percentiles),
            tpot_ms: Summary::of_seconds(&tpots, percentiles),
            itl_ms: Summary::of_seconds(&itls, percentiles),
            e2el_ms: Summary::of_seconds(&e2els, percentiles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn ok(ttft: f64, itl: &[f64], out: u64) -> RequestRecord {
        RequestRecord {
            tenant: 0,
            input_tokens: 10,
            output_tokens: out,
            ttft: Some(ttft),
            itl: itl.to_vec(),
            e2el: ttft + itl.iter().sum::<f64>(),
            failure: None,
        }
    }

    #[test]
    fn percentiles_match_numpy_linear_interpolation() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.percentile([1,2,3,4], [50, 90, 99, 100]) = [2.5, 3.7, 3.97, 4.0]
        assert!(close(percentile(&v, 50.0), 2.5));
        assert!(close(percentile(&v, 90.0), 3.7));
        assert!(close(percentile(&v, 99.0), 3.97));
        assert!(close(percentile(&v, 100.0), 4.0));
        assert!(close(percentile(&[5.0], 99.0), 5.0));
        assert!(close(percentile(&[], 50.0), 0.0));
        // numpy.percentile([10, 20, 30, 40, 50], 25) = 20.0
        assert!(close(percentile(&[10.0, 20.0, 30.0, 40.0, 50.0], 25.0), 20.0));
    }

    #[test]
    fn summary_is_in_ms_with_population_std() {
        let s = Summary::of_seconds(&[0.004, 0.001, 0.003, 0.002], &[90.0]).unwrap();
        assert!(close(s.mean, 2.5) && close(s.median, 2.5) && close(s.min, 1.0) && close(s.max, 4.0));
        assert!(close(s.std, 1.25f64.sqrt()));
        assert!(close(s.at(90.0).unwrap(), 3.7));
        assert!(s.at(99.0).is_none());
        let j = serde_json::to_value(&s).unwrap();
        assert!(close(j["p90"].as_f64().unwrap(), 3.7));
        assert!(Summary::of_seconds(&[], &[90.0]).is_none());
    }

    #[test]
    fn tpot_follows_vllm() {
        // ttft 100 ms, then 4 more chunks 25 ms apart: e2el 200 ms, 5 tokens → TPOT (200-100)/4 = 25 ms.
        let r = ok(0.1, &[0.025; 4], 5);
        assert!(close(r.e2el, 0.2));
        assert!(close(r.tpot().unwrap(), 0.025));
        assert!(ok(0.1, &[], 1).tpot().is_none());
        // Usage may report more tokens than chunks (several tokens per chunk): TPOT uses tokens.
        assert!(close(ok(0.1, &[0.05, 0.05], 11).tpot().unwrap(), 0.01));
        // Not streamed: TTFT unknown, counted as 0.
        let r = RequestRecord {
            output_tokens: 3,
            e2el: 0.5,
            ..Default::default()
        };
        assert!(close(r.tpot().unwrap(), 0.25));
    }

    #[test]
    fn metrics_over_records() {
        let mut failed = ok(0.0, &[], 0);
        failed.failure = Some(Failure {
            kind: FailureKind::Http(503),
            message: "overloaded".into(),
        });
        let recs = [ok(0.1, &[0.025; 4], 5), ok(0.3, &[0.1; 4], 5), failed];
        let slo = Slo {
            ttft_ms: Some(200.0),
            ..Default::default()
        };
        let m = Metrics::compute(&recs, 2.0, &slo, &[99.0]);
        assert_eq!((m.completed, m.failed), (2, 1));
        assert_eq!(m.errors.get("HTTP 503"), Some(&1));
        assert_eq!(m.error_examples.get("HTTP 503").map(String::as_str), Some("overloaded"));
        assert_eq!(m.total_output_tokens, 10);
        assert_eq!(m.total_input_tokens, 20);
        assert!(close(m.request_throughput, 1.0));
        assert!(close(m.output_throughput, 5.0));
        assert!(close(m.total_token_throughput, 15.0));
        assert_eq!(m.good_requests, Some(1));
        assert!(close(m.request_goodput.unwrap(), 0.5));
        let ttft = m.ttft_ms.unwrap();
        assert!(close(ttft.mean, 200.0) && close(ttft.median, 200.0));
        assert_eq!(m.itl_ms.unwrap().count, 8);
        let tpot = m.tpot_ms.unwrap();
        assert!(close(tpot.mean, (25.0 + 100.0) / 2.0));
        assert!(close(m.e2el_ms.unwrap().max, 700.0));
        let none = Metrics::compute(&recs, 2.0, &Slo::default(), &[99.0]);
        assert!(none.request_goodput.is_none());
    }

    #[test]
    fn slo_checks_every_objective() {
        let r = ok(0.1, &[0.025; 4], 5); // ttft 100, tpot 25, e2el 200 ms
        let slo = |t, p, e| Slo {
            ttft_ms: t,
            tpot_ms: p,
            e2el_ms: e,
        };
        assert!(r.meets(&slo(Some(100.001), Some(25.001), Some(200.001))));
        assert!(!r.meets(&slo(Some(99.0), None, None)));
        assert!(!r.meets(&slo(None, Some(24.0), None)));
        assert!(!r.meets(&slo(None, None, Some(199.0))));
        // One token: TPOT counts as 0.
        assert!(ok(0.1, &[], 1).meets(&slo(None, Some(0.0), None)));
    }
}
