//! Shared state of a running gateway.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};

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
}

impl AppState {
    pub fn new(view: FleetView, keys: KeyCache, client: reqwest::Client, audit: AuditSink, sims: SimManager) -> Self {
        AppState {
            view: RwLock::new(Arc::new(view)),
            keys,
            client,
            audit,
            sims,
            rotation: AtomicUsize::new(0),
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
        let new = Arc::new(view);
        match self.view.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}
