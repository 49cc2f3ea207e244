//! The `/metrics` body: read back by a Prometheus text parser and by promtool, values as recorded.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use prometheus_parse::{Sample, Scrape, Value};
use pyxis_telemetry::{Metrics, MetricsConfig, RequestRecord};

fn scrape(m: &Metrics) -> Scrape {
    let text = m.encode();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// The one sample named `name` whose labels include all of `labels`.
fn one<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

fn num(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("not a number: {other:?}"),
    }
}

fn buckets(s: &Sample) -> Vec<(f64, f64)> {
    match &s.value {
        Value::Histogram(b) => b.iter().map(|h| (h.less_than, h.count)).collect(),
        other => panic!("not a histogram: {other:?}"),
    }
}

fn le(b: &[(f64, f64)], bound: f64) -> f64 {
    b.iter().find(|(l, _)| *l == bound).map(|(_, c)| *c).expect("bucket")
}

#[test]
fn every_family_is_exported_with_the_values_recorded() {
    let m = common::exercised();
    let s = scrape(&m);
    for f in common::FAMILIES {
        assert!(s.samples.iter().any(|x| x.metric == *f), "missing {f}");
    }
    let tm = [("tenant", "team-a"), ("model", "m1")];
    let ok = [
        ("tenant", "team-a"),
        ("model", "m1"),
        ("endpoint", "http://e1:8000"),
        ("status", "200"),
    ];
    let ok_counter = one(&s, "pyxis_requests_total", &ok);
    assert!(matches!(ok_counter.value, Value::Counter(_)), "typed as a counter");
    assert_eq!(num(ok_counter), 2.0);
    let nf = [("model", "unresolved"), ("endpoint", "none"), ("status", "404")];
    assert_eq!(num(one(&s, "pyxis_requests_total", &nf)), 1.0);

    // Latency histograms take the two 2xx calls only; one of them had no first token.
    assert_eq!(num(one(&s, "pyxis_e2e_request_latency_seconds_count", &tm)), 2.0);
    assert!((num(one(&s, "pyxis_e2e_request_latency_seconds_sum", &tm)) - 1.7).abs() < 1e-9);
    let e2e = buckets(one(&s, "pyxis_e2e_request_latency_seconds", &tm));
    assert_eq!(le(&e2e, 0.1), 0.0);
    assert_eq!(le(&e2e, 0.25), 1.0);
    assert_eq!(le(&e2e, f64::INFINITY), 2.0);
    assert_eq!(num(one(&s, "pyxis_time_to_first_token_seconds_count", &tm)), 1.0);

    // ITL: 10 ms and 20 ms from the first stream, 200 ms from the dropped one, 500 ms batched.
    assert_eq!(num(one(&s, "pyxis_inter_token_latency_seconds_count", &tm)), 4.0);
    assert!((num(one(&s, "pyxis_inter_token_latency_seconds_sum", &tm)) - 0.73).abs() < 1e-9);
    let itl = buckets(one(&s, "pyxis_inter_token_latency_seconds", &tm));
    assert_eq!(le(&itl, 0.01), 1.0);
    assert_eq!(le(&itl, 0.02), 2.0);
    assert_eq!(le(&itl, 0.2), 3.0);
    assert_eq!(le(&itl, 0.5), 4.0);

    assert_eq!(num(one(&s, "pyxis_prompt_tokens_total", &tm)), 200.0);
    assert_eq!(num(one(&s, "pyxis_completion_tokens_total", &tm)), 40.0);
    assert!((num(one(&s, "pyxis_cost_usd_total", &tm)) - 0.75).abs() < 1e-12);

    let q = [("tenant", "team-a"), ("priority_class", "interactive")];
    assert_eq!(num(one(&s, "pyxis_queue_depth", &q)), 7.0);
    assert_eq!(num(one(&s, "pyxis_queue_wait_seconds_count", &q)), 1.0);
    let batch = [("tenant", "team-a"), ("priority_class", "batch")];
    assert_eq!(le(&buckets(one(&s, "pyxis_queue_wait_seconds", &batch)), 2.5), 0.0);
    let rl = [("tenant", "team-a"), ("reason", "rate_limited")];
    assert_eq!(num(one(&s, "pyxis_rejections_total", &rl)), 2.0);

    let e1 = [("endpoint", "http://e1:8000")];
    let e2 = [("endpoint", "http://e2:8000")];
    assert_eq!(
        num(one(&s, "pyxis_endpoint_healthy", &[e1[0], ("runtime_kind", "vllm")])),
        1.0
    );
    assert_eq!(
        num(one(&s, "pyxis_endpoint_healthy", &[e2[0], ("runtime_kind", "tgi")])),
        0.0
    );
    assert_eq!(num(one(&s, "pyxis_endpoint_ejections_total", &e2)), 1.0);
    assert_eq!(num(one(&s, "pyxis_endpoint_waiting_requests", &e1)), 3.0);
    assert_eq!(num(one(&s, "pyxis_endpoint_running_requests", &e1)), 12.0);
    assert_eq!(num(one(&s, "pyxis_endpoint_kv_cache_usage_ratio", &e1)), 0.42);
    assert_eq!(num(one(&s, "pyxis_endpoint_generation_tokens_per_second", &e1)), 1850.5);
    assert_eq!(num(one(&s, "pyxis_endpoint_load_signal_age_seconds", &e1)), 1.25);
    assert_eq!(num(one(&s, "pyxis_endpoint_in_flight_requests", &e1)), 5.0);
    let r = [("model", "m1"), ("reason", "overloaded")];
    assert_eq!(num(one(&s, "pyxis_retries_total", &r)), 1.0);
    assert_eq!(num(one(&s, "pyxis_audit_writer_lag_seconds", &[])), 0.15);
    assert_eq!(num(one(&s, "pyxis_audit_queued_records", &[])), 9.0);
}

