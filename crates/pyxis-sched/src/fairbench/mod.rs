//! FAIRBENCH S1–S7 (docs/scheduling.md, shared/reference/fairness.md §6) on the virtual-time engine simulator:
//! one engine behind a gateway in-flight token budget, its queue ordered by [`crate::Scheduler`] (VTC) or FCFS,
//! each scenario run under both with the same arrivals, scored against goals G1–G7.

mod gate;
mod load;
mod metrics;
mod scenarios;

use std::fmt;
use std::str::FromStr;

use pyxis_sim_core::EngineConfig;
use serde::Serialize;

pub use gate::Policy;

/// A FAIRBENCH scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Scenario {
    /// Two tenants at 1× and 2× their share, 256/256 tokens.
    S1,
    /// Heavy hitter: one tenant at 4× and 8× its share, seven at 0.5×; baseline the hitter at 1×.
    S2,
    /// Short prompt/long answer (32/512) against long prompt/short answer (512/32), both at 2×.
    S3,
    /// ON/OFF: one tenant idles 60 s while the other is backlogged, then returns at 2×.
    S4,
    /// Weights 1:2:3:4, all backlogged.
    S5,
    /// 27 tenants, Zipf-skewed rates, LMSYS-like lengths, 1.2× capacity.
    S6,
    /// Priority: hi class at 0.6× capacity (1.5× at the end), lo class ramped 0 → 4×.
    S7,
}

impl Scenario {
    /// S1 to S7.
    pub fn all() -> [Scenario; 7] {
        use Scenario::*;
        [S1, S2, S3, S4, S5, S6, S7]
    }

    /// One line saying what it runs.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::S1 => "2 tenants at 1x and 2x share, 256/256",
            Scenario::S2 => "heavy hitter at 4x and 8x share, 7 light tenants at 0.5x",
            Scenario::S3 => "32/512 against 512/32, both at 2x",
            Scenario::S4 => "ON/OFF: 60 s idle, then back at 2x",
            Scenario::S5 => "weights 1:2:3:4, all backlogged",
            Scenario::S6 => "27 tenants, Zipf rates, LMSYS-like lengths, 1.2x capacity",
            Scenario::S7 => "hi class 0.6x (1.5x at the end), lo class ramped 0 -> 4x, lo floor 10%",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::all()
            .into_iter()
            .find(|x| x.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown scenario `{s}` (S1..S7)"))
    }
}

/// How FAIRBENCH runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Multiplies every duration (1.0: the lengths in docs/scheduling.md; tests use less).
    pub scale: f64,
    /// The gateway's in-flight budget M, tokens (input + max output of dispatched requests).
    pub budget_tokens: u64,
    /// [`crate::Scheduler::set_headroom_tokens`] for the VTC runs.
    pub headroom_tokens: u64,
    /// Simulator hardware profile.
    pub hardware: String,
    /// Simulator model profile.
    pub model: String,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            scale: 1.0,
            budget_tokens: 16_384,
            headroom_tokens: 0,
            hardware: "h100".into(),
            model: "llama-3-8b".into(),
        }
    }
}

/// A named figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// What it is.
    pub name: String,
    /// Its value.
    pub value: f64,
}

/// One policy's figures in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// Queue order.
    pub policy: Policy,
    /// Largest weight-normalised service gap between two tenants of a class backlogged together.
    pub max_gap: f64,
    /// The same over its bound U/w_f + U/w_g (= 2U at unit weights); ≤ 1 is the guarantee.
    pub gap_over_bound: f64,
    /// Jain's index of service over max-min fair share, mean over 60 s windows.
    pub jain_mean: f64,
    /// 5th percentile over windows of the least tenant's service over its fair share.
    pub jain_floor_p5: f64,
    /// Input + output tokens per second after warm-up.
    pub throughput_tok_s: f64,
    /// Scenario-specific figures.
    pub extra: Vec<Metric>,
}

/// One goal's verdict (for the VTC policy).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Goal id and what it measures.
    pub goal: String,
    /// The target, in words.
    pub target: String,
    /// The measured value.
    pub value: f64,
    /// Met or not.
    pub pass: bool,
}

/// What one scenario measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairReport {
    /// S1..S7.
    pub scenario: Scenario,
    /// What it runs.
    pub title: String,
    /// Seed of the arrivals.
    pub seed: u64,
    /// Simulated seconds of arrivals per run.
    pub duration_s: f64,
    /// In-flight budget M.
    pub budget_tokens: u64,
    /// Calibrated capacity C: weighted tokens per second under saturation (FCFS, 256/256).
    pub capacity_wtok_s: f64,
    /// 2U = 2·max(w_in·L_input, w_out·M).
    pub two_u: f64,
    /// The fair-share scheduler.
    pub vtc: PolicyReport,
    /// The FCFS baseline.
    pub fcfs: PolicyReport,
    /// Goals, scored on the VTC runs.
    pub checks: Vec<Check>,
    /// Set when the run could not happen (then the figures are zero).
    pub error: Option<String>,
}

/// Runs `scenario` with the default options.
pub fn fairbench(scenario: Scenario, seed: u64) -> FairReport {
    fairbench_with(scenario, seed, &BenchOptions::default())
}

/// Runs `scenario` under VTC and FCFS with the same arrivals.
pub fn fairbench_with(scenario: Scenario, seed: u64, opts: &BenchOptions) -> FairReport {
    match EngineConfig::for_names(&opts.hardware, &opts.model) {
        Ok(engine) => scenarios::run(scenario, seed, opts, engine),
        Err(e) => {
            let empty = |policy| PolicyReport {
                policy,
                max_gap: 0.0,
                gap_over_bound: 0.0,
                jain_mean: 0.0,
                jain_floor_p5: 0.0,
                throughput_tok_s: 0.0,
                extra: Vec::new(),
            };
            FairReport {
                scenario,
                title: scenario.title().into(),
                seed,
                duration_s: 0.0,
                budget_tokens: opts.budget_tokens,
                capacity_wtok_s: 0.0,
                two_u: 0.0,
                vtc: empty(Policy::Vtc),
                fcfs: empty(Policy::Fcfs),
                checks: Vec::new(),
                error: Some(e.to_string()),
            }
        }
    }
}
