//! The gateway queue as the simulator sees it: an in-flight token budget (input + max output of dispatched
//! requests) in front of the engines, filled in VTC order by [`Scheduler`] or first come first served.

use std::collections::{HashMap, VecDeque};

use pyxis_sim_core::Time;
use pyxis_sim_core::sim::{AdmissionScheduler, QueuedRequest};

use super::metrics::Recorder;
use crate::{Pending, Scheduler};

/// Queue order under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Policy {
    /// The fair-share scheduler of this crate.
    Vtc,
    /// First come, first served with the same budget (the baseline).
    Fcfs,
}

pub(crate) struct Gate {
    policy: Policy,
    sched: Scheduler,
    fifo: VecDeque<QueuedRequest>,
    parked: HashMap<u64, QueuedRequest>,
    budget: u64,
    used: u64,
    held: HashMap<u64, u64>,
    names: Vec<String>,
    pub rec: Recorder,
}

fn ms(t: Time) -> u64 {
    (t.max(0.0) * 1000.0) as u64
}

fn cost(q: &QueuedRequest) -> u64 {
    u64::from(q.prompt_tokens) + u64::from(q.max_tokens)
}

impl Gate {
    pub(crate) fn new(policy: Policy, sched: Scheduler, budget: u64, names: Vec<String>, rec: Recorder) -> Self {
        Gate {
            policy,
            sched,
            fifo: VecDeque::new(),
            parked: HashMap::new(),
            budget,
            used: 0,
            held: HashMap::new(),
            names,
            rec,
        }
    }
}

impl AdmissionScheduler for Gate {
    fn push(&mut self, now: Time, req: QueuedRequest) {
        self.rec
            .arrive(now, req.id, req.tenant, req.prompt_tokens, req.max_tokens);
        match self.policy {
            Policy::Fcfs => self.fifo.push_back(req),
            Policy::Vtc => {
                let p = Pending {
                    id: req.id,
                    tenant: self.names.get(req.tenant as usize).cloned().unwrap_or_default(),
                    input_tokens: req.prompt_tokens,
                    max_output_tokens: req.max_tokens,
                };
                // FAIRBENCH sets caps no run reaches, so nothing is refused or evicted.
                if self.sched.enqueue(ms(now), p).is_ok() {
                    self.parked.insert(req.id, req);
                }
            }
        }
    }

    fn pop(&mut self, now: Time) -> Option<QueuedRequest> {
        let free = self.budget.saturating_sub(self.used);
        let q = match self.policy {
            Policy::Fcfs => {
                if cost(self.fifo.front()?) > free {
                    return None;
                }
                self.fifo.pop_front()?
            }
            Policy::Vtc => {
                let d = self.sched.next(ms(now), free)?;
                self.parked.remove(&d.id)?
            }
        };
        let c = cost(&q);
        self.used += c;
        self.held.insert(q.id, c);
        self.rec.dispatch(now, q.id, q.tenant, q.prompt_tokens);
        Some(q)
    }

    fn len(&self) -> usize {
        match self.policy {
            Policy::Fcfs => self.fifo.len(),
            Policy::Vtc => self.sched.queued(),
        }
    }

    fn on_token(&mut self, now: Time, id: u64, tenant: u32) {
        if self.policy == Policy::Vtc
            && let Some(name) = self.names.get(tenant as usize)
        {
            self.sched.charge_output(name, 1);
        }
        self.rec.token(now, id, tenant);
    }

    fn on_release(&mut self, _now: Time, id: u64) {
        if let Some(c) = self.held.remove(&id) {
            self.used = self.used.saturating_sub(c);
        }
        self.rec.done(id);
    }
}
