//! `pyxis bench`: the flags, their translation into a [`BenchConfig`], and the printed results.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::{Amount, BenchConfig, Endpoint, LenDist, Load, Slo, TenantKey, Workload};
use crate::{dataset, plot, run_bench, table};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Tables on stdout.
    #[default]
    Table,
    /// One JSON document on stdout (an array of points for a sweep).
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (try 30s, 2m, 500ms)"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    if s.eq_ignore_ascii_case("inf") {
        return Ok(f64::INFINITY);
    }
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of requests per second (or inf)"
        )),
    }
}

/// Throughput and latency of an OpenAI-compatible endpoint (metrics as vLLM's `bench serve`).
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("load").args(["concurrency", "request_rate", "burst", "sweep_concurrency", "sweep_rate"])))]
pub struct BenchArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (`/v1/...` is appended).
    #[arg(long, env = "PYXIS_BENCH_URL")]
    pub url: String,
    /// Model name sent in every request.
    #[arg(long)]
    pub model: String,
    /// API key, `KEY` or `NAME=KEY` or `NAME:WEIGHT=KEY`; repeat for several tenants (results per tenant).
    /// Default: $OPENAI_API_KEY when set.
    #[arg(long = "api-key", value_name = "[NAME[:WEIGHT]=]KEY")]
    pub api_keys: Vec<String>,
    /// File of API keys, one `[NAME[:WEIGHT]=]KEY` per line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Route: chat (/v1/chat/completions) or completions (/v1/completions).
    #[arg(long, value_enum, default_value_t = Endpoint::Chat)]
    pub endpoint: Endpoint,
    /// Requests per load point [default: 100].
    #[arg(long, conflicts_with = "duration")]
    pub num_requests: Option<u64>,
    /// Run each load point this long (e.g. 30s), then wait for requests in flight.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Closed loop: keep N requests in flight [default: 8 when no other load is given].
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Open loop: Poisson arrivals at R requests/s (`inf`: all at once).
    #[arg(long, value_parser = parse_rate)]
    pub request_rate: Option<f64>,
    /// Open loop: SIZE requests at once every --burst-interval.
    #[arg(long, value_name = "SIZE")]
    pub burst: Option<u32>,
    /// Time between bursts.
    #[arg(long, value_parser = parse_duration, default_value = "1s", requires = "burst")]
    pub burst_interval: Duration,
    /// Sweep: one point per concurrency, e.g. 1,4,16.
    #[arg(long, value_delimiter = ',')]
    pub sweep_concurrency: Vec<u32>,
    /// Sweep: one point per Poisson rate (req/s), e.g. 1,5,10.
    #[arg(long, value_delimiter = ',', value_parser = parse_rate)]
    pub sweep_rate: Vec<f64>,
    /// Cap on requests in flight for --request-rate, --burst and --sweep-rate (vLLM's --max-concurrency).
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Mean prompt length in tokens (synthetic prompts: one word ≈ one token).
    #[arg(long, default_value_t = 256)]
    pub input_len: u32,
    /// Mean max_tokens per request.
    #[arg(long, default_value_t = 128)]
    pub output_len: u32,
    /// Distribution of input and output lengths around their means.
    #[arg(long, value_enum, default_value_t = LenDist::Fixed)]
    pub len_dist: LenDist,
    /// Spread of --len-dist: uniform ±s·L, normal σ = s·L, lognormal σ = s.
    #[arg(long, default_value_t = 0.25)]
    pub len_spread: f64,
    /// Prompts from a JSONL file (`{"prompt": ...}` or `{"messages": [...]}`, optional max_tokens), cycled.
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// Words of shared prefix before every prompt (prefix-cache workloads).
    #[arg(long, default_value_t = 0)]
    pub shared_prefix_len: u32,
    /// Number of distinct shared prefixes (request i uses prefix i mod G).
    #[arg(long, default_value_t = 1)]
    pub prefix_groups: u32,
    /// Stream responses (the default; needed for TTFT and ITL).
    #[arg(long, overrides_with = "no_stream")]
    pub stream: bool,
    /// Ask for whole responses instead of streams.
    #[arg(long, overrides_with = "stream")]
    pub no_stream: bool,
    /// Send `ignore_eos: true` (vLLM extension) so every output runs to max_tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Goodput SLO: time to first token, ms.
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,
    /// Goodput SLO: time per output token, ms.
    #[arg(long)]
    pub slo_tpot_ms: Option<f64>,
    /// Goodput SLO: end-to-end latency, ms.
    #[arg(long)]
    pub slo_e2e_ms: Option<f64>,
    /// Percentiles to report besides mean and median.
    #[arg(long, value_delimiter = ',', default_value = "90,99")]
    pub percentiles: Vec<f64>,
    /// Seed of prompts, lengths and arrival times.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Per-request limit, whole response included.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
    /// Requests sent before measuring (not counted).
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Write an SVG chart: latency against load, and the TTFT distribution.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// Parses `[NAME[:WEIGHT]=]KEY`; `n` numbers unnamed keys.
pub fn parse_key(spec: &str, n: usize) -> anyhow::Result<TenantKey> {
    let spec = spec.trim();
    let named = spec.split_once('=').filter(|(head, key)| {
        !key.is_empty()
            && !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    });
    let Some((head, key)) = named else {
        if spec.is_empty() {
            bail!("--api-key: empty key");
        }
        return Ok(TenantKey {
            name: format!("key-{n}"),
            key: spec.to_string(),
            weight: 1,
        });
    };
    let (name, weight) = match head.split_once(':') {
        Some((name, w)) => {
            let w: u32 = w
                .parse()
                .ok()
                .filter(|w| *w > 0)
                .with_context(|| format!("--api-key {name}:{w}=…: the weight must be a whole number ≥ 1"))?;
            (name, w)
        }
        None => (head, 1),
    };
    Ok(TenantKey {
        name: name.to_string(),
        key: key.to_string(),
        weight,
    })
}

