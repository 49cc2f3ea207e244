//! The Pyxis gateway: one OpenAI-compatible endpoint in front of a fleet of runtimes.
//!
//! Request path (see ARCHITECTURE.md): `server` (accept) → `routes` (request id) →
//! `proxy::handle` (auth via `auth::KeyCache`, validation via `pyxis_protocol`, model lookup and
//! tenant policy in the current `fleet::FleetView`, endpoint choice via `pyxis_router`) →
//! `upstream` call on the request's own task → whole body or `relay` for streams →
//! `call::Call` finishes once → `audit` writer → store.

pub mod admin;
pub mod admission;
pub mod audit;
pub mod auth;
pub mod call;
pub mod cores;
pub mod error;
pub mod fleet;
pub mod health;
pub mod proxy;
pub mod relay;
pub mod reload;
pub mod routes;
pub mod routing;
pub mod server;
pub mod state;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyxis_resources::Fleet;
use pyxis_store::Store;
use tokio::task::JoinHandle;

use crate::fleet::SimManager;
use crate::state::AppState;

/// Name of the tenant made for the demo fleet.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The fleet file; `None` serves `fleet`, or else the embedded demo fleet.
    pub fleet_file: Option<PathBuf>,
    /// A fleet given directly (Kubernetes mode: the first one the watch produced).
    pub fleet: Option<Fleet>,
    /// Key for the `default` tenant (from `PYXIS_DEMO_API_KEY`).
    pub demo_api_key: Option<String>,
    /// Bound on how long a finished call's audit record may wait before it is durable.
    pub audit_flush: Duration,
    /// Key of the admin API, which reads every tenant's audit and usage (`PYXIS_ADMIN_KEY`).
    pub admin_key: Option<String>,
    /// PostgreSQL instead of the embedded SQLite store (several gateway replicas share it).
    pub database_url: Option<String>,
    /// Redis for quota state shared by several gateway replicas; without it quotas live in memory.
    pub redis_url: Option<String>,
    /// Make a trace span per request (set when OpenTelemetry export is configured).
    pub traces: bool,
    /// I/O threads serving client connections; 0 means one per available CPU.
    pub io_threads: usize,
}

impl ServeConfig {
    /// Defaults for everything but where to listen and keep state.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServeConfig {
            listen,
            data_dir,
            fleet_file: None,
            fleet: None,
            demo_api_key: None,
            audit_flush: Duration::from_millis(100),
            admin_key: None,
            database_url: None,
            redis_url: None,
            traces: false,
            io_threads: 0,
        }
    }
}

/// What happened to the `default` tenant's key at start.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultKey {
    /// The fleet has no `default` tenant.
    None,
    /// The key from `PYXIS_DEMO_API_KEY`.
    Configured(String),
    /// Made now; shown this once.
    Generated(String),
    /// Made on an earlier start; not recoverable (only its hash is stored).
    Existing,
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub default_key: DefaultKey,
    pub state: Arc<AppState>,
    shutdown_tx: tokio::sync::oneshot::Sender<()>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    audit_writer: JoinHandle<()>,
    store: Store,
    session: i64,
    cores: Arc<cores::Cores>,
}

