//! `pyxis sim serve | fleet | run`: argument types and their entry point.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use pyxis_sim_core::report::{GroupReport, Report};
use pyxis_sim_core::sim::{
    AdmissionScheduler, Fifo, LeastLoaded, PrefixAffinity, RoundRobin, Router, SimConfig, VirtualFleet,
};
use pyxis_sim_core::workload::{
    Arrival, LengthDist, LoadSource, TenantSpec, TraceRecord, TraceSource, Workload, WorkloadSpec,
};
use pyxis_sim_core::{Engine, EngineConfig, StopPolicy};

use crate::fleet::Fleet;
use crate::{EngineSpec, EngineTuning, FaultConfig, Surface};

/// The engine simulator's commands.
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

/// One engine, several, or a virtual-time run.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve one simulated engine over HTTP in real time.
    Serve(ServeArgs),
    /// Serve several engines described in a YAML file.
    Fleet(FleetArgs),
    /// Run a workload or a trace in virtual time and print latency percentiles and throughput.
    Run(RunArgs),
    /// List the hardware and model profiles.
    Profiles,
}

/// Engine shape flags shared by `serve` and `run`.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// vLLM's --max-num-seqs (default: the hardware profile's).
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// vLLM's --max-num-batched-tokens.
    #[arg(long)]
    pub max_num_batched_tokens: Option<u32>,
    /// vLLM's --max-model-len.
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// KV blocks instead of the memory-derived count.
    #[arg(long)]
    pub num_kv_blocks: Option<u32>,
    /// Turn block-level prefix caching off.
    #[arg(long)]
    pub no_prefix_caching: bool,
    /// Requests never stop before max_tokens (a random-weight model's behaviour).
    #[arg(long)]
    pub never_stop: bool,
}

impl TuningArgs {
    fn tuning(&self) -> EngineTuning {
        EngineTuning {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            max_model_len: self.max_model_len,
            num_kv_blocks: self.num_kv_blocks,
            enable_prefix_caching: self.no_prefix_caching.then_some(false),
            stop_policy: self.never_stop.then_some(StopPolicy::Never),
            ..EngineTuning::default()
        }
    }
}

/// `pyxis sim serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hardware profile (`pyxis sim profiles` lists them).
    #[arg(long, default_value = "h100")]
    pub hardware: String,
    /// Model profile.
    #[arg(long, default_value = "llama-3-8b")]
    pub model: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8100)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Runtime API to present.
    #[arg(long, value_enum, default_value_t = Surface::Vllm)]
    pub surface: Surface,
    /// Names to serve (repeatable; default: the model key).
    #[arg(long = "served-model-name")]
    pub served_model_names: Vec<String>,
    /// Output seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Simulated seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// LoRA adapters loaded at start, `name` or `name=path` (repeatable).
    #[arg(long = "lora")]
    pub loras: Vec<String>,
    /// Most adapters in one batch (vLLM --max-loras).
    #[arg(long)]
    pub max_loras: Option<u32>,
    #[command(flatten)]
    pub tuning: TuningArgs,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Fault flags (also settable at run time with `POST /admin/faults`).
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// Fraction of inference requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Milliseconds added before each inference request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seconds during which /health answers 503 after start.
    #[arg(long, default_value_t = 0.0)]
    pub slow_start: f64,
    /// Accept requests but never answer.
    #[arg(long)]
    pub hang: bool,
    /// Crash (close the listener) this many seconds after start.
    #[arg(long)]
    pub crash_after: Option<f64>,
    /// Drop streams after this many chunks.
    #[arg(long)]
    pub stream_cut_after: Option<u32>,
    /// Refuse every inference request as overloaded (429 TGI, 503 otherwise).
    #[arg(long)]
    pub overload: bool,
    /// Refuse as overloaded beyond this many requests in flight.
    #[arg(long)]
    pub max_concurrent: Option<u32>,
}

impl FaultArgs {
    fn config(&self) -> FaultConfig {
        FaultConfig {
            error_rate: self.error_rate,
            latency_ms: self.latency_ms,
            slow_start_s: self.slow_start,
            hang: self.hang,
            crash: false,
            crash_after_s: self.crash_after,
            stream_cut_after: self.stream_cut_after,
            overload: self.overload,
            max_concurrent: self.max_concurrent,
        }
    }
}

/// `pyxis sim fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// YAML fleet file (see docs/simulator.md and examples/sim-fleet.yaml).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Address to listen on unless the file names one.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
}

