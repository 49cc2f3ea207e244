//! The router: filters, scorers and the state they learn from (TTFT models, prefix index, sessions,
//! ejections). Time is a number passed in; nothing here reads a clock or does I/O.

use std::collections::HashMap;

use crate::config::RoutingConfig;
use crate::decision::{Decision, FilterReason, Scored};
use crate::hash::{Keyed, hash_str};
use crate::lru::GenMap;
use crate::state::{DEFAULT_PREFIX_BLOCKS, EndpointState, prefix_depth};
use crate::view::{EndpointView, RouteRequest};

const MIN_PREFIX_BLOCKS: usize = 256;
const MAX_PREFIX_BLOCKS: usize = 1 << 22;
/// Age at which a load signal counts half, ms.
const SIGNAL_HALF_WEIGHT_MS: f64 = 2000.0;
/// KV use above which the load score falls (preemptions start near a full cache).
const KV_KNEE: f64 = 0.8;
/// Prompt size at which endpoints' speeds are compared for load scaling, tokens.
const SPEED_REF_TOKENS: f64 = 1000.0;
/// Totals within this of each other tie (and ties rotate).
const TIE_EPS: f64 = 1e-9;
/// Share of the latency budget a prediction must fit in to count as safely meeting it (TTFT varies around
/// the prediction; a candidate predicted just under the budget misses it about half the time).
const BUDGET_MARGIN: f64 = 0.6;

/// Whether a model of `model_weights_gib` fits in `memory_gib` with `kv_headroom` (a fraction of the
/// weights) left for KV cache and activations: `weights × (1 + headroom) ≤ memory`. Unknown sizes (zero,
/// negative, not finite) fit.
pub fn fits(model_weights_gib: f64, memory_gib: f64, kv_headroom: f64) -> bool {
    let known = |v: f64| v.is_finite() && v > 0.0;
    if !known(model_weights_gib) || !known(memory_gib) {
        return true;
    }
    let headroom = if kv_headroom.is_finite() {
        kv_headroom.max(0.0)
    } else {
        0.0
    };
    model_weights_gib * (1.0 + headroom) <= memory_gib
}

fn allowed(list: Option<&[String]>, value: Option<&str>) -> bool {
    match list {
        None => true,
        Some(l) => value.is_some_and(|v| l.iter().any(|a| a.eq_ignore_ascii_case(v))),
    }
}

fn weight(w: f64) -> f64 {
    if w.is_finite() { w.max(0.0) } else { 0.0 }
}

/// Per-candidate values of one decision that the scores are normalised from.
#[derive(Debug, Clone, Copy, Default)]
struct Raw {
    /// Zero-load TTFT of a reference prompt: the endpoint's speed.
    base_ms: f64,
    /// Outstanding requests with waiting ones and KV pressure added, before speed scaling.
    load: f64,
    price: Option<f64>,
    session_hit: bool,
}

/// The routing brain: one per gateway (or per model), fed with what happened to each request.
#[derive(Debug, Clone)]
pub struct Router {
    cfg: RoutingConfig,
    key: Keyed,
    slots: HashMap<Box<str>, u32, Keyed>,
    states: Vec<Option<EndpointState>>,
    free: Vec<u32>,
    generations: Vec<u32>,
    sessions: GenMap<u64, (u32, u32)>,
    rotation: usize,
    raw: Vec<Raw>,
}

impl Router {
    /// A router with nothing learned yet.
    pub fn new(cfg: RoutingConfig) -> Self {
        let key = Keyed::random();
        Router {
            sessions: GenMap::new(cfg.session_capacity.max(2), key),
            cfg,
            key,
            slots: HashMap::with_hasher(key),
            states: Vec::new(),
            free: Vec::new(),
            generations: Vec::new(),
            rotation: 0,
            raw: Vec::new(),
        }
    }

    /// Replaces the settings; what was learned is kept.
    pub fn set_config(&mut self, cfg: RoutingConfig) {
        self.sessions.set_capacity(cfg.session_capacity.max(2));
        self.cfg = cfg;
    }

    /// The settings in force.
    pub fn config(&self) -> &RoutingConfig {
        &self.cfg
    }

