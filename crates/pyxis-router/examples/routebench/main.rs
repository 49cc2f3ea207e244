//! Routing policies compared in virtual time on a mixed fleet (4×H100, 4×A100, 4×L4, Llama-3.1-8B):
//! round-robin, least-request (the gateway's old `pick`) and `pyxis_router::Router`, on a shared-prefix chat
//! workload at 50/80/95 % of the fleet's capacity and a prefix-free one, same seed for every policy.
//!
//! `cargo run --release -p pyxis-router --example routebench [-- --json] [--duration S] [--seed N]
//! [--budget-ms MS] [--fleet h100:4,a100:4,l4:4]`

mod adapter;

use std::time::Instant;

use adapter::{Budgets, Endpoint, Measured, PyxisSim};
use pyxis_router::RoutingConfig;
use pyxis_sim_core::report::Report;
use pyxis_sim_core::sim::{Fifo, LeastLoaded, RoundRobin, Router as SimRouter, SimConfig, VirtualFleet};
use pyxis_sim_core::workload::{Arrival, LengthDist, TenantSpec, Workload, WorkloadSpec};
use pyxis_sim_core::{Engine, EngineConfig, find_hardware, find_model};

const MODEL: &str = "llama-3.1-8b";
/// The default fleet (`--fleet h100:12` or `--fleet h100:4,a100:4` for others).
const FLEET: &str = "h100:4,a100:4,l4:4";
const DEFAULT_SEED: u64 = 20_240_611;
const WARMUP_S: f64 = 30.0;
/// One request in five carries a TTFT budget (`--budget-ms`, default 300).
const BUDGET_EVERY: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    SharedPrefix,
    PrefixFree,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::SharedPrefix => "shared-prefix",
            Kind::PrefixFree => "prefix-free",
        }
    }
}

/// The engine profile for `hw`, or the process ends with the reason (a bad `--fleet`).
fn engine_config(hw: &str) -> EngineConfig {
    EngineConfig::for_names(hw, MODEL).unwrap_or_else(|e| {
        eprintln!("routebench: {e}");
        std::process::exit(2)
    })
}

fn engines(fleet: &[(String, usize)]) -> Vec<Engine> {
    let mut v = Vec::new();
    for (hw, n) in fleet {
        let cfg = engine_config(hw);
        for _ in 0..*n {
            v.push(Engine::new(cfg.clone()));
        }
    }
    v
}

fn endpoints(fleet: &[(String, usize)]) -> Vec<Endpoint> {
    let mut v = Vec::new();
    for (hw, n) in fleet {
        let mem = find_hardware(hw).map_or(0.0, |h| h.mem_bytes / f64::from(1u32 << 30));
        for i in 0..*n {
            v.push(Endpoint {
                key: format!("http://{hw}-{i}:8000"),
                hardware: hw.clone(),
                memory_gib: mem,
            });
        }
    }
    v
}

fn weights_gib() -> f64 {
    find_model(MODEL).map_or(0.0, |m| m.weight_bytes() / f64::from(1u32 << 30))
}

/// Chat: a system prompt or document shared by a group (1,500 tokens, 400 groups: more than one engine's
/// KV cache holds, less than the fleet's), then the user's own turn.
fn spec(kind: Kind, arrival: Arrival, duration_s: f64, seed: u64) -> WorkloadSpec {
    let (groups, prefix) = match kind {
        Kind::SharedPrefix => (400, 1500),
        Kind::PrefixFree => (0, 0),
    };
    WorkloadSpec {
        arrival,
        duration_s,
        max_requests: None,
        tenants: vec![TenantSpec {
            name: "chat".into(),
            weight: 1.0,
            prompt_tokens: LengthDist::LogNormal {
                median: 1900.0,
                sigma: 0.3,
                min: 64,
                max: 6000,
            },
            output_tokens: LengthDist::LogNormal {
                median: 150.0,
                sigma: 0.6,
                min: 4,
                max: 1000,
            },
            prefix_groups: groups,
            prefix_tokens: prefix,
            lora: None,
        }],
        seed,
    }
}

