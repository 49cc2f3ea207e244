//! The scenarios: traffic per tenant as multiples of the calibrated capacity, the runs each needs, and the
//! figures and goal checks drawn from them.

use pyxis_sim_core::sim::{LeastLoaded, SimConfig, VirtualFleet};
use pyxis_sim_core::workload::LengthDist;
use pyxis_sim_core::{Engine, EngineConfig};

use super::gate::{Gate, Policy};
use super::load::{Rate, Replay, Traffic, draw};
use super::metrics::{Recorder, jain_windows, quantile};
use super::{BenchOptions, Check, FairReport, Metric, PolicyReport, Scenario};
use crate::{ClassConfig, SchedConfig, Scheduler, TenantConfig};

const W_IN: f64 = 1.0;
const W_OUT: f64 = 2.0;
const WINDOW_S: f64 = 60.0;

struct Ctx<'a> {
    opts: &'a BenchOptions,
    engine: EngineConfig,
    seed: u64,
    /// Capacity, weighted tokens per second.
    c: f64,
}

/// One run's setup.
struct Setup {
    tenants: Vec<Traffic>,
    classes: Vec<ClassConfig>,
    duration: f64,
}

fn fixed(v: u32) -> LengthDist {
    LengthDist::Fixed { value: v }
}

fn max_len(d: &LengthDist) -> u32 {
    match *d {
        LengthDist::Fixed { value } => value,
        LengthDist::Uniform { max, .. } | LengthDist::LogNormal { max, .. } => max,
    }
}

fn mean_cost(input: &LengthDist, output: &LengthDist) -> f64 {
    W_IN * input.mean() + W_OUT * output.mean()
}

fn tenant(name: &str, weight: f64, class: &'static str, rate: Rate, input: LengthDist, output: LengthDist) -> Traffic {
    Traffic {
        name: name.into(),
        weight,
        class,
        rate,
        input,
        output,
    }
}

/// A tenant with fixed lengths sending `mult` × `share` (weighted tokens/s) worth of requests.
fn at_share(name: &str, mult: f64, share: f64, input: u32, output: u32) -> Traffic {
    let cost = W_IN * f64::from(input) + W_OUT * f64::from(output);
    tenant(
        name,
        1.0,
        "",
        Rate::Const(mult * share / cost),
        fixed(input),
        fixed(output),
    )
}

/// Uniform lengths around `mean` (±50 %): requests of one size finish in lock-step, which no real traffic does.
fn around(mean: u32) -> LengthDist {
    LengthDist::Uniform {
        min: mean / 2,
        max: mean + mean / 2,
    }
}

/// [`at_share`] with lengths spread ±50 % around the means.
fn at_share_spread(name: &str, mult: f64, share: f64, input: u32, output: u32) -> Traffic {
    Traffic {
        input: around(input),
        output: around(output),
        ..at_share(name, mult, share, input, output)
    }
}

fn u_of(budget: u64, tenants: &[Traffic]) -> f64 {
    let l = tenants.iter().map(|t| max_len(&t.input)).max().unwrap_or(0);
    (W_IN * f64::from(l)).max(W_OUT * budget as f64)
}

fn simulate(ctx: &Ctx<'_>, setup: &Setup, policy: Policy) -> Recorder {
    let opts = ctx.opts;
    let arrivals = draw(&setup.tenants, setup.duration, ctx.seed);
    let names: Vec<String> = setup.tenants.iter().map(|t| t.name.clone()).collect();
    let mut sched = Scheduler::new(
        SchedConfig {
            input_weight: W_IN,
            output_weight: W_OUT,
            max_queued_total: usize::MAX,
            default_timeout_ms: 0,
        },
        setup.classes.clone(),
    );
    sched.set_headroom_tokens(opts.headroom_tokens);
    for t in &setup.tenants {
        sched.set_tenant(
            &t.name,
            TenantConfig {
                weight: t.weight,
                class: t.class.into(),
                max_queued: None,
                timeout_ms: Some(0),
            },
        );
    }
    let class: Vec<u8> = setup
        .tenants
        .iter()
        .map(|t| {
            setup
                .classes
                .iter()
                .position(|c| c.name == t.class)
                .map_or(255, |i| i as u8)
        })
        .collect();
    let weights = setup.tenants.iter().map(|t| t.weight).collect();
    let rec = Recorder::new(W_IN, W_OUT, weights, class, u_of(opts.budget_tokens, &setup.tenants));
    let mut gate = Gate::new(policy, sched, opts.budget_tokens, names.clone(), rec);
    let cfg = SimConfig {
        max_sim_s: setup.duration,
        ..SimConfig::default()
    };
    let mut fleet = VirtualFleet::new(vec![Engine::new(ctx.engine.clone())], cfg);
    let mut source = Replay::new(arrivals, names, ctx.engine.vocab, ctx.seed);
    fleet.run(&mut source, &mut LeastLoaded::default(), &mut gate);
    gate.rec
}

