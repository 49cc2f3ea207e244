//! The fair-share queue: weighted virtual token counters per tenant (VTC) inside strict priority classes with
//! share floors, per-tenant and total caps with eviction of preemptible lower classes, and queue timeouts.
//! Every operation is O(log n) in queued requests and backlogged tenants (ordered sets, no scans), except
//! config reloads and the hourly drop of idle tenants.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::api::{ClassConfig, Dispatch, Pending, Rejected, SchedConfig, TenantConfig, TenantStats};
use crate::decay::Decayed;

/// Time constant of the "recent" window behind headroom decisions and retry estimates.
pub const DEFAULT_SHARE_WINDOW_MS: u64 = 10_000;
/// Unconfigured tenants with nothing queued are forgotten after this long without activity.
const IDLE_DROP_MS: u64 = 3_600_000;
/// How often `expire` looks for idle tenants.
const GC_EVERY_MS: u64 = 60_000;
/// Bounds of the retry-after estimates.
const RETRY_MIN_MS: u64 = 100;
const RETRY_MAX_MS: u64 = 60_000;
/// A tenant backlogged for less than this is interactive (headroom may serve it).
const INTERACTIVE_MS: u64 = 1_000;
/// A class's floor credit is kept within ± this many of the largest request cost seen: credit beyond it (owed
/// while the class had nothing queued, or debt from service taken while higher classes did not need it) is
/// forgotten, as a tenant's is by the lift.
const FLOOR_BURST: f64 = 4.0;
/// Name of the class unknown class names resolve to.
pub const DEFAULT_CLASS: &str = "default";

/// Position of a backlogged tenant in its class: least counter first; `order` breaks ties (0 for a tenant just
/// lifted to the class's virtual time, so a returning tenant is not stuck behind an equal counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// `f64::to_bits` of the counter: counters are finite and ≥ 0, where bit order is numeric order.
    counter: u64,
    order: u64,
    tenant: u32,
}

#[derive(Debug)]
struct Class {
    cfg: ClassConfig,
    /// Tenants with queued requests.
    backlogged: BTreeSet<Key>,
    /// Virtual time: the least counter among backlogged tenants, remembered when none is backlogged. Monotone.
    vtime: f64,
    /// Queued requests oldest first (seq, id): eviction order.
    age: BTreeSet<(u64, u64)>,
    queued: usize,
    /// Weighted cost (input + max output) dispatched recently.
    service: Decayed,
    /// Floor deficit: + min_share × every dispatch's cost, − this class's own dispatches. Owed when positive.
    floor_credit: f64,
}

impl Class {
    fn new(cfg: ClassConfig) -> Self {
        Class {
            cfg,
            backlogged: BTreeSet::new(),
            vtime: 0.0,
            age: BTreeSet::new(),
            queued: 0,
            service: Decayed::default(),
            floor_credit: 0.0,
        }
    }

    fn current_v(&self) -> f64 {
        match self.backlogged.first() {
            Some(k) => self.vtime.max(f64::from_bits(k.counter)),
            None => self.vtime,
        }
    }
}

#[derive(Debug)]
struct Tenant {
    name: String,
    cfg: TenantConfig,
    /// Set by `set_tenant`: never dropped when idle.
    configured: bool,
    class: usize,
    weight: f64,
    counter: f64,
    /// Present exactly when the tenant has queued requests.
    key: Option<Key>,
    /// When its queue last went from empty to non-empty.
    backlogged_since_ms: u64,
    /// (seq, id) in arrival order; entries cancelled or evicted stay until they reach the front.
    queue: VecDeque<(u64, u64)>,
    queued: usize,
    dispatched: u64,
    served_input: u64,
    served_output: u64,
    last_active_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tenant: u32,
    seq: u64,
    input: u32,
    max_output: u32,
    enqueued_ms: u64,
    deadline_ms: Option<u64>,
}

/// The scheduler. Not thread-safe by itself: the gateway holds it in a mutex.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedConfig,
    w_in: f64,
    w_out: f64,
    classes: Vec<Class>,
    default_class: usize,
    tenants: Vec<Option<Tenant>>,
    free_slots: Vec<u32>,
    by_name: HashMap<String, u32>,
    requests: HashMap<u64, Entry>,
    /// (deadline, id) of queued requests with a timeout.
    deadlines: BTreeSet<(u64, u64)>,
    queued_total: usize,
    seq: u64,
    now_ms: u64,
    last_gc_ms: u64,
    dispatch_rate: Decayed,
    /// Dispatches of interactive requests, decayed: whether headroom is worth keeping.
    interactive_rate: Decayed,
    window_ms: f64,
    headroom: u64,
    /// Largest weighted cost of one dispatch so far: the unit of floor credit bounds.
    max_cost: f64,
}

