//! The engine: waiting and running queues, continuous batching under a token budget, paged KV
//! with prefix caching, recompute preemption, LoRA slots. Step-based and clock-free: the caller
//! passes the time in and gets the step's duration back, so the same code runs in real time and
//! in virtual time.

use std::collections::VecDeque;

use serde::Serialize;

use crate::generator::{StopPolicy, natural_len, request_key, token_at};
use crate::hardware::{HardwareProfile, find_hardware};
use crate::kv::{BlockId, BlockPool};
use crate::metrics::{EngineMetrics, FinishReason};
use crate::model::{ModelProfile, find_model};
use crate::rng::{fx_step, hash_combine, hash_str, mix64};
use crate::timing::{BatchShape, TimingModel, auto_tensor_parallel};

/// Seconds since the start of the run (real or simulated).
pub type Time = f64;

/// How an engine is built.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineConfig {
    /// Hardware profile key (for reports).
    pub hardware: String,
    /// Model profile key (for reports).
    pub model: String,
    /// Step-time model.
    pub timing: TimingModel,
    /// KV blocks.
    pub num_blocks: u32,
    /// Tokens per block.
    pub block_size: u32,
    /// Most sequences in one batch (`--max-num-seqs`).
    pub max_num_seqs: u32,
    /// Token budget of one step (`--max-num-batched-tokens`).
    pub max_num_batched_tokens: u32,
    /// Longest prompt + output (`--max-model-len`).
    pub max_model_len: u32,
    /// Block-level prefix caching (on by default in vLLM V1).
    pub enable_prefix_caching: bool,
    /// Most distinct LoRA adapters in one batch (`--max-loras`).
    pub max_loras: u32,
    /// Most adapters loaded at once (`--max-cpu-loras`).
    pub max_loaded_loras: u32,
    /// Delay between a request's arrival and the engine core seeing it, with an idle API server.
    pub frontend_latency_s: f64,
    /// API-server CPU time per streamed token (stretches the delay above under load).
    pub frontend_token_cost_s: f64,
    /// Output seed.
    pub seed: u64,
    /// When requests stop by themselves.
    pub stop_policy: StopPolicy,
    /// Vocabulary size of the model.
    pub vocab: u32,
}

/// Why an engine cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// No hardware profile by that name.
    #[error("unknown hardware profile `{0}` (known: {1})")]
    UnknownHardware(String, String),
    /// No model profile by that name.
    #[error("unknown model profile `{0}` (known: {1})")]
    UnknownModel(String, String),
    /// The weights leave no memory for KV.
    #[error("model `{model}` does not fit on `{hardware}` (weights {weights_gib:.1} GiB per device)")]
    DoesNotFit {
        /// Model key.
        model: String,
        /// Hardware key.
        hardware: String,
        /// Weight bytes per device, GiB.
        weights_gib: f64,
    },
}

impl EngineConfig {
    /// vLLM's defaults for `model` on `hw`: KV blocks from the memory left after weights, the
    /// device's default batch limits, the model's context (capped by what the KV cache holds).
    pub fn from_profiles(hw: &HardwareProfile, model: &ModelProfile) -> Result<Self, ConfigError> {
        let tp = auto_tensor_parallel(hw, model);
        let timing = TimingModel::new(hw, model, tp);
        let kv_bytes = match hw.kv_cache_bytes {
            Some(b) => b,
            None => hw.mem_bytes * hw.gpu_memory_utilization - hw.activation_reserve_bytes - timing.weight_bytes,
        };
        let block_bytes = timing.kv_bytes_per_token * f64::from(hw.block_size);
        let num_blocks = if kv_bytes > 0.0 {
            (kv_bytes / block_bytes).floor()
        } else {
            0.0
        };
        if num_blocks < 1.0 {
            return Err(ConfigError::DoesNotFit {
                model: model.name.into(),
                hardware: hw.name.into(),
                weights_gib: timing.weight_bytes / (1u64 << 30) as f64,
            });
        }
        // Beyond a few million blocks the numbers stop mattering; keep the pool's arrays small.
        let num_blocks = num_blocks.min(4_000_000.0) as u32;
        let capacity = num_blocks.saturating_mul(hw.block_size);
        Ok(EngineConfig {
            hardware: hw.name.into(),
            model: model.name.into(),
            timing,
            num_blocks,
            block_size: hw.block_size,
            max_num_seqs: hw.default_max_num_seqs,
            max_num_batched_tokens: hw.default_max_num_batched_tokens,
            max_model_len: model.max_model_len.min(capacity),
            enable_prefix_caching: true,
            max_loras: 4,
            max_loaded_loras: 16,
            frontend_latency_s: hw.frontend_latency_s,
            frontend_token_cost_s: hw.frontend_token_cost_s,
            seed: 0,
            stop_policy: StopPolicy::default(),
            vocab: model.vocab,
        })
    }

