//! Plugs `pyxis_router::Router` into the simulator's routing hook, the way the gateway drives it: views
//! snapshotted per decision, load signals scraped periodically (so they age), first tokens fed back.

use std::collections::HashMap;

use pyxis_router::{
    DEFAULT_BLOCK_BYTES, EndpointView, LoadSignal, RouteRequest as PxRequest, Router, RoutingConfig, prefix_blocks,
};
use pyxis_sim_core::Time;
use pyxis_sim_core::sim::{EngineView, RouteRequest, Router as SimRouter};

/// The latency budget (TTFT, ms) a request carries, if any: a fixed share of requests, picked by arrival
/// order so every policy sees the same ones.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// One request in `every` carries a budget.
    pub every: u64,
    /// The budget, ms.
    pub ms: u64,
}

impl Budgets {
    pub fn of(&self, id: u64) -> Option<u64> {
        // The simulator's request id is (arrival ordinal << 32 | slot).
        (id >> 32).is_multiple_of(self.every.max(1)).then_some(self.ms)
    }
}

/// Endpoint facts the gateway would know from the fleet file.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub key: String,
    pub hardware: String,
    pub memory_gib: f64,
}

struct Pending {
    engine: usize,
    prompt_tokens: u32,
    in_flight: u32,
}

/// `Router` behind the simulator's hook.
pub struct PyxisSim {
    router: Router,
    endpoints: Vec<Endpoint>,
    weights_gib: f64,
    budgets: Budgets,
    scrape_every: Time,
    scraped_at: Time,
    signals: Vec<LoadSignal>,
    pending: HashMap<u64, Pending>,
    bytes: Vec<u8>,
    no_adapters: Vec<String>,
}

impl PyxisSim {
    pub fn new(cfg: RoutingConfig, endpoints: Vec<Endpoint>, weights_gib: f64, budgets: Budgets) -> Self {
        let n = endpoints.len();
        PyxisSim {
            router: Router::new(cfg),
            endpoints,
            weights_gib,
            budgets,
            scrape_every: 0.5,
            scraped_at: f64::NEG_INFINITY,
            signals: vec![LoadSignal::default(); n],
            pending: HashMap::new(),
            bytes: Vec::new(),
            no_adapters: Vec::new(),
        }
    }

    /// Scrapes every engine's gauges when the scrape interval has passed (as the gateway's poller would).
    fn scrape(&mut self, now: Time, engines: &[EngineView<'_>]) {
        if now - self.scraped_at < self.scrape_every {
            return;
        }
        self.scraped_at = now;
        for e in engines {
            if let Some(s) = self.signals.get_mut(e.index) {
                *s = LoadSignal {
                    waiting: e.engine.num_waiting(),
                    running: e.engine.num_running(),
                    kv_use: e.engine.pool().usage(),
                    tokens_per_s: 0.0,
                    age_ms: 0,
                };
            }
        }
    }
}

fn ms(t: Time) -> u64 {
    (t.max(0.0) * 1000.0) as u64
}

impl SimRouter for PyxisSim {
    fn route(&mut self, now: Time, req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize> {
        self.scrape(now, engines);
        let age_ms = ms(now - self.scraped_at);
        // The gateway hashes prompt text; token ids as little-endian bytes are the simulator's equivalent.
        self.bytes.clear();
        self.bytes.extend(req.prompt.iter().flat_map(|t| t.to_le_bytes()));
        let blocks = prefix_blocks(&self.bytes, DEFAULT_BLOCK_BYTES);
        let views: Vec<EndpointView<'_>> = engines
            .iter()
            .map(|e| {
                let ep = &self.endpoints[e.index];
                EndpointView {
                    key: &ep.key,
                    healthy: e.has_capacity,
                    hardware: &ep.hardware,
                    region: None,
                    memory_gib: ep.memory_gib,
                    in_flight: e.in_flight,
                    load: Some(LoadSignal {
                        age_ms,
                        ..self.signals[e.index]
                    }),
                    price_per_mtok: None,
                    adapters: &self.no_adapters,
                }
            })
            .collect();
        let rr = PxRequest {
            model_weights_gib: self.weights_gib,
            prompt_tokens: req.prompt.len() as u32,
            prefix_blocks: &blocks,
            latency_budget_ms: self.budgets.of(req.id),
            ..PxRequest::default()
        };
        let d = self.router.decide(ms(now), &rr, &views, &[]);
        let c = d.chosen_scored()?;
        let engine = engines[c.index].index;
        let in_flight = engines[c.index].in_flight;
        self.router.on_dispatch(ms(now), &self.endpoints[engine].key, &rr);
        self.pending.insert(
            req.id,
            Pending {
                engine,
                prompt_tokens: rr.prompt_tokens,
                in_flight,
            },
        );
        Some(engine)
    }

    fn on_first_token(&mut self, now: Time, id: u64, _engine: usize, ttft: f64) {
        if let Some(p) = self.pending.get(&id) {
            let key = &self.endpoints[p.engine].key;
            self.router
                .on_first_token(ms(now), key, p.prompt_tokens, p.in_flight, ttft * 1000.0);
        }
    }

    fn on_finish(&mut self, now: Time, id: u64, _engine: usize) {
        if let Some(p) = self.pending.remove(&id) {
            self.router.on_success(ms(now), &self.endpoints[p.engine].key);
        }
    }
}

impl PyxisSim {
    /// What the router learned, one line per endpoint (`ROUTEBENCH_DEBUG=1`).
    pub fn learned(&self) -> String {
        let mut s = String::new();
        for e in &self.endpoints {
            let (t0, n) = self.router.predicted_ttft_ms(&e.key, 0, 0);
            let (t1, _) = self.router.predicted_ttft_ms(&e.key, 1000, 0);
            let (t2, _) = self.router.predicted_ttft_ms(&e.key, 1000, 10);
            s.push_str(&format!(
                "  {:<24} n={n:<6} ttft(0,0)={t0:>7.1} (1k,0)={t1:>7.1} (1k,10)={t2:>7.1}\n",
                e.key
            ));
        }
        s
    }
}

/// Wraps any policy to count budgeted requests that met their budget (after the warm-up).
pub struct Measured<'r> {
    pub inner: &'r mut dyn SimRouter,
    pub budgets: Budgets,
    pub warmup: Time,
    budgeted: HashMap<u64, u64>,
    pub met: u64,
    pub total: u64,
}

impl<'r> Measured<'r> {
    pub fn new(inner: &'r mut dyn SimRouter, budgets: Budgets, warmup: Time) -> Self {
        Measured {
            inner,
            budgets,
            warmup,
            budgeted: HashMap::new(),
            met: 0,
            total: 0,
        }
    }
}

impl SimRouter for Measured<'_> {
    fn route(&mut self, now: Time, req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize> {
        if now >= self.warmup
            && let Some(b) = self.budgets.of(req.id)
        {
            self.budgeted.insert(req.id, b);
        }
        self.inner.route(now, req, engines)
    }

    fn on_first_token(&mut self, now: Time, id: u64, engine: usize, ttft: f64) {
        if let Some(b) = self.budgeted.remove(&id) {
            self.total += 1;
            if ttft * 1000.0 <= b as f64 {
                self.met += 1;
            }
        }
        self.inner.on_first_token(now, id, engine, ttft);
    }

    fn on_finish(&mut self, now: Time, id: u64, engine: usize) {
        self.inner.on_finish(now, id, engine);
    }
}
