//! Load for virtual-time runs: arrival processes, length distributions, shared-prefix groups,
//! tenants, and trace replay.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::engine::Time;
use crate::rng::{SimRng, hash_str, mix64};
use crate::tokenizer::{BOS, FIRST_WORD, Tokenizer};

/// A distribution of token counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthDist {
    /// Always `value`.
    Fixed {
        /// The count.
        value: u32,
    },
    /// Uniform in `min..=max`.
    Uniform {
        /// Smallest.
        min: u32,
        /// Largest.
        max: u32,
    },
    /// Log-normal around `median` with shape `sigma`, clamped to `min..=max` (ShareGPT-like
    /// prompt and answer lengths are roughly log-normal).
    LogNormal {
        /// Median.
        median: f64,
        /// Shape (0.5–1.0 is typical of chat traces).
        sigma: f64,
        /// Smallest.
        #[serde(default = "one")]
        min: u32,
        /// Largest.
        max: u32,
    },
}

fn one() -> u32 {
    1
}

impl LengthDist {
    /// Draws one count (at least 1).
    pub fn sample(&self, rng: &mut SimRng) -> u32 {
        match *self {
            LengthDist::Fixed { value } => value.max(1),
            LengthDist::Uniform { min, max } => rng.range_u32(min.max(1), max.max(min).max(1)),
            LengthDist::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                let v = median * (sigma * rng.normal()).exp();
                (v.round() as u32).clamp(min.max(1), max.max(min).max(1))
            }
        }
    }

    /// Mean of the distribution (approximate for the clamped log-normal).
    pub fn mean(&self) -> f64 {
        match *self {
            LengthDist::Fixed { value } => f64::from(value),
            LengthDist::Uniform { min, max } => (f64::from(min) + f64::from(max)) / 2.0,
            LengthDist::LogNormal { median, sigma, .. } => median * (sigma * sigma / 2.0).exp(),
        }
    }
}

/// How requests arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrival {
    /// Open loop, exponential gaps at `rate` requests/s.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Open loop, on/off Markov-modulated Poisson: `rate_on` during bursts, `rate_off` between,
    /// phase lengths exponential with the given means.
    Bursty {
        /// Requests per second in a burst.
        rate_on: f64,
        /// Requests per second between bursts.
        rate_off: f64,
        /// Mean burst length, s.
        mean_on_s: f64,
        /// Mean gap between bursts, s.
        mean_off_s: f64,
    },
    /// Closed loop: `concurrency` clients, each sending its next request `think_s` (mean,
    /// exponential; 0 = at once) after the previous one finishes.
    Closed {
        /// Clients.
        concurrency: u32,
        /// Mean think time, s.
        #[serde(default)]
        think_s: f64,
    },
}

/// One tenant's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// Name (reports).
    pub name: String,
    /// Share of arrivals (open loop) or clients (closed loop), relative to the other tenants.
    #[serde(default = "one_f")]
    pub weight: f64,
    /// Prompt length.
    pub prompt_tokens: LengthDist,
    /// Output length (requests run exactly this long: `ignore_eos`).
    pub output_tokens: LengthDist,
    /// Distinct shared prefixes (system prompts, documents); 0 = none.
    #[serde(default)]
    pub prefix_groups: u32,
    /// Tokens of each shared prefix.
    #[serde(default)]
    pub prefix_tokens: u32,
    /// LoRA adapter every request of the tenant uses.
    #[serde(default)]
    pub lora: Option<String>,
}

fn one_f() -> f64 {
    1.0
}

impl TenantSpec {
    /// A tenant with fixed lengths and no shared prefix.
    pub fn fixed(name: &str, prompt: u32, output: u32) -> Self {
        TenantSpec {
            name: name.into(),
            weight: 1.0,
            prompt_tokens: LengthDist::Fixed { value: prompt },
            output_tokens: LengthDist::Fixed { value: output },
            prefix_groups: 0,
            prefix_tokens: 0,
            lora: None,
        }
    }
}

