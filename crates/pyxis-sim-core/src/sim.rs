//! Virtual-time fleet runner: a discrete-event loop over many [`Engine`]s, with pluggable routing
//! and gateway admission, reporting latency percentiles and throughput.
//!
//! The engines are the same objects the real-time server drives; here a step "takes" no wall
//! time: the loop jumps to the next step end or arrival, so hours of traffic run in seconds.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use serde::Serialize;

use crate::engine::{Engine, EngineEvent, SimRequest, Time, Usage};
use crate::report::{Collector, EngineReport, Report};
use crate::workload::{LoadSource, NewRequest, OPEN_LOOP};

/// An engine as a router sees it.
#[derive(Debug, Clone, Copy)]
pub struct EngineView<'a> {
    /// Index in the fleet.
    pub index: usize,
    /// The engine (read its stats, probe its prefix cache).
    pub engine: &'a Engine,
    /// Requests the gateway has in flight on it.
    pub in_flight: u32,
    /// Whether it may take one more under the gateway's per-engine limit.
    pub has_capacity: bool,
}

/// The request being routed.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// Run-wide id.
    pub id: u64,
    /// Tenant index.
    pub tenant: u32,
    /// Prompt tokens.
    pub prompt: &'a [u32],
    /// Output tokens asked for.
    pub max_tokens: u32,
    /// Adapter.
    pub lora: Option<&'a str>,
}

/// Picks the engine for a request (the gateway router's decision). `None` rejects it.
pub trait Router {
    /// Chooses among `engines` (only those with capacity should be picked).
    fn route(&mut self, now: Time, req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize>;
    /// The first token of request `id` (routed to `engine`) came out `ttft` seconds after it
    /// arrived: feedback for routers that learn latency online. Default: ignored.
    fn on_first_token(&mut self, _now: Time, _id: u64, _engine: usize, _ttft: f64) {}
    /// Request `id` finished on `engine`. Default: ignored.
    fn on_finish(&mut self, _now: Time, _id: u64, _engine: usize) {}
}

/// A request waiting in the gateway before admission.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueuedRequest {
    /// Run-wide id.
    pub id: u64,
    /// Tenant index.
    pub tenant: u32,
    /// Arrival at the gateway.
    pub arrival: Time,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens asked for.
    pub max_tokens: u32,
}

/// Orders the gateway queue: which waiting request goes next when an engine has room (the fair
/// share scheduler's decision).
pub trait AdmissionScheduler {
    /// A request arrived.
    fn push(&mut self, now: Time, req: QueuedRequest);
    /// The next request to admit.
    fn pop(&mut self, now: Time) -> Option<QueuedRequest>;
    /// Requests queued.
    fn len(&self) -> usize;
    /// True when nothing is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A request of `tenant` finished (for usage-based fairness).
    fn on_finish(&mut self, _now: Time, _tenant: u32, _usage: &Usage) {}
    /// Request `id` of `tenant` produced one output token: per-token usage accounting (VTC charges
    /// output as it is decoded). Default: ignored.
    fn on_token(&mut self, _now: Time, _id: u64, _tenant: u32) {}
    /// Request `id`, taken by `pop`, left the gateway (finished, or refused by the router or the
    /// engine): the scheduler may release what it reserved for it (an in-flight token budget).
    /// Default: ignored.
    fn on_release(&mut self, _now: Time, _id: u64) {}
}

/// First come, first served.
#[derive(Debug, Default, Clone)]
pub struct Fifo(VecDeque<QueuedRequest>);

