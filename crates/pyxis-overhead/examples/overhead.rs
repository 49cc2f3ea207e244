//! Runs `pyxis overhead` before it is wired into the `pyxis` binary: `cargo run --release -p pyxis-overhead
//! --example overhead -- --pyxis-bin target/release/pyxis`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: pyxis_overhead::OverheadArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pyxis_overhead::run(Cli::parse().args).await
}
