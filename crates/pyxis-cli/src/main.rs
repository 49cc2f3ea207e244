//! The `pyxis` binary: parses the command line and hands each subcommand to its crate.

mod inspect;
mod output;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use pyxis_gateway::{DefaultKey, Gateway, ServeConfig};
use pyxis_resources::Fleet;
use pyxis_store::{AuditQuery, Store};

use crate::output::{Output, print_audit, print_tenants, print_usage, print_verify};

#[derive(Parser)]
#[command(
    name = "pyxis",
    version,
    about = "Control plane and OpenAI-compatible gateway for LLM inference fleets"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", env = "PYXIS_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. With no -f it serves an embedded demo fleet of simulated engines.
    Serve(ServeArgs),
    /// Check a fleet file without serving it.
    Validate {
        /// The fleet file (YAML, several documents allowed).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long, default_value = "table")]
        output: Output,
    },
    /// Manage tenants and their API keys.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Read the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Usage and cost per tenant, model, runtime or hardware over a period.
    Usage {
        /// Group by these, comma-separated: tenant, model, runtime, hardware.
        #[arg(long, default_value = "tenant", value_delimiter = ',')]
        by: Vec<pyxis_store::UsageKey>,
        /// The period: calls started within this long before now, e.g. `1h`, `24h`, `30days`.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// The fleet file, to add capacity dedicated to tenants (charged by the hour, used or not).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        #[command(flatten)]
        data: DataDir,
        #[arg(long, default_value = "table")]
        output: Output,
    },
    /// The gateway's own overhead: a static upstream measured directly and through Pyxis.
    Overhead(pyxis_overhead::OverheadArgs),
    /// Print the CustomResourceDefinitions of the Pyxis resources (kubectl apply -f -).
    Crd,
    /// Run the Kubernetes operator: ModelDeployments into Deployments and Services, GPU quotas.
    Operator(pyxis_operator::OperatorArgs),
    /// What an endpoint (URL: runtime kind, version, models, health, load) or a model (folder or
    /// GGUF file: size, precision, memory, accelerator fit) is.
    Inspect(inspect::InspectArgs),
    /// Benchmark any OpenAI-compatible endpoint: throughput, TTFT, ITL, end-to-end latency, goodput.
    Bench(Box<pyxis_bench::cli::BenchArgs>),
    /// The engine simulator: one engine, a fleet, or a virtual-time run.
    Sim(Box<pyxis_sim::cli::SimArgs>),
}

#[derive(Args, Clone)]
struct DataDir {
    /// Where state lives (the embedded SQLite store). Share it with a running `pyxis serve`.
    #[arg(long, default_value = "./pyxis-data", env = "PYXIS_DATA_DIR")]
    data_dir: PathBuf,
    /// Keep state in PostgreSQL instead (`postgres://user@host/db`); overrides --data-dir.
    #[arg(long, env = "PYXIS_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "PYXIS_LISTEN")]
    listen: SocketAddr,
    #[command(flatten)]
    data: DataDir,
    /// Fleet file; edits are picked up while running.
    #[arg(short = 'f', long = "file", env = "PYXIS_FLEET_FILE")]
    file: Option<PathBuf>,
    /// Bound, in milliseconds, on how long a finished call's audit record may wait to be durable.
    #[arg(long, default_value_t = 100, env = "PYXIS_AUDIT_FLUSH_MS")]
    audit_flush_ms: u64,
    /// Redis for quota state shared by several gateway replicas (e.g. redis://127.0.0.1:6379);
    /// without it quotas are kept in this process.
    #[arg(long, env = "PYXIS_REDIS_URL")]
    redis_url: Option<String>,
    /// Threads serving client connections, each with its own event loop; a connection and its
    /// upstream calls stay on one thread. 0: one per CPU.
    #[arg(long, default_value_t = 0, env = "PYXIS_IO_THREADS")]
    io_threads: usize,
    /// Take the fleet from the Kubernetes API (Pyxis CRDs and the EndpointSlices of the operator's
    /// Services) instead of a file, following changes.
    #[arg(long, conflicts_with = "file")]
    kubernetes: bool,
    /// Namespace to watch in Kubernetes mode (default: the client's namespace).
    #[arg(long, env = "PYXIS_NAMESPACE", requires = "kubernetes")]
    namespace: Option<String>,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its API key (shown once).
    Create {
        name: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long, default_value = "table")]
        output: Output,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        data: DataDir,
        #[arg(long, default_value = "table")]
        output: Output,
    },
    /// Revoke a tenant's keys and print a new one (shown once).
    RotateKey {
        name: String,
        #[command(flatten)]
        data: DataDir,
        #[arg(long, default_value = "table")]
        output: Output,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show the latest audit records matching the filters (oldest first).
    Tail {
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        #[command(flatten)]
        filter: AuditFilter,
        #[command(flatten)]
        data: DataDir,
        #[arg(long, default_value = "table")]
        output: Output,
    },
    /// Check the hash chain of the whole log; name the first broken record and runs that may have lost records.
    Verify {
        #[command(flatten)]
        data: DataDir,
        #[arg(long, default_value = "table")]
        output: Output,
    },
}