/// A synthetic workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Arrival process.
    pub arrival: Arrival,
    /// No request arrives after this many simulated seconds.
    pub duration_s: f64,
    /// Stop after this many requests.
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Tenants (at least one).
    pub tenants: Vec<TenantSpec>,
    /// Seed of every random draw.
    #[serde(default)]
    pub seed: u64,
}

/// A request the load source wants sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// Arrival time.
    pub at: Time,
    /// Tenant index.
    pub tenant: u32,
    /// Closed-loop client (or `u32::MAX` for open loop).
    pub client: u32,
    /// Prompt tokens.
    pub prompt: Vec<u32>,
    /// Output tokens.
    pub max_tokens: u32,
    /// Run to `max_tokens` regardless of EOS.
    pub ignore_eos: bool,
    /// Adapter.
    pub lora: Option<String>,
}

/// Open-loop client marker.
pub const OPEN_LOOP: u32 = u32::MAX;

/// Where a virtual run's requests come from.
pub trait LoadSource {
    /// Tenant names, by index.
    fn tenants(&self) -> Vec<String>;
    /// LoRA adapters the requests use (engines load them before the run).
    fn loras(&self) -> Vec<String>;
    /// Requests known at the start (closed-loop clients' first requests).
    fn start(&mut self) -> Vec<NewRequest>;
    /// The next open-loop request, in time order; `None` when there are no more.
    fn next_open(&mut self) -> Option<NewRequest>;
    /// A closed-loop client's request finished at `now`: its next request, if any.
    fn on_finish(&mut self, now: Time, client: u32) -> Option<NewRequest>;
}

/// Builds prompts: shared prefixes per (tenant, group), random unique suffixes.
#[derive(Debug, Clone)]
struct PromptMaker {
    vocab: u32,
    seed: u64,
    prefixes: HashMap<(u32, u32), Vec<u32>>,
}

impl PromptMaker {
    fn new(vocab: u32, seed: u64) -> Self {
        PromptMaker {
            vocab: Tokenizer::new(vocab).vocab(),
            seed,
            prefixes: HashMap::new(),
        }
    }

    fn random_token(&self, rng: &mut SimRng) -> u32 {
        FIRST_WORD + (rng.next_u64() % u64::from(self.vocab - FIRST_WORD)) as u32
    }

    fn make(&mut self, rng: &mut SimRng, tenant: u32, group: Option<u32>, prefix_len: u32, len: u32) -> Vec<u32> {
        let mut p = Vec::with_capacity(len.max(prefix_len + 1) as usize);
        match group {
            Some(g) if prefix_len > 0 => {
                let vocab = self.vocab;
                let seed = self.seed;
                let prefix = self.prefixes.entry((tenant, g)).or_insert_with(|| {
                    let mut r = SimRng::new(mix64(seed ^ (u64::from(tenant) << 32) ^ u64::from(g)));
                    let mut v = vec![BOS];
                    while (v.len() as u32) < prefix_len {
                        v.push(FIRST_WORD + (r.next_u64() % u64::from(vocab - FIRST_WORD)) as u32);
                    }
                    v
                });
                p.extend_from_slice(prefix);
            }
            _ => p.push(BOS),
        }
        let total = len.max(p.len() as u32 + 1);
        while (p.len() as u32) < total {
            p.push(self.random_token(rng));
        }
        p
    }
}

/// The synthetic generator for a [`WorkloadSpec`].
#[derive(Debug, Clone)]
pub struct Workload {
    spec: WorkloadSpec,
    rng: SimRng,
    maker: PromptMaker,
    weights: Vec<f64>,
    issued: u64,
    next_t: Time,
    burst_on: bool,
    phase_end: Time,
    client_tenant: Vec<u32>,
}

