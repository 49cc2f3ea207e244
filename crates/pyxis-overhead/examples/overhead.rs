//! Runs `pyxis overhead` before it is wired into the `pyxis` binary: `cargo run --release -p pyxis-overhead
//! --example overhead -- --pyxis-bin target/release/pyxis`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    /// `--null-proxy` starts this executable again as `<exe> overhead --null-proxy-only ...`: the word names
    /// the subcommand in the `pyxis` binary and is accepted (and ignored) here, so one command line serves both.
    #[arg(hide = true, value_parser = ["overhead"])]
    _subcommand: Option<String>,
    #[command(flatten)]
    args: pyxis_overhead::OverheadArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pyxis_overhead::run(Cli::parse().args).await
}
