//! FAIRBENCH traffic: per-tenant open-loop Poisson arrivals with time-varying rates (constant, ramps, steps),
//! pre-drawn and replayed to the simulator in time order.

use pyxis_sim_core::Time;
use pyxis_sim_core::rng::SimRng;
use pyxis_sim_core::tokenizer::{BOS, FIRST_WORD};
use pyxis_sim_core::workload::{LengthDist, LoadSource, NewRequest, OPEN_LOOP};

/// Arrival rate over time, requests/s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rate {
    /// Always this.
    Const(f64),
    /// Linear from 0 at t=0 to `to` at `until_s`, then `after`.
    Ramp { to: f64, until_s: f64, after: f64 },
    /// (from_s, rate) steps, sorted by time; 0 before the first.
    Steps(Vec<(f64, f64)>),
}

impl Rate {
    fn at(&self, t: f64) -> f64 {
        match self {
            Rate::Const(r) => *r,
            Rate::Ramp { to, until_s, after } => {
                if t < *until_s {
                    to * t / until_s
                } else {
                    *after
                }
            }
            Rate::Steps(steps) => steps.iter().rev().find(|(from, _)| *from <= t).map_or(0.0, |(_, r)| *r),
        }
    }

    fn max(&self) -> f64 {
        match self {
            Rate::Const(r) => *r,
            Rate::Ramp { to, after, .. } => to.max(*after),
            Rate::Steps(steps) => steps.iter().map(|(_, r)| *r).fold(0.0, f64::max),
        }
    }
}

/// One tenant's traffic and policy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Traffic {
    pub name: String,
    /// Scheduler weight.
    pub weight: f64,
    /// Scheduler class name.
    pub class: &'static str,
    pub rate: Rate,
    pub input: LengthDist,
    pub output: LengthDist,
}

/// One drawn arrival.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arrival {
    pub at: Time,
    pub tenant: u32,
    pub input: u32,
    pub output: u32,
}

/// Draws every arrival in `[0, duration_s)` (thinning of a Poisson process at the peak rate).
pub(crate) fn draw(tenants: &[Traffic], duration_s: f64, seed: u64) -> Vec<Arrival> {
    let mut out = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let mut rng = SimRng::new(seed ^ (0x9e37_79b9_u64.wrapping_mul(i as u64 + 1)));
        let peak = t.rate.max();
        if peak <= 0.0 {
            continue;
        }
        let mut at = 0.0;
        loop {
            at += rng.exp(peak);
            if at >= duration_s {
                break;
            }
            if rng.next_f64() * peak < t.rate.at(at) {
                out.push(Arrival {
                    at,
                    tenant: i as u32,
                    input: t.input.sample(&mut rng),
                    output: t.output.sample(&mut rng),
                });
            }
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

/// Replays drawn arrivals with random prompts (no shared prefixes: no prefix-cache effects).
pub(crate) struct Replay {
    arrivals: Vec<Arrival>,
    next: usize,
    names: Vec<String>,
    rng: SimRng,
    vocab: u32,
}

impl Replay {
    pub(crate) fn new(arrivals: Vec<Arrival>, names: Vec<String>, vocab: u32, seed: u64) -> Self {
        Replay {
            arrivals,
            next: 0,
            names,
            rng: SimRng::new(seed ^ 0x5eed),
            vocab: vocab.max(FIRST_WORD + 2),
        }
    }
}

impl LoadSource for Replay {
    fn tenants(&self) -> Vec<String> {
        self.names.clone()
    }

    fn loras(&self) -> Vec<String> {
        Vec::new()
    }

    fn start(&mut self) -> Vec<NewRequest> {
        Vec::new()
    }

    fn next_open(&mut self) -> Option<NewRequest> {
        let a = *self.arrivals.get(self.next)?;
        self.next += 1;
        let mut prompt = Vec::with_capacity(a.input as usize);
        prompt.push(BOS);
        while prompt.len() < a.input.max(1) as usize {
            prompt.push(self.rng.range_u32(FIRST_WORD, self.vocab - 1));
        }
        Some(NewRequest {
            at: a.at,
            tenant: a.tenant,
            client: OPEN_LOOP,
            prompt,
            max_tokens: a.output.max(1),
            ignore_eos: true,
            lora: None,
        })
    }

    fn on_finish(&mut self, _now: Time, _client: u32) -> Option<NewRequest> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(v: u32) -> LengthDist {
        LengthDist::Fixed { value: v }
    }

    #[test]
    fn rates_shape_the_arrivals() {
        let t = |rate| Traffic {
            name: "x".into(),
            weight: 1.0,
            class: "",
            rate,
            input: fixed(10),
            output: fixed(5),
        };
        let tenants = vec![
            t(Rate::Const(10.0)),
            t(Rate::Steps(vec![(0.0, 10.0), (10.0, 0.0), (20.0, 10.0)])),
            t(Rate::Ramp {
                to: 20.0,
                until_s: 100.0,
                after: 0.0,
            }),
        ];
        let a = draw(&tenants, 100.0, 7);
        let count = |i: u32, lo: f64, hi: f64| a.iter().filter(|x| x.tenant == i && x.at >= lo && x.at < hi).count();
        assert!((900..1100).contains(&count(0, 0.0, 100.0)));
        assert_eq!(count(1, 10.0, 20.0), 0, "off");
        assert!((700..1100).contains(&count(1, 0.0, 100.0)));
        // Ramp: a quarter of its arrivals in the first half.
        let (first, all) = (count(2, 0.0, 50.0), count(2, 0.0, 100.0));
        assert!(
            (all as f64 * 0.2..all as f64 * 0.3).contains(&(first as f64)),
            "{first}/{all}"
        );
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