/// Routing policy of a virtual run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouterKind {
    /// Fewest requests in flight (pyxis-router's policy).
    LeastLoaded,
    /// Strict rotation.
    RoundRobin,
    /// Longest cached prefix, then least loaded.
    Prefix,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable table.
    Table,
    /// One JSON document.
    Json,
}

/// `pyxis sim run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Hardware profile of every engine (ignored with --fleet).
    #[arg(long, default_value = "h100")]
    pub hardware: String,
    /// Model profile of every engine (ignored with --fleet).
    #[arg(long, default_value = "llama-3-8b")]
    pub model: String,
    /// Engines in the fleet (ignored with --fleet).
    #[arg(long, default_value_t = 1)]
    pub engines: u32,
    /// Take the engines from a fleet file instead (its tuning applies; ports and faults do not).
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// A workload YAML (WorkloadSpec); overrides the workload flags.
    #[arg(long)]
    pub workload: Option<PathBuf>,
    /// A trace to replay: JSONL, or a YAML list of records.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Open-loop Poisson arrivals, requests/s (default when neither --concurrency nor --bursty).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: this many clients, each sending its next request when the last finishes.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Mean think time of closed-loop clients, s.
    #[arg(long, default_value_t = 0.0)]
    pub think: f64,
    /// Bursty arrivals: RATE_ON,RATE_OFF,MEAN_ON_S,MEAN_OFF_S.
    #[arg(long)]
    pub bursty: Option<String>,
    /// Seconds of arrivals.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Stop after this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Median prompt tokens (log-normal, sigma 0.6; `--fixed-lengths` makes it exact).
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: u32,
    /// Median output tokens.
    #[arg(long, default_value_t = 128)]
    pub output_tokens: u32,
    /// Exact lengths instead of log-normal ones.
    #[arg(long)]
    pub fixed_lengths: bool,
    /// Tenants with equal weight.
    #[arg(long, default_value_t = 1)]
    pub tenants: u32,
    /// Shared prefixes per tenant.
    #[arg(long, default_value_t = 0)]
    pub prefix_groups: u32,
    /// Tokens of each shared prefix.
    #[arg(long, default_value_t = 0)]
    pub prefix_tokens: u32,
    /// Routing policy.
    #[arg(long, value_enum, default_value_t = RouterKind::LeastLoaded)]
    pub router: RouterKind,
    /// Gateway limit of requests in flight per engine (excess waits in the gateway queue).
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// Seconds of warm-up excluded from the figures.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Runs a `pyxis sim` command to completion (`serve` and `fleet` until Ctrl-C).
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    match args.command {
        SimCommand::Serve(a) => serve(a).await,
        SimCommand::Fleet(a) => fleet(a).await,
        SimCommand::Run(a) => {
            let out = tokio::task::spawn_blocking(move || run_virtual(&a)).await??;
            print!("{out}");
            Ok(())
        }
        SimCommand::Profiles => {
            print!("{}", profiles());
            Ok(())
        }
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut spec = EngineSpec::new(format!("sim-{}", a.port), &a.hardware, &a.model);
    spec.surface = a.surface;
    spec.served_model_names = a.served_model_names;
    spec.seed = a.seed;
    spec.speedup = a.speedup;
    spec.faults = a.faults.config();
    spec.tuning = a.tuning.tuning();
    spec.tuning.lora_adapters = a.loras;
    spec.tuning.max_loras = a.max_loras;
    let h = crate::spawn(spec, SocketAddr::new(a.host, a.port)).await?;
    println!(
        "simulated {} engine ({} on {}) listening on {}",
        surface_name(a.surface),
        a.model,
        a.hardware,
        h.url()
    );
    wait_for_stop(&h).await;
    h.shutdown().await;
    Ok(())
}

async fn wait_for_stop(h: &crate::EngineHandle) {
    let mut down = h.state.down.subscribe();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = crate::server::wait_down(&mut down) => {}
    }
}

fn surface_name(s: Surface) -> &'static str {
    match s {
        Surface::Vllm => "vLLM",
        Surface::Tgi => "TGI",
        Surface::Ollama => "Ollama",
    }
}

async fn fleet(a: FleetArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file).map_err(|e| anyhow::anyhow!("reading {}: {e}", a.file.display()))?;
    let f = Fleet::parse(&text, a.host)?;
    let handles = f.spawn().await?;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<24} {:<8} {:<10} {:<16} URL",
        "ENGINE", "SURFACE", "HARDWARE", "MODEL"
    );
    for (h, (spec, _)) in handles.iter().zip(&f.engines) {
        let _ = writeln!(
            t,
            "{:<24} {:<8} {:<10} {:<16} {}",
            spec.name,
            surface_name(spec.surface),
            spec.hardware,
            spec.model,
            h.url()
        );
    }
    print!("{t}");
    let _ = tokio::signal::ctrl_c().await;
    futures::future::join_all(handles.into_iter().map(|h| h.shutdown())).await;
    Ok(())
}