impl AdmissionScheduler for Fifo {
    fn push(&mut self, _now: Time, req: QueuedRequest) {
        self.0.push_back(req);
    }
    fn pop(&mut self, _now: Time) -> Option<QueuedRequest> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Cycles through the engines with capacity.
#[derive(Debug, Default, Clone)]
pub struct RoundRobin {
    next: usize,
}

impl Router for RoundRobin {
    fn route(&mut self, _now: Time, _req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize> {
        let n = engines.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if engines[i].has_capacity {
                self.next = i + 1;
                return Some(engines[i].index);
            }
        }
        None
    }
}

/// Fewest requests in flight (ties rotate), the same policy as `pyxis_router::pick`.
#[derive(Debug, Default, Clone)]
pub struct LeastLoaded {
    rotation: usize,
}

impl Router for LeastLoaded {
    fn route(&mut self, _now: Time, _req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize> {
        let n = engines.len();
        if n == 0 {
            return None;
        }
        let start = self.rotation % n;
        self.rotation = self.rotation.wrapping_add(1);
        let mut best: Option<(usize, u32)> = None;
        for k in 0..n {
            let e = &engines[(start + k) % n];
            if e.has_capacity && best.is_none_or(|(_, l)| e.in_flight < l) {
                best = Some((e.index, e.in_flight));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Longest cached prefix first, then least loaded: keeps conversations and shared system prompts
/// on the engine that already holds their KV, unless it is much busier (`max_imbalance` more
/// requests in flight than the least-loaded engine).
#[derive(Debug, Clone)]
pub struct PrefixAffinity {
    /// In-flight difference beyond which load wins over cache.
    pub max_imbalance: u32,
    fallback: LeastLoaded,
}

impl PrefixAffinity {
    /// With the given imbalance tolerance.
    pub fn new(max_imbalance: u32) -> Self {
        PrefixAffinity {
            max_imbalance,
            fallback: LeastLoaded::default(),
        }
    }
}

impl Router for PrefixAffinity {
    fn route(&mut self, now: Time, req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize> {
        let min_load = engines.iter().filter(|e| e.has_capacity).map(|e| e.in_flight).min()?;
        let mut best: Option<(usize, u32, u32)> = None;
        for e in engines
            .iter()
            .filter(|e| e.has_capacity && e.in_flight <= min_load + self.max_imbalance)
        {
            let hit = e.engine.cached_prefix_tokens(req.prompt, req.lora);
            let better = match best {
                None => true,
                Some((_, h, l)) => hit > h || (hit == h && e.in_flight < l),
            };
            if better {
                best = Some((e.index, hit, e.in_flight));
            }
        }
        match best {
            Some((i, hit, _)) if hit > 0 => Some(i),
            _ => self.fallback.route(now, req, engines),
        }
    }
}

/// A router from a closure, to plug gateway code in without a new type.
pub struct FnRouter<F>(pub F);

impl<F> Router for FnRouter<F>
where
    F: FnMut(Time, &RouteRequest<'_>, &[EngineView<'_>]) -> Option<usize>,
{
    fn route(&mut self, now: Time, req: &RouteRequest<'_>, engines: &[EngineView<'_>]) -> Option<usize> {
        (self.0)(now, req, engines)
    }
}

/// Run settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    /// Requests arriving before this are run but not measured.
    pub warmup_s: f64,
    /// Gateway limit of requests in flight per engine (`None`: send everything straight on).
    pub max_in_flight_per_engine: Option<u32>,
    /// Stop the simulation at this simulated time even if requests remain.
    pub max_sim_s: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            warmup_s: 0.0,
            max_in_flight_per_engine: None,
            max_sim_s: f64::INFINITY,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct At(f64);

impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for At {
    fn cmp(&self, o: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        o.0.total_cmp(&self.0)
    }
}

struct PendingArrival {
    at: At,
    seq: u64,
    req: NewRequest,
}

impl PartialEq for PendingArrival {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for PendingArrival {}
impl PartialOrd for PendingArrival {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for PendingArrival {
    fn cmp(&self, o: &Self) -> Ordering {
        self.at.cmp(&o.at).then_with(|| o.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    tenant: u32,
    client: u32,
    arrival: Time,
    engine: usize,
    last_token: Time,
    measured: bool,
    /// Parked in the gateway queue: the request itself.
    parked: Option<NewRequest>,
}

struct EngineSlot {
    engine: Engine,
    busy_until: Option<Time>,
    wake_at: Option<Time>,
    events: Vec<EngineEvent>,
    in_flight: u32,
    completed: u64,
    max_waiting: u32,
    max_kv: f64,
}

/// The virtual-time loop over a fleet.
pub struct VirtualFleet {
    engines: Vec<EngineSlot>,
    tracks: Vec<Option<Track>>,
    free_tracks: Vec<u32>,
    generation: u64,
    engine_heap: BinaryHeap<(At, usize)>,
    arrivals: BinaryHeap<PendingArrival>,
    seq: u64,
    cfg: SimConfig,
    all: Collector,
    tenants: Vec<Collector>,
    tenant_names: Vec<String>,
    issued: u64,
    steps: u64,
    tokens: u64,
    first_arrival: Option<Time>,
    last_finish: Time,
    now: Time,
}

impl VirtualFleet {
    /// A fleet of `engines` (each already configured; adapters are loaded by [`VirtualFleet::run`]).
    pub fn new(engines: Vec<Engine>, cfg: SimConfig) -> Self {
        VirtualFleet {
            engines: engines
                .into_iter()
                .map(|engine| EngineSlot {
                    engine,
                    busy_until: None,
                    wake_at: None,
                    events: Vec::new(),
                    in_flight: 0,
                    completed: 0,
                    max_waiting: 0,
                    max_kv: 0.0,
                })
                .collect(),
            tracks: Vec::new(),
            free_tracks: Vec::new(),
            generation: 0,
            engine_heap: BinaryHeap::new(),
            arrivals: BinaryHeap::new(),
            seq: 0,
            cfg,
            all: Collector::default(),
            tenants: Vec::new(),
            tenant_names: Vec::new(),
            issued: 0,
            steps: 0,
            tokens: 0,
            first_arrival: None,
            last_finish: 0.0,
            now: 0.0,
        }
    }

    /// The engines (after a run: their metrics and caches).
    pub fn engines(&self) -> impl Iterator<Item = &Engine> {
        self.engines.iter().map(|s| &s.engine)
    }

    fn push_arrival(&mut self, req: NewRequest) {
        self.seq += 1;
        self.arrivals.push(PendingArrival {
            at: At(req.at),
            seq: self.seq,
            req,
        });
    }

    fn has_capacity(&self, e: usize) -> bool {
        self.cfg
            .max_in_flight_per_engine
            .is_none_or(|m| self.engines[e].in_flight < m)
    }

    /// Runs `source` to completion (every issued request finishes, unless `max_sim_s` cuts it).
    pub fn run(
        &mut self,
        source: &mut dyn LoadSource,
        router: &mut dyn Router,
        scheduler: &mut dyn AdmissionScheduler,
    ) -> Report {
        self.tenant_names = source.tenants();
        self.tenants = vec![Collector::default(); self.tenant_names.len().max(1)];
        for l in source.loras() {
            for s in &mut self.engines {
                // Already loaded is fine; too many is a configuration the caller chose.
                let _ = s.engine.load_lora(&l);
            }
        }
        for r in source.start() {
            self.push_arrival(r);
        }
        let mut open_done = false;
        let mut next_open = source.next_open();
        loop {
            if next_open.is_none() && !open_done {
                open_done = true;
            }
            let t_open = next_open.as_ref().map_or(f64::INFINITY, |r| r.at);
            let t_closed = self.arrivals.peek().map_or(f64::INFINITY, |p| p.at.0);
            let t_engine = self.engine_heap.peek().map_or(f64::INFINITY, |(a, _)| a.0);
            let t = t_open.min(t_closed).min(t_engine);
            if !t.is_finite() || t > self.cfg.max_sim_s {
                break;
            }
            self.now = t;
            if t_engine <= t_open && t_engine <= t_closed {
                if let Some((_, e)) = self.engine_heap.pop() {
                    self.on_engine(t, e, source, scheduler, router);
                }
            } else if t_closed <= t_open {
                if let Some(p) = self.arrivals.pop() {
                    self.on_arrival(t, p.req, scheduler, router);
                }
            } else if let Some(r) = next_open.take() {
                next_open = source.next_open();
                self.on_arrival(t, r, scheduler, router);
            }
        }
        self.report()
    }

    fn new_track(&mut self, t: Track) -> u64 {
        let slot = match self.free_tracks.pop() {
            Some(s) => {
                self.tracks[s as usize] = Some(t);
                s
            }
            None => {
                self.tracks.push(Some(t));
                (self.tracks.len() - 1) as u32
            }
        };
        self.generation += 1;
        let id = (self.generation << 32) | u64::from(slot);
        if let Some(tr) = self.tracks[slot as usize].as_mut() {
            tr.id = id;
        }
        id
    }

    fn track_mut(&mut self, id: u64) -> Option<&mut Track> {
        self.tracks
            .get_mut((id & 0xffff_ffff) as usize)?
            .as_mut()
            .filter(|t| t.id == id)
    }

    fn drop_track(&mut self, id: u64) -> Option<Track> {
        let slot = (id & 0xffff_ffff) as usize;
        let t = self.tracks.get_mut(slot)?.take()?;
        self.free_tracks.push(slot as u32);
        Some(t)
    }

    fn on_arrival(&mut self, now: Time, req: NewRequest, sched: &mut dyn AdmissionScheduler, router: &mut dyn Router) {
        self.issued += 1;
        self.first_arrival.get_or_insert(now);
        let q = QueuedRequest {
            id: 0,
            tenant: req.tenant,
            arrival: now,
            prompt_tokens: req.prompt.len() as u32,
            max_tokens: req.max_tokens,
        };
        let measured = now >= self.cfg.warmup_s;
        let id = self.new_track(Track {
            id: 0,
            tenant: req.tenant,
            client: req.client,
            arrival: now,
            engine: usize::MAX,
            last_token: now,
            measured,
            parked: Some(req),
        });
        sched.push(now, QueuedRequest { id, ..q });
        self.admit(now, sched, router);
    }

    fn reject(&mut self, id: u64) {
        if let Some(t) = self.drop_track(id)
            && t.measured
        {
            self.all.rejected += 1;
            if let Some(c) = self.tenants.get_mut(t.tenant as usize) {
                c.rejected += 1;
            }
        }
    }

    /// Moves requests from the gateway queue to engines while some engine has room.
    fn admit(&mut self, now: Time, sched: &mut dyn AdmissionScheduler, router: &mut dyn Router) {
        while !sched.is_empty() && (0..self.engines.len()).any(|e| self.has_capacity(e)) {
            let Some(q) = sched.pop(now) else { break };
            let Some(req) = self.track_mut(q.id).and_then(|t| t.parked.take()) else {
                continue;
            };
            let views: Vec<EngineView<'_>> = self
                .engines
                .iter()
                .enumerate()
                .map(|(i, s)| EngineView {
                    index: i,
                    engine: &s.engine,
                    in_flight: s.in_flight,
                    has_capacity: self.cfg.max_in_flight_per_engine.is_none_or(|m| s.in_flight < m),
                })
                .collect();
            let rr = RouteRequest {
                id: q.id,
                tenant: q.tenant,
                prompt: &req.prompt,
                max_tokens: req.max_tokens,
                lora: req.lora.as_deref(),
            };
            let choice = router.route(now, &rr, &views);
            drop(views);
            let Some(e) = choice.filter(|e| *e < self.engines.len()) else {
                sched.on_release(now, q.id);
                self.reject(q.id);
                continue;
            };
            let arrival = self.track_mut(q.id).map_or(now, |t| t.arrival);
            if let Some(t) = self.track_mut(q.id) {
                t.engine = e;
                if t.measured {
                    // Time spent in the gateway queue.
                    let wait = now - arrival;
                    self.all.gateway_queue.record(wait);
                    if let Some(c) = self.tenants.get_mut(q.tenant as usize) {
                        c.gateway_queue.record(wait);
                    }
                }
            }
            let sr = SimRequest {
                id: q.id,
                prompt: req.prompt,
                max_tokens: req.max_tokens,
                ignore_eos: req.ignore_eos,
                seed: None,
                lora: req.lora,
            };
            if self.engines[e].engine.submit(now, sr).is_err() {
                sched.on_release(now, q.id);
                self.reject(q.id);
                continue;
            }
            self.engines[e].in_flight += 1;
            self.kick(e, now);
        }
    }

    /// Starts a step on an idle engine, or schedules a wake-up for its first waiting request.
    fn kick(&mut self, e: usize, now: Time) {
        let s = &mut self.engines[e];
        if s.busy_until.is_some() {
            return;
        }
        s.max_waiting = s.max_waiting.max(s.engine.num_waiting());
        if let Some(info) = s.engine.step_into(now, &mut s.events) {
            self.steps += 1;
            let end = info.end();
            s.busy_until = Some(end);
            s.wake_at = None;
            s.max_kv = s.max_kv.max(s.engine.pool().usage());
            self.engine_heap.push((At(end), e));
        } else if let Some(w) = s.engine.next_wakeup(now)
            && s.wake_at.is_none_or(|x| w < x)
            && w > now
        {
            s.wake_at = Some(w);
            self.engine_heap.push((At(w), e));
        }
    }

    fn on_engine(
        &mut self,
        now: Time,
        e: usize,
        source: &mut dyn LoadSource,
        sched: &mut dyn AdmissionScheduler,
        router: &mut dyn Router,
    ) {
        let s = &mut self.engines[e];
        if s.busy_until == Some(now) {
            s.busy_until = None;
            let events = std::mem::take(&mut s.events);
            let mut freed = false;
            for ev in &events {
                match ev {
                    EngineEvent::Token { id, index, .. } => {
                        self.tokens += 1;
                        let (all, tenants) = (&mut self.all, &mut self.tenants);
                        let slot = (id & 0xffff_ffff) as usize;
                        if let Some(Some(t)) = self.tracks.get_mut(slot) {
                            sched.on_token(now, *id, t.tenant);
                            if *index == 0 {
                                router.on_first_token(now, *id, e, now - t.arrival);
                            }
                            if t.measured {
                                let c = tenants.get_mut(t.tenant as usize);
                                if *index == 0 {
                                    let v = now - t.arrival;
                                    all.ttft.record(v);
                                    if let Some(c) = c {
                                        c.ttft.record(v);
                                    }
                                } else {
                                    let v = now - t.last_token;
                                    all.itl.record(v);
                                    if let Some(c) = c {
                                        c.itl.record(v);
                                    }
                                }
                            }
                            t.last_token = now;
                        }
                    }
                    EngineEvent::Finished { id, usage, .. } => {
                        freed = true;
                        self.engines[e].in_flight = self.engines[e].in_flight.saturating_sub(1);
                        self.engines[e].completed += 1;
                        if let Some(t) = self.drop_track(*id) {
                            router.on_finish(now, *id, e);
                            self.last_finish = self.last_finish.max(now);
                            if t.measured {
                                for c in [Some(&mut self.all), self.tenants.get_mut(t.tenant as usize)]
                                    .into_iter()
                                    .flatten()
                                {
                                    c.e2e.record(now - t.arrival);
                                    c.completed += 1;
                                    c.prompt_tokens += u64::from(usage.prompt_tokens);
                                    c.cached_tokens += u64::from(usage.cached_tokens);
                                    c.output_tokens += u64::from(usage.completion_tokens);
                                }
                            }
                            sched.on_finish(now, t.tenant, usage);
                            sched.on_release(now, *id);
                            if t.client != OPEN_LOOP
                                && let Some(next) = source.on_finish(now, t.client)
                            {
                                self.push_arrival(next);
                            }
                        }
                    }
                }
            }
            let mut events = events;
            events.clear();
            self.engines[e].events = events;
            if freed {
                self.admit(now, sched, router);
            }
            self.kick(e, now);
        } else if self.engines[e].wake_at == Some(now) {
            self.engines[e].wake_at = None;
            self.kick(e, now);
        }
    }

    fn report(&self) -> Report {
        let start = self.first_arrival.unwrap_or(0.0);
        let simulated = (self.last_finish - start).max(0.0);
        let measured = (self.last_finish - self.cfg.warmup_s.max(start)).max(1e-9);
        let overall = self.all.summarize("all", measured);
        let tenants = self
            .tenants
            .iter()
            .enumerate()
            .map(|(i, c)| c.summarize(self.tenant_names.get(i).map_or("default", |s| s.as_str()), measured))
            .collect();
        let engines = self
            .engines
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let m = s.engine.metrics();
                EngineReport {
                    index: i,
                    hardware: s.engine.config().hardware.clone(),
                    model: s.engine.config().model.clone(),
                    completed: s.completed,
                    busy_fraction: if simulated > 0.0 {
                        (m.busy_s / simulated).min(1.0)
                    } else {
                        0.0
                    },
                    steps: m.steps,
                    preemptions: m.num_preemptions,
                    prefix_hit_rate: if m.prefix_cache_queries == 0 {
                        0.0
                    } else {
                        m.prefix_cache_hits as f64 / m.prefix_cache_queries as f64
                    },
                    max_waiting: s.max_waiting,
                    max_kv_usage: s.max_kv,
                }
            })
            .collect();
        Report {
            simulated_s: simulated,
            measured_s: measured,
            issued: self.issued,
            overall,
            tenants,
            engines,
            steps: self.steps,
            tokens_generated: self.tokens,
        }
    }
}

/// Runs `source` on `engines` with least-loaded routing and FIFO admission.
pub fn run_default(engines: Vec<Engine>, source: &mut dyn LoadSource, cfg: SimConfig) -> Report {
    VirtualFleet::new(engines, cfg).run(source, &mut LeastLoaded::default(), &mut Fifo::default())
}
