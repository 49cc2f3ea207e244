//! Active health checks and load scraping: every endpoint's health route (per runtime kind, from
//! its adapter), its identity (version, models) once healthy, and its load signal from the
//! runtime's Prometheus metrics, on a period. Kinds without metrics get no sample; routing then
//! falls back to Pyxis's own in-flight count.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pyxis_adapters::probe::{fetch_identity, fetch_load};

use crate::fleet::Endpoint;
use crate::state::AppState;

pub const PERIOD: Duration = Duration::from_secs(2);
/// The most `Gateway::start` waits for the first round of checks before it serves.
pub const FIRST_ROUND: Duration = Duration::from_secs(3);
const TIMEOUT: Duration = Duration::from_secs(2);

pub async fn check(client: &reqwest::Client, ep: &Endpoint) -> bool {
    let adapter = pyxis_adapters::adapter(ep.kind);
    let mut rb = client
        .get(format!("{}{}", ep.url, adapter.health_path()))
        .timeout(TIMEOUT);
    if let Some(k) = &ep.api_key {
        rb = rb.bearer_auth(k);
    }
    matches!(rb.send().await, Ok(r) if r.status().is_success())
}

/// Health, then (once) the runtime's identity, then its load signal.
pub async fn check_endpoint(client: &reqwest::Client, ep: &Endpoint) {
    let ok = check(client, ep).await;
    let adapter = pyxis_adapters::adapter(ep.kind);
    if ok && ep.version().is_none() {
        let id = tokio::time::timeout(TIMEOUT, fetch_identity(client, &ep.url, adapter, ep.api_key.as_deref()))
            .await
            .unwrap_or_default();
        if let Some(v) = id.version
            && let Ok(mut slot) = ep.runtime_version.write()
        {
            *slot = Some(v);
        }
    }
    if ok {
        let now = crate::call::now_ms().max(0) as u64;
        let prev = ep.load_sample();
        let scrape = fetch_load(client, &ep.url, adapter, ep.api_key.as_deref(), prev.as_ref(), now);
        if let Ok(Some(sample)) = tokio::time::timeout(TIMEOUT, scrape).await {
            ep.set_load(sample);
        }
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

pub async fn check_all(st: &AppState) {
    st.upstream.prune_idle();
    let view = st.view();
    let checks = view.endpoints.iter().map(|ep| {
        let ep: Arc<Endpoint> = ep.clone();
        let client = st.client.clone();
        async move { check_endpoint(&client, &ep).await }
    });
    futures::future::join_all(checks).await;
    // Ejected endpoints whose back-off is over: readmitted once their health check passes.
    let now = crate::call::now_ms().max(0) as u64;
    for router in st.routers.all() {
        let due = crate::routing::lock(&router).probe_due(now);
        for url in due {
            if view.endpoints.iter().any(|e| e.url == url && e.is_healthy()) {
                crate::routing::lock(&router).on_success(now, &url);
                tracing::info!(endpoint = %url, "ejected endpoint passed its probe; back in rotation");
            }
        }
    }
}