fn vocab() -> u32 {
    find_model(MODEL).map_or(128_256, |m| m.vocab)
}

/// Fleet capacity in requests/s: the sum over the engines of what each serves saturated on its own, after a
/// warm-up: the best of closed loops of 16, 64 and 256 clients (too many clients make a small GPU thrash its
/// KV cache with preemptions, too few leave a large one idle).
fn capacity(kind: Kind, opts: &Opts) -> Capacity {
    let mut total = 0.0;
    let mut per_engine = Vec::new();
    for (hw, n) in &opts.fleet {
        let cfg = engine_config(hw);
        let best = [16, 64, 256]
            .into_iter()
            .map(|concurrency| {
                let arrival = Arrival::Closed {
                    concurrency,
                    think_s: 0.0,
                };
                let mut w = Workload::new(spec(kind, arrival, 150.0, opts.seed), vocab());
                let sim = SimConfig {
                    warmup_s: 30.0,
                    ..SimConfig::default()
                };
                let r = VirtualFleet::new(vec![Engine::new(cfg.clone())], sim).run(
                    &mut w,
                    &mut LeastLoaded::default(),
                    &mut Fifo::default(),
                );
                r.overall.requests_per_s
            })
            .fold(0.0, f64::max);
        total += *n as f64 * best;
        per_engine.push((hw.clone(), best));
    }
    Capacity {
        kind,
        total,
        per_engine,
    }
}

struct Capacity {
    kind: Kind,
    total: f64,
    per_engine: Vec<(String, f64)>,
}