impl Workload {
    /// A generator for `spec`, with token ids below `vocab`.
    pub fn new(mut spec: WorkloadSpec, vocab: u32) -> Self {
        if spec.tenants.is_empty() {
            spec.tenants.push(TenantSpec::fixed("default", 512, 128));
        }
        let total: f64 = spec.tenants.iter().map(|t| t.weight.max(0.0)).sum();
        let weights = spec
            .tenants
            .iter()
            .map(|t| t.weight.max(0.0) / total.max(1e-12))
            .collect();
        let mut rng = SimRng::new(spec.seed);
        let (burst_on, phase_end) = match spec.arrival {
            Arrival::Bursty { mean_on_s, .. } => (true, rng.exp(1.0 / mean_on_s.max(1e-9))),
            _ => (false, f64::INFINITY),
        };
        let maker = PromptMaker::new(vocab, spec.seed);
        Workload {
            spec,
            rng,
            maker,
            weights,
            issued: 0,
            next_t: 0.0,
            burst_on,
            phase_end,
            client_tenant: Vec::new(),
        }
    }

    fn pick_tenant(&mut self) -> u32 {
        let u = self.rng.next_f64();
        let mut acc = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                return i as u32;
            }
        }
        (self.weights.len() - 1) as u32
    }

    fn budget_left(&self) -> bool {
        self.spec.max_requests.is_none_or(|m| self.issued < m)
    }

    fn make(&mut self, at: Time, tenant: u32, client: u32) -> NewRequest {
        let t = &self.spec.tenants[tenant as usize];
        let (pd, od, groups, plen, lora) = (
            t.prompt_tokens.clone(),
            t.output_tokens.clone(),
            t.prefix_groups,
            t.prefix_tokens,
            t.lora.clone(),
        );
        let len = pd.sample(&mut self.rng);
        let out = od.sample(&mut self.rng);
        let group = (groups > 0).then(|| self.rng.range_u32(0, groups - 1));
        let prompt = self.maker.make(&mut self.rng, tenant, group, plen, len);
        self.issued += 1;
        NewRequest {
            at,
            tenant,
            client,
            prompt,
            max_tokens: out,
            ignore_eos: true,
            lora,
        }
    }

    /// Advances the open-loop clock to the next arrival.
    fn next_arrival_time(&mut self) -> Time {
        match self.spec.arrival {
            Arrival::Poisson { rate } => self.next_t + self.rng.exp(rate),
            Arrival::Bursty {
                rate_on,
                rate_off,
                mean_on_s,
                mean_off_s,
            } => {
                let mut t = self.next_t;
                loop {
                    let rate = if self.burst_on { rate_on } else { rate_off };
                    let dt = self.rng.exp(rate);
                    if t + dt < self.phase_end {
                        return t + dt;
                    }
                    // Memoryless: restart the draw at the phase boundary with the other rate.
                    t = self.phase_end;
                    self.burst_on = !self.burst_on;
                    let mean = if self.burst_on { mean_on_s } else { mean_off_s };
                    self.phase_end = t + self.rng.exp(1.0 / mean.max(1e-9));
                    if t > self.spec.duration_s {
                        return t;
                    }
                }
            }
            Arrival::Closed { .. } => f64::INFINITY,
        }
    }
}

impl LoadSource for Workload {
    fn tenants(&self) -> Vec<String> {
        self.spec.tenants.iter().map(|t| t.name.clone()).collect()
    }