fn sane_weight(w: f64) -> f64 {
    if w.is_finite() && w > 0.0 {
        w.clamp(1e-6, 1e9)
    } else {
        1.0
    }
}

fn sane_cost(w: f64, default: f64) -> f64 {
    if w.is_finite() && w >= 0.0 { w } else { default }
}

fn build_classes(cfgs: Vec<ClassConfig>) -> (Vec<Class>, usize) {
    let mut classes: Vec<Class> = cfgs
        .into_iter()
        .map(|mut c| {
            c.min_share = if c.min_share.is_finite() {
                c.min_share.clamp(0.0, 1.0)
            } else {
                0.0
            };
            Class::new(c)
        })
        .collect();
    let default = match classes.iter().position(|c| c.cfg.name == DEFAULT_CLASS) {
        Some(i) => i,
        None => {
            classes.push(Class::new(ClassConfig {
                name: DEFAULT_CLASS.into(),
                value: 0,
                preemptible: false,
                min_share: 0.0,
            }));
            classes.len() - 1
        }
    };
    (classes, default)
}

impl Scheduler {
    /// A scheduler with the given classes (a `default` class of value 0 is added unless one is named so).
    pub fn new(cfg: SchedConfig, classes: Vec<ClassConfig>) -> Self {
        let (classes, default_class) = build_classes(classes);
        Scheduler {
            w_in: sane_cost(cfg.input_weight, 1.0),
            w_out: sane_cost(cfg.output_weight, 2.0),
            cfg,
            classes,
            default_class,
            tenants: Vec::new(),
            free_slots: Vec::new(),
            by_name: HashMap::new(),
            requests: HashMap::new(),
            deadlines: BTreeSet::new(),
            queued_total: 0,
            seq: 0,
            now_ms: 0,
            last_gc_ms: 0,
            dispatch_rate: Decayed::default(),
            interactive_rate: Decayed::default(),
            window_ms: DEFAULT_SHARE_WINDOW_MS as f64,
            headroom: 0,
            max_cost: 0.0,
        }
    }

    /// Time constant of "recently" (a higher class active recently, interactive dispatches seen recently) and of
    /// the dispatch rate behind retry-after estimates (default 10 s).
    pub fn set_share_window_ms(&mut self, ms: u64) {
        self.window_ms = ms.max(1) as f64;
    }

    /// Tokens of the budget kept free for arrivals that should not wait for a running request to finish
    /// (default 0: fully work-conserving, pure VTC). A dispatch must leave `tokens` free when a higher class was
    /// active recently, or when its tenant has been backlogged for over a second while requests of tenants that
    /// were not ("interactive") were dispatched recently. Interactive tenants of the highest active class, and
    /// a class served because it is below its floor, may use all of it. The order is unchanged (still the
    /// least counter, still stop-filling), so the fairness bound holds with M the budget passed to `next`.
    pub fn set_headroom_tokens(&mut self, tokens: u64) {
        self.headroom = tokens;
    }

    /// Replaces the classes (config reload). Queued requests follow their tenants into the new classes.
    pub fn set_classes(&mut self, classes: Vec<ClassConfig>) {
        let (mut new, default_class) = build_classes(classes);
        let old = std::mem::take(&mut self.classes);
        for c in &mut new {
            if let Some(o) = old.iter().find(|o| o.cfg.name == c.cfg.name) {
                c.vtime = o.current_v();
                c.service = o.service;
                c.floor_credit = o.floor_credit;
            }
        }
        self.classes = new;
        self.default_class = default_class;
        for slot in 0..self.tenants.len() {
            let class = match &self.tenants[slot] {
                Some(t) => self.resolve_class(&t.cfg.class),
                None => continue,
            };
            let Some(t) = self.tenants[slot].as_mut() else { continue };
            t.class = class;
            t.key = None;
            if t.queued == 0 {
                continue;
            }
            let c = &mut self.classes[class];
            for &(seq, id) in &t.queue {
                if self.requests.get(&id).is_some_and(|e| e.seq == seq) {
                    c.age.insert((seq, id));
                    c.queued += 1;
                }
            }
            t.counter = t.counter.max(c.vtime);
            self.seq += 1;
            let key = Key {
                counter: t.counter.to_bits(),
                order: self.seq,
                tenant: slot as u32,
            };
            c.backlogged.insert(key);
            t.key = Some(key);
        }
    }