/// Saturated weighted-token throughput of 256/256 requests under FCFS with the budget.
fn calibrate(opts: &BenchOptions, engine: &EngineConfig, seed: u64) -> f64 {
    let probe = Ctx {
        opts,
        engine: engine.clone(),
        seed,
        c: 0.0,
    };
    // Far beyond what one engine serves, so the budget stays full.
    let setup = Setup {
        tenants: vec![tenant("cal", 1.0, "", Rate::Const(400.0), fixed(256), fixed(256))],
        classes: Vec::new(),
        duration: 40.0,
    };
    let rec = simulate(&probe, &setup, Policy::Fcfs);
    let served: f64 = Recorder::sum(&rec.service, 1, 10.0, 40.0).iter().sum();
    served / 30.0
}

fn base_report(setup: &Setup, rec: &Recorder, policy: Policy, warmup: f64) -> PolicyReport {
    let weights: Vec<f64> = setup.tenants.iter().map(|t| t.weight).collect();
    let window = WINDOW_S.min(setup.duration - warmup);
    let w = jain_windows(rec, &weights, warmup, setup.duration, window);
    let jain_mean = if w.is_empty() {
        0.0
    } else {
        w.iter().map(|x| x.0).sum::<f64>() / w.len() as f64
    };
    let mut floors: Vec<f64> = w.iter().map(|x| x.1).collect();
    PolicyReport {
        policy,
        max_gap: rec.gap.max_gap,
        gap_over_bound: rec.gap.max_ratio,
        jain_mean,
        jain_floor_p5: quantile(&mut floors, 0.05),
        throughput_tok_s: rec.throughput(warmup, setup.duration),
        extra: Vec::new(),
    }
}

fn metric(name: &str, value: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
    }
}

fn check(goal: &str, target: &str, value: f64, pass: bool) -> Check {
    Check {
        goal: goal.into(),
        target: target.into(),
        value,
        pass,
    }
}

/// p99 TTFT of `tenants`' requests arriving in [from, to).
fn ttft_p99(rec: &Recorder, tenants: &[usize], from: f64, to: f64) -> f64 {
    let mut v: Vec<f64> = tenants
        .iter()
        .flat_map(|&t| rec.ttft[t].iter())
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, x)| *x)
        .collect();
    quantile(&mut v, 0.99)
}

/// p99 gateway queue wait of `tenants`' requests arriving in [from, to).
fn wait_p99(rec: &Recorder, tenants: &[usize], from: f64, to: f64) -> f64 {
    let mut v: Vec<f64> = tenants
        .iter()
        .flat_map(|&t| rec.wait[t].iter())
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, x)| *x)
        .collect();
    quantile(&mut v, 0.99)
}

/// Share of service of `tenants` among all in [from, to).
fn share_of(rec: &Recorder, tenants: &[usize], from: f64, to: f64) -> f64 {
    let s = Recorder::sum(&rec.service, rec.tenants(), from, to);
    let total: f64 = s.iter().sum();
    let part: f64 = tenants.iter().map(|&t| s[t]).sum();
    if total > 0.0 { part / total } else { 0.0 }
}

fn common_checks(checks: &mut Vec<Check>, vtc: &PolicyReport, fcfs: &PolicyReport, jain: bool) {
    checks.push(check(
        "G1 gap",
        "<= 2U (ratio <= 1)",
        vtc.gap_over_bound,
        vtc.gap_over_bound <= 1.0,
    ));
    if jain {
        checks.push(check("G2 Jain mean", ">= 0.98", vtc.jain_mean, vtc.jain_mean >= 0.98));
        checks.push(check(
            "G2 floor p5",
            ">= 0.90",
            vtc.jain_floor_p5,
            vtc.jain_floor_p5 >= 0.90,
        ));
    }
    let ratio = vtc.throughput_tok_s / fcfs.throughput_tok_s.max(1e-9);
    checks.push(check("G4 throughput/FCFS", ">= 0.97", ratio, ratio >= 0.97));
}

