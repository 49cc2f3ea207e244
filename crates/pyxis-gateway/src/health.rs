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

/// Reads the runtime's version where its kind has a version route (facts: runtimes.md §0).
async fn fetch_version(client: &reqwest::Client, ep: &Endpoint) -> Option<String> {
    let path = match ep.kind {
        RuntimeKind::Vllm | RuntimeKind::TensorrtLlm => "/version",
        RuntimeKind::Ollama => "/api/version",
        RuntimeKind::Tgi => "/info",
        RuntimeKind::Triton => "/v2",
        _ => return None,
    };
    let mut rb = client.get(format!("{}{path}", ep.url)).timeout(TIMEOUT);
    if let Some(k) = &ep.api_key {
        rb = rb.bearer_auth(k);
    }
    let v: serde_json::Value = rb.send().await.ok()?.json().await.ok()?;
    v.get("version").and_then(|v| v.as_str()).map(str::to_string)
}

pub async fn check_all(st: &AppState) {
    let view = st.view();
    let checks = view.endpoints.iter().map(|ep| {
        let ep: Arc<Endpoint> = ep.clone();
        let client = st.client.clone();
        async move {
            let ok = check(&client, &ep).await;
            if ok
                && ep.version().is_none()
                && let Some(v) = fetch_version(&client, &ep).await
                && let Ok(mut slot) = ep.runtime_version.write()
            {
                *slot = Some(v);
            }
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
