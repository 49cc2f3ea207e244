//! `pyxis inspect TARGET`: what a running endpoint is (a URL: runtime kind detected, version,
//! models, health, load), or what a model is (a folder or GGUF file: size, precision, memory,
//! accelerator fit).

use std::path::PathBuf;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use pyxis_adapters::Detected;
use pyxis_modelfile::cli::{InspectArgs as FileArgs, InspectOutput};

/// What an endpoint or a model file is.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// An endpoint's base URL (http://host:port), or a Hugging Face model folder or .gguf file.
    pub target: String,
    /// Bearer token for an endpoint that requires one.
    #[arg(long, env = "PYXIS_INSPECT_API_KEY")]
    pub api_key: Option<String>,
    /// Memory of the `cpu` class, GiB (model files).
    #[arg(long, default_value_t = 64.0, env = "PYXIS_CPU_MEMORY_GIB")]
    pub cpu_memory_gib: f64,
    /// Context in tokens for the KV figure and the fit (model files; default: the model's own).
    #[arg(long)]
    pub context: Option<u32>,
    /// Bytes per KV cache element: 2 for fp16/bf16, 1 for an fp8 KV cache (model files).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub kv_bytes: u32,
    #[arg(long, value_enum, default_value = "table")]
    pub output: InspectOutput,
}

pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    if args.target.starts_with("http://") || args.target.starts_with("https://") {
        return endpoint(&args).await;
    }
    let file = FileArgs {
        path: PathBuf::from(&args.target),
        cpu_memory_gib: args.cpu_memory_gib,
        context: args.context,
        kv_bytes: args.kv_bytes,
        output: args.output,
    };
    print!("{}", pyxis_modelfile::cli::render(&file)?);
    Ok(())
}

async fn endpoint(args: &InspectArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let d = pyxis_adapters::detect_with(&client, &args.target, args.api_key.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}. Check the URL (scheme, host, port) and that the server is up."))?;
    match args.output {
        InspectOutput::Json => println!("{}", serde_json::to_string_pretty(&d)?),
        InspectOutput::Table => print!("{}", render(&args.target, &d)),
    }
    Ok(())
}

fn render(url: &str, d: &Detected) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let health = match d.health_status {
        Some(s) => format!(
            "{} (GET {} → {s})",
            if d.healthy { "healthy" } else { "unhealthy" },
            d.health_path
        ),
        None => format!("no answer on {}", d.health_path),
    };
    let load = match &d.load {
        Some(l) => format!(
            "{} waiting, {} running{}",
            l.waiting,
            l.running,
            l.kv_use
                .map(|k| format!(", KV cache {:.0}%", k * 100.0))
                .unwrap_or_default()
        ),
        None if d.metrics_url.is_none() => {
            "no metrics for this kind (Pyxis estimates from its own in-flight count)".into()
        }
        None => format!(
            "metrics at {} not readable",
            d.metrics_url.as_deref().unwrap_or_default()
        ),
    };
    for (k, v) in [
        ("endpoint", url.to_string()),
        ("runtime", d.kind.to_string()),
        ("detected by", d.evidence.clone()),
        (
            "version",
            d.identity.version.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("health", health),
        ("load", load),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    let mut out = format!("{t}\n");
    if !d.identity.models.is_empty() {
        let mut m = Table::new();
        m.load_style(UTF8_FULL_CONDENSED);
        m.set_header(vec!["model", "context", "adapter of", "embedding"]);
        for s in &d.identity.models {
            m.add_row(vec![
                s.id.clone(),
                s.context_length.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                s.parent.clone().unwrap_or_else(|| "-".into()),
                s.embedding.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&format!("{m}\n"));
    }
    out
}