    /// Sets a tenant's policy (config reload); a new weight applies to the next charge.
    pub fn set_tenant(&mut self, tenant: &str, cfg: TenantConfig) {
        let slot = self.intern(tenant);
        let class = self.resolve_class(&cfg.class);
        let Some(t) = self.tenant_mut(slot) else { return };
        t.configured = true;
        t.weight = sane_weight(cfg.weight);
        t.cfg = cfg;
        if t.class != class {
            self.move_class(slot, class);
        }
    }

    /// Queues a request. `Ok` carries the ids of queued lower-class requests evicted to make room.
    pub fn enqueue(&mut self, now_ms: u64, p: Pending) -> Result<Vec<u64>, Rejected> {
        let now = self.tick(now_ms);
        let slot = self.intern(&p.tenant);
        let Some(t) = self.tenant(slot) else {
            return Err(Rejected::QueueFull {
                retry_after_ms: RETRY_MIN_MS,
            });
        };
        if t.cfg.max_queued.is_some_and(|cap| t.queued >= cap) {
            return Err(Rejected::TenantQueueFull {
                retry_after_ms: self.retry_after(now, t.queued * self.classes[t.class].backlogged.len().max(1)),
            });
        }
        let (class, timeout) = (t.class, t.cfg.timeout_ms.unwrap_or(self.cfg.default_timeout_ms));
        if self.requests.contains_key(&p.id) {
            // The caller's ids must be unique among queued requests; refusing keeps both requests accounted for.
            return Err(Rejected::QueueFull {
                retry_after_ms: RETRY_MIN_MS,
            });
        }
        let mut evicted = Vec::new();
        if self.queued_total >= self.cfg.max_queued_total {
            match self.victim(self.classes[class].cfg.value) {
                Some(id) if self.remove_queued(id).is_some() => evicted.push(id),
                _ => {
                    return Err(Rejected::QueueFull {
                        retry_after_ms: self.retry_after(now, self.queued_total),
                    });
                }
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let deadline_ms = (timeout > 0).then(|| now.saturating_add(timeout));
        self.requests.insert(
            p.id,
            Entry {
                tenant: slot,
                seq,
                input: p.input_tokens,
                max_output: p.max_output_tokens,
                enqueued_ms: now,
                deadline_ms,
            },
        );
        if let Some(d) = deadline_ms {
            self.deadlines.insert((d, p.id));
        }
        let c = &mut self.classes[class];
        c.age.insert((seq, p.id));
        c.queued += 1;
        self.queued_total += 1;
        let Some(t) = self.tenants.get_mut(slot as usize).and_then(Option::as_mut) else {
            return Ok(evicted);
        };
        if t.queued == 0 {
            // The lift: a tenant that was not backlogged resumes at the class's virtual time, so credit saved
            // while idle cannot be spent later (use it or lose it).
            let v = c.current_v();
            t.counter = t.counter.max(v);
            let key = Key {
                counter: t.counter.to_bits(),
                order: if t.counter == v { 0 } else { seq },
                tenant: slot,
            };
            c.backlogged.insert(key);
            t.key = Some(key);
            t.backlogged_since_ms = now;
        }
        t.queue.push_back((seq, p.id));
        t.queued += 1;
        t.last_active_ms = now;
        Ok(evicted)
    }

    /// The fast path of an arrival: when nothing is queued in any class and the request fits in `free_tokens`,
    /// dispatches it at once, leaving the scheduler in exactly the state `enqueue` then `next` would (same
    /// counters, virtual times, floors, rates and sequence numbers), without touching the queue indexes.
    /// `None` when it does not apply (something is queued, it does not fit, or a cap would refuse it): the
    /// caller then takes the queue path (`enqueue`, then `next` as room frees), nothing having changed but the
    /// clock and the tenant's entry.
    pub fn dispatch_now(&mut self, now_ms: u64, p: &Pending, free_tokens: u64) -> Option<Dispatch> {
        let now = self.tick(now_ms);
        if self.queued_total > 0 || self.cfg.max_queued_total == 0 {
            return None;
        }
        let slot = self.intern(&p.tenant);
        let t = self.tenant(slot)?;
        if t.cfg.max_queued == Some(0) {
            return None;
        }
        let ci = t.class;
        // The lift `enqueue` applies to a tenant that was not backlogged (nobody is: the queue is empty).
        let lifted = t.counter.max(self.classes[ci].vtime);
        let cost = u64::from(p.input_tokens) + u64::from(p.max_output_tokens);
        // As `next` decides it for a request that just arrived: interactive, and not chosen by a floor (its
        // class is the only one with work), so only a recently active higher class keeps the headroom.
        let reserve = if self.headroom > 0 {
            let total: f64 = self.classes.iter().map(|c| c.service.get(now, self.window_ms)).sum();
            if self.higher_class_active(ci, now, total) {
                self.headroom
            } else {
                0
            }
        } else {
            0
        };
        if cost.saturating_add(reserve) > free_tokens {
            return None;
        }
        // `enqueue` takes a sequence number; `next` leaves the class's virtual time at the tenant's lifted
        // counter when its queue empties again.
        self.seq += 1;
        self.classes[ci].vtime = self.classes[ci].vtime.max(lifted);
        let charge = self.w_in * f64::from(p.input_tokens);
        let committed = charge + self.w_out * f64::from(p.max_output_tokens);
        self.classes[ci].service.add(now, self.window_ms, committed);
        self.settle_floors(ci, committed);
        self.dispatch_rate.add(now, self.window_ms, 1.0);
        self.interactive_rate.add(now, self.window_ms, 1.0);
        let t = self.tenant_mut(slot)?;
        t.counter = lifted + charge / t.weight;
        t.backlogged_since_ms = now;
        t.dispatched += 1;
        t.served_input += u64::from(p.input_tokens);
        t.last_active_ms = now;
        Some(Dispatch {
            id: p.id,
            tenant: t.name.clone(),
            waited_ms: 0,
            cost_tokens: cost,
        })
    }

    /// Dispatches the next request if it fits in `free_tokens` (input + max output). When the request the order
    /// says is next does not fit, nothing is dispatched: skipping to a smaller one would void the fairness bound.
    pub fn next(&mut self, now_ms: u64, free_tokens: u64) -> Option<Dispatch> {
        let now = self.tick(now_ms);
        let (ci, by_floor, total) = self.choose_class(now)?;
        let key = *self.classes[ci].backlogged.first()?;
        let slot = key.tenant;
        let id = self.head(slot)?;
        let e = *self.requests.get(&id)?;
        let cost = u64::from(e.input) + u64::from(e.max_output);
        let interactive = self
            .tenant(slot)
            .is_some_and(|t| now.saturating_sub(t.backlogged_since_ms) < INTERACTIVE_MS);
        let keep = |s: &Self| {
            (!interactive && s.interactive_rate.get(now, s.window_ms) > 0.05) || s.higher_class_active(ci, now, total)
        };
        let reserve = if !by_floor && self.headroom > 0 && keep(self) {
            self.headroom
        } else {
            0
        };
        if cost.saturating_add(reserve) > free_tokens {
            return None;
        }
        if let Some(t) = self.tenant_mut(slot) {
            t.queue.pop_front();
        }
        self.remove_queued(id)?;
        let charge = self.w_in * f64::from(e.input);
        let committed = charge + self.w_out * f64::from(e.max_output);
        self.classes[ci].service.add(now, self.window_ms, committed);
        self.settle_floors(ci, committed);
        self.dispatch_rate.add(now, self.window_ms, 1.0);
        if interactive {
            self.interactive_rate.add(now, self.window_ms, 1.0);
        }
        let t = self.tenants.get_mut(slot as usize).and_then(Option::as_mut)?;
        t.counter += charge / t.weight;
        t.dispatched += 1;
        t.served_input += u64::from(e.input);
        t.last_active_ms = now;
        let tenant = t.name.clone();
        self.reposition(slot);
        Some(Dispatch {
            id,
            tenant,
            waited_ms: now.saturating_sub(e.enqueued_ms),
            cost_tokens: cost,
        })
    }

    /// Removes a queued request whose client went away; false if it was not queued.
    pub fn cancel(&mut self, id: u64) -> bool {
        self.remove_queued(id).is_some()
    }

    /// Removes and returns the queued requests whose timeout is at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<u64> {
        let now = self.tick(now_ms);
        let mut out = Vec::new();
        while let Some(&(d, id)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.remove(&(d, id));
            self.remove_queued(id);
            out.push(id);
        }
        if now >= self.last_gc_ms.saturating_add(GC_EVERY_MS) {
            self.last_gc_ms = now;
            self.drop_idle(now);
        }
        out
    }

    /// Charges output tokens as they stream (`tokens` since the last call for this request).
    pub fn charge_output(&mut self, tenant: &str, tokens: u32) {
        let Some(&slot) = self.by_name.get(tenant) else { return };
        let (w_out, now) = (self.w_out, self.now_ms);
        let Some(t) = self.tenant_mut(slot) else { return };
        t.counter += w_out * f64::from(tokens) / t.weight;
        t.served_output += u64::from(tokens);
        t.last_active_ms = now;
        self.reposition(slot);
    }

    /// Requests queued over all tenants.
    pub fn queued(&self) -> usize {
        self.queued_total
    }

    /// Requests queued for `tenant`.
    pub fn queued_for(&self, tenant: &str) -> usize {
        self.by_name
            .get(tenant)
            .and_then(|s| self.tenant(*s))
            .map_or(0, |t| t.queued)
    }

    /// Per-tenant state (tenants in slot order).
    pub fn stats(&self) -> Vec<TenantStats> {
        self.tenants
            .iter()
            .flatten()
            .map(|t| TenantStats {
                tenant: t.name.clone(),
                class: self.classes[t.class].cfg.name.clone(),
                weight: t.weight,
                queued: t.queued,
                counter: t.counter,
                dispatched: t.dispatched,
                served_input_tokens: t.served_input,
                served_output_tokens: t.served_output,
            })
            .collect()
    }

    /// The earliest queue timeout, for the caller to sleep until (then call [`Scheduler::expire`]).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    fn tick(&mut self, now_ms: u64) -> u64 {
        self.now_ms = self.now_ms.max(now_ms);
        self.now_ms
    }