pub(super) fn run(scenario: Scenario, seed: u64, opts: &BenchOptions, engine: EngineConfig) -> FairReport {
    let c = calibrate(opts, &engine, seed);
    let ctx = Ctx { opts, engine, seed, c };
    let sc = opts.scale.max(0.01);
    let mut checks = Vec::new();
    let (setup, vtc, fcfs) = match scenario {
        Scenario::S1 => {
            let share = c / 2.0;
            let setup = Setup {
                tenants: vec![at_share("a", 1.0, share, 256, 256), at_share("b", 2.0, share, 256, 256)],
                classes: Vec::new(),
                duration: 600.0 * sc,
            };
            let [(_, v), (_, f)] = pair(&ctx, &setup, 60.0 * sc);
            common_checks(&mut checks, &v, &f, true);
            (setup, v, f)
        }
        Scenario::S2 => s2(&ctx, sc, &mut checks),
        Scenario::S3 => {
            let share = c / 2.0;
            let setup = Setup {
                tenants: vec![
                    at_share("short-in", 2.0, share, 32, 512),
                    at_share("long-in", 2.0, share, 512, 32),
                ],
                classes: Vec::new(),
                duration: 600.0 * sc,
            };
            let [(_, v), (_, f)] = pair(&ctx, &setup, 60.0 * sc);
            common_checks(&mut checks, &v, &f, true);
            (setup, v, f)
        }
        Scenario::S4 => s4(&ctx, sc, &mut checks),
        Scenario::S5 => s5(&ctx, sc, &mut checks),
        Scenario::S6 => s6(&ctx, sc, &mut checks),
        Scenario::S7 => s7(&ctx, sc, &mut checks),
    };
    FairReport {
        scenario,
        title: scenario.title().into(),
        seed,
        duration_s: setup.duration,
        budget_tokens: opts.budget_tokens,
        capacity_wtok_s: c,
        two_u: 2.0 * u_of(opts.budget_tokens, &setup.tenants),
        vtc,
        fcfs,
        checks,
        error: None,
    }
}

/// Runs `setup` under VTC then FCFS.
fn pair(ctx: &Ctx<'_>, setup: &Setup, warmup: f64) -> [(Recorder, PolicyReport); 2] {
    [Policy::Vtc, Policy::Fcfs].map(|policy| {
        let rec = simulate(ctx, setup, policy);
        let r = base_report(setup, &rec, policy, warmup);
        (rec, r)
    })
}

fn extra(r: &PolicyReport, name: &str) -> Option<f64> {
    r.extra.iter().find(|m| m.name == name).map(|m| m.value)
}

type Outcome = (Setup, PolicyReport, PolicyReport);

fn s2(ctx: &Ctx<'_>, sc: f64, checks: &mut Vec<Check>) -> Outcome {
    let share = ctx.c / 8.0;
    let (duration, warmup) = (600.0 * sc, 60.0 * sc);
    let setup_for = |mult: f64| Setup {
        tenants: std::iter::once(at_share_spread("hitter", mult, share, 256, 256))
            .chain((1..8).map(|i| at_share_spread(&format!("light{i}"), 0.5, share, 256, 256)))
            .collect(),
        classes: Vec::new(),
        duration,
    };
    let lights: Vec<usize> = (1..8).collect();
    let base = setup_for(1.0);
    let main = setup_for(8.0);
    let one = |policy: Policy| {
        let base_p99 = ttft_p99(&simulate(ctx, &base, policy), &lights, warmup, duration);
        let mut extra = vec![metric("light p99 TTFT, hitter 1x (s)", base_p99)];
        let mut report = None;
        for mult in [4.0, 8.0] {
            let setup = setup_for(mult);
            let rec = simulate(ctx, &setup, policy);
            let p99 = ttft_p99(&rec, &lights, warmup, duration);
            extra.push(metric(&format!("light p99 TTFT, hitter {mult}x (s)"), p99));
            let wait = wait_p99(&rec, &lights, warmup, duration);
            extra.push(metric(&format!("light p99 gateway wait, hitter {mult}x (s)"), wait));
            extra.push(metric(&format!("light p99 ratio {mult}x/1x"), p99 / base_p99.max(1e-9)));
            // Demand arriving up to 30 s before the end had time to be served.
            let arrived: f64 = Recorder::sum(&rec.arrived, 8, warmup, duration - 30.0 * sc)
                .iter()
                .skip(1)
                .sum();
            let served: f64 = Recorder::sum(&rec.service, 8, warmup, duration - 30.0 * sc)
                .iter()
                .skip(1)
                .sum();
            extra.push(metric(
                &format!("light demand served {mult}x"),
                served / arrived.max(1e-9),
            ));
            report = Some(base_report(&setup, &rec, policy, warmup));
        }
        let mut r = report.unwrap_or_else(|| base_report(&main, &simulate(ctx, &main, policy), policy, warmup));
        r.extra = extra;
        r
    };
    let (v, f) = (one(Policy::Vtc), one(Policy::Fcfs));
    common_checks(checks, &v, &f, true);
    for mult in ["4", "8"] {
        let name = format!("light p99 ratio {mult}x/1x");
        if let Some(x) = extra(&v, &name) {
            checks.push(check(&format!("G3 {name}"), "<= 1.25", x, x <= 1.25));
        }
        if let Some(x) = extra(&v, &format!("light demand served {mult}x")) {
            checks.push(check(
                &format!("G3 light demand served {mult}x"),
                ">= 0.98",
                x,
                x >= 0.98,
            ));
        }
    }
    (main, v, f)
}

