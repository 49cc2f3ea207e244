//! `pyxis inspect PATH`: arguments and output.

use std::path::PathBuf;

use crate::{InspectError, InspectOptions, inspect_path_with, render_table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectOutput {
    Table,
    Json,
}

/// Architecture, size, precision, memory needs and accelerator fit of a model, from its headers only.
#[derive(clap::Args, Debug, Clone)]
pub struct InspectArgs {
    /// A Hugging Face model folder (config.json + *.safetensors, sharded or not) or a .gguf file.
    pub path: PathBuf,
    /// Memory of the `cpu` class, GiB.
    #[arg(long, default_value_t = 64.0, env = "PYXIS_CPU_MEMORY_GIB")]
    pub cpu_memory_gib: f64,
    /// Context, in tokens, for the full-context KV figure and the fit (default: the model's own).
    #[arg(long)]
    pub context: Option<u32>,
    /// Bytes per KV cache element: 2 for fp16/bf16, 1 for an fp8 KV cache.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub kv_bytes: u32,
    #[arg(long, value_enum, default_value = "table")]
    pub output: InspectOutput,
}

impl InspectArgs {
    pub fn options(&self) -> InspectOptions {
        InspectOptions {
            cpu_memory_gib: self.cpu_memory_gib,
            context_tokens: self.context,
            kv_bytes_per_element: self.kv_bytes,
            ..InspectOptions::default()
        }
    }
}

/// Inspects `args.path` and returns what `pyxis inspect` prints.
pub fn render(args: &InspectArgs) -> Result<String, InspectError> {
    let info = inspect_path_with(&args.path, &args.options())?;
    Ok(match args.output {
        InspectOutput::Table => render_table(&info),
        InspectOutput::Json => serde_json::to_string_pretty(&info)? + "\n",
    })
}

/// Runs `pyxis inspect`: the result on stdout.
pub fn run(args: &InspectArgs) -> Result<(), InspectError> {
    print!("{}", render(args)?);
    Ok(())
}