    /// [`EngineConfig::from_profiles`] by profile names (forgiving spelling).
    pub fn for_names(hardware: &str, model: &str) -> Result<Self, ConfigError> {
        let hw = find_hardware(hardware)
            .ok_or_else(|| ConfigError::UnknownHardware(hardware.into(), crate::hardware_names().join(", ")))?;
        let m = find_model(model)
            .ok_or_else(|| ConfigError::UnknownModel(model.into(), crate::model_names().join(", ")))?;
        Self::from_profiles(hw, m)
    }

    /// Tokens the KV cache holds.
    pub fn kv_capacity_tokens(&self) -> u64 {
        u64::from(self.num_blocks) * u64::from(self.block_size)
    }
}

/// A request as the engine takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRequest {
    /// Caller's id, unique among requests in the engine.
    pub id: u64,
    /// Prompt token ids (non-empty).
    pub prompt: Vec<u32>,
    /// Most tokens to generate (≥ 1).
    pub max_tokens: u32,
    /// Run to `max_tokens` even when the model would stop.
    pub ignore_eos: bool,
    /// Per-request seed (changes the output).
    pub seed: Option<u64>,
    /// LoRA adapter name (must be loaded).
    pub lora: Option<String>,
}

impl SimRequest {
    /// A request with no seed, no adapter, stopping naturally.
    pub fn new(id: u64, prompt: Vec<u32>, max_tokens: u32) -> Self {
        SimRequest {
            id,
            prompt,
            max_tokens,
            ignore_eos: false,
            seed: None,
            lora: None,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The id is already in the engine.
    #[error("request id {0} is already in the engine")]
    DuplicateId(u64),
    /// No prompt tokens.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// `max_tokens` is 0.
    #[error("max_tokens must be at least 1")]
    ZeroMaxTokens,
    /// Prompt plus output exceeds the context.
    #[error(
        "This model's maximum context length is {max_model_len} tokens. However, you requested {} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). Please reduce the length of the messages or completion.",
        prompt_tokens + max_tokens
    )]
    ContextTooLong {
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Requested output tokens.
        max_tokens: u32,
        /// The engine's context.
        max_model_len: u32,
    },
    /// The adapter is not loaded.
    #[error("The model `{0}` does not exist.")]
    UnknownLora(String),
}

/// Why a LoRA load or unload failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoraError {
    /// Already loaded.
    #[error(
        "The lora adapter '{0}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True."
    )]
    AlreadyLoaded(String),
    /// Not loaded.
    #[error("The lora adapter '{0}' cannot be found.")]
    NotFound(String),
    /// `max_loaded_loras` reached.
    #[error("cannot load more than {0} LoRA adapters")]
    TooMany(u32),
}

/// Token counts of a finished request (OpenAI `usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Prompt tokens served from the prefix cache at first scheduling.
    pub cached_tokens: u32,
}

/// Timestamps of a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RequestTiming {
    /// Arrival (submit time).
    pub arrival: Time,
    /// First time in a batch.
    pub first_scheduled: Time,
    /// First token out.
    pub first_token: Time,
    /// Last token out.
    pub finished: Time,
    /// Times preempted.
    pub preemptions: u32,
}

impl RequestTiming {
    /// Time to first token.
    pub fn ttft(&self) -> f64 {
        self.first_token - self.arrival
    }
    /// End-to-end latency.
    pub fn e2e(&self) -> f64 {
        self.finished - self.arrival
    }
}

/// What a step produced, stamped at the step's end.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A new output token (`index` 0 is the first token).
    Token {
        /// Request id.
        id: u64,
        /// Token id.
        token: u32,
        /// Position in the output.
        index: u32,
    },
    /// The request is done; no more events for it.
    Finished {
        /// Request id.
        id: u64,
        /// Stop (EOS) or length.
        reason: FinishReason,
        /// Token counts.
        usage: Usage,
        /// Timestamps.
        timing: RequestTiming,
    },
}