fn s4(ctx: &Ctx<'_>, sc: f64, checks: &mut Vec<Check>) -> Outcome {
    let share = ctx.c / 2.0;
    let rate = 2.0 * share / (W_IN * 256.0 + W_OUT * 256.0);
    // The returning tenant is active for 30 s (its backlog drains well within the next 60 s), idle, then back.
    let back = 150.0 * sc;
    let setup = Setup {
        tenants: vec![
            at_share("steady", 2.0, share, 256, 256),
            tenant(
                "returning",
                1.0,
                "",
                Rate::Steps(vec![(0.0, rate), (30.0 * sc, 0.0), (back, rate)]),
                fixed(256),
                fixed(256),
            ),
        ],
        classes: Vec::new(),
        duration: 240.0 * sc,
    };
    let [(rv, mut v), (rf, mut f)] = pair(ctx, &setup, 60.0 * sc);
    for (rec, r) in [(&rv, &mut v), (&rf, &mut f)] {
        let last = rec
            .dispatches
            .iter()
            .enumerate()
            .filter(|(s, row)| (*s as f64) < back && row[1] > 0)
            .map(|(s, _)| s as f64 + 1.0)
            .fold(0.0, f64::max);
        r.extra.push(metric("returning idle before return (s)", back - last));
        r.extra.push(metric(
            "returning share, first 30 s back",
            share_of(rec, &[1], back, back + 30.0 * sc),
        ));
    }
    common_checks(checks, &v, &f, true);
    if let Some(x) = extra(&v, "returning share, first 30 s back") {
        checks.push(check("G5 returning share", "45%..60%", x, (0.45..=0.60).contains(&x)));
    }
    (setup, v, f)
}

fn s5(ctx: &Ctx<'_>, sc: f64, checks: &mut Vec<Check>) -> Outcome {
    // Equal arrival rates (0.5 C each): FCFS splits evenly, a weighted scheduler 1:2:3:4.
    let weights = [1.0, 2.0, 3.0, 4.0];
    let setup = Setup {
        tenants: weights
            .iter()
            .map(|w| Traffic {
                weight: *w,
                ..at_share(&format!("w{w}"), 0.5, ctx.c, 256, 256)
            })
            .collect(),
        classes: Vec::new(),
        duration: 360.0 * sc,
    };
    let warmup = 60.0 * sc;
    let [(rv, mut v), (rf, mut f)] = pair(ctx, &setup, warmup);
    let wsum: f64 = weights.iter().sum();
    for (rec, r) in [(&rv, &mut v), (&rf, &mut f)] {
        let mut worst: f64 = 0.0;
        for (i, w) in weights.iter().enumerate() {
            let share = share_of(rec, &[i], warmup, setup.duration);
            let target = w / wsum;
            r.extra
                .push(metric(&format!("share w={w} (target {target:.2})"), share));
            worst = worst.max((share - target).abs() / target);
        }
        r.extra.push(metric("max relative share error", worst));
    }
    common_checks(checks, &v, &f, true);
    if let Some(x) = extra(&v, "max relative share error") {
        checks.push(check("G6 weighted shares", "within 5%", x, x <= 0.05));
    }
    (setup, v, f)
}

