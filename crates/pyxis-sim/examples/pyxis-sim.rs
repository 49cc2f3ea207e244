//! `pyxis sim …` without the rest of the `pyxis` binary: `cargo run --release -p pyxis-sim
//! --example pyxis-sim -- serve --hardware cpu --model tiny` builds only the simulator's crates.

use clap::Parser;

#[derive(Parser)]
#[command(name = "pyxis-sim", about = "The Pyxis engine simulator")]
struct Cli {
    #[command(flatten)]
    sim: pyxis_sim::cli::SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    pyxis_sim::cli::run(Cli::parse().sim).await
}