    fn tenant(&self, slot: u32) -> Option<&Tenant> {
        self.tenants.get(slot as usize).and_then(Option::as_ref)
    }

    fn tenant_mut(&mut self, slot: u32) -> Option<&mut Tenant> {
        self.tenants.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn resolve_class(&self, name: &str) -> usize {
        self.classes
            .iter()
            .position(|c| c.cfg.name == name)
            .unwrap_or(self.default_class)
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.by_name.get(name) {
            return s;
        }
        let cfg = TenantConfig::default();
        let t = Tenant {
            name: name.to_owned(),
            class: self.resolve_class(&cfg.class),
            weight: sane_weight(cfg.weight),
            cfg,
            configured: false,
            counter: 0.0,
            key: None,
            backlogged_since_ms: 0,
            queue: VecDeque::new(),
            queued: 0,
            dispatched: 0,
            served_input: 0,
            served_output: 0,
            last_active_ms: self.now_ms,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.tenants[s as usize] = Some(t);
                s
            }
            None => {
                self.tenants.push(Some(t));
                (self.tenants.len() - 1) as u32
            }
        };
        self.by_name.insert(name.to_owned(), slot);
        slot
    }

    /// The id at the front of a tenant's queue, dropping entries already cancelled, expired or evicted.
    fn head(&mut self, slot: u32) -> Option<u64> {
        let requests = &self.requests;
        let t = self.tenants.get_mut(slot as usize).and_then(Option::as_mut)?;
        while let Some(&(seq, id)) = t.queue.front() {
            if requests.get(&id).is_some_and(|e| e.seq == seq) {
                return Some(id);
            }
            t.queue.pop_front();
        }
        None
    }

