//! Shared state of a running gateway.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};

use crate::admission::Admission;
use crate::audit::AuditSink;
use crate::auth::KeyCache;
use crate::fleet::{FleetView, SimManager};

pub struct AppState {
    view: RwLock<Arc<FleetView>>,
    pub keys: KeyCache,
    pub client: reqwest::Client,
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
}

impl AppState {
    pub fn new(
        view: FleetView,
        store: pyxis_store::Store,
        client: reqwest::Client,
        audit: AuditSink,
        sims: SimManager,
        admin_key: Option<&str>,
        quotas: pyxis_quota::Quotas,
    ) -> Self {
        let admission = Admission::default();
        admission.sync(&view);
        AppState {
            view: RwLock::new(Arc::new(view)),
            keys: KeyCache::new(store.clone()),
            client,
            audit,
            sims,
            rotation: AtomicUsize::new(0),
            store,
            admin_key_hash: admin_key.map(pyxis_store::hash_key),
            quotas,
            admission,
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
        let new = Arc::new(view);
        match self.view.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}
