//! The routing view of the fleet: models, the endpoints that serve each, and tenant policies,
//! built from the declared resources. Simulated runtimes are started here, in process.
//!
//! A view is immutable once built; a config reload builds a new one and swaps it in. Endpoints
//! that survive a reload keep the same `Arc<Endpoint>`, so in-flight counts carry over, and
//! requests that started on the old view finish on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

use pyxis_cost::{Pricing, ThroughputMeter};

use pyxis_resources::{Fleet, RuntimeKind};

/// One upstream server.
#[derive(Debug)]
pub struct Endpoint {
    /// Base URL, without a trailing slash, e.g. `http://127.0.0.1:8100`.
    pub url: String,
    /// The `Runtime` resource it belongs to.
    pub runtime: String,
    pub kind: RuntimeKind,
    /// Accelerator class, e.g. `h100`.
    pub hardware: String,
    pub accelerator_count: u32,
    /// Memory of all accelerators of one endpoint, GiB (what a model's weights must fit in).
    pub memory_gib: f64,
    /// The runtime's `maxInFlightTokens`, when set (else the fair queue estimates a budget).
    pub token_budget: Option<u64>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    /// Bearer token for the runtime, read from the runtime's `apiKeyEnv` at load time.
    pub api_key: Option<String>,
    pub simulated: bool,
    pub pricing: Pricing,
    pub in_flight: AtomicU32,
    pub healthy: AtomicBool,
    /// The runtime's own version string, learned from its version route.
    pub runtime_version: RwLock<Option<String>>,
    /// Token throughput per busy second, for the cost model.
    pub meter: Mutex<ThroughputMeter>,
    /// The runtime's last load sample (queue, batch, KV use, tokens/s) from its metrics.
    pub load: Mutex<Option<pyxis_adapters::LoadSample>>,
}

/// Window over which endpoint throughput is measured for cost attribution.
pub const COST_WINDOW_S: f64 = 60.0;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Seconds on the gateway's monotonic clock (the pure cost model takes time as a number).
pub fn clock_s() -> f64 {
    EPOCH.elapsed().as_secs_f64()
}

impl Endpoint {
    fn same_static(&self, other: &Endpoint) -> bool {
        self.url == other.url
            && self.runtime == other.runtime
            && self.kind == other.kind
            && self.hardware == other.hardware
            && self.accelerator_count == other.accelerator_count
            && self.memory_gib == other.memory_gib
            && self.token_budget == other.token_budget
            && self.cloud == other.cloud
            && self.region == other.region
            && self.api_key == other.api_key
            && self.pricing == other.pricing
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn version(&self) -> Option<String> {
        self.runtime_version.read().ok().and_then(|v| v.clone())
    }

    pub fn load_sample(&self) -> Option<pyxis_adapters::LoadSample> {
        self.load.lock().ok().and_then(|l| *l)
    }

    pub fn set_load(&self, sample: pyxis_adapters::LoadSample) {
        if let Ok(mut l) = self.load.lock() {
            *l = Some(sample);
        }
    }
}

/// Counts a request against an endpoint (in flight, and busy time for the cost meter) for as
/// long as the guard lives.
pub struct InFlight {
    ep: Arc<Endpoint>,
    charged: bool,
}

impl InFlight {
    pub fn new(ep: Arc<Endpoint>) -> Self {
        ep.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = ep.meter.lock() {
            m.start(clock_s());
        }
        InFlight { ep, charged: false }
    }

    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.ep
    }

    /// Ends the call on the meter with the `tokens` it processed and returns its cost.
    pub fn charge(&mut self, tokens: u64, latency_s: f64) -> f64 {
        if self.charged {
            return 0.0;
        }
        self.charged = true;
        let now = clock_s();
        let Ok(mut m) = self.ep.meter.lock() else { return 0.0 };
        m.finish(now, tokens);
        pyxis_cost::call_cost(&self.ep.pricing, tokens, latency_s, m.throughput(now))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ep.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.charged
            && let Ok(mut m) = self.ep.meter.lock()
        {
            m.finish(clock_s(), 0);
        }
    }
}