/// Share of the completed requests per hardware class, in fleet order, in percent: `58/41/1`.
fn mix(report: &Report, fleet: &[(String, usize)]) -> Vec<f64> {
    let total = report.engines.iter().map(|e| e.completed).sum::<u64>().max(1) as f64;
    fleet
        .iter()
        .map(|(hw, _)| {
            let done: u64 = report
                .engines
                .iter()
                .filter(|e| &e.hardware == hw)
                .map(|e| e.completed)
                .sum();
            100.0 * done as f64 / total
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Row {
    workload: &'static str,
    load: f64,
    rate: f64,
    policy: &'static str,
    report: Report,
    budget_met: f64,
    budgeted: u64,
    mix: Vec<f64>,
    wall_s: f64,
}

/// The defaults, or `ROUTEBENCH_WEIGHTS=load,latency,prefix,cost,session` and `ROUTEBENCH_GUARD=N` to try others.
fn routing_config() -> RoutingConfig {
    let mut cfg = RoutingConfig::default();
    if let Ok(w) = std::env::var("ROUTEBENCH_WEIGHTS") {
        let v: Vec<f64> = w.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if let [load, latency, prefix, cost, session] = v[..] {
            cfg.weights = pyxis_router::Weights {
                load,
                latency,
                prefix,
                cost,
                session,
            };
        }
    }
    if let Some(g) = std::env::var("ROUTEBENCH_GUARD").ok().and_then(|g| g.parse().ok()) {
        cfg.prefix_max_imbalance = g;
    }
    cfg
}

fn run(kind: Kind, load: f64, rate: f64, opts: &Opts, policy: &'static str) -> Row {
    let mut w = Workload::new(spec(kind, Arrival::Poisson { rate }, opts.duration, opts.seed), vocab());
    let cfg = SimConfig {
        warmup_s: WARMUP_S,
        ..SimConfig::default()
    };
    let mut rr = RoundRobin::default();
    let mut lr = LeastLoaded::default();
    let budgets = Budgets {
        every: BUDGET_EVERY,
        ms: opts.budget_ms,
    };
    let mut px = PyxisSim::new(routing_config(), endpoints(&opts.fleet), weights_gib(), budgets);
    let inner: &mut dyn SimRouter = match policy {
        "round-robin" => &mut rr,
        "least-request" => &mut lr,
        _ => &mut px,
    };
    let mut m = Measured::new(inner, budgets, WARMUP_S);
    let t = Instant::now();
    let report = VirtualFleet::new(engines(&opts.fleet), cfg).run(&mut w, &mut m, &mut Fifo::default());
    let (met, total) = (m.met, m.total);
    let served = mix(&report, &opts.fleet);
    if policy == "pyxis" && std::env::var_os("ROUTEBENCH_DEBUG").is_some() {
        let shares: Vec<String> = report
            .engines
            .iter()
            .map(|e| format!("{}:{}", e.hardware, e.completed))
            .collect();
        eprintln!("{} {load}: {}\n{}", kind.name(), shares.join(" "), px.learned());
    }
    Row {
        workload: kind.name(),
        load,
        rate,
        policy,
        report,
        budget_met: if total == 0 { 0.0 } else { met as f64 / total as f64 },
        budgeted: total,
        mix: served,
        wall_s: t.elapsed().as_secs_f64(),
    }
}

fn json(rows: &[Row], caps: &[Capacity], opts: &Opts) -> serde_json::Value {
    serde_json::json!({
        "fleet": opts.fleet_name(),
        "model": MODEL,
        "seed": opts.seed,
        "duration_s": opts.duration,
        "warmup_s": WARMUP_S,
        "budget_ms": opts.budget_ms,
        "budget_share": 1.0 / BUDGET_EVERY as f64,
        "capacity_req_s": caps.iter().map(|c| (c.kind.name().to_string(), serde_json::json!({
            "fleet": c.total,
            "per_engine": c.per_engine.iter().map(|(h, v)| (h.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        }))).collect::<serde_json::Map<_, _>>(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "workload": r.workload,
            "load": r.load,
            "rate_req_s": r.rate,
            "policy": r.policy,
            "ttft_p50_ms": r.report.overall.ttft.p50 * 1e3,
            "ttft_p90_ms": r.report.overall.ttft.p90 * 1e3,
            "e2e_p90_s": r.report.overall.e2e.p90,
            "req_per_s": r.report.overall.requests_per_s,
            "out_tok_per_s": r.report.overall.output_tokens_per_s,
            "prefix_hit_rate": r.report.overall.prefix_hit_rate,
            "budget_met": r.budget_met,
            "budgeted": r.budgeted,
            "completed_share_pct": opts.fleet.iter().zip(&r.mix).map(|((h, _), v)| (h.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "completed": r.report.overall.completed,
            "simulated_s": r.report.simulated_s,
            "wall_s": r.wall_s,
        })).collect::<Vec<_>>(),
    })
}

fn find<'a>(rows: &'a [Row], w: &str, load: f64, p: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.workload == w && r.load == load && r.policy == p)
}

/// Command-line options.
struct Opts {
    json: bool,
    duration: f64,
    seed: u64,
    budget_ms: u64,
    fleet: Vec<(String, usize)>,
}

impl Opts {
    fn parse() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
        Opts {
            json: args.iter().any(|a| a == "--json"),
            duration: value("--duration").and_then(|s| s.parse().ok()).unwrap_or(240.0),
            seed: value("--seed").and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED),
            budget_ms: value("--budget-ms").and_then(|s| s.parse().ok()).unwrap_or(300),
            fleet: value("--fleet")
                .map_or(FLEET, |s| s.as_str())
                .split(',')
                .filter_map(|p| {
                    let (hw, n) = p.split_once(':')?;
                    Some((hw.trim().to_string(), n.trim().parse().ok()?))
                })
                .collect(),
        }
    }

    fn fleet_name(&self) -> String {
        self.fleet
            .iter()
            .map(|(h, n)| format!("{n}x{h}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

fn main() {
    let opts = Opts::parse();
    let t0 = Instant::now();
    let caps = [capacity(Kind::SharedPrefix, &opts), capacity(Kind::PrefixFree, &opts)];
    let mut rows = Vec::new();
    for cap in &caps {
        for load in [0.5, 0.8, 0.95] {
            for policy in ["round-robin", "least-request", "pyxis"] {
                rows.push(run(cap.kind, load, cap.total * load, &opts, policy));
            }
        }
    }
    if opts.json {
        println!("{}", json(&rows, &caps, &opts));
        return;
    }
    println!(
        "fleet {} serving {MODEL}, seed {}, {} s of Poisson arrivals ({WARMUP_S} s warm-up), \
         1 request in {} with a {} ms TTFT budget",
        opts.fleet_name(),
        opts.seed,
        opts.duration,
        BUDGET_EVERY,
        opts.budget_ms
    );
    for c in &caps {
        let each: Vec<String> = c.per_engine.iter().map(|(h, v)| format!("{h} {v:.1}")).collect();
        println!(
            "capacity ({}): {:.1} req/s (one engine alone: {})",
            c.kind.name(),
            c.total,
            each.join(", ")
        );
    }
    let mix_head: Vec<&str> = opts.fleet.iter().map(|(h, _)| h.as_str()).collect();
    println!(
        "{:<14} {:>5} {:>6} {:<14} {:>9} {:>9} {:>8} {:>7} {:>9} {:>7} {:>8}  served by % {}",
        "workload",
        "load",
        "req/s",
        "policy",
        "TTFT p50",
        "TTFT p90",
        "E2E p90",
        "done/s",
        "out tok/s",
        "prefix",
        "budget",
        mix_head.join("/")
    );
    for r in &rows {
        let o = &r.report.overall;
        println!(
            "{:<14} {:>4.0}% {:>6.1} {:<14} {:>7.0}ms {:>7.0}ms {:>7.1}s {:>7.1} {:>9.0} {:>6.1}% {:>7.1}%  {}",
            r.workload,
            r.load * 100.0,
            r.rate,
            r.policy,
            o.ttft.p50 * 1e3,
            o.ttft.p90 * 1e3,
            o.e2e.p90,
            o.requests_per_s,
            o.output_tokens_per_s,
            o.prefix_hit_rate * 100.0,
            r.budget_met * 100.0,
            r.mix.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join("/")
        );
    }
    let p90 = |w: &str, l: f64, p: &str| find(&rows, w, l, p).map_or(f64::NAN, |r| r.report.overall.ttft.p90);
    let e2e = |w: &str, l: f64, p: &str| find(&rows, w, l, p).map_or(f64::NAN, |r| r.report.overall.e2e.p90);
    let (sp, pf) = ("shared-prefix", "prefix-free");
    let worst = |f: &dyn Fn(f64) -> f64| [0.5, 0.8, 0.95].into_iter().map(f).fold(f64::INFINITY, f64::min);
    let budget = rows
        .iter()
        .filter(|r| r.policy == "pyxis")
        .map(|r| r.budget_met)
        .fold(f64::INFINITY, f64::min);
    println!(
        "goals: shared-prefix 80%: P90 TTFT round-robin/pyxis {:.1}x (>= 2), least-request/pyxis {:.2}x (>= 1.3); \
         prefix-free, worst load: P90 TTFT least-request/pyxis {:.2}x, P90 E2E {:.2}x (>= 1.0); \
         pyxis budgeted requests meeting the budget, worst row: {:.1}% (>= 99%)",
        p90(sp, 0.8, "round-robin") / p90(sp, 0.8, "pyxis"),
        p90(sp, 0.8, "least-request") / p90(sp, 0.8, "pyxis"),
        worst(&|l| p90(pf, l, "least-request") / p90(pf, l, "pyxis")),
        worst(&|l| e2e(pf, l, "least-request") / e2e(pf, l, "pyxis")),
        budget * 100.0,
    );
    println!("wall {:.1} s", t0.elapsed().as_secs_f64());
}
