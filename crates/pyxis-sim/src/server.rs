//! One engine's HTTP server: shared state, the fault gate, admin routes, start, crash and stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use pyxis_sim_core::{Engine, EngineConfig, HardwareProfile, ModelProfile, Tokenizer, find_hardware, find_model};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::faults::{FaultConfig, FaultState};
use crate::runner::EngineRunner;
use crate::{EngineSpec, Surface};

/// Requests counted at the HTTP layer (TGI's failure counters, overload rejections).
#[derive(Default)]
pub(crate) struct HttpCounters {
    pub requests: AtomicU64,
    pub overloaded: AtomicU64,
    pub validation: AtomicU64,
    pub injected: AtomicU64,
}

/// Everything a handler needs.
pub(crate) struct AppState {
    pub spec: EngineSpec,
    pub surface: Surface,
    pub runner: EngineRunner,
    pub faults: FaultState,
    pub tokenizer: Tokenizer,
    pub model: &'static ModelProfile,
    pub hardware: &'static HardwareProfile,
    pub config: EngineConfig,
    pub served: Vec<String>,
    pub created: u64,
    pub in_flight: Arc<AtomicU32>,
    pub counters: HttpCounters,
    pub lora_paths: Mutex<BTreeMap<String, String>>,
    seq: AtomicU64,
    /// True once the engine crashed or is shutting down.
    pub down: watch::Sender<bool>,
}

/// Counts a request as in flight until dropped; remembers when (engine time) it came in.
pub(crate) struct InFlight {
    count: Arc<AtomicU32>,
    /// Engine time the request reached the server (after any injected latency).
    pub received: f64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppState {
    /// A fresh response id (`chatcmpl-…`, `cmpl-…`).
    pub(crate) fn next_id(&self, prefix: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let a = pyxis_sim_core::rng::mix64(self.spec.seed ^ n ^ 0x5eed);
        format!("{prefix}-{a:016x}")
    }

    /// The base model name (first served name).
    pub(crate) fn model_name(&self) -> &str {
        self.served.first().map_or(self.spec.model.as_str(), |s| s.as_str())
    }

    /// Maps a requested model name to the adapter to use (`None` = base model).
    pub(crate) fn resolve_model(&self, name: &str) -> Result<Option<String>, ApiError> {
        if self.served.iter().any(|s| s == name) {
            return Ok(None);
        }
        if self.runner.with(|e| e.loras().iter().any(|l| l == name)) {
            return Ok(Some(name.to_string()));
        }
        Err(ApiError::NotFound {
            message: format!(
                "The model `{name}` does not exist. Valid aliases: {}.",
                self.served.join(", ")
            ),
            param: Some("model"),
        })
    }

    /// The fault gate every inference request passes: starting, overload, added latency, injected
    /// errors. Returns the in-flight guard.
    pub(crate) async fn admit(&self) -> Result<InFlight, ApiError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if self.faults.starting() {
            return Err(ApiError::Unavailable("The engine is starting; retry later.".into()));
        }
        let f = self.faults.get();
        let cur = self.in_flight.load(Ordering::Relaxed);
        if f.overload || f.max_concurrent.is_some_and(|m| cur >= m) {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::Overloaded);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut guard = InFlight {
            count: self.in_flight.clone(),
            received: self.runner.now(),
        };
        if f.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
            guard.received = self.runner.now();
        }
        if self.faults.roll_error() {
            self.counters.injected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::Internal("injected fault: internal server error".into()));
        }
        Ok(guard)
    }

    /// Marks the engine down: the listener closes, streams are cut, the engine stops.
    pub(crate) fn go_down(&self) {
        self.down.send_replace(true);
        self.runner.stop();
    }

    pub(crate) fn is_down(&self) -> bool {
        *self.down.borrow()
    }
}

/// Resolves once the engine is down (a helper so no watch guard lives across an await).
pub(crate) async fn wait_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|d| *d).await;
}

/// A response whose body fails at once: the client sees the connection drop.
pub(crate) fn dropped_connection() -> Response {
    let s = futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("engine crashed")) });
    Response::new(Body::from_stream(s))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The engine configuration a spec describes (profiles found, faults valid, overrides applied).
type Built = (&'static HardwareProfile, &'static ModelProfile, EngineConfig);

