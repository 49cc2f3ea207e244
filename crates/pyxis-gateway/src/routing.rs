//! The gateway's side of routing: one `pyxis_router::Router` per model (its learned TTFT model,
//! prefix index, sessions and ejections survive config reloads), its config from the model's
//! `RoutingPolicy`, and the snapshot of endpoints it decides over.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::HeaderMap;
use pyxis_resources::RoutingPolicySpec;
use pyxis_router::{EjectionConfig, EndpointView, LoadSignal, RouteRequest, Router, RoutingConfig, Weights};

use crate::fleet::{Endpoint, FleetView, ModelEntry};

/// Attempts per request unless the policy says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Longest wait for an attempt's response headers unless the policy says otherwise.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Retry settings of a model, from its policy.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_attempts: u32,
    pub attempt_timeout: Duration,
}

pub fn retry(policy: Option<&RoutingPolicySpec>) -> Retry {
    let r = policy.and_then(|p| p.retry.as_ref());
    Retry {
        max_attempts: r.and_then(|r| r.max_attempts).unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
        attempt_timeout: r
            .and_then(|r| r.attempt_timeout_ms)
            .map_or(DEFAULT_ATTEMPT_TIMEOUT, Duration::from_millis),
    }
}

/// The router's config from a `RoutingPolicy` (absent fields keep the router's defaults).
pub fn config(policy: Option<&RoutingPolicySpec>) -> RoutingConfig {
    let mut cfg = RoutingConfig::default();
    let Some(p) = policy else { return cfg };
    if let Some(w) = &p.weights {
        let d = Weights::default();
        cfg.weights = Weights {
            load: w.load.unwrap_or(d.load),
            latency: w.latency.unwrap_or(d.latency),
            prefix: w.prefix.unwrap_or(d.prefix),
            cost: w.cost.unwrap_or(d.cost),
            session: w.session.unwrap_or(d.session),
        };
    }
    cfg.latency_budget_ms = p.latency_budget_ms;
    cfg.hardware = p.hardware.clone();
    cfg.regions = p.regions.clone();
    if let Some(e) = &p.ejection {
        let d = EjectionConfig::default();
        cfg.ejection = EjectionConfig {
            consecutive_failures: e.consecutive_failures.unwrap_or(d.consecutive_failures),
            base_ms: e.base_ms.unwrap_or(d.base_ms),
            max_ms: e.max_ms.unwrap_or(d.max_ms),
        };
    }
    cfg
}

/// A model's router, shared by its requests.
pub type SharedRouter = Arc<Mutex<Router>>;

pub fn lock(r: &SharedRouter) -> MutexGuard<'_, Router> {
    match r.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

#[derive(Default)]
pub struct Routers {
    by_model: Mutex<HashMap<String, SharedRouter>>,
}

impl Routers {
    fn map(&self) -> MutexGuard<'_, HashMap<String, SharedRouter>> {
        match self.by_model.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Brings the routers in line with a (new) view: one per model, configs from the policies.
    pub fn sync(&self, view: &FleetView) {
        let mut map = self.map();
        map.retain(|name, _| view.models.contains_key(name));
        for (name, model) in &view.models {
            let cfg = config(model.policy.as_ref());
            let r = map
                .entry(name.clone())
                .or_insert_with(|| Arc::new(Mutex::new(Router::new(cfg.clone()))));
            lock(r).set_config(cfg);
        }
    }

    /// Drops what every router learned about an endpoint that left the fleet.
    pub fn forget(&self, endpoint: &str) {
        for r in self.map().values() {
            lock(r).forget(endpoint);
        }
    }

    pub fn get(&self, model: &str) -> Option<SharedRouter> {
        self.map().get(model).cloned()
    }

    pub fn all(&self) -> Vec<SharedRouter> {
        self.map().values().cloned().collect()
    }
}

/// What the router is told about the request.
pub struct RouteInput {
    pub prompt_tokens: u32,
    pub prefix_blocks: Vec<u64>,
    pub latency_budget_ms: Option<u64>,
    pub session: Option<String>,
}

impl RouteInput {
    /// From the request: the prompt's blocks (`prompt_json`: the `messages`, `prompt` or `input`
    /// value as the client wrote it), the latency budget header, the session header.
    pub fn new(prompt_json: &[u8], prompt_tokens: u32, headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        RouteInput {
            prompt_tokens,
            prefix_blocks: pyxis_router::prefix_blocks(prompt_json, pyxis_router::DEFAULT_BLOCK_BYTES),
            latency_budget_ms: header("x-pyxis-latency-budget-ms").and_then(|v| v.trim().parse().ok()),
            session: header("x-session-id").map(str::to_string),
        }
    }

    pub fn request<'a>(&'a self, model: &ModelEntry) -> RouteRequest<'a> {
        RouteRequest {
            model_weights_gib: model.weights_gib,
            prompt_tokens: self.prompt_tokens,
            prefix_blocks: &self.prefix_blocks,
            latency_budget_ms: self.latency_budget_ms,
            session: self.session.as_deref(),
            ..RouteRequest::default()
        }
    }
}

/// The router's snapshot of one endpoint.
pub fn view<'a>(ep: &'a Endpoint, now_ms: u64) -> EndpointView<'a> {
    EndpointView {
        key: &ep.url,
        healthy: ep.is_healthy(),
        hardware: &ep.hardware,
        region: ep.region.as_deref(),
        memory_gib: ep.memory_gib,
        in_flight: ep.in_flight.load(Ordering::Relaxed),
        load: ep.load_sample().map(|l| LoadSignal {
            waiting: u32::try_from(l.waiting).unwrap_or(u32::MAX),
            running: u32::try_from(l.running).unwrap_or(u32::MAX),
            kv_use: l.kv_use.unwrap_or(0.0),
            tokens_per_s: l.tokens_per_s.unwrap_or(0.0),
            age_ms: now_ms.saturating_sub(l.at_ms),
        }),
        price_per_mtok: ep.pricing.per_million_tokens,
        adapters: &[],
    }
}