    /// Takes a queued request out of every index; the tenant leaves its class's backlog when it was the last.
    fn remove_queued(&mut self, id: u64) -> Option<Entry> {
        let e = self.requests.remove(&id)?;
        if let Some(d) = e.deadline_ms {
            self.deadlines.remove(&(d, id));
        }
        self.queued_total -= 1;
        let t = self.tenants.get_mut(e.tenant as usize).and_then(Option::as_mut)?;
        let c = &mut self.classes[t.class];
        c.age.remove(&(e.seq, id));
        c.queued -= 1;
        t.queued -= 1;
        if t.queued == 0 {
            if let Some(k) = t.key.take() {
                c.vtime = c.current_v();
                c.backlogged.remove(&k);
            }
            t.queue.clear();
        }
        Some(e)
    }

    /// Re-keys a backlogged tenant after its counter changed.
    fn reposition(&mut self, slot: u32) {
        let Some(t) = self.tenants.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(old) = t.key else { return };
        let c = &mut self.classes[t.class];
        c.backlogged.remove(&old);
        self.seq += 1;
        let key = Key {
            counter: t.counter.to_bits(),
            order: self.seq,
            tenant: slot,
        };
        c.backlogged.insert(key);
        t.key = Some(key);
    }

    fn move_class(&mut self, slot: u32, to: usize) {
        let requests = &self.requests;
        let Some(t) = self.tenants.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let from = t.class;
        t.class = to;
        let Some(k) = t.key.take() else { return };
        let old = &mut self.classes[from];
        old.vtime = old.current_v();
        old.backlogged.remove(&k);
        let live: Vec<(u64, u64)> = t
            .queue
            .iter()
            .copied()
            .filter(|(seq, id)| requests.get(id).is_some_and(|e| e.seq == *seq))
            .collect();
        for p in &live {
            old.age.remove(p);
        }
        old.queued -= live.len();
        let new = &mut self.classes[to];
        new.age.extend(live.iter().copied());
        new.queued += live.len();
        t.counter = t.counter.max(new.current_v());
        self.seq += 1;
        let key = Key {
            counter: t.counter.to_bits(),
            order: self.seq,
            tenant: slot,
        };
        new.backlogged.insert(key);
        t.key = Some(key);
    }