fn keys(args: &BenchArgs) -> anyhow::Result<Vec<TenantKey>> {
    let mut specs: Vec<String> = args.api_keys.clone();
    if let Some(path) = &args.api_keys_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("--api-keys-file {}", path.display()))?;
        specs.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if specs.is_empty()
        && let Ok(k) = std::env::var("OPENAI_API_KEY")
        && !k.trim().is_empty()
    {
        specs.push(k);
    }
    let keys = specs
        .iter()
        .enumerate()
        .map(|(i, s)| parse_key(s, i + 1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let [only] = keys.as_slice()
        && only.name.starts_with("key-")
    {
        return Ok(vec![TenantKey {
            name: "default".into(),
            ..only.clone()
        }]);
    }
    let mut names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("--api-key: the tenant name {:?} is used twice", w[0]);
    }
    Ok(keys)
}

impl BenchArgs {
    /// The run these flags describe (reads the dataset and keys files).
    pub fn to_config(&self) -> anyhow::Result<BenchConfig> {
        let loads = if !self.sweep_concurrency.is_empty() {
            self.sweep_concurrency.iter().map(|&c| Load::Concurrency(c)).collect()
        } else if !self.sweep_rate.is_empty() {
            self.sweep_rate.iter().map(|&r| Load::Rate(r)).collect()
        } else if let Some(r) = self.request_rate {
            vec![Load::Rate(r)]
        } else if let Some(size) = self.burst {
            vec![Load::Burst {
                size,
                interval: self.burst_interval,
            }]
        } else {
            vec![Load::Concurrency(self.concurrency.unwrap_or(8))]
        };
        let amount = match (self.duration, self.num_requests) {
            (Some(d), _) => Amount::Duration(d),
            (None, n) => Amount::Requests(n.unwrap_or(100)),
        };
        let dataset = match &self.dataset {
            Some(p) => dataset::load(p)?,
            None => Vec::new(),
        };
        if let Some(p) = &self.plot {
            check_plot_path(p)?;
        }
        let mut cfg = BenchConfig::new(self.url.clone(), self.model.clone());
        cfg.endpoint = self.endpoint;
        cfg.tenants = keys(self)?;
        cfg.amount = amount;
        cfg.loads = loads;
        cfg.max_concurrency = self.max_concurrency;
        cfg.workload = Workload {
            input_len: self.input_len,
            output_len: self.output_len,
            len_dist: self.len_dist,
            len_spread: self.len_spread,
            shared_prefix_len: self.shared_prefix_len,
            prefix_groups: self.prefix_groups,
            dataset,
        };
        cfg.stream = !self.no_stream;
        cfg.ignore_eos = self.ignore_eos;
        cfg.slo = Slo {
            ttft_ms: self.slo_ttft_ms,
            tpot_ms: self.slo_tpot_ms,
            e2el_ms: self.slo_e2e_ms,
        };
        cfg.percentiles = self.percentiles.clone();
        cfg.seed = self.seed;
        cfg.timeout = self.timeout;
        cfg.warmup = self.warmup;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn check_plot_path(p: &Path) -> anyhow::Result<()> {
    match p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok(()),
        Some("png") => bail!(
            "--plot {}: only SVG is written; name the file .svg (convert with e.g. `rsvg-convert -o out.png out.svg`)",
            p.display()
        ),
        _ => bail!("--plot {}: name the chart file .svg", p.display()),
    }
}

/// Runs `pyxis bench`: the benchmark, then the tables or JSON on stdout and the chart if asked.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let cfg = args.to_config()?;
    let progress = args.output == Output::Table && std::io::stderr().is_terminal();
    let report = run_bench(cfg, progress).await?;
    match args.output {
        Output::Table => print!("{}", table::render(&report)),
        Output::Json => println!("{}", report.to_json_string()?),
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::render_svg(&report)).with_context(|| format!("--plot {}", path.display()))?;
        if args.output == Output::Table {
            println!("chart written to {}", path.display());
        }
    }
    if report.points.iter().all(|p| p.metrics.completed == 0) {
        let errors: Vec<String> = report
            .points
            .iter()
            .flat_map(|p| p.metrics.error_examples.iter().map(|(k, m)| format!("{k}: {m}")))
            .collect();
        bail!("no request succeeded ({})", errors.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn args(extra: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut v = vec!["bench", "--url", "http://127.0.0.1:1", "--model", "m"];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).map(|c| c.args)
    }

    #[test]
    fn key_specs() {
        let k = parse_key("gold:3=sk-abc", 1).unwrap();
        assert_eq!((k.name.as_str(), k.key.as_str(), k.weight), ("gold", "sk-abc", 3));
        let k = parse_key("free=sk=x", 1).unwrap();
        assert_eq!((k.name.as_str(), k.key.as_str()), ("free", "sk=x"));
        let k = parse_key("sk-plain", 2).unwrap();
        assert_eq!((k.name.as_str(), k.weight), ("key-2", 1));
        assert!(parse_key("gold:0=k", 1).is_err());
        assert!(parse_key("  ", 1).is_err());
    }

    #[test]
    fn flags_map_to_loads_and_amounts() {
        let c = args(&["--sweep-rate", "1,5,inf", "--num-requests", "7"])
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(c.loads, [Load::Rate(1.0), Load::Rate(5.0), Load::Rate(f64::INFINITY)]);
        assert_eq!(c.amount, Amount::Requests(7));
        let c = args(&[
            "--burst",
            "4",
            "--burst-interval",
            "2s",
            "--duration",
            "10s",
            "--no-stream",
        ])
        .unwrap()
        .to_config()
        .unwrap();
        assert_eq!(
            c.loads,
            [Load::Burst {
                size: 4,
                interval: Duration::from_secs(2)
            }]
        );
        assert_eq!(c.amount, Amount::Duration(Duration::from_secs(10)));
        assert!(!c.stream);
        let c = args(&["--api-key", "a=1", "--api-key", "b:2=2"])
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(c.tenants.len(), 2);
        assert_eq!(c.tenants[1].weight, 2);
        let c = args(&[]).unwrap().to_config().unwrap();
        assert_eq!(c.loads, [Load::Concurrency(8)]);
        assert!(c.stream);
    }

    #[test]
    fn conflicting_or_bad_flags_are_refused() {
        assert!(args(&["--concurrency", "4", "--request-rate", "2"]).is_err());
        assert!(args(&["--num-requests", "4", "--duration", "2s"]).is_err());
        assert!(args(&["--request-rate", "-1"]).is_err());
        let e = args(&["--plot", "x.png"]).unwrap().to_config().unwrap_err().to_string();
        assert!(e.contains(".svg"), "{e}");
        assert!(
            args(&["--api-key", "a=1", "--api-key", "a=2"])
                .unwrap()
                .to_config()
                .is_err()
        );
        let e = args(&["--request-rate", "inf", "--duration", "5s"])
            .unwrap()
            .to_config()
            .unwrap_err();
        assert!(e.to_string().contains("--num-requests"), "{e}");
    }
}