    fn slot_of(&mut self, key: &str) -> usize {
        if let Some(&s) = self.slots.get(key) {
            return s as usize;
        }
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.states.push(None);
                self.generations.push(0);
                self.states.len() - 1
            }
        };
        self.states[slot] = Some(EndpointState::new(key, self.generations[slot], self.key));
        self.slots.insert(key.into(), slot as u32);
        slot
    }

    fn state(&self, key: &str) -> Option<&EndpointState> {
        let s = *self.slots.get(key)?;
        self.states.get(s as usize)?.as_ref()
    }

    fn state_mut(&mut self, key: &str) -> &mut EndpointState {
        let slot = self.slot_of(key);
        let (generation, hasher) = (self.generations[slot], self.key);
        // slot_of always leaves the slot occupied; the fallback only satisfies the types.
        self.states[slot].get_or_insert_with(|| EndpointState::new(key, generation, hasher))
    }

    fn prefix_capacity(&self, v: &EndpointView<'_>, req: &RouteRequest<'_>) -> usize {
        if !(v.memory_gib.is_finite() && v.memory_gib > 0.0) {
            return DEFAULT_PREFIX_BLOCKS;
        }
        let weights = if req.model_weights_gib.is_finite() {
            req.model_weights_gib.max(0.0)
        } else {
            0.0
        };
        // vLLM takes 90 % of memory by default; the KV cache gets what the weights leave of it.
        let kv_gib = (v.memory_gib * 0.9 - weights).max(0.0);
        let per_gib = weight(self.cfg.prefix_blocks_per_gib);
        ((kv_gib * per_gib) as usize).clamp(MIN_PREFIX_BLOCKS, MAX_PREFIX_BLOCKS)
    }

    fn hard_filter(
        &self,
        i: usize,
        v: &EndpointView<'_>,
        req: &RouteRequest<'_>,
        st: &EndpointState,
        exclude: &[usize],
    ) -> Option<FilterReason> {
        if exclude.contains(&i) {
            Some(FilterReason::Excluded)
        } else if !v.healthy {
            Some(FilterReason::Unhealthy)
        } else if st.ejection.is_ejected() {
            Some(FilterReason::Ejected)
        } else if req.adapter.is_some_and(|a| !v.adapters.iter().any(|x| x == a)) {
            Some(FilterReason::Adapter)
        } else if !fits(req.model_weights_gib, v.memory_gib, self.cfg.kv_headroom) {
            Some(FilterReason::TooSmall)
        } else if !allowed(self.cfg.hardware.as_deref(), Some(v.hardware)) || !allowed(req.hardware, Some(v.hardware)) {
            Some(FilterReason::Hardware)
        } else if !allowed(self.cfg.regions.as_deref(), v.region) || !allowed(req.regions, v.region) {
            Some(FilterReason::Region)
        } else {
            None
        }
    }

    /// Chooses an endpoint for `req` among `eps`, skipping the indices in `exclude` (already tried for this
    /// request). Filters first (health, ejection, adapter, fit, hardware, region, then the latency budget
    /// when some candidate meets it), then the weighted scores; equal totals rotate. Allocates the returned
    /// `Vec` only (plus state for an endpoint seen for the first time).
    pub fn decide<'a>(
        &mut self,
        now_ms: u64,
        req: &RouteRequest<'_>,
        eps: &[EndpointView<'a>],
        exclude: &[usize],
    ) -> Decision<'a> {
        self.rotation = self.rotation.wrapping_add(1);
        let mut out: Vec<Scored<'a>> = Vec::with_capacity(eps.len());
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let session = req.session.map(|s| self.sessions.get(&hash_str(self.key.0, s)));
        let n_blocks = req.prefix_blocks.len();
        let prompt = f64::from(req.prompt_tokens);

        for (i, v) in eps.iter().enumerate() {
            let slot = self.slot_of(v.key);
            let capacity = self.prefix_capacity(v, req);
            let mut sc = Scored {
                index: i,
                key: v.key,
                rejected: None,
                load: 0.0,
                latency: 0.0,
                prefix: 0.0,
                cost: 0.0,
                session: 0.0,
                total: 0.0,
                predicted_ttft_ms: 0.0,
                load_units: 0.0,
                outstanding: 0,
                uncached_tokens: 0,
                queued_tokens: 0,
                prefix_depth: 0,
                guarded: false,
            };
            let (fresh, waiting, running, kv) = match v.load {
                Some(l) => {
                    let f = 1.0 / (1.0 + l.age_ms as f64 / SIGNAL_HALF_WEIGHT_MS);
                    let kv = if l.kv_use.is_finite() {
                        l.kv_use.clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    (f, f64::from(l.waiting), f64::from(l.running), kv)
                }
                None => (0.0, 0.0, 0.0, 0.0),
            };
            let outstanding = f64::from(v.in_flight).max(fresh * (waiting + running));
            if let Some(st) = self.states[slot].as_mut() {
                st.blocks.set_capacity(capacity);
                if v.in_flight == 0 {
                    // Nothing of ours is there: whatever awaits a first token failed or was cancelled.
                    st.clear_awaiting();
                } else {
                    st.expire_awaiting(now_ms);
                }
            }
            let Some(st) = self.states[slot].as_ref() else {
                raw.push(Raw::default());
                out.push(sc);
                continue;
            };
            let generation = st.generation;
            if let Some(r) = self.hard_filter(i, v, req, st, exclude) {
                sc.rejected = Some(r);
                raw.push(Raw::default());
                out.push(sc);
                continue;
            }
            let load = (outstanding + fresh * waiting) * (1.0 + fresh * 5.0 * (kv - KV_KNEE).max(0.0));
            let depth = prefix_depth(&st.blocks, req.prefix_blocks);
            let uncached = if n_blocks == 0 {
                prompt
            } else {
                prompt * (1.0 - depth as f64 / n_blocks as f64)
            };
            sc.predicted_ttft_ms = st.model.predict(uncached, st.queued_tokens as f64);
            sc.queued_tokens = st.queued_tokens.min(u64::from(u32::MAX)) as u32;
            sc.outstanding = outstanding.round() as u32;
            sc.uncached_tokens = uncached.round() as u32;
            sc.prefix_depth = depth as u32;
            sc.prefix = if n_blocks == 0 {
                0.0
            } else {
                depth as f64 / n_blocks as f64
            };
            raw.push(Raw {
                base_ms: st.model.predict(SPEED_REF_TOKENS, 0.0),
                load,
                price: v.price_per_mtok.filter(|p| p.is_finite() && *p > 0.0),
                session_hit: session.flatten() == Some((slot as u32, generation)),
            });
            out.push(sc);
        }

        // The latency budget filters only when somebody can meet it: with a safety margin for the model's
        // error when somebody can, else plainly.
        if let Some(budget) = req.latency_budget_ms.or(self.cfg.latency_budget_ms) {
            let b = budget as f64;
            for limit in [b * BUDGET_MARGIN, b] {
                if out.iter().any(|c| c.rejected.is_none() && c.predicted_ttft_ms <= limit) {
                    for c in out
                        .iter_mut()
                        .filter(|c| c.rejected.is_none() && c.predicted_ttft_ms > limit)
                    {
                        c.rejected = Some(FilterReason::OverBudget);
                    }
                    break;
                }
            }
        }

        let (mut base_min, mut ttft_min, mut price_min) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        for (c, r) in out.iter().zip(raw.iter()).filter(|(c, _)| c.rejected.is_none()) {
            base_min = base_min.min(r.base_ms);
            ttft_min = ttft_min.min(c.predicted_ttft_ms);
            price_min = price_min.min(r.price.unwrap_or(f64::INFINITY));
        }
        let mut units_min = f64::INFINITY;
        for (c, r) in out.iter_mut().zip(raw.iter()).filter(|(c, _)| c.rejected.is_none()) {
            // Slower endpoints' requests weigh more: load in requests of the fastest candidate.
            c.load_units = r.load * (r.base_ms / base_min).max(1.0);
            units_min = units_min.min(c.load_units);
        }

        let w = self.cfg.weights;
        let (wl, wt, wp, wc, ws) = (
            weight(w.load),
            weight(w.latency),
            weight(w.prefix),
            weight(w.cost),
            weight(w.session),
        );
        let guard = f64::from(self.cfg.prefix_max_imbalance);
        let mut best: Option<(usize, f64)> = None;
        let n = out.len();
        let start = if n == 0 { 0 } else { self.rotation % n };
        for k in 0..n {
            let i = (start + k) % n;
            let (c, r) = (&mut out[i], &raw[i]);
            if c.rejected.is_some() {
                continue;
            }
            c.load = (1.0 + units_min) / (1.0 + c.load_units);
            c.latency = ttft_min / c.predicted_ttft_ms;
            c.cost = r.price.map_or(1.0, |p| price_min / p);
            c.session = if r.session_hit { 1.0 } else { 0.0 };
            if c.load_units - units_min > guard {
                c.guarded = c.prefix > 0.0 || c.session > 0.0;
                c.prefix = 0.0;
                c.session = 0.0;
            }
            c.total = wl * c.load + wt * c.latency + wp * c.prefix + wc * c.cost + ws * c.session;
            if best.is_none_or(|(_, t)| c.total > t + TIE_EPS * t.abs().max(1.0)) {
                best = Some((i, c.total));
            }
        }
        self.raw = raw;
        Decision {
            chosen: best.map(|(i, _)| i),
            candidates: out,
        }
    }

    /// `req` was sent to `ep`: its prompt blocks are now probably in `ep`'s cache, and its session lives
    /// there.
    pub fn on_dispatch(&mut self, now_ms: u64, ep: &str, req: &RouteRequest<'_>) {
        let seed = self.key.0;
        let slot = self.slot_of(ep);
        let Some(st) = self.states[slot].as_mut() else {
            return;
        };
        let generation = st.generation;
        st.record_dispatch(now_ms, req.prompt_tokens, req.prefix_blocks);
        if let Some(s) = req.session {
            self.sessions.insert(hash_str(seed, s), (slot as u32, generation));
        }
    }

    /// The first token of a request on `ep` came `ttft_ms` after it was sent. `prompt_tokens` is the
    /// request's `RouteRequest::prompt_tokens`: it finds the dispatch (the oldest awaiting one of that length),
    /// whose recorded features (uncached tokens, prefill queued ahead, load) the model learns against.
    /// Without a matching [`Router::on_dispatch`] the model learns from it only when `load_at_dispatch`
    /// (requests in flight on `ep` when it was sent) is 0: otherwise the queueing share is unknown.
    pub fn on_first_token(&mut self, now_ms: u64, ep: &str, prompt_tokens: u32, load_at_dispatch: u32, ttft_ms: f64) {
        let _ = now_ms;
        let st = self.state_mut(ep);
        st.learn(prompt_tokens, load_at_dispatch, ttft_ms);
    }

    /// A request on `ep` succeeded (a passing probe re-admits an ejected endpoint whose back-off is over).
    pub fn on_success(&mut self, now_ms: u64, ep: &str) {
        self.state_mut(ep).ejection.on_success(now_ms);
    }

    /// A request on `ep` failed in a way that is the endpoint's fault (connect error, 5xx, overload).
    pub fn on_failure(&mut self, now_ms: u64, ep: &str) {
        let cfg = self.cfg.ejection;
        self.state_mut(ep).ejection.on_failure(now_ms, &cfg);
    }

    /// Whether `ep` is out of rotation: ejected and not yet re-admitted by a passing probe (the back-off
    /// only says when to probe).
    pub fn is_ejected(&self, _now_ms: u64, ep: &str) -> bool {
        self.state(ep).is_some_and(|s| s.ejection.is_ejected())
    }

    /// When `ep` is due for its probe, if it is ejected.
    pub fn ejected_until(&self, ep: &str) -> Option<u64> {
        self.state(ep).and_then(|s| s.ejection.until())
    }

    /// Ejected endpoints whose back-off is over: probe them; report the outcome with
    /// [`Router::on_success`] / [`Router::on_failure`].
    pub fn probe_due(&self, now_ms: u64) -> Vec<String> {
        self.states
            .iter()
            .flatten()
            .filter(|s| s.ejection.probe_due(now_ms))
            .map(|s| s.key.to_string())
            .collect()
    }

    /// Drops everything learned about `ep` (it left the fleet).
    pub fn forget(&mut self, ep: &str) {
        if let Some(slot) = self.slots.remove(ep) {
            let s = slot as usize;
            self.states[s] = None;
            self.generations[s] = self.generations[s].wrapping_add(1);
            self.free.push(slot);
        }
    }

    /// TTFT the router predicts for a prompt of `uncached_tokens` on `ep` behind `queued_tokens` of prefill,
    /// ms, and the number of observations it learned from.
    pub fn predicted_ttft_ms(&self, ep: &str, uncached_tokens: u32, queued_tokens: u32) -> (f64, u64) {
        let m = self.state(ep).map(|s| s.model.clone()).unwrap_or_default();
        (
            m.predict(f64::from(uncached_tokens), f64::from(queued_tokens)),
            m.samples(),
        )
    }

    /// Endpoints the router holds state for.
    pub fn endpoints(&self) -> usize {
        self.slots.len()
    }
}
