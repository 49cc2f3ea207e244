//! The gateway's Prometheus metrics: one registry, bounded labels, cached per (tenant, model) handles.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::exposition;
use crate::histogram::{AtomicHistogram, E2E_BUCKETS, ITL_BUCKETS, QUEUE_WAIT_BUCKETS, TTFT_BUCKETS};
use crate::labels::{
    EndpointKind, EndpointLabel, Interner, LabelName, Lv, ModelReason, RequestLabels, TenantClass, TenantModel,
    TenantReason, ThreadLabel,
};
use crate::stream::StreamRecorder;

mod register;

/// Caps on distinct label values; names past a cap are counted under `other`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub max_tenants: usize,
    pub max_models: usize,
    pub max_endpoints: usize,
    /// Reasons, priority classes and runtime kinds come from code, not clients; the cap is a backstop.
    pub max_small_labels: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_tenants: 100,
            max_models: 500,
            max_endpoints: 1000,
            max_small_labels: 64,
        }
    }
}

/// One finished call, as the gateway's `Call::finish` knows it.
#[derive(Debug, Clone, Default)]
pub struct RequestRecord<'a> {
    pub tenant: &'a str,
    /// The resolved model name; pass [`crate::UNRESOLVED`] when the model was not found, so
    /// client-chosen names never take label slots.
    pub model: &'a str,
    /// The endpoint of the last attempt; `None` when the call never reached one.
    pub endpoint: Option<&'a str>,
    pub status: u16,
    pub ttft_s: Option<f64>,
    pub e2e_s: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

type Hist = Family<TenantModel, AtomicHistogram, fn() -> AtomicHistogram>;
type GaugeF = Gauge<f64, AtomicU64>;

/// The families labelled by (tenant, model), shared with every [`TmHandles`].
pub(crate) struct TmFamilies {
    ttft: Hist,
    itl: Hist,
    e2e: Hist,
    prompt: Family<TenantModel, Counter>,
    completion: Family<TenantModel, Counter>,
    cost: Family<TenantModel, Counter<f64, AtomicU64>>,
}

/// Handles for one (tenant, model), looked up once and kept, so a request does no family lookup
/// for them. Each series is made on first use, so a tenant's failed calls do not create empty
/// latency histograms.
pub(crate) struct TmHandles {
    labels: TenantModel,
    fams: Arc<TmFamilies>,
    ttft: OnceLock<AtomicHistogram>,
    itl: OnceLock<AtomicHistogram>,
    e2e: OnceLock<AtomicHistogram>,
    prompt: OnceLock<Counter>,
    completion: OnceLock<Counter>,
    cost: OnceLock<Counter<f64, AtomicU64>>,
}

impl TmHandles {
    pub(crate) fn itl(&self) -> &AtomicHistogram {
        self.itl.get_or_init(|| self.fams.itl.get_or_create_owned(&self.labels))
    }
    fn ttft(&self) -> &AtomicHistogram {
        self.ttft
            .get_or_init(|| self.fams.ttft.get_or_create_owned(&self.labels))
    }
    fn e2e(&self) -> &AtomicHistogram {
        self.e2e.get_or_init(|| self.fams.e2e.get_or_create_owned(&self.labels))
    }
    fn prompt(&self) -> &Counter {
        self.prompt
            .get_or_init(|| self.fams.prompt.get_or_create_owned(&self.labels))
    }
    fn completion(&self) -> &Counter {
        self.completion
            .get_or_init(|| self.fams.completion.get_or_create_owned(&self.labels))
    }
    fn cost(&self) -> &Counter<f64, AtomicU64> {
        self.cost
            .get_or_init(|| self.fams.cost.get_or_create_owned(&self.labels))
    }
}