fn profiles() -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<8} {:>10} {:>10} {:>8}  DESCRIPTION",
        "HARDWARE", "MEM GiB", "BW TB/s", "TFLOPS"
    );
    for h in pyxis_sim_core::hardware_profiles() {
        let _ = writeln!(
            t,
            "{:<8} {:>10.0} {:>10.2} {:>8.0}  {}",
            h.name,
            h.mem_bytes / (1u64 << 30) as f64,
            h.mem_bw / 1e12,
            h.peak_flops / 1e12,
            h.description
        );
    }
    let _ = writeln!(
        t,
        "\n{:<14} {:>8} {:>7} {:>10} {:>9}  HF ID",
        "MODEL", "PARAMS", "LAYERS", "KV B/TOK", "CONTEXT"
    );
    for m in pyxis_sim_core::model_profiles() {
        let _ = writeln!(
            t,
            "{:<14} {:>7.2}B {:>7} {:>10.0} {:>9}  {}",
            m.name,
            m.params / 1e9,
            m.layers,
            m.kv_bytes_per_token(),
            m.max_model_len,
            m.hf_id
        );
    }
    t
}

/// Log-normal around `median` (sigma 0.6), capped at 8× the median and at `cap` (so draws stay
/// within the context), or exactly `median`.
fn length(median: u32, fixed: bool, cap: u32) -> LengthDist {
    if fixed {
        LengthDist::Fixed { value: median }
    } else {
        LengthDist::LogNormal {
            median: f64::from(median),
            sigma: 0.6,
            min: 1,
            max: median.saturating_mul(8).max(8).min(cap.max(median)),
        }
    }
}

fn arrival(a: &RunArgs) -> anyhow::Result<Arrival> {
    if let Some(b) = &a.bursty {
        let v: Vec<f64> = b
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()?;
        let [rate_on, rate_off, mean_on_s, mean_off_s] = v[..] else {
            anyhow::bail!("--bursty takes RATE_ON,RATE_OFF,MEAN_ON_S,MEAN_OFF_S");
        };
        return Ok(Arrival::Bursty {
            rate_on,
            rate_off,
            mean_on_s,
            mean_off_s,
        });
    }
    if let Some(c) = a.concurrency {
        return Ok(Arrival::Closed {
            concurrency: c,
            think_s: a.think,
        });
    }
    Ok(Arrival::Poisson {
        rate: a.rate.unwrap_or(10.0),
    })
}

fn read_trace(path: &PathBuf) -> anyhow::Result<Vec<TraceRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    if is_yaml {
        return Ok(serde_yaml_ng::from_str(&text)?);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

fn engine_configs(a: &RunArgs) -> anyhow::Result<Vec<EngineConfig>> {
    let specs: Vec<EngineSpec> = match &a.fleet {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
            Fleet::parse(&text, [127, 0, 0, 1].into())?
                .engines
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        }
        None => (0..a.engines.max(1))
            .map(|i| {
                let mut s = EngineSpec::new(format!("e{i}"), &a.hardware, &a.model);
                s.seed = a.seed.wrapping_add(u64::from(i));
                s.tuning = a.tuning.tuning();
                s
            })
            .collect(),
    };
    specs
        .iter()
        .map(|s| {
            let mut c = EngineConfig::for_names(&s.hardware, &s.model)?;
            c.seed = s.seed;
            s.tuning.apply(&mut c);
            Ok(c)
        })
        .collect()
}