    /// The class to serve: the class owed the most floor credit, else the highest value with work (ties: the one
    /// holding the oldest request). Also says whether a floor chose it, and the total recent service.
    fn choose_class(&self, now: u64) -> Option<(usize, bool, f64)> {
        let total: f64 = self.classes.iter().map(|c| c.service.get(now, self.window_ms)).sum();
        let mut starved: Option<(usize, f64)> = None;
        let mut top: Option<usize> = None;
        for (i, c) in self.classes.iter().enumerate() {
            if c.queued == 0 {
                continue;
            }
            if c.cfg.min_share > 0.0 && c.floor_credit > 0.0 {
                let owed = c.floor_credit / c.cfg.min_share;
                let better =
                    starved.is_none_or(|(j, o)| owed > o || (owed == o && c.cfg.value > self.classes[j].cfg.value));
                if better {
                    starved = Some((i, owed));
                }
            }
            let better = top.is_none_or(|j| {
                let o = &self.classes[j];
                c.cfg.value > o.cfg.value || (c.cfg.value == o.cfg.value && c.age.first() < o.age.first())
            });
            if better {
                top = Some(i);
            }
        }
        match starved {
            Some((i, _)) => Some((i, top != Some(i), total)),
            None => top.map(|i| (i, false, total)),
        }
    }

    /// Moves the floor credits after class `ci` was given `cost`.
    fn settle_floors(&mut self, ci: usize, cost: f64) {
        self.max_cost = self.max_cost.max(cost);
        let bound = FLOOR_BURST * self.max_cost;
        for (i, c) in self.classes.iter_mut().enumerate() {
            if c.cfg.min_share <= 0.0 {
                continue;
            }
            let own = if i == ci { cost } else { 0.0 };
            c.floor_credit = (c.floor_credit + c.cfg.min_share * cost - own).clamp(-bound, bound);
        }
    }

    fn higher_class_active(&self, ci: usize, now: u64, total: f64) -> bool {
        let value = self.classes[ci].cfg.value;
        self.classes
            .iter()
            .any(|c| c.cfg.value > value && (c.queued > 0 || c.service.get(now, self.window_ms) > 1e-3 * total))
    }

    /// The oldest queued request of the lowest preemptible class below `value`.
    fn victim(&self, value: i32) -> Option<u64> {
        self.classes
            .iter()
            .filter(|c| c.cfg.preemptible && c.cfg.value < value && c.queued > 0)
            .min_by_key(|c| c.cfg.value)
            .and_then(|c| c.age.first())
            .map(|&(_, id)| id)
    }

    fn retry_after(&self, now: u64, ahead: usize) -> u64 {
        let per_ms = self.dispatch_rate.get(now, self.window_ms) / self.window_ms;
        if per_ms <= 0.0 {
            return 1_000;
        }
        ((ahead as f64 / per_ms) as u64).clamp(RETRY_MIN_MS, RETRY_MAX_MS)
    }

    fn drop_idle(&mut self, now: u64) {
        for slot in 0..self.tenants.len() {
            let idle = self.tenants[slot].as_ref().is_some_and(|t| {
                !t.configured && t.queued == 0 && now.saturating_sub(t.last_active_ms) >= IDLE_DROP_MS
            });
            if idle && let Some(t) = self.tenants[slot].take() {
                self.by_name.remove(&t.name);
                self.free_slots.push(slot as u32);
            }
        }
    }
}