pub struct Metrics {
    registry: Registry,
    tenants: Interner,
    models: Interner,
    endpoints: Interner,
    small: Interner,
    per_tm: RwLock<HashMap<Lv, HashMap<Lv, Arc<TmHandles>>>>,
    requests: Family<RequestLabels, Counter>,
    tm: Arc<TmFamilies>,
    queue_depth: Family<TenantClass, Gauge>,
    queue_wait: Family<TenantClass, AtomicHistogram, fn() -> AtomicHistogram>,
    rejections: Family<TenantReason, Counter>,
    healthy: Family<EndpointKind, Gauge>,
    health_kind: Mutex<HashMap<Lv, Lv>>,
    ejections: Family<EndpointLabel, Counter>,
    waiting: Family<EndpointLabel, GaugeF>,
    running: Family<EndpointLabel, GaugeF>,
    kv_use: Family<EndpointLabel, GaugeF>,
    tokens_per_s: Family<EndpointLabel, GaugeF>,
    signal_age: Family<EndpointLabel, GaugeF>,
    in_flight: Family<EndpointLabel, Gauge>,
    retries: Family<ModelReason, Counter>,
    audit_lag: GaugeF,
    audit_queued: Gauge,
    io_connections: Family<ThreadLabel, Gauge>,
}

fn ttft_hist() -> AtomicHistogram {
    AtomicHistogram::new(TTFT_BUCKETS)
}
fn itl_hist() -> AtomicHistogram {
    AtomicHistogram::new(ITL_BUCKETS)
}
fn e2e_hist() -> AtomicHistogram {
    AtomicHistogram::new(E2E_BUCKETS)
}
fn queue_hist() -> AtomicHistogram {
    AtomicHistogram::new(QUEUE_WAIT_BUCKETS)
}

impl Metrics {
    pub fn new(cfg: MetricsConfig) -> Arc<Self> {
        let mut r = Registry::with_prefix("pyxis");
        let folds = Family::<LabelName, Counter>::default();
        r.register(
            "label_values_folded",
            "Observations whose label value was past its cap and counted under other, by label",
            folds.clone(),
        );
        let fold = |label: &'static str| folds.get_or_create_owned(&LabelName { label });
        let m = Metrics {
            tenants: Interner::new(cfg.max_tenants, fold("tenant")),
            models: Interner::new(cfg.max_models, fold("model")),
            endpoints: Interner::new(cfg.max_endpoints, fold("endpoint")),
            small: Interner::new(cfg.max_small_labels, fold("reason_or_class")),
            per_tm: RwLock::new(HashMap::new()),
            requests: Family::default(),
            tm: Arc::new(TmFamilies {
                ttft: Family::new_with_constructor(ttft_hist as fn() -> AtomicHistogram),
                itl: Family::new_with_constructor(itl_hist as fn() -> AtomicHistogram),
                e2e: Family::new_with_constructor(e2e_hist as fn() -> AtomicHistogram),
                prompt: Family::default(),
                completion: Family::default(),
                cost: Family::default(),
            }),
            queue_depth: Family::default(),
            queue_wait: Family::new_with_constructor(queue_hist as fn() -> AtomicHistogram),
            rejections: Family::default(),
            healthy: Family::default(),
            health_kind: Mutex::new(HashMap::new()),
            ejections: Family::default(),
            waiting: Family::default(),
            running: Family::default(),
            kv_use: Family::default(),
            tokens_per_s: Family::default(),
            signal_age: Family::default(),
            in_flight: Family::default(),
            retries: Family::default(),
            audit_lag: GaugeF::default(),
            audit_queued: Gauge::default(),
            io_connections: Family::default(),
            registry: Registry::default(),
        };
        register::all(&mut r, &m);
        Arc::new(Metrics { registry: r, ..m })
    }

    /// The Prometheus text format 0.0.4 (see [`Metrics::content_type`]).
    pub fn encode(&self) -> String {
        exposition::to_prometheus_text(&self.encode_openmetrics())
    }

