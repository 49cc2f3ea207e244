//! `pyxis bench` against an in-process simulated engine: `cargo run -p pyxis-bench --example bench_sim -- [FLAGS]`.
//!
//! Starts a simulated vLLM (H100, Llama-3-8B, `--speedup` times real time) on a free port and runs
//! the bench against it. With `--url`, no engine is started: the bench runs against that server.

use clap::Parser;
use pyxis_bench::cli::{BenchArgs, run};

#[derive(Parser)]
struct Cli {
    /// Simulated seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    #[command(flatten)]
    bench: BenchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.iter().any(|a| a == "--url" || a.starts_with("--url=")) {
        return run(Cli::parse_from(argv).bench).await;
    }
    // --url is filled in once the engine has a port.
    argv.splice(
        1..1,
        ["--url", "http://127.0.0.1:1", "--model", "llama-3-8b"].map(String::from),
    );
    let mut cli = Cli::parse_from(argv);
    let mut spec = pyxis_sim::EngineSpec::new("sim", "h100", "llama-3-8b");
    spec.speedup = cli.speedup;
    let engine = pyxis_sim::spawn(spec, "127.0.0.1:0".parse()?).await?;
    cli.bench.url = engine.url();
    let result = run(cli.bench).await;
    engine.shutdown().await;
    result
}
