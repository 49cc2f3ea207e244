//! Names, help texts and units of every family, registered under the `pyxis_` prefix.

use prometheus_client::registry::{Registry, Unit};

use super::Metrics;

fn units(s: &str) -> Unit {
    Unit::Other(s.to_string())
}

pub(super) fn all(r: &mut Registry, m: &Metrics) {
    r.register(
        "requests",
        "Finished inference requests by tenant, model, endpoint and HTTP status",
        m.requests.clone(),
    );
    r.register_with_unit(
        "time_to_first_token",
        "Time from request arrival to the first content token, successful requests",
        Unit::Seconds,
        m.tm.ttft.clone(),
    );
    r.register_with_unit(
        "inter_token_latency",
        "Time between consecutive content chunks of a stream",
        Unit::Seconds,
        m.tm.itl.clone(),
    );
    r.register_with_unit(
        "e2e_request_latency",
        "Time from request arrival to the end of the response, successful requests",
        Unit::Seconds,
        m.tm.e2e.clone(),
    );
    r.register_with_unit(
        "prompt",
        "Prompt (input) tokens processed",
        units("tokens"),
        m.tm.prompt.clone(),
    );
    r.register_with_unit(
        "completion",
        "Completion (output) tokens generated",
        units("tokens"),
        m.tm.completion.clone(),
    );
    r.register_with_unit(
        "cost",
        "Attributed cost of calls in US dollars (cost model, docs/cost.md)",
        units("usd"),
        m.tm.cost.clone(),
    );
    r.register(
        "queue_depth",
        "Requests waiting in the admission queue",
        m.queue_depth.clone(),
    );
    r.register_with_unit(
        "queue_wait",
        "Time a request waited in the admission queue",
        Unit::Seconds,
        m.queue_wait.clone(),
    );
    r.register(
        "rejections",
        "Requests refused before routing, by tenant and reason",
        m.rejections.clone(),
    );
    r.register(
        "endpoint_healthy",
        "1 when the endpoint passes its health check, else 0",
        m.healthy.clone(),
    );
    r.register(
        "endpoint_ejections",
        "Times an endpoint was taken out of rotation",
        m.ejections.clone(),
    );
    r.register(
        "endpoint_waiting_requests",
        "Requests waiting inside the runtime, from its last load scrape",
        m.waiting.clone(),
    );
    r.register(
        "endpoint_running_requests",
        "Requests running inside the runtime, from its last load scrape",
        m.running.clone(),
    );
    r.register_with_unit(
        "endpoint_kv_cache_usage",
        "Fraction of the runtime's KV cache in use, from its last load scrape",
        units("ratio"),
        m.kv_use.clone(),
    );
    r.register(
        "endpoint_generation_tokens_per_second",
        "Tokens per second the runtime generates, from its last load scrape",
        m.tokens_per_s.clone(),
    );
    r.register_with_unit(
        "endpoint_load_signal_age",
        "Age of the endpoint's last load scrape",
        Unit::Seconds,
        m.signal_age.clone(),
    );
    r.register(
        "endpoint_in_flight_requests",
        "Requests the gateway has in flight on the endpoint",
        m.in_flight.clone(),
    );
    r.register(
        "retries",
        "Upstream attempts retried on another endpoint, by model and reason",
        m.retries.clone(),
    );
    r.register_with_unit(
        "audit_writer_lag",
        "Age of the oldest record in the audit writer's last batch when it was written",
        Unit::Seconds,
        m.audit_lag.clone(),
    );
    r.register(
        "audit_queued_records",
        "Audit records waiting for the writer",
        m.audit_queued.clone(),
    );
    r.register(
        "io_thread_connections",
        "Client connections open on each of the gateway's I/O threads",
        m.io_connections.clone(),
    );
}