#[test]
fn tenants_past_the_cap_fold_into_other_and_the_folds_are_counted() {
    let m = Metrics::new(MetricsConfig {
        max_tenants: 3,
        ..MetricsConfig::default()
    });
    for t in ["t0", "t1", "t2", "t3", "t4", "t3"] {
        m.request_done(&RequestRecord {
            tenant: t,
            model: "m",
            endpoint: Some("e"),
            status: 200,
            e2e_s: 0.1,
            ..RequestRecord::default()
        });
    }
    m.rejected("t9", "quota");
    let s = scrape(&m);
    let tenants: std::collections::BTreeSet<&str> = s
        .samples
        .iter()
        .filter(|x| x.metric == "pyxis_requests_total")
        .filter_map(|x| x.labels.get("tenant"))
        .collect();
    assert_eq!(tenants.into_iter().collect::<Vec<_>>(), ["other", "t0", "t1", "t2"]);
    assert_eq!(num(one(&s, "pyxis_requests_total", &[("tenant", "other")])), 3.0);
    assert_eq!(num(one(&s, "pyxis_rejections_total", &[("tenant", "other")])), 1.0);
    assert_eq!(
        num(one(&s, "pyxis_label_values_folded_total", &[("label", "tenant")])),
        4.0
    );
    // A tenant declared later (e.g. by a reload) keeps its name even past the cap.
    m.declare_tenants(["vip"]);
    m.rejected("vip", "quota");
    let s = scrape(&m);
    assert_eq!(num(one(&s, "pyxis_rejections_total", &[("tenant", "vip")])), 1.0);
}

#[test]
fn a_forgotten_endpoint_stops_reporting_gauges_but_keeps_counters() {
    let m = common::exercised();
    m.forget_endpoint("http://e2:8000");
    m.forget_endpoint("http://e1:8000");
    m.forget_endpoint("http://never-seen");
    let text = m.encode();
    assert!(!text.contains("pyxis_endpoint_healthy{"), "{text}");
    assert!(!text.contains("pyxis_endpoint_in_flight_requests{"));
    assert!(!text.contains("pyxis_endpoint_kv_cache_usage_ratio{"));
    assert!(text.contains("pyxis_endpoint_ejections_total{endpoint=\"http://e2:8000\"} 1"));
    // A kind change replaces the health series instead of leaving the old kind behind.
    m.endpoint_health("http://e1:8000", "vllm", true);
    m.endpoint_health("http://e1:8000", "sglang", true);
    let text = m.encode();
    assert!(!text.contains("runtime_kind=\"vllm\""), "{text}");
    assert!(text.contains("runtime_kind=\"sglang\""));
}

#[test]
fn openmetrics_is_served_to_scrapers_that_ask_for_it() {
    let m = common::exercised();
    let (om, ct) = m.encode_for_accept(Some(
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    ));
    assert_eq!(ct, pyxis_telemetry::OPENMETRICS_TEXT);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# UNIT pyxis_cost_usd usd"));
    let (text, ct) = m.encode_for_accept(None);
    assert_eq!(ct, m.content_type());
    assert!(ct.starts_with("text/plain; version=0.0.4"));
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    assert!(text.contains("# TYPE pyxis_cost_usd_total counter"));
}

#[test]
fn promtool_check_metrics_accepts_the_exposition() {
    let m = common::exercised();
    // Label values that need escaping must survive the strict parser too.
    m.endpoint_health("http://odd\"host\\x:1\n", "vllm", true);
    let text = m.encode();
    let required = std::env::var("PYXIS_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !required,
                "promtool is not installed but PYXIS_REQUIRE_PROMTOOL=1 (apt-get install -y prometheus)"
            );
            eprintln!(
                "NOT RUN: promtool is not installed (apt-get install -y prometheus); the exposition was not checked by promtool"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{report}\n---\n{text}"
    );
    assert!(report.trim().is_empty(), "promtool reported problems:\n{report}");
}