/// Resolves a spec's profiles, validates its faults and applies its overrides.
pub(crate) fn build_config(spec: &EngineSpec) -> anyhow::Result<Built> {
    let hardware = find_hardware(&spec.hardware).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown hardware `{}` (known: {})",
            spec.hardware,
            pyxis_sim_core::hardware_names().join(", ")
        )
    })?;
    let model = find_model(&spec.model).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown model `{}` (known: {})",
            spec.model,
            pyxis_sim_core::model_names().join(", ")
        )
    })?;
    spec.faults.validate().map_err(anyhow::Error::msg)?;
    let mut config = EngineConfig::from_profiles(hardware, model)?;
    config.seed = spec.seed;
    spec.tuning.apply(&mut config);
    Ok((hardware, model, config))
}

/// Builds the shared state and checks the spec.
pub(crate) fn build_state(spec: EngineSpec) -> anyhow::Result<Arc<AppState>> {
    let (hardware, model, config) = build_config(&spec)?;
    let mut engine = Engine::new(config.clone());
    let mut paths = BTreeMap::new();
    for l in &spec.tuning.lora_adapters {
        let (name, path) = l.split_once('=').unwrap_or((l.as_str(), l.as_str()));
        engine.load_lora(name)?;
        paths.insert(name.to_string(), path.to_string());
    }
    let served = if spec.served_model_names.is_empty() {
        vec![spec.model.clone()]
    } else {
        spec.served_model_names.clone()
    };
    let speedup = spec.speedup;
    let (down, _) = watch::channel(false);
    Ok(Arc::new(AppState {
        surface: spec.surface,
        faults: FaultState::new(spec.faults.clone(), spec.seed),
        tokenizer: Tokenizer::new(model.vocab),
        runner: EngineRunner::start(engine, speedup),
        model,
        hardware,
        config,
        served,
        created: unix_now(),
        in_flight: Arc::new(AtomicU32::new(0)),
        counters: HttpCounters::default(),
        lora_paths: Mutex::new(paths),
        seq: AtomicU64::new(0),
        down,
        spec,
    }))
}

/// Never answers while the `hang` fault is on; drops the connection once the engine is down.
async fn fault_layer(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut down = s.down.subscribe();
    if s.faults.get().hang {
        crate::server::wait_down(&mut down).await;
        return dropped_connection();
    }
    if s.is_down() {
        return dropped_connection();
    }
    next.run(req).await
}

async fn get_faults(State(s): State<Arc<AppState>>) -> Response {
    axum::Json(s.faults.get()).into_response()
}

async fn set_faults(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let cfg: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid fault set: {e}")).into_response(),
    };
    if let Err(e) = cfg.validate() {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    tracing::info!(engine = %s.spec.name, faults = ?cfg, "fault set changed");
    s.faults.set(cfg.clone());
    axum::Json(cfg).into_response()
}

fn not_found(surface: Surface) -> Response {
    match surface {
        Surface::Vllm => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"detail": "Not Found"})),
        )
            .into_response(),
        Surface::Tgi => StatusCode::NOT_FOUND.into_response(),
        Surface::Ollama => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "404 page not found",
        )
            .into_response(),
    }
}

/// The router for the engine's surface, fault layer included, admin routes outside it.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let surface = state.surface;
    let api = match surface {
        Surface::Vllm => crate::vllm::routes(),
        Surface::Tgi => crate::tgi::routes(),
        Surface::Ollama => crate::ollama::routes(),
    }
    .merge(crate::openai::routes())
    .merge(crate::embed::routes(surface))
    .layer(axum::middleware::from_fn_with_state(state.clone(), fault_layer));
    Router::new()
        .merge(api)
        .route("/admin/faults", get(get_faults).post(set_faults))
        .fallback(move || async move { not_found(surface) })
        .with_state(state)
}

/// Serves `state` on `listen` until it goes down; returns the bound address and the server task.
pub(crate) async fn serve(
    state: Arc<AppState>,
    listen: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let mut down = state.down.subscribe();
    let watcher = state.clone();
    // Crash timer: fires the `crash` / `crash_after_s` faults.
    tokio::spawn(async move {
        let mut down = watcher.down.subscribe();
        loop {
            if watcher.is_down() {
                return;
            }
            if watcher.faults.crash_in() == Some(Duration::ZERO) {
                tracing::warn!(engine = %watcher.spec.name, "injected crash: closing the listener");
                watcher.go_down();
                return;
            }
            let wait = watcher
                .faults
                .crash_in()
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = crate::server::wait_down(&mut down) => return,
            }
        }
    });
    let name = state.spec.name.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            crate::server::wait_down(&mut down).await;
        };
        // Streams are many small writes; without TCP_NODELAY, Nagle and delayed ACKs hold chunks
        // back by ~40 ms, which would swamp the simulated inter-token latency.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::warn!(engine = %name, error = %e, "simulated engine server stopped with an error");
        }
    });
    Ok((addr, task))
}