/// Summary of one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepInfo {
    /// When it started.
    pub start: Time,
    /// How long it took.
    pub duration: f64,
    /// Sequences in the batch.
    pub num_seqs: u32,
    /// Tokens computed.
    pub num_tokens: u32,
    /// Requests preempted while scheduling it.
    pub preempted: u32,
}

impl StepInfo {
    /// When its events happen.
    pub fn end(&self) -> Time {
        self.start + self.duration
    }
}

/// A step with its events (the allocating form of [`Engine::step_into`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The step.
    pub info: StepInfo,
    /// Its events, stamped at `info.end()`.
    pub events: Vec<EngineEvent>,
}

/// Load signals at one instant (what `/metrics` gauges and routers read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineStats {
    /// `vllm:num_requests_running`.
    pub running: u32,
    /// `vllm:num_requests_waiting`.
    pub waiting: u32,
    /// `vllm:kv_cache_usage_perc` (0..=1).
    pub kv_usage: f64,
    /// Total KV blocks.
    pub num_blocks: u32,
    /// Blocks without owner.
    pub free_blocks: u32,
    /// Blocks findable by prefix hash.
    pub cached_blocks: u32,
    /// Adapters of running requests.
    pub running_loras: Vec<String>,
    /// Adapters of waiting requests.
    pub waiting_loras: Vec<String>,
}

#[derive(Debug, Clone)]
struct Req {
    id: u64,
    /// Prompt then generated tokens.
    tokens: Vec<u32>,
    prompt_len: u32,
    /// Output tokens it will emit in all.
    target: u32,
    stop_reason: FinishReason,
    max_tokens: u32,
    key: u64,
    lora: Option<u32>,
    num_computed: u32,
    blocks: Vec<BlockId>,
    /// Chained hashes of the full blocks of `tokens` computed so far.
    hashes: Vec<u64>,
    /// Leading blocks already registered in the prefix cache.
    cached_blocks: u32,
    arrival: Time,
    ready_at: Time,
    first_scheduled: Option<Time>,
    first_token: Option<Time>,
    last_token: Time,
    preemptions: u32,
    cached_tokens: u32,
    running: bool,
}

#[derive(Debug, Clone)]
struct LoraSlot {
    name: String,
    loaded: bool,
    running: u32,
}

/// One simulated engine.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: EngineConfig,
    pool: BlockPool,
    slots: Vec<Option<Req>>,
    free_slots: Vec<u32>,
    index: std::collections::HashMap<u64, u32>,
    /// In the API server (front-end delay not over yet), by ready time.
    incoming: VecDeque<u32>,
    /// In the engine core's queue, in arrival order to the core.
    waiting: VecDeque<u32>,
    running: Vec<u32>,
    loras: Vec<LoraSlot>,
    metrics: EngineMetrics,
    scheduled: Vec<(u32, u32)>,
    skipped: Vec<u32>,
    done: Vec<u32>,
    /// (time, decayed count) of tokens emitted, for the API server's recent load.
    token_rate: (Time, f64),
}

/// Time constant of the API server's recent token rate, s: long against an engine step (so
/// sampling right after a step's burst of tokens overstates the rate by only ~2 %), short against
/// changes of load that matter.
const TOKEN_RATE_TAU: f64 = 0.5;

const NO_LORA_SEED: u64 = 0x6a09_e667_f3bc_c908;

