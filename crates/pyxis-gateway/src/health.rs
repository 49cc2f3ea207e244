//! Active health checks: every endpoint's health route, polled on a period.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pyxis_resources::RuntimeKind;

use crate::fleet::Endpoint;
use crate::state::AppState;

pub const PERIOD: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(2);

/// The liveness route of each runtime kind (facts: shared/reference/runtimes.md §0).
fn health_path(kind: RuntimeKind) -> &'static str {
    match kind {
        RuntimeKind::Triton => "/v2/health/ready",
        RuntimeKind::Ollama => "/api/version",
        RuntimeKind::Openai => "/v1/models",
        _ => "/health",
    }
}

pub async fn check(client: &reqwest::Client, ep: &Endpoint) -> bool {
    let mut rb = client
        .get(format!("{}{}", ep.url, health_path(ep.kind)))
        .timeout(TIMEOUT);
    if let Some(k) = &ep.api_key {
        rb = rb.bearer_auth(k);
    }
    matches!(rb.send().await, Ok(r) if r.status().is_success())
}

pub async fn check_all(st: &AppState) {
    let view = st.view();
    let checks = view.endpoints.iter().map(|ep| {
        let ep: Arc<Endpoint> = ep.clone();
        let client = st.client.clone();
        async move {
            let ok = check(&client, &ep).await;
            let was = ep.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                if ok {
                    tracing::info!(endpoint = %ep.url, runtime = %ep.runtime, "endpoint healthy");
                } else {
                    tracing::warn!(endpoint = %ep.url, runtime = %ep.runtime, "endpoint unhealthy");
                }
            }
        }
    });
    futures::future::join_all(checks).await;
}