    fn loras(&self) -> Vec<String> {
        let mut v: Vec<String> = self.spec.tenants.iter().filter_map(|t| t.lora.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    fn start(&mut self) -> Vec<NewRequest> {
        let Arrival::Closed { concurrency, think_s } = self.spec.arrival else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in 0..concurrency {
            let tenant = self.pick_tenant();
            self.client_tenant.push(tenant);
            if !self.budget_left() {
                break;
            }
            let at = if think_s > 0.0 {
                self.rng.exp(1.0 / think_s)
            } else {
                0.0
            };
            if at <= self.spec.duration_s {
                out.push(self.make(at, tenant, c));
            }
        }
        out
    }

    fn next_open(&mut self) -> Option<NewRequest> {
        if matches!(self.spec.arrival, Arrival::Closed { .. }) || !self.budget_left() {
            return None;
        }
        let t = self.next_arrival_time();
        if !t.is_finite() || t > self.spec.duration_s {
            return None;
        }
        self.next_t = t;
        let tenant = self.pick_tenant();
        Some(self.make(t, tenant, OPEN_LOOP))
    }

    fn on_finish(&mut self, now: Time, client: u32) -> Option<NewRequest> {
        let Arrival::Closed { think_s, .. } = self.spec.arrival else {
            return None;
        };
        let tenant = *self.client_tenant.get(client as usize)?;
        if !self.budget_left() {
            return None;
        }
        let at = now
            + if think_s > 0.0 {
                self.rng.exp(1.0 / think_s)
            } else {
                0.0
            };
        (at <= self.spec.duration_s).then(|| self.make(at, tenant, client))
    }
}

/// One line of a trace file (JSONL or a YAML list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRecord {
    /// Arrival, seconds from the start.
    #[serde(alias = "timestamp")]
    pub t: f64,
    /// Tenant name.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Prompt text (tokenised with the simulator's tokenizer); else `prompt_tokens` random tokens.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Prompt length when no text is given.
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: Option<u32>,
    /// Output length (exact).
    #[serde(alias = "max_tokens")]
    pub output_tokens: u32,
    /// Requests with the same group share their first `prefix_tokens` tokens.
    #[serde(default)]
    pub prefix_group: Option<String>,
    /// Length of the shared prefix.
    #[serde(default)]
    pub prefix_tokens: u32,
    /// LoRA adapter.
    #[serde(default)]
    pub lora: Option<String>,
}

/// Replays a trace, open loop, in time order.
#[derive(Debug, Clone)]
pub struct TraceSource {
    records: Vec<TraceRecord>,
    next: usize,
    tenants: Vec<String>,
    tokenizer: Tokenizer,
    rng: SimRng,
    maker: PromptMaker,
}

impl TraceSource {
    /// A replay of `records` (sorted by time here) with token ids below `vocab`.
    pub fn new(mut records: Vec<TraceRecord>, vocab: u32, seed: u64) -> Self {
        records.sort_by(|a, b| a.t.total_cmp(&b.t));
        let mut tenants: Vec<String> = Vec::new();
        for r in &records {
            let name = r.tenant.clone().unwrap_or_else(|| "default".into());
            if !tenants.contains(&name) {
                tenants.push(name);
            }
        }
        if tenants.is_empty() {
            tenants.push("default".into());
        }
        TraceSource {
            records,
            next: 0,
            tenants,
            tokenizer: Tokenizer::new(vocab),
            rng: SimRng::new(seed),
            maker: PromptMaker::new(vocab, seed),
        }
    }

    /// Records in the trace.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True for an empty trace.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl LoadSource for TraceSource {
    fn tenants(&self) -> Vec<String> {
        self.tenants.clone()
    }

