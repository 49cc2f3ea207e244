//! Shared state of a running gateway.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock, RwLock};

use pyxis_telemetry::{Metrics, TelemetryGuard};

use crate::admission::Admission;
use crate::audit::AuditSink;
use crate::auth::KeyCache;
use crate::fleet::{FleetView, SimManager};

pub struct AppState {
    view: RwLock<Arc<FleetView>>,
    pub keys: KeyCache,
    /// For health checks and identity probes.
    pub client: reqwest::Client,
    /// For inference calls (the data plane).
    pub upstream: crate::upstream::UpstreamClient,
    pub audit: AuditSink,
    pub sims: SimManager,
    /// Tie-breaker for the router, so equal endpoints share load.
    pub rotation: AtomicUsize,
    /// For the admin API's reads (audit, usage).
    pub store: pyxis_store::Store,
    /// SHA-256 of the admin key, when one is configured.
    pub admin_key_hash: Option<String>,
    /// Per-tenant quotas (in memory, or shared by replicas through Redis).
    pub quotas: pyxis_quota::Quotas,
    /// The fair queues in front of each model's endpoints.
    pub admission: Admission,
    pub metrics: Arc<Metrics>,
    /// The process's log and trace setup, for changing the log level while running (set by the binary).
    pub telemetry: OnceLock<Arc<TelemetryGuard>>,
    /// Request spans are made only when traces are exported (they cost ~10 µs a request).
    pub traces: bool,
    /// One router per model (learned state survives reloads).
    pub routers: crate::routing::Routers,
    /// Open client connections per I/O thread (set by `Gateway::start`).
    pub io_load: OnceLock<crate::cores::IoLoad>,
}

impl AppState {
    // Called once, by `Gateway::start`, with the parts it has just built.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        view: FleetView,
        store: pyxis_store::Store,
        client: reqwest::Client,
        upstream: crate::upstream::UpstreamClient,
        audit: AuditSink,
        sims: SimManager,
        admin_key: Option<&str>,
        quotas: pyxis_quota::Quotas,
        metrics: Arc<Metrics>,
        traces: bool,
    ) -> Self {
        let admission = Admission::default();
        admission.sync(&view);
        declare(&metrics, &view);
        let routers = crate::routing::Routers::default();
        routers.sync(&view);
        AppState {
            view: RwLock::new(Arc::new(view)),
            keys: KeyCache::new(store.clone()),
            client,
            upstream,
            audit,
            sims,
            rotation: AtomicUsize::new(0),
            store,
            admin_key_hash: admin_key.map(pyxis_store::hash_key),
            quotas,
            admission,
            metrics,
            telemetry: OnceLock::new(),
            io_load: OnceLock::new(),
            traces,
            routers,
        }
    }

    /// The current view. Requests hold the `Arc` they got for their whole life, so a reload never
    /// changes the ground under a request in flight.
    pub fn view(&self) -> Arc<FleetView> {
        match self.view.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn swap_view(&self, view: FleetView) {
        self.admission.sync(&view);
        self.routers.sync(&view);
        declare(&self.metrics, &view);
        let old = self.view();
        for ep in &old.endpoints {
            if !view.endpoints.iter().any(|e| e.url == ep.url) {
                self.metrics.forget_endpoint(&ep.url);
                self.routers.forget(&ep.url);
            }
        }
        let new = Arc::new(view);
        match self.view.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// Gives the fleet's tenants, models and endpoints their own label values before any overflow folds
/// into `other`.
fn declare(metrics: &Metrics, view: &FleetView) {
    metrics.declare_tenants(view.tenants.keys().map(String::as_str));
    metrics.declare_models(view.models.keys().map(String::as_str));
    metrics.declare_endpoints(view.endpoints.iter().map(|e| e.url.as_str()));
}