impl Engine {
    /// An idle engine.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            pool: BlockPool::new(cfg.num_blocks, cfg.block_size),
            metrics: EngineMetrics::new(cfg.max_model_len),
            cfg,
            slots: Vec::new(),
            free_slots: Vec::new(),
            index: std::collections::HashMap::new(),
            incoming: VecDeque::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            loras: Vec::new(),
            scheduled: Vec::new(),
            skipped: Vec::new(),
            done: Vec::new(),
            token_rate: (0.0, 0.0),
        }
    }

    /// Tokens relayed per second lately: an exponentially decayed count (time constant
    /// `TOKEN_RATE_TAU`) of the tokens emitted, decayed to `now`, over the time constant.
    fn recent_token_rate(&self, now: Time) -> f64 {
        let (at, count) = self.token_rate;
        count * (-(now - at).max(0.0) / TOKEN_RATE_TAU).exp() / TOKEN_RATE_TAU
    }

    /// When a request arriving at `now` reaches the engine core: the idle front-end latency,
    /// stretched by the share of the API server busy relaying tokens (processor sharing; the
    /// share is capped at 90 %).
    fn frontend_ready_at(&self, now: Time) -> Time {
        let c = &self.cfg;
        if c.frontend_token_cost_s <= 0.0 {
            return now + c.frontend_latency_s;
        }
        let rho = (c.frontend_token_cost_s * self.recent_token_rate(now)).min(0.9);
        now + c.frontend_latency_s / (1.0 - rho)
    }

    /// Its configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Cumulative counters and histograms.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    /// The KV block pool.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Requests in the running batch.
    pub fn num_running(&self) -> u32 {
        self.running.len() as u32
    }

    /// Requests in the engine core's queue, waiting for a batch slot or KV (`vllm:num_requests_waiting`
    /// counts these, not requests still in the API server).
    pub fn num_waiting(&self) -> u32 {
        self.waiting.len() as u32
    }

    /// Requests still in the front end (arrived, not yet handed to the engine core).
    pub fn num_incoming(&self) -> u32 {
        self.incoming.len() as u32
    }

    /// Requests in the engine.
    pub fn num_requests(&self) -> u32 {
        self.index.len() as u32
    }

    /// Whether a step could have work now or later.
    pub fn has_work(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty() || !self.incoming.is_empty()
    }

    /// When the next step should run: `now` if anything is running, the first waiting request's
    /// ready time otherwise, `None` when idle.
    pub fn next_wakeup(&self, now: Time) -> Option<Time> {
        if !self.running.is_empty() || !self.waiting.is_empty() {
            return Some(now);
        }
        let first = self.incoming.front().and_then(|s| self.slots[*s as usize].as_ref())?;
        Some(first.ready_at.max(now))
    }

    /// Hands requests whose front-end delay is over to the engine core's queue.
    fn admit_ready(&mut self, now: Time) {
        while let Some(&slot) = self.incoming.front() {
            match self.slots[slot as usize].as_ref() {
                Some(r) if r.ready_at > now => break,
                Some(_) => {
                    self.incoming.pop_front();
                    self.waiting.push_back(slot);
                }
                None => {
                    self.incoming.pop_front();
                }
            }
        }
    }

    /// Gauges now.
    pub fn stats(&self) -> EngineStats {
        let names = |list: &mut dyn Iterator<Item = &u32>| {
            let mut v: Vec<String> = list
                .filter_map(|s| self.slots[*s as usize].as_ref())
                .filter_map(|r| r.lora)
                .map(|l| self.loras[l as usize].name.clone())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        EngineStats {
            running: self.num_running(),
            waiting: self.num_waiting(),
            kv_usage: self.pool.usage(),
            num_blocks: self.pool.num_blocks(),
            free_blocks: self.pool.num_free(),
            cached_blocks: self.pool.num_cached() as u32,
            running_loras: names(&mut self.running.iter()),
            waiting_loras: names(&mut self.waiting.iter()),
        }
    }

    /// Loaded LoRA adapter names.
    pub fn loras(&self) -> Vec<String> {
        self.loras.iter().filter(|l| l.loaded).map(|l| l.name.clone()).collect()
    }

    /// Loads an adapter (a name; the simulator has no weights to read).
    pub fn load_lora(&mut self, name: &str) -> Result<(), LoraError> {
        if self.loras.iter().any(|l| l.loaded && l.name == name) {
            return Err(LoraError::AlreadyLoaded(name.into()));
        }
        let loaded = self.loras.iter().filter(|l| l.loaded).count() as u32;
        if loaded >= self.cfg.max_loaded_loras {
            return Err(LoraError::TooMany(self.cfg.max_loaded_loras));
        }
        if let Some(slot) = self.loras.iter_mut().find(|l| l.name == name) {
            slot.loaded = true;
        } else {
            self.loras.push(LoraSlot {
                name: name.into(),
                loaded: true,
                running: 0,
            });
        }
        Ok(())
    }

    /// Unloads an adapter; requests already using it run to the end.
    pub fn unload_lora(&mut self, name: &str) -> Result<(), LoraError> {
        match self.loras.iter_mut().find(|l| l.loaded && l.name == name) {
            Some(slot) => {
                slot.loaded = false;
                Ok(())
            }
            None => Err(LoraError::NotFound(name.into())),
        }
    }

    fn lora_index(&self, name: &str) -> Option<u32> {
        self.loras
            .iter()
            .position(|l| l.loaded && l.name == name)
            .map(|i| i as u32)
    }

    fn hash_seed(&self, lora: Option<u32>) -> u64 {
        match lora {
            // Adapters change the KV, so their blocks never match the base model's.
            Some(l) => mix64(hash_str(&self.loras[l as usize].name)),
            None => NO_LORA_SEED,
        }
    }

    /// Prompt tokens of `prompt` an admission now would find in the prefix cache (for
    /// cache-aware routers; changes nothing).
    pub fn cached_prefix_tokens(&self, prompt: &[u32], lora: Option<&str>) -> u32 {
        if !self.cfg.enable_prefix_caching || prompt.is_empty() {
            return 0;
        }
        let l = match lora {
            Some(n) => match self.lora_index(n) {
                Some(i) => Some(i),
                None => return 0,
            },
            None => None,
        };
        let bs = self.cfg.block_size as usize;
        let max_blocks = (prompt.len() - 1) / bs;
        let mut h = self.hash_seed(l);
        let mut hits = 0;
        for b in 0..max_blocks {
            h = hash_block(h, &prompt[b * bs..(b + 1) * bs]);
            if self.pool.lookup(h).is_none() {
                break;
            }
            hits += 1;
        }
        (hits * bs) as u32
    }

    /// Queues a request that arrived at `now`.
    pub fn submit(&mut self, now: Time, req: SimRequest) -> Result<(), SubmitError> {
        if self.index.contains_key(&req.id) {
            return Err(SubmitError::DuplicateId(req.id));
        }
        if req.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        if req.max_tokens == 0 {
            return Err(SubmitError::ZeroMaxTokens);
        }
        let prompt_len = req.prompt.len() as u32;
        if u64::from(prompt_len) + u64::from(req.max_tokens) > u64::from(self.cfg.max_model_len) {
            return Err(SubmitError::ContextTooLong {
                prompt_tokens: prompt_len,
                max_tokens: req.max_tokens,
                max_model_len: self.cfg.max_model_len,
            });
        }
        let lora = match &req.lora {
            Some(name) => Some(
                self.lora_index(name)
                    .ok_or_else(|| SubmitError::UnknownLora(name.clone()))?,
            ),
            None => None,
        };
        let key = request_key(self.cfg.seed, req.seed, req.lora.as_deref(), &req.prompt);
        let ready_at = self.frontend_ready_at(now);
        let natural = if req.ignore_eos {
            None
        } else {
            natural_len(key, self.cfg.stop_policy)
        };
        let (target, stop_reason) = match natural {
            Some(n) if n < req.max_tokens => (n, FinishReason::Stop),
            _ => (req.max_tokens, FinishReason::Length),
        };
        let mut tokens = req.prompt;
        tokens.reserve(target as usize);
        let r = Req {
            id: req.id,
            tokens,
            prompt_len,
            target,
            stop_reason,
            max_tokens: req.max_tokens,
            key,
            lora,
            num_computed: 0,
            blocks: Vec::new(),
            hashes: Vec::new(),
            cached_blocks: 0,
            arrival: now,
            ready_at,
            first_scheduled: None,
            first_token: None,
            last_token: now,
            preemptions: 0,
            cached_tokens: 0,
            running: false,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(r);
                s
            }
            None => {
                self.slots.push(Some(r));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(req.id, slot);
        // Keep `incoming` ordered by ready time (delays differ with the API server's load).
        let ready = self.slots[slot as usize].as_ref().map_or(now, |r| r.ready_at);
        let pos = self
            .incoming
            .iter()
            .rposition(|s| self.slots[*s as usize].as_ref().is_some_and(|r| r.ready_at <= ready))
            .map_or(0, |p| p + 1);
        self.incoming.insert(pos, slot);
        Ok(())
    }

    /// Drops a request wherever it is; true if it was there. Counted as `finished_reason="abort"`.
    pub fn abort(&mut self, id: u64) -> bool {
        let Some(slot) = self.index.remove(&id) else {
            return false;
        };
        if let Some(pos) = self.waiting.iter().position(|s| *s == slot) {
            self.waiting.remove(pos);
        }
        if let Some(pos) = self.incoming.iter().position(|s| *s == slot) {
            self.incoming.remove(pos);
        }
        if let Some(pos) = self.running.iter().position(|s| *s == slot) {
            self.running.remove(pos);
        }
        if let Some(r) = self.slots[slot as usize].take() {
            self.pool.free(&r.blocks);
            if r.running
                && let Some(l) = r.lora
            {
                self.loras[l as usize].running -= 1;
            }
        }
        self.free_slots.push(slot);
        self.metrics.success_abort += 1;
        true
    }

    /// Runs one step at `now`: schedules a batch, returns its summary and appends its events
    /// (stamped at the step's end) to `events`. `None` when nothing can run now (see
    /// [`Engine::next_wakeup`]).
    pub fn step_into(&mut self, now: Time, events: &mut Vec<EngineEvent>) -> Option<StepInfo> {
        let preempted = self.schedule(now);
        if self.scheduled.is_empty() {
            return None;
        }
        let mut shape = BatchShape::default();
        for &(slot, n) in &self.scheduled {
            if let Some(r) = self.slots[slot as usize].as_ref() {
                let c0 = u64::from(r.num_computed);
                let n64 = u64::from(n);
                shape.num_seqs += 1;
                shape.num_tokens += n;
                shape.kv_tokens += c0 + n64;
                shape.attn_pairs += n64 * c0 + n64 * (n64 + 1) / 2;
                shape.has_lora |= r.lora.is_some();
            }
        }
        let duration = self.cfg.timing.step_time(&shape);
        let end = now + duration;
        self.metrics.steps += 1;
        self.metrics.busy_s += duration;
        self.metrics.iteration_tokens.observe(f64::from(shape.num_tokens));

        let scheduled = std::mem::take(&mut self.scheduled);
        let before = events.len();
        for &(slot, n) in &scheduled {
            self.advance(slot, n, end, events);
        }
        if self.cfg.frontend_token_cost_s > 0.0 {
            let tokens = events[before..]
                .iter()
                .filter(|e| matches!(e, EngineEvent::Token { .. }))
                .count();
            let (at, count) = self.token_rate;
            let decayed = count * (-(end - at).max(0.0) / TOKEN_RATE_TAU).exp();
            self.token_rate = (end, decayed + tokens as f64);
        }
        self.scheduled = scheduled;
        if !self.done.is_empty() {
            let done = std::mem::take(&mut self.done);
            self.running.retain(|s| !done.contains(s));
            for slot in &done {
                self.release(*slot);
            }
            self.done = done;
            self.done.clear();
        }
        Some(StepInfo {
            start: now,
            duration,
            num_seqs: shape.num_seqs,
            num_tokens: shape.num_tokens,
            preempted,
        })
    }

    /// [`Engine::step_into`] returning a fresh event vector.
    pub fn step(&mut self, now: Time) -> Option<StepResult> {
        let mut events = Vec::new();
        self.step_into(now, &mut events).map(|info| StepResult { info, events })
    }

    /// Fills `self.scheduled` with (slot, tokens) pairs; returns how many requests it preempted.
    fn schedule(&mut self, now: Time) -> u32 {
        self.scheduled.clear();
        self.admit_ready(now);
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut preempted = 0u32;
        let bs = self.cfg.block_size;

        // 1. Running requests first, in admission order; each gets what it still needs (1 token
        //    when decoding, the rest of its prompt chunked by the budget when prefilling).
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let slot = self.running[i];
            let (n, need) = {
                let Some(r) = self.slots[slot as usize].as_ref() else {
                    i += 1;
                    continue;
                };
                let pending = r.tokens.len() as u32 - r.num_computed;
                let n = pending.min(budget);
                let need = self
                    .pool
                    .blocks_for(r.num_computed + n)
                    .saturating_sub(r.blocks.len() as u32);
                (n, need)
            };
            let mut scheduled = false;
            loop {
                if self.pool.num_free() >= need {
                    if let Some(r) = self.slots[slot as usize].as_mut() {
                        self.pool.allocate(need, &mut r.blocks);
                    }
                    self.scheduled.push((slot, n));
                    budget -= n;
                    scheduled = true;
                    break;
                }
                // Out of KV: preempt the lowest-priority (latest admitted) running request and
                // recompute it later, as vLLM V1 does.
                let Some(victim) = self.running.pop() else { break };
                self.preempt(victim);
                preempted += 1;
                if victim == slot {
                    break;
                }
            }
            if scheduled {
                i += 1;
            }
        }

        // 2. Waiting requests in FIFO order, unless this step had to preempt.
        if preempted == 0 {
            self.skipped.clear();
            while budget > 0 && (self.running.len() as u32) < self.cfg.max_num_seqs {
                let Some(&slot) = self.waiting.front() else { break };
                let Some(r) = self.slots[slot as usize].as_ref() else {
                    self.waiting.pop_front();
                    continue;
                };
                if let Some(l) = r.lora {
                    let active = self.loras.iter().filter(|s| s.running > 0).count() as u32;
                    if self.loras[l as usize].running == 0 && active >= self.cfg.max_loras {
                        // vLLM skips requests whose adapter cannot join the batch and goes on.
                        self.waiting.pop_front();
                        self.skipped.push(slot);
                        continue;
                    }
                }
                let total = r.tokens.len() as u32;
                let mut hit_blocks = 0u32;
                if self.cfg.enable_prefix_caching {
                    self.ensure_hashes(slot, total);
                    if let Some(r) = self.slots[slot as usize].as_ref() {
                        // At least one token must be computed to produce logits.
                        let max_hit = ((total - 1) / bs) as usize;
                        let upto = max_hit.min(r.hashes.len());
                        hit_blocks = self.pool.count_hits(&r.hashes[..upto]) as u32;
                    }
                }
                let Some(r) = self.slots[slot as usize].as_ref() else {
                    break;
                };
                let cached = hit_blocks * bs;
                let n = (total - cached).min(budget);
                let need = self.pool.blocks_for(cached + n) - hit_blocks;
                let free_hits = self.pool.free_among_hits(&r.hashes[..hit_blocks as usize]);
                if self.pool.num_free() < need + free_hits {
                    break;
                }
                self.waiting.pop_front();
                let Some(r) = self.slots[slot as usize].as_mut() else {
                    continue;
                };
                let hashes = std::mem::take(&mut r.hashes);
                self.pool.take_hits(&hashes[..hit_blocks as usize], &mut r.blocks);
                r.hashes = hashes;
                self.pool.allocate(need, &mut r.blocks);
                r.num_computed = cached;
                r.cached_blocks = hit_blocks;
                r.running = true;
                if r.first_scheduled.is_none() {
                    r.first_scheduled = Some(now);
                    r.cached_tokens = cached;
                    self.metrics.prompt_tokens_cached += u64::from(cached);
                }
                self.metrics.prefix_cache_queries += u64::from(total);
                self.metrics.prefix_cache_hits += u64::from(cached);
                if let Some(l) = r.lora {
                    self.loras[l as usize].running += 1;
                }
                self.running.push(slot);
                self.scheduled.push((slot, n));
                budget -= n;
            }
            while let Some(s) = self.skipped.pop() {
                self.waiting.push_front(s);
            }
        }
        preempted
    }

    /// Computes chained hashes for the full blocks among the first `upto` tokens.
    fn ensure_hashes(&mut self, slot: u32, upto: u32) {
        let bs = self.cfg.block_size as usize;
        let seed = match self.slots[slot as usize].as_ref() {
            Some(r) => self.hash_seed(r.lora),
            None => return,
        };
        let Some(r) = self.slots[slot as usize].as_mut() else {
            return;
        };
        let full = (upto as usize).min(r.tokens.len()) / bs;
        while r.hashes.len() < full {
            let b = r.hashes.len();
            let parent = if b == 0 { seed } else { r.hashes[b - 1] };
            let h = hash_block(parent, &r.tokens[b * bs..(b + 1) * bs]);
            r.hashes.push(h);
        }
    }

    fn preempt(&mut self, slot: u32) {
        if let Some(r) = self.slots[slot as usize].as_mut() {
            self.pool.free(&r.blocks);
            r.blocks.clear();
            r.num_computed = 0;
            r.cached_blocks = 0;
            r.preemptions += 1;
            r.running = false;
            if let Some(l) = r.lora {
                self.loras[l as usize].running -= 1;
            }
        }
        self.metrics.num_preemptions += 1;
        self.waiting.push_front(slot);
    }

    /// Applies `n` computed tokens to a request at the end of a step; samples a token when all
    /// its known tokens are computed.
    fn advance(&mut self, slot: u32, n: u32, end: Time, events: &mut Vec<EngineEvent>) {
        if self.cfg.enable_prefix_caching {
            let upto = match self.slots[slot as usize].as_ref() {
                Some(r) => r.num_computed + n,
                None => return,
            };
            self.ensure_hashes(slot, upto);
        }
        let bs = self.cfg.block_size;
        let Some(r) = self.slots[slot as usize].as_mut() else {
            return;
        };
        r.num_computed += n;
        if self.cfg.enable_prefix_caching {
            let full = (r.num_computed / bs).min(r.hashes.len() as u32);
            while r.cached_blocks < full {
                let b = r.cached_blocks as usize;
                self.pool.cache(r.blocks[b], r.hashes[b]);
                r.cached_blocks += 1;
            }
        }
        if (r.num_computed as usize) < r.tokens.len() {
            return; // still prefilling
        }
        let index = r.tokens.len() as u32 - r.prompt_len;
        let token = token_at(r.key, index);
        r.tokens.push(token);
        self.metrics.generation_tokens += 1;
        if index == 0 {
            r.first_token = Some(end);
            self.metrics.ttft.observe(end - r.arrival);
            self.metrics.prompt_tokens += u64::from(r.prompt_len);
        } else {
            self.metrics.itl.observe(end - r.last_token);
        }
        r.last_token = end;
        events.push(EngineEvent::Token { id: r.id, token, index });
        if index + 1 >= r.target {
            let first_scheduled = r.first_scheduled.unwrap_or(r.arrival);
            let first_token = r.first_token.unwrap_or(end);
            let timing = RequestTiming {
                arrival: r.arrival,
                first_scheduled,
                first_token,
                finished: end,
                preemptions: r.preemptions,
            };
            let usage = Usage {
                prompt_tokens: r.prompt_len,
                completion_tokens: index + 1,
                cached_tokens: r.cached_tokens,
            };
            let m = &mut self.metrics;
            match r.stop_reason {
                FinishReason::Stop => m.success_stop += 1,
                FinishReason::Length => m.success_length += 1,
                FinishReason::Abort => m.success_abort += 1,
            }
            m.e2e.observe(end - r.arrival);
            m.queue.observe((first_scheduled - r.arrival).max(0.0));
            m.inference.observe(end - first_scheduled);
            m.prefill.observe(first_token - first_scheduled);
            m.decode.observe(end - first_token);
            if index > 0 {
                m.tpot.observe((end - first_token) / f64::from(index));
            }
            m.prompt_len.observe(f64::from(r.prompt_len));
            m.generation_len.observe(f64::from(index + 1));
            m.max_generation_len.observe(f64::from(r.max_tokens));
            m.max_tokens_param.observe(f64::from(r.max_tokens));
            m.n_param.observe(1.0);
            m.preemptions_per_request.observe(f64::from(r.preemptions));
            m.prefill_kv_computed.observe(f64::from(r.prompt_len - r.cached_tokens));
            events.push(EngineEvent::Finished {
                id: r.id,
                reason: r.stop_reason,
                usage,
                timing,
            });
            self.done.push(slot);
        }
    }

    /// Frees a finished request's blocks and slot (its cached blocks stay findable).
    fn release(&mut self, slot: u32) {
        if let Some(r) = self.slots[slot as usize].take() {
            self.pool.free(&r.blocks);
            if let Some(l) = r.lora {
                self.loras[l as usize].running -= 1;
            }
            self.index.remove(&r.id);
            self.free_slots.push(slot);
        }
    }

    /// Checks internal invariants: block ownership adds up and KV is never over capacity.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()?;
        let mut owned = vec![0u32; self.pool.num_blocks() as usize];
        let mut live = 0;
        for r in self.slots.iter().flatten() {
            live += 1;
            for b in &r.blocks {
                owned[*b as usize] += 1;
            }
            if r.running {
                let need = self.pool.blocks_for(r.num_computed);
                if (r.blocks.len() as u32) < need {
                    return Err(format!(
                        "request {} computed {} tokens in {} blocks",
                        r.id,
                        r.num_computed,
                        r.blocks.len()
                    ));
                }
            } else if !r.blocks.is_empty() {
                return Err(format!("waiting request {} holds blocks", r.id));
            }
        }
        for (b, n) in owned.iter().enumerate() {
            if *n != self.pool.ref_count(b as u32) {
                return Err(format!(
                    "block {b}: {n} owners, ref count {}",
                    self.pool.ref_count(b as u32)
                ));
            }
        }
        if live != self.index.len() || live != self.running.len() + self.waiting.len() + self.incoming.len() {
            return Err(format!(
                "{live} live requests, index {}, running {} + waiting {} + incoming {}",
                self.index.len(),
                self.running.len(),
                self.waiting.len(),
                self.incoming.len()
            ));
        }
        if self.running.len() as u32 > self.cfg.max_num_seqs {
            return Err("running batch over max_num_seqs".into());
        }
        Ok(())
    }
}

/// Hash of one full block chained on its parent's hash.
#[inline]
fn hash_block(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = parent;
    for t in tokens {
        h = fx_step(h, u64::from(*t));
    }
    hash_combine(parent, mix64(h))
}