/// Builds and runs a virtual-time simulation; returns the rendered output.
pub fn run_virtual(a: &RunArgs) -> anyhow::Result<String> {
    let configs = engine_configs(a)?;
    let vocab = configs.first().map_or(32_000, |c| c.vocab);
    let ctx = configs.iter().map(|c| c.max_model_len).min().unwrap_or(8192);
    let mut source: Box<dyn LoadSource> = if let Some(t) = &a.trace {
        Box::new(TraceSource::new(read_trace(t)?, vocab, a.seed))
    } else if let Some(w) = &a.workload {
        let text = std::fs::read_to_string(w).map_err(|e| anyhow::anyhow!("reading {}: {e}", w.display()))?;
        let spec: WorkloadSpec = serde_yaml_ng::from_str(&text)?;
        Box::new(Workload::new(spec, vocab))
    } else {
        let tenants = (0..a.tenants.max(1))
            .map(|i| TenantSpec {
                name: format!("tenant-{i}"),
                weight: 1.0,
                prompt_tokens: length(a.prompt_tokens, a.fixed_lengths, ctx * 3 / 4),
                output_tokens: length(a.output_tokens, a.fixed_lengths, ctx / 4),
                prefix_groups: a.prefix_groups,
                prefix_tokens: a.prefix_tokens,
                lora: None,
            })
            .collect();
        Box::new(Workload::new(
            WorkloadSpec {
                arrival: arrival(a)?,
                duration_s: a.duration,
                max_requests: a.max_requests,
                tenants,
                seed: a.seed,
            },
            vocab,
        ))
    };
    let mut router: Box<dyn Router> = match a.router {
        RouterKind::LeastLoaded => Box::new(LeastLoaded::default()),
        RouterKind::RoundRobin => Box::new(RoundRobin::default()),
        RouterKind::Prefix => Box::new(PrefixAffinity::new(4)),
    };
    let mut sched: Box<dyn AdmissionScheduler> = Box::new(Fifo::default());
    let cfg = SimConfig {
        warmup_s: a.warmup,
        max_in_flight_per_engine: a.max_in_flight,
        max_sim_s: f64::INFINITY,
    };
    let engines: Vec<Engine> = configs.into_iter().map(Engine::new).collect();
    let t0 = Instant::now();
    let report = VirtualFleet::new(engines, cfg).run(source.as_mut(), router.as_mut(), sched.as_mut());
    let wall = t0.elapsed().as_secs_f64();
    Ok(match a.output {
        OutputFormat::Json => {
            let v = serde_json::json!({
                "wall_s": wall,
                "simulated_requests_per_wall_s": report.issued as f64 / wall.max(1e-9),
                "report": report,
            });
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        OutputFormat::Table => table(&report, wall),
    })
}

fn ms(v: f64) -> String {
    format!("{:.1}", v * 1000.0)
}

fn row(t: &mut String, g: &GroupReport) {
    let _ = writeln!(
        t,
        "{:<12} {:>8} {:>5} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9.1} {:>10.0} {:>6.1}%",
        g.name,
        g.completed,
        g.rejected,
        ms(g.ttft.p50),
        ms(g.ttft.p90),
        ms(g.ttft.p99),
        ms(g.itl.p50),
        ms(g.itl.p90),
        ms(g.itl.p99),
        ms(g.e2e.p50),
        ms(g.e2e.p90),
        ms(g.e2e.p99),
        g.requests_per_s,
        g.output_tokens_per_s,
        g.prefix_hit_rate * 100.0
    );
}

fn table(r: &Report, wall: f64) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "simulated {:.1} s ({} requests, {} steps, {} tokens) in {:.2} s wall: {:.0}x real time, {:.0} simulated requests/s",
        r.simulated_s,
        r.issued,
        r.steps,
        r.tokens_generated,
        wall,
        r.simulated_s / wall.max(1e-9),
        r.issued as f64 / wall.max(1e-9)
    );
    let _ = writeln!(t, "latencies in ms; throughput over {:.1} measured s\n", r.measured_s);
    let _ = writeln!(
        t,
        "{:<12} {:>8} {:>5} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10} {:>7}",
        "GROUP",
        "DONE",
        "REJ",
        "TTFT50",
        "TTFT90",
        "TTFT99",
        "ITL50",
        "ITL90",
        "ITL99",
        "E2E50",
        "E2E90",
        "E2E99",
        "REQ/S",
        "OUT TOK/S",
        "PREFIX"
    );
    row(&mut t, &r.overall);
    if r.tenants.len() > 1 {
        for g in &r.tenants {
            row(&mut t, g);
        }
    }
    let _ = writeln!(
        t,
        "\n{:<6} {:<8} {:<14} {:>8} {:>6} {:>9} {:>8} {:>9} {:>7}",
        "ENGINE", "HW", "MODEL", "DONE", "BUSY", "PREEMPT", "PREFIX", "MAXWAIT", "MAXKV"
    );
    for e in &r.engines {
        let _ = writeln!(
            t,
            "{:<6} {:<8} {:<14} {:>8} {:>5.0}% {:>9} {:>7.1}% {:>9} {:>6.0}%",
            e.index,
            e.hardware,
            e.model,
            e.completed,
            e.busy_fraction * 100.0,
            e.preemptions,
            e.prefix_hit_rate * 100.0,
            e.max_waiting,
            e.max_kv_usage * 100.0
        );
    }
    t
}