    fn loras(&self) -> Vec<String> {
        let mut v: Vec<String> = self.records.iter().filter_map(|r| r.lora.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    fn start(&mut self) -> Vec<NewRequest> {
        Vec::new()
    }

    fn next_open(&mut self) -> Option<NewRequest> {
        let r = self.records.get(self.next)?.clone();
        self.next += 1;
        let name = r.tenant.clone().unwrap_or_else(|| "default".into());
        let tenant = self.tenants.iter().position(|t| *t == name).unwrap_or(0) as u32;
        let prompt = match &r.prompt {
            Some(text) => self.tokenizer.encode_prompt(text),
            None => {
                let group = r.prefix_group.as_deref().map(|g| (hash_str(g) & 0xffff_ffff) as u32);
                let len = r.prompt_tokens.unwrap_or(r.prefix_tokens + 1).max(1);
                self.maker.make(&mut self.rng, tenant, group, r.prefix_tokens, len)
            }
        };
        Some(NewRequest {
            at: r.t,
            tenant,
            client: OPEN_LOOP,
            prompt,
            max_tokens: r.output_tokens.max(1),
            ignore_eos: true,
            lora: r.lora,
        })
    }

    fn on_finish(&mut self, _now: Time, _client: u32) -> Option<NewRequest> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arrival: Arrival) -> WorkloadSpec {
        WorkloadSpec {
            arrival,
            duration_s: 100.0,
            max_requests: None,
            tenants: vec![TenantSpec {
                prefix_groups: 2,
                prefix_tokens: 64,
                ..TenantSpec::fixed("a", 200, 10)
            }],
            seed: 3,
        }
    }

    #[test]
    fn poisson_rate_and_prefix_sharing() {
        let mut w = Workload::new(spec(Arrival::Poisson { rate: 20.0 }), 32_000);
        let mut n = 0;
        let mut prefixes = std::collections::HashSet::new();
        let mut last = 0.0;
        while let Some(r) = w.next_open() {
            assert!(r.at >= last);
            last = r.at;
            assert_eq!(r.prompt.len(), 200);
            prefixes.insert(r.prompt[..64].to_vec());
            n += 1;
        }
        assert!((1800..2200).contains(&n), "{n}");
        assert_eq!(prefixes.len(), 2);
    }

    #[test]
    fn bursty_is_burstier_than_poisson() {
        let count = |a: Arrival| {
            let mut w = Workload::new(spec(a), 32_000);
            let mut bins = vec![0u32; 100];
            while let Some(r) = w.next_open() {
                bins[(r.at as usize).min(99)] += 1;
            }
            let mean = bins.iter().map(|b| f64::from(*b)).sum::<f64>() / 100.0;
            let var = bins.iter().map(|b| (f64::from(*b) - mean).powi(2)).sum::<f64>() / 100.0;
            (mean, var / mean)
        };
        let (_, poisson_dispersion) = count(Arrival::Poisson { rate: 10.0 });
        let (mean, bursty_dispersion) = count(Arrival::Bursty {
            rate_on: 40.0,
            rate_off: 2.0,
            mean_on_s: 2.0,
            mean_off_s: 6.0,
        });
        assert!(poisson_dispersion < 2.0, "{poisson_dispersion}");
        assert!(bursty_dispersion > 5.0, "{bursty_dispersion}");
        assert!(mean > 5.0 && mean < 20.0, "{mean}");
    }

    #[test]
    fn closed_loop_issues_per_client() {
        let mut w = Workload::new(
            spec(Arrival::Closed {
                concurrency: 4,
                think_s: 0.0,
            }),
            32_000,
        );
        let first = w.start();
        assert_eq!(first.len(), 4);
        assert!(w.next_open().is_none());
        let next = w.on_finish(1.0, 2).expect("next");
        assert_eq!(next.client, 2);
        assert_eq!(next.at, 1.0);
        assert!(w.on_finish(101.0, 2).is_none(), "no arrivals after the duration");
    }

    #[test]
    fn trace_replays_in_order() {
        let recs = vec![
            TraceRecord {
                t: 2.0,
                tenant: Some("b".into()),
                prompt: Some("hello world".into()),
                prompt_tokens: None,
                output_tokens: 5,
                prefix_group: None,
                prefix_tokens: 0,
                lora: None,
            },
            TraceRecord {
                t: 1.0,
                tenant: None,
                prompt: None,
                prompt_tokens: Some(30),
                output_tokens: 7,
                prefix_group: Some("sys".into()),
                prefix_tokens: 16,
                lora: Some("ad".into()),
            },
        ];
        let mut s = TraceSource::new(recs, 32_000, 1);
        assert_eq!(s.loras(), vec!["ad".to_string()]);
        let a = s.next_open().expect("a");
        let b = s.next_open().expect("b");
        assert!(s.next_open().is_none());
        assert_eq!((a.at, a.prompt.len(), a.max_tokens), (1.0, 30, 7));
        assert_eq!((b.at, b.prompt.len(), b.max_tokens), (2.0, 3, 5));
        assert_eq!(s.tenants(), vec!["default".to_string(), "b".to_string()]);
    }
}