impl Gateway {
    /// Loads the fleet, opens the store, starts simulated engines, binds the listener and serves.
    pub async fn start(cfg: ServeConfig) -> anyhow::Result<Gateway> {
        let fleet = match (&cfg.fleet_file, &cfg.fleet) {
            (Some(p), _) => Fleet::load_file(p).map_err(|e| anyhow::anyhow!("{e}"))?,
            (None, Some(f)) => f.clone(),
            (None, None) => Fleet::demo(),
        };
        let store = match &cfg.database_url {
            Some(url) => Store::connect(url).await?,
            None => Store::open(&cfg.data_dir).await?,
        };
        for t in &fleet.tenants {
            store.ensure_tenant(&t.metadata.name).await?;
        }
        let default_key = if fleet.tenant(DEFAULT_TENANT).is_none() {
            DefaultKey::None
        } else if let Some(k) = &cfg.demo_api_key {
            store.add_key(DEFAULT_TENANT, Some(k)).await?;
            DefaultKey::Configured(k.clone())
        } else if store.tenant_has_active_key(DEFAULT_TENANT).await? {
            DefaultKey::Existing
        } else {
            DefaultKey::Generated(store.add_key(DEFAULT_TENANT, None).await?.key)
        };

        let client = reqwest::Client::builder()
            .connect_timeout(proxy::CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        let io_threads = match cfg.io_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let cores = Arc::new(cores::Cores::start(io_threads).map_err(|e| {
            anyhow::anyhow!("cannot start {io_threads} I/O threads: {e}. Try fewer with --io-threads.")
        })?);
        let upstream = upstream::UpstreamClient::new(proxy::CONNECT_TIMEOUT, Duration::from_secs(90), cores.len() + 1);
        let sims = SimManager::default();
        let view = sims.build(&fleet, None).await?;
        let session = store.begin_audit_session(cfg.audit_flush.as_millis() as i64).await?;
        for gap in store.unclean_sessions(Some(session)).await? {
            tracing::warn!(
                session = gap.session,
                last_seq = gap.last_seq,
                "an earlier run stopped without draining its audit writer (crash or kill -9): calls that finished within {} ms after its last flush may be missing; `pyxis audit verify` lists such runs",
                gap.flush_delay_ms
            );
        }
        let quotas = match &cfg.redis_url {
            Some(url) => pyxis_quota::Quotas::redis(url, "pyxis:quota:").await.map_err(|e| {
                anyhow::anyhow!("cannot use Redis at {url} for quotas: {e}. Check --redis-url, or leave it out to keep quotas in memory.")
            })?,
            None => pyxis_quota::Quotas::memory(),
        };
        let metrics = pyxis_telemetry::Metrics::new(pyxis_telemetry::MetricsConfig::default());
        let (audit, audit_writer) =
            audit::spawn_writer(store.clone(), cfg.audit_flush, Some(session), Some(metrics.clone()));
        let st = Arc::new(AppState::new(
            view,
            store.clone(),
            client,
            upstream,
            audit,
            sims,
            cfg.admin_key.as_deref(),
            quotas,
            metrics,
            cfg.traces,
        ));
        st.keys.refresh().await;
        let _ = st.io_load.set(cores.load());

        let listener = tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}. Is another server using it? Pick another with --listen.",
                cfg.listen
            )
        })?;
        let addr = listener.local_addr()?;
        // One health round before serving, so the first calls already know each runtime's health,
        // version (audit lineage) and load. Bounded: a runtime that hangs cannot hold up the start;
        // the loop below keeps checking.
        if tokio::time::timeout(health::FIRST_ROUND, health::check_all(&st))
            .await
            .is_err()
        {
            tracing::warn!(
                "the first health check of the fleet took over {} s; serving anyway (endpoints not yet checked count as healthy)",
                health::FIRST_ROUND.as_secs()
            );
        }
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let app = routes::router(st.clone());
        let server = tokio::spawn(server::serve(listener, app, cores.clone(), async {
            let _ = shutdown_rx.await;
        }));

        let mut background = Vec::new();
        let s = st.clone();
        background.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(health::PERIOD).await;
                health::check_all(&s).await;
            }
        }));
        let s = st.clone();
        background.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(auth::EPOCH_POLL).await;
                s.keys.refresh().await;
            }
        }));
        if let Some(p) = &cfg.fleet_file {
            background.push(tokio::spawn(reload::watch(st.clone(), p.clone())));
        }
        Ok(Gateway {
            addr,
            default_key,
            state: st,
            shutdown_tx,
            server,
            background,
            audit_writer,
            store,
            session,
            cores,
        })
    }

    /// Swaps in every fleet `fleets` yields (Kubernetes mode), until it ends or the gateway stops.
    pub fn follow_fleets(&mut self, fleets: impl futures::Stream<Item = Fleet> + Send + 'static) {
        self.background
            .push(tokio::spawn(reload::follow(self.state.clone(), fleets)));
    }

    /// Where this gateway's state lives (the SQLite file, or the PostgreSQL URL without password).
    pub fn state_location(&self) -> &str {
        self.store.location()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish, drains the audit writer, stops engines.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(());
        let served = self.server.await;
        for b in self.background {
            b.abort();
            let _ = b.await;
        }
        self.state.sims.shutdown().await;
        // The last sink lives in the state; once no one holds the state the writer drains and ends.
        drop(self.state);
        if tokio::time::timeout(Duration::from_secs(30), self.audit_writer)
            .await
            .is_ok()
        {
            self.store.end_audit_session(self.session).await?;
        } else {
            tracing::error!("audit writer did not drain within 30 s; this run will show as a possible gap");
        }
        self.store.close().await;
        // Last: pooled database and Redis connections opened on an I/O thread are polled by it.
        drop(self.cores);
        served?;
        Ok(())
    }
}