    /// `text/plain; version=0.0.4`: every Prometheus version, promtool and plain scrapers read it.
    pub fn content_type(&self) -> &'static str {
        exposition::PROMETHEUS_TEXT
    }

    /// OpenMetrics 1.0 text (with `# UNIT` and `# EOF`), for a scraper that asks for it in `Accept`.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(32 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Picks the format by the scraper's `Accept` header: OpenMetrics when asked for, else 0.0.4.
    pub fn encode_for_accept(&self, accept: Option<&str>) -> (String, &'static str) {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (self.encode_openmetrics(), exposition::OPENMETRICS_TEXT)
        } else {
            (self.encode(), exposition::PROMETHEUS_TEXT)
        }
    }

    /// Keeps these tenants' names whatever the cap (e.g. the tenants the fleet declares).
    pub fn declare_tenants<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        names.into_iter().for_each(|n| self.tenants.pin(n));
    }

    /// Keeps these models' names whatever the cap (the fleet's models, on start and on reload).
    pub fn declare_models<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        names.into_iter().for_each(|n| self.models.pin(n));
    }

    /// Keeps these endpoints' names whatever the cap.
    pub fn declare_endpoints<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        names.into_iter().for_each(|n| self.endpoints.pin(n));
    }

    pub(crate) fn handles(&self, tenant: &str, model: &str) -> Arc<TmHandles> {
        let t = self.tenants.get(tenant);
        let m = self.models.get(model);
        if let Some(h) = self.per_tm.read().get(&t).and_then(|by_model| by_model.get(&m)) {
            return h.clone();
        }
        let labels = TenantModel { tenant: t, model: m };
        let h = Arc::new(TmHandles {
            labels: labels.clone(),
            fams: self.tm.clone(),
            ttft: OnceLock::new(),
            itl: OnceLock::new(),
            e2e: OnceLock::new(),
            prompt: OnceLock::new(),
            completion: OnceLock::new(),
            cost: OnceLock::new(),
        });
        self.per_tm
            .write()
            .entry(labels.tenant)
            .or_default()
            .entry(labels.model)
            .or_insert(h)
            .clone()
    }

    /// Records a finished call. Latency histograms take only 2xx calls (an instant 404 is not a
    /// latency sample); the request counter, tokens and cost take every call.
    pub fn request_done(&self, r: &RequestRecord<'_>) {
        let h = self.handles(r.tenant, r.model);
        let labels = RequestLabels {
            tenant: h.labels.tenant.clone(),
            model: h.labels.model.clone(),
            endpoint: self.endpoints.get(r.endpoint.unwrap_or("")),
            status: r.status,
        };
        self.requests.get_or_create(&labels).inc();
        if (200..300).contains(&r.status) {
            if let Some(t) = r.ttft_s {
                h.ttft().observe(t);
            }
            h.e2e().observe(r.e2e_s);
        }
        if r.prompt_tokens > 0 {
            h.prompt().inc_by(r.prompt_tokens);
        }
        if r.completion_tokens > 0 {
            h.completion().inc_by(r.completion_tokens);
        }
        if r.cost_usd.is_finite() && r.cost_usd > 0.0 {
            h.cost().inc_by(r.cost_usd);
        }
    }

    /// A recorder for one stream's inter-token latencies; see [`StreamRecorder`].
    pub fn stream_recorder(&self, tenant: &str, model: &str) -> StreamRecorder {
        StreamRecorder::new(self.handles(tenant, model))
    }

    /// Inter-token latencies measured elsewhere, in seconds, recorded in one go.
    pub fn itl_batch(&self, tenant: &str, model: &str, samples_s: &[f64]) {
        let h = self.handles(tenant, model);
        let itl = h.itl();
        samples_s.iter().for_each(|s| itl.observe(*s));
    }

    pub fn queue_depth(&self, tenant: &str, class: &str, n: i64) {
        let l = TenantClass {
            tenant: self.tenants.get(tenant),
            priority_class: self.small.get(class),
        };
        self.queue_depth.get_or_create(&l).set(n);
    }

    pub fn queue_wait(&self, tenant: &str, class: &str, seconds: f64) {
        let l = TenantClass {
            tenant: self.tenants.get(tenant),
            priority_class: self.small.get(class),
        };
        self.queue_wait.get_or_create(&l).observe(seconds);
    }

    pub fn rejected(&self, tenant: &str, reason: &str) {
        let l = TenantReason {
            tenant: self.tenants.get(tenant),
            reason: self.small.get(reason),
        };
        self.rejections.get_or_create(&l).inc();
    }

    pub fn endpoint_health(&self, endpoint: &str, runtime_kind: &str, healthy: bool) {
        let l = EndpointKind {
            endpoint: self.endpoints.get(endpoint),
            runtime_kind: self.small.get(runtime_kind),
        };
        // An endpoint whose kind changed (a reload) must not keep reporting under the old kind.
        let old = self
            .health_kind
            .lock()
            .insert(l.endpoint.clone(), l.runtime_kind.clone());
        if let Some(old) = old.filter(|k| *k != l.runtime_kind) {
            self.healthy.remove(&EndpointKind {
                endpoint: l.endpoint.clone(),
                runtime_kind: old,
            });
        }
        self.healthy.get_or_create(&l).set(i64::from(healthy));
    }

    pub fn ejected(&self, endpoint: &str) {
        self.ejections.get_or_create(&self.endpoint(endpoint)).inc();
    }

    /// The runtime's own load as last scraped, and how old that scrape is.
    pub fn load_signal(&self, endpoint: &str, waiting: f64, running: f64, kv_use: f64, tokens_per_s: f64, age_s: f64) {
        let l = self.endpoint(endpoint);
        self.waiting.get_or_create(&l).set(waiting);
        self.running.get_or_create(&l).set(running);
        self.kv_use.get_or_create(&l).set(kv_use);
        self.tokens_per_s.get_or_create(&l).set(tokens_per_s);
        self.signal_age.get_or_create(&l).set(age_s);
    }

    pub fn in_flight(&self, endpoint: &str, n: i64) {
        self.in_flight.get_or_create(&self.endpoint(endpoint)).set(n);
    }

    /// Drops an endpoint's gauges (health, load, in flight) after a reload removed it, so it does
    /// not report its last values forever. Its counters stay, as counters should.
    pub fn forget_endpoint(&self, endpoint: &str) {
        let Some(ep) = self.endpoints.peek(endpoint) else {
            return;
        };
        let l = EndpointLabel { endpoint: ep.clone() };
        for f in [
            &self.waiting,
            &self.running,
            &self.kv_use,
            &self.tokens_per_s,
            &self.signal_age,
        ] {
            f.remove(&l);
        }
        self.in_flight.remove(&l);
        if let Some(kind) = self.health_kind.lock().remove(&ep) {
            self.healthy.remove(&EndpointKind {
                endpoint: ep,
                runtime_kind: kind,
            });
        }
    }

    pub fn retry(&self, model: &str, reason: &str) {
        let l = ModelReason {
            model: self.models.get(model),
            reason: self.small.get(reason),
        };
        self.retries.get_or_create(&l).inc();
    }

    pub fn audit_lag(&self, seconds: f64, queued: i64) {
        self.audit_lag.set(seconds);
        self.audit_queued.set(queued);
    }

    /// Client connections open on the gateway's I/O thread `thread` (numbered from 1).
    pub fn io_connections(&self, thread: usize, open: i64) {
        let l = ThreadLabel {
            thread: u32::try_from(thread).unwrap_or(u32::MAX),
        };
        self.io_connections.get_or_create(&l).set(open);
    }

    fn endpoint(&self, endpoint: &str) -> EndpointLabel {
        EndpointLabel {
            endpoint: self.endpoints.get(endpoint),
        }
    }
}