fn s6(ctx: &Ctx<'_>, sc: f64, checks: &mut Vec<Check>) -> Outcome {
    let input = LengthDist::LogNormal {
        median: 70.0,
        sigma: 1.0,
        min: 2,
        max: 1021,
    };
    let output = LengthDist::LogNormal {
        median: 170.0,
        sigma: 0.9,
        min: 2,
        max: 977,
    };
    let cost = mean_cost(&input, &output);
    let zipf: Vec<f64> = (1..=27).map(|k| 1.0 / f64::from(k)).collect();
    let zsum: f64 = zipf.iter().sum();
    let setup = Setup {
        tenants: zipf
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let rate = Rate::Const(1.2 * ctx.c * z / zsum / cost);
                tenant(&format!("t{i:02}"), 1.0, "", rate, input.clone(), output.clone())
            })
            .collect(),
        classes: Vec::new(),
        duration: 600.0 * sc,
    };
    let [(_, v), (_, f)] = pair(ctx, &setup, 60.0 * sc);
    common_checks(checks, &v, &f, true);
    (setup, v, f)
}

fn s7(ctx: &Ctx<'_>, sc: f64, checks: &mut Vec<Check>) -> Outcome {
    let cost = W_IN * 256.0 + W_OUT * 256.0;
    let (burst, duration, warmup) = (480.0 * sc, 600.0 * sc, 60.0 * sc);
    let min_share = 0.1;
    let classes = vec![
        ClassConfig {
            name: "hi".into(),
            value: 10,
            preemptible: false,
            min_share: 0.0,
        },
        ClassConfig {
            name: "lo".into(),
            value: 0,
            preemptible: true,
            min_share,
        },
    ];
    let hi = |name: &str| {
        let rate = Rate::Steps(vec![(0.0, 0.3 * ctx.c / cost), (burst, 0.75 * ctx.c / cost)]);
        tenant(name, 1.0, "hi", rate, around(256), around(256))
    };
    let lo = |name: &str| {
        let to = 2.0 * ctx.c / cost;
        let rate = Rate::Ramp {
            to,
            until_s: burst,
            after: to,
        };
        tenant(name, 1.0, "lo", rate, around(256), around(256))
    };
    let setup = Setup {
        tenants: vec![hi("hi0"), hi("hi1"), lo("lo0"), lo("lo1")],
        classes: classes.clone(),
        duration,
    };
    let base = Setup {
        tenants: vec![hi("hi0"), hi("hi1")],
        classes,
        duration,
    };
    let one = |policy: Policy| {
        let rec = simulate(ctx, &setup, policy);
        let b = simulate(ctx, &base, policy);
        let mut r = base_report(&setup, &rec, policy, warmup);
        let p99 = ttft_p99(&rec, &[0, 1], warmup, burst);
        let base_p99 = ttft_p99(&b, &[0, 1], warmup, burst);
        r.extra.push(metric("hi p99 TTFT before the burst (s)", p99));
        r.extra.push(metric("hi p99 TTFT, no lo (s)", base_p99));
        r.extra.push(metric(
            "hi p99 gateway wait before the burst (s)",
            wait_p99(&rec, &[0, 1], warmup, burst),
        ));
        r.extra.push(metric("hi p99 ratio", p99 / base_p99.max(1e-9)));
        let step = 30.0 * sc;
        let mut floor: f64 = 1.0;
        let mut a = burst;
        while a + step <= duration + 1e-9 {
            floor = floor.min(share_of(&rec, &[2, 3], a, a + step));
            a += step;
        }
        r.extra.push(metric("lo least 30 s share in hi overload", floor));
        let mut times: Vec<f64> = [2, 3]
            .iter()
            .flat_map(|&t| rec.dispatch_times[t].iter().copied())
            .filter(|t| *t >= burst)
            .collect();
        times.push(burst);
        times.push(duration);
        times.sort_by(f64::total_cmp);
        let starved = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        r.extra
            .push(metric("lo longest wait for a dispatch in hi overload (s)", starved));
        r
    };
    let (v, f) = (one(Policy::Vtc), one(Policy::Fcfs));
    common_checks(checks, &v, &f, false);
    if let Some(x) = extra(&v, "hi p99 ratio") {
        checks.push(check("G7 hi p99 TTFT / no-lo", "<= 1.10", x, x <= 1.10));
    }
    if let Some(x) = extra(&v, "lo least 30 s share in hi overload") {
        checks.push(check("G7 lo floor", ">= 90% of the 10% floor", x, x >= 0.9 * min_share));
    }
    if let Some(x) = extra(&v, "lo longest wait for a dispatch in hi overload (s)") {
        checks.push(check("G7 lo starvation (s)", "<= 30", x, x <= 30.0));
    }
    (setup, v, f)
}