#[derive(Debug)]
pub struct ModelEntry {
    pub name: String,
    pub version: String,
    /// The model id the runtimes know it by.
    pub served_name: String,
    pub context_length: u32,
    /// Memory the weights take, GiB (parameters × bytes per parameter).
    pub weights_gib: f64,
    /// Serves `/v1/embeddings` rather than generation.
    pub embedding: bool,
    /// Its `RoutingPolicy` (the one naming it, else the `"*"` one), if any.
    pub policy: Option<pyxis_resources::RoutingPolicySpec>,
    pub endpoints: Vec<Arc<Endpoint>>,
}

#[derive(Debug, Default)]
pub struct TenantPolicy {
    /// `None`: every model.
    pub allowed_models: Option<HashSet<String>>,
    /// Keep prompts and completions in the audit log.
    pub audit_content: bool,
    /// Fair-share weight under contention.
    pub weight: f64,
    /// Its `PriorityTier`, if any.
    pub tier: Option<String>,
    pub quotas: Option<pyxis_resources::TenantQuotas>,
    pub queue: Option<pyxis_resources::QueuePolicy>,
}

#[derive(Debug, Default)]
pub struct FleetView {
    pub models: BTreeMap<String, ModelEntry>,
    pub tenants: HashMap<String, TenantPolicy>,
    /// Every distinct endpoint, for health checks.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Capacity dedicated to one tenant, charged to it by the hour (usage reports).
    pub dedicated: Vec<pyxis_store::DedicatedCapacity>,
    /// Declared priority tiers.
    pub tiers: Vec<pyxis_resources::PriorityTier>,
}

/// Dedicated runtimes of a fleet and what each costs per second.
pub fn dedicated_capacity(fleet: &Fleet) -> Vec<pyxis_store::DedicatedCapacity> {
    fleet
        .runtimes
        .iter()
        .filter_map(|rt| {
            let s = &rt.spec;
            let tenant = s.dedicated_to.clone()?;
            let per_hour = s.price_per_accelerator_hour?;
            let servers = match &s.simulated {
                Some(sim) => sim.replicas as usize,
                None => s.endpoints.as_ref().map_or(0, Vec::len),
            };
            Some(pyxis_store::DedicatedCapacity {
                tenant,
                runtime: rt.metadata.name.clone(),
                hardware: s.accelerator.r#type.clone(),
                rate_per_second: per_hour * f64::from(s.accelerator.count) * servers as f64 / 3600.0,
            })
        })
        .collect()
}

impl FleetView {
    /// May this tenant use this model? Tenants not declared in the config may use every model.
    pub fn allows(&self, tenant: &str, model: &str) -> bool {
        match self.tenants.get(tenant).and_then(|t| t.allowed_models.as_ref()) {
            None => true,
            Some(set) => set.contains(model),
        }
    }

    pub fn audit_content(&self, tenant: &str) -> bool {
        self.tenants.get(tenant).is_some_and(|t| t.audit_content)
    }
}

/// Key of a simulated engine: one engine per (runtime, replica, model), restarted when the
/// settings that shape it change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SimKey {
    runtime: String,
    replica: u32,
    model: String,
    shape: String,
}

/// Owns the in-process simulated engines.
#[derive(Default)]
pub struct SimManager {
    engines: tokio::sync::Mutex<HashMap<SimKey, pyxis_sim::EngineHandle>>,
}

/// Picks the simulator's model profile for a declared model: the same name when the simulator
/// knows it, else the profile nearest in parameter count.
fn sim_profile(name: &str, parameters: u64) -> String {
    let known = pyxis_sim::model_names();
    if known.contains(&name) {
        return name.to_string();
    }
    let nearest = pyxis_sim::nearest_model(parameters);
    tracing::info!(
        model = name,
        profile = nearest,
        "no simulator profile by that name; using the nearest in size"
    );
    nearest.to_string()
}