#[derive(Args)]
struct AuditFilter {
    /// Only this tenant's records.
    #[arg(long)]
    tenant: Option<String>,
    /// Only calls to this model.
    #[arg(long)]
    model: Option<String>,
    /// Only calls served by this Runtime resource.
    #[arg(long)]
    runtime: Option<String>,
    /// Only calls that ended with this HTTP status.
    #[arg(long)]
    status: Option<i64>,
    /// Only calls started at or after this: a time ago (`15m`, `24h`) or a timestamp (`2026-11-23T10:00:00Z`).
    #[arg(long, value_parser = parse_when)]
    since: Option<i64>,
    /// Only calls started before this: a time ago or a timestamp, as for --since.
    #[arg(long, value_parser = parse_when)]
    until: Option<i64>,
}

/// A point in time in Unix milliseconds, from a duration ago (`24h`) or an RFC 3339 timestamp.
fn parse_when(s: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now();
    let t = match humantime::parse_duration(s) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(s).map_err(|_| {
            format!("`{s}` is neither a duration ago (15m, 24h, 7days) nor a timestamp (2026-11-23T10:00:00Z)")
        })?,
    };
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

impl AuditFilter {
    fn query(self, limit: u32) -> AuditQuery {
        AuditQuery {
            tenant: self.tenant,
            model: self.model,
            runtime: self.runtime,
            status: self.status,
            since_ms: self.since,
            until_ms: self.until,
            limit,
        }
    }
}

/// Logs (human or JSON, level from `PYXIS_LOG`, changeable while serving) and, when the standard
/// `OTEL_EXPORTER_OTLP_*` variables are set, trace export over OTLP.
fn init_telemetry(format: &str) -> anyhow::Result<Arc<pyxis_telemetry::TelemetryGuard>> {
    let format = format.parse().map_err(|e| anyhow::anyhow!("--log-format: {e}"))?;
    let level = std::env::var("PYXIS_LOG").unwrap_or_else(|_| "info".to_string());
    let guard = pyxis_telemetry::init(pyxis_telemetry::LogConfig { format, level })
        .map_err(|e| anyhow::anyhow!("{e} (check PYXIS_LOG and the OTEL_EXPORTER_OTLP_* variables)"))?;
    Ok(Arc::new(guard))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match init_telemetry(&cli.log_format) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli.command, telemetry).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open_store(data: &DataDir) -> anyhow::Result<Store> {
    match &data.database_url {
        Some(url) => Ok(Store::connect(url).await?),
        None => Store::open(&data.data_dir)
            .await
            .map_err(|e| anyhow::anyhow!("{e} (data dir {})", data.data_dir.display())),
    }
}

