//! Shared by the integration tests: a registry with every metric method called once or more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyxis_telemetry::{Metrics, MetricsConfig, RequestRecord};

/// Every family the gateway exports, as sample names (histograms by their `_count`).
pub const FAMILIES: &[&str] = &[
    "pyxis_requests_total",
    "pyxis_time_to_first_token_seconds_count",
    "pyxis_inter_token_latency_seconds_count",
    "pyxis_e2e_request_latency_seconds_count",
    "pyxis_prompt_tokens_total",
    "pyxis_completion_tokens_total",
    "pyxis_cost_usd_total",
    "pyxis_queue_depth",
    "pyxis_queue_wait_seconds_count",
    "pyxis_rejections_total",
    "pyxis_endpoint_healthy",
    "pyxis_endpoint_ejections_total",
    "pyxis_endpoint_waiting_requests",
    "pyxis_endpoint_running_requests",
    "pyxis_endpoint_kv_cache_usage_ratio",
    "pyxis_endpoint_generation_tokens_per_second",
    "pyxis_endpoint_load_signal_age_seconds",
    "pyxis_endpoint_in_flight_requests",
    "pyxis_retries_total",
    "pyxis_audit_writer_lag_seconds",
    "pyxis_audit_queued_records",
    "pyxis_label_values_folded_total",
];

pub fn exercised() -> Arc<Metrics> {
    let m = Metrics::new(MetricsConfig {
        max_tenants: 2,
        ..MetricsConfig::default()
    });
    m.declare_models(["m1"]);
    m.declare_endpoints(["http://e1:8000"]);
    m.declare_tenants(["team-a"]);
    let ok = RequestRecord {
        tenant: "team-a",
        model: "m1",
        endpoint: Some("http://e1:8000"),
        status: 200,
        ttft_s: Some(0.04),
        e2e_s: 1.5,
        prompt_tokens: 100,
        completion_tokens: 20,
        cost_usd: 0.25,
    };
    m.request_done(&ok);
    m.request_done(&RequestRecord {
        ttft_s: None,
        e2e_s: 0.2,
        cost_usd: 0.5,
        ..ok.clone()
    });
    // Not a latency sample, but counted with its status and no endpoint.
    m.request_done(&RequestRecord {
        model: pyxis_telemetry::UNRESOLVED,
        endpoint: None,
        status: 404,
        ttft_s: None,
        e2e_s: 0.001,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_usd: 0.0,
        ..ok.clone()
    });
    let t0 = Instant::now();
    let mut rec = m.stream_recorder("team-a", "m1");
    for ms in [0, 10, 30] {
        rec.on_chunk(t0 + Duration::from_millis(ms));
    }
    assert!(rec.pending());
    rec.finish();
    {
        // Dropped without finish: still merged.
        let mut rec = m.stream_recorder("team-a", "m1");
        rec.on_chunk(t0);
        rec.on_chunk(t0 + Duration::from_millis(200));
    }
    m.itl_batch("team-a", "m1", &[0.5]);
    m.queue_depth("team-a", "interactive", 7);
    m.queue_wait("team-a", "interactive", 0.02);
    m.queue_wait("team-a", "batch", 3.0);
    m.rejected("team-a", "rate_limited");
    m.rejected("team-a", "rate_limited");
    m.endpoint_health("http://e1:8000", "vllm", true);
    m.endpoint_health("http://e2:8000", "tgi", false);
    m.ejected("http://e2:8000");
    m.load_signal("http://e1:8000", 3.0, 12.0, 0.42, 1850.5, 1.25);
    m.in_flight("http://e1:8000", 5);
    m.retry("m1", "overloaded");
    m.audit_lag(0.15, 9);
    m
}
