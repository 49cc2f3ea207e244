//! `pyxis inspect` without the `pyxis` binary: `cargo run -p pyxis-modelfile --example inspect -- PATH [--output json]`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    inspect: pyxis_modelfile::cli::InspectArgs,
}

fn main() -> ExitCode {
    match pyxis_modelfile::cli::run(&Args::parse().inspect) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