async fn run(cmd: Command, telemetry: Arc<pyxis_telemetry::TelemetryGuard>) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve(args) => serve(args, telemetry).await,
        Command::Validate { file, output } => Ok(validate(&file, output)),
        Command::Tenant { command } => tenant(command).await,
        Command::Audit {
            command:
                AuditCommand::Tail {
                    lines,
                    filter,
                    data,
                    output,
                },
        } => {
            let store = open_store(&data).await?;
            let rows = store.query_audit(&filter.query(lines)).await?;
            print_audit(&rows, output);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify { data, output },
        } => {
            let store = open_store(&data).await?;
            let report = store.verify_audit().await?;
            print_verify(&report, output);
            Ok(if report.first_broken.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Usage {
            by,
            since,
            tenant,
            file,
            data,
            output,
        } => {
            let dedicated = match &file {
                Some(f) => {
                    pyxis_gateway::fleet::dedicated_capacity(&Fleet::load_file(f).map_err(|e| anyhow::anyhow!("{e}"))?)
                }
                None => Vec::new(),
            };
            let store = open_store(&data).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let since_ms = now.saturating_sub(since).as_millis() as i64;
            let rows = store
                .usage(&by, since_ms, i64::MAX, tenant.as_deref(), &dedicated)
                .await?;
            print_usage(&rows, &by, output);
            Ok(ExitCode::SUCCESS)
        }
        Command::Overhead(args) => {
            pyxis_overhead::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            print!("{}", pyxis_operator::crds_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Operator(args) => {
            pyxis_operator::run_operator(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect(args) => {
            inspect::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            pyxis_bench::cli::run(*args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            pyxis_sim::cli::run(*args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn validate(file: &Path, output: Output) -> ExitCode {
    match Fleet::load_file(file) {
        Ok(f) => {
            match output {
                Output::Json | Output::Csv => println!(
                    "{}",
                    serde_json::json!({"valid": true, "file": file.display().to_string(), "tenants": f.tenants.len(), "models": f.models.len(), "runtimes": f.runtimes.len()})
                ),
                Output::Table => println!(
                    "{}: valid ({} tenants, {} models, {} runtimes)",
                    file.display(),
                    f.tenants.len(),
                    f.models.len(),
                    f.runtimes.len()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            match output {
                Output::Json | Output::Csv => {
                    let list: Vec<_> = errors
                        .0
                        .iter()
                        .map(|e| serde_json::json!({"file": e.file, "line": e.line, "column": e.column, "message": e.message}))
                        .collect();
                    println!("{}", serde_json::json!({"valid": false, "errors": list}));
                }
                Output::Table => eprintln!("{errors}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn tenant(cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantCommand::Create { name, data, output } => {
            let store = open_store(&data).await?;
            let k = store.create_tenant(&name).await?;
            print_key(&k, output, "created");
        }
        TenantCommand::RotateKey { name, data, output } => {
            let store = open_store(&data).await?;
            let k = store.rotate_key(&name).await?;
            print_key(&k, output, "rotated");
        }
        TenantCommand::List { data, output } => {
            let store = open_store(&data).await?;
            print_tenants(&store.list_tenants().await?, output);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_key(k: &pyxis_store::NewKey, output: Output, what: &str) {
    match output {
        Output::Json | Output::Csv => println!(
            "{}",
            serde_json::json!({"tenant": k.tenant, "key_id": k.key_id, "api_key": k.key})
        ),
        Output::Table => {
            println!(
                "Tenant `{}` {what}. Its API key (shown only now; store it safely):",
                k.tenant
            );
            println!("{}", k.key);
        }
    }
}

async fn serve(args: ServeArgs, telemetry: Arc<pyxis_telemetry::TelemetryGuard>) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let mut cfg = ServeConfig::new(args.listen, args.data.data_dir.clone());
    cfg.fleet_file = args.file.clone();
    cfg.demo_api_key = std::env::var("PYXIS_DEMO_API_KEY").ok().filter(|k| !k.is_empty());
    cfg.audit_flush = std::time::Duration::from_millis(args.audit_flush_ms);
    cfg.admin_key = std::env::var("PYXIS_ADMIN_KEY").ok().filter(|k| !k.is_empty());
    cfg.database_url = args.data.database_url.clone();
    cfg.redis_url = args.redis_url.clone();
    cfg.traces = telemetry.tracing_enabled();
    cfg.io_threads = args.io_threads;
    let mut fleets = None;
    if args.kubernetes {
        use futures::StreamExt;
        let mut stream = Box::pin(pyxis_operator::kubernetes_fleet(args.namespace.clone()).await?);
        let first = tokio::time::timeout(std::time::Duration::from_secs(60), stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("no fleet from the Kubernetes API within 60 s: check the RBAC of the gateway's service account and that the Pyxis CRDs are installed (pyxis crd | kubectl apply -f -)"))?
            .ok_or_else(|| anyhow::anyhow!("the Kubernetes watch ended before producing a fleet"))?;
        cfg.fleet = Some(first);
        fleets = Some(stream);
    }
    let mut gw = Gateway::start(cfg).await?;
    let _ = gw.state.telemetry.set(telemetry.clone());
    if let Some(stream) = fleets {
        gw.follow_fleets(stream);
    }
    let view = gw.state.view();
    let models: Vec<&str> = view.models.keys().map(String::as_str).collect();
    let url = gw.url();
    let source = match &args.file {
        Some(f) => format!("fleet file {}", f.display()),
        None => "embedded demo fleet".to_string(),
    };
    println!(
        "Pyxis gateway on {url} ({source}: {} endpoints, models: {}) — ready in {} ms",
        view.endpoints.len(),
        models.join(", "),
        started.elapsed().as_millis()
    );
    println!("State: {}", gw.state_location());
    let model = models.first().copied().unwrap_or("MODEL");
    let key = match &gw.default_key {
        DefaultKey::Generated(k) => {
            println!("API key of tenant `default` (shown once; store it): {k}");
            k.clone()
        }
        DefaultKey::Configured(k) => {
            println!("API key of tenant `default`: from PYXIS_DEMO_API_KEY");
            k.clone()
        }
        DefaultKey::Existing => {
            println!(
                "Tenant `default` has a key from an earlier start. Lost it? `pyxis tenant rotate-key default --data-dir {}`",
                args.data.data_dir.display()
            );
            "$PYXIS_API_KEY".to_string()
        }
        DefaultKey::None => {
            println!(
                "Make a key with `pyxis tenant create NAME --data-dir {}`",
                args.data.data_dir.display()
            );
            "$PYXIS_API_KEY".to_string()
        }
    };
    println!(
        "Try:\n  curl -s {url}/v1/chat/completions -H \"Authorization: Bearer {key}\" -H \"Content-Type: application/json\" -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'"
    );
    println!(
        "Then see the call in: pyxis audit tail --data-dir {}",
        args.data.data_dir.display()
    );
    shutdown_signal().await;
    eprintln!("shutting down: finishing requests in flight and flushing the audit log…");
    gw.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