impl SimManager {
    /// Builds a view from the resources, reusing endpoints (and engines) of `prev` that did not change.
    pub async fn build(&self, fleet: &Fleet, prev: Option<&FleetView>) -> anyhow::Result<FleetView> {
        let mut prev_eps: HashMap<(String, String), Arc<Endpoint>> = HashMap::new();
        if let Some(p) = prev {
            for ep in &p.endpoints {
                prev_eps.insert((ep.runtime.clone(), ep.url.clone()), ep.clone());
            }
        }
        let mut engines = self.engines.lock().await;
        let mut wanted: HashSet<SimKey> = HashSet::new();
        let mut all: Vec<Arc<Endpoint>> = Vec::new();
        let mut by_url: HashMap<(String, String), Arc<Endpoint>> = HashMap::new();
        let mut intern = |ep: Endpoint, all: &mut Vec<Arc<Endpoint>>| -> Arc<Endpoint> {
            let key = (ep.runtime.clone(), ep.url.clone());
            if let Some(e) = by_url.get(&key) {
                return e.clone();
            }
            let arc = match prev_eps.get(&key) {
                Some(old) if old.same_static(&ep) => old.clone(),
                _ => Arc::new(ep),
            };
            by_url.insert(key, arc.clone());
            all.push(arc.clone());
            arc
        };

        let mut models = BTreeMap::new();
        for m in &fleet.models {
            let name = m.metadata.name.clone();
            let mut eps = Vec::new();
            for rt_name in &m.spec.runtimes {
                let Some(rt) = fleet.runtime(rt_name) else { continue };
                let spec = &rt.spec;
                let api_key = spec.api_key_env.as_ref().and_then(|v| std::env::var(v).ok());
                let base = |url: String, simulated: bool| Endpoint {
                    url,
                    runtime: rt_name.clone(),
                    kind: spec.kind,
                    hardware: spec.accelerator.r#type.clone(),
                    accelerator_count: spec.accelerator.count,
                    memory_gib: spec.accelerator.total_memory_gib(),
                    token_budget: spec.max_in_flight_tokens,
                    cloud: spec.cloud.clone(),
                    region: spec.region.clone(),
                    api_key: api_key.clone(),
                    simulated,
                    // Dedicated capacity is charged to its tenant by the hour, so its calls cost nothing more.
                    pricing: if spec.dedicated_to.is_some() {
                        Pricing::default()
                    } else {
                        Pricing {
                            per_accelerator_hour: spec.price_per_accelerator_hour,
                            accelerators: spec.accelerator.count,
                            per_million_tokens: spec.price_per_million_tokens,
                        }
                    },
                    in_flight: AtomicU32::new(0),
                    healthy: AtomicBool::new(true),
                    runtime_version: RwLock::new(None),
                    meter: Mutex::new(ThroughputMeter::new(COST_WINDOW_S)),
                    load: Mutex::new(None),
                };
                if let Some(sim) = &spec.simulated {
                    let surface = match spec.kind {
                        RuntimeKind::Tgi => pyxis_sim::Surface::Tgi,
                        RuntimeKind::Ollama => pyxis_sim::Surface::Ollama,
                        RuntimeKind::Triton => anyhow::bail!(
                            "Runtime \"{rt_name}\": the simulator has no Triton surface; simulate it as kind vllm, tgi or ollama"
                        ),
                        // Every other kind is served through its OpenAI-compatible surface.
                        _ => pyxis_sim::Surface::Vllm,
                    };
                    let profile = sim_profile(&name, m.spec.parameters);
                    let served = m.spec.served_name.clone().unwrap_or_else(|| name.clone());
                    for replica in 0..sim.replicas {
                        let seed = sim.seed.unwrap_or(0).wrapping_add(u64::from(replica));
                        let key = SimKey {
                            runtime: rt_name.clone(),
                            replica,
                            model: name.clone(),
                            shape: format!(
                                "{}|{}|{}|{}|{}|{:?}",
                                spec.accelerator.r#type, profile, served, sim.speedup, seed, surface
                            ),
                        };
                        if !engines.contains_key(&key) {
                            let mut es = pyxis_sim::EngineSpec::new(
                                format!("{rt_name}-{replica}-{name}"),
                                &spec.accelerator.r#type,
                                &profile,
                            );
                            es.served_model_names = vec![served.clone()];
                            es.seed = seed;
                            es.speedup = sim.speedup;
                            es.surface = surface;
                            let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
                            let handle = pyxis_sim::spawn(es, addr).await?;
                            tracing::info!(runtime = %rt_name, model = %name, hardware = %spec.accelerator.r#type, url = %handle.url(), "started simulated engine");
                            engines.insert(key.clone(), handle);
                        }
                        let url = engines.get(&key).map(|h| h.url()).unwrap_or_default();
                        wanted.insert(key);
                        eps.push(intern(base(url, true), &mut all));
                    }
                } else {
                    for url in spec.endpoints.iter().flatten() {
                        let url = url.trim_end_matches('/').to_string();
                        eps.push(intern(base(url, false), &mut all));
                    }
                }
            }
            models.insert(
                name.clone(),
                ModelEntry {
                    served_name: m.spec.served_name.clone().unwrap_or_else(|| name.clone()),
                    version: m.spec.version.clone(),
                    context_length: m.spec.context_length,
                    weights_gib: m.spec.weights_gib(),
                    embedding: m.spec.embedding,
                    policy: fleet.routing_policy(&name).map(|p| p.spec.clone()),
                    name,
                    endpoints: eps,
                },
            );
        }

        // Engines no longer declared: stop each once the requests still running on it are done.
        let retired: Vec<SimKey> = engines.keys().filter(|k| !wanted.contains(k)).cloned().collect();
        for key in retired {
            if let Some(handle) = engines.remove(&key) {
                let url = handle.url();
                let old = prev_eps.get(&(key.runtime.clone(), url.clone())).cloned();
                tokio::spawn(async move {
                    for _ in 0..600 {
                        if old.as_ref().is_none_or(|e| e.in_flight.load(Ordering::Relaxed) == 0) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    tracing::info!(%url, "stopping retired simulated engine");
                    handle.shutdown().await;
                });
            }
        }

        let tenants = fleet
            .tenants
            .iter()
            .map(|t| {
                let allowed = t.spec.models.as_ref().filter(|m| !m.iter().any(|x| x == "*"));
                (
                    t.metadata.name.clone(),
                    TenantPolicy {
                        allowed_models: allowed.map(|m| m.iter().cloned().collect()),
                        audit_content: t.spec.audit_content,
                        weight: t.spec.weight,
                        tier: t.spec.priority_tier.clone(),
                        quotas: t.spec.quotas.clone(),
                        queue: t.spec.queue.clone(),
                    },
                )
            })
            .collect();
        Ok(FleetView {
            models,
            tenants,
            endpoints: all,
            dedicated: dedicated_capacity(fleet),
            tiers: fleet.priority_tiers.clone(),
        })
    }

    pub async fn shutdown(&self) {
        let mut engines = self.engines.lock().await;
        for (_, h) in engines.drain() {
            h.shutdown().await;
        }
    }

    pub async fn engine_count(&self) -> usize {
        self.engines.lock().await.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {name: team-b}
spec: {}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {name: reserved}
spec:
  kind: vllm
  endpoints: ["http://127.0.0.1:9", "http://127.0.0.1:10"]
  accelerator: {type: h100, count: 4, memoryGiB: 80}
  pricePerAcceleratorHour: 3.6
  dedicatedTo: team-b
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {name: m}
spec: {version: "1", parameters: 70B, contextLength: 8192, runtimes: [reserved]}
"#;

    #[tokio::test]
    async fn dedicated_capacity_is_charged_by_the_hour_not_per_call() {
        let fleet = Fleet::parse(YAML, "f.yaml").unwrap();
        let d = dedicated_capacity(&fleet);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].tenant, "team-b");
        // $3.60 × 4 GPUs × 2 servers per hour = $0.008 per second.
        assert!((d[0].rate_per_second - 0.008).abs() < 1e-12);
        let view = SimManager::default().build(&fleet, None).await.unwrap();
        assert!(
            view.endpoints.iter().all(|e| e.pricing == Pricing::default()),
            "calls on it cost nothing more"
        );
    }
}
