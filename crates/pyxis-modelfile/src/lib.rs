//! `pyxis inspect`: what a model folder (safetensors) or GGUF file is and what memory it needs, from headers only.
//!
//! The weights are never read: safetensors files are opened for their 8-byte length and JSON header,
//! GGUF files for their header, metadata and tensor infos. See `docs/inspect.md`.

pub mod cli;
mod config;
mod error;
mod ggml;
mod gguf;
mod gguf_model;
mod hf;
mod info;
mod memory;
mod safetensors;
mod table;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use error::InspectError;
pub use info::{ACCELERATORS, AcceleratorClass, Fit, Format, InspectOptions, MemoryEstimate, ModelInfo, TP_COUNTS};
pub use memory::fit;
pub use safetensors::MAX_HEADER_BYTES;
pub use table::render_table;

/// Inspects a model folder or a `.gguf` file with the default options.
pub fn inspect_path(path: &Path) -> Result<ModelInfo, InspectError> {
    inspect_path_with(path, &InspectOptions::default())
}

/// Inspects a model folder (Hugging Face layout) or a `.gguf` file (or a split set through any of its files).
pub fn inspect_path_with(path: &Path, opts: &InspectOptions) -> Result<ModelInfo, InspectError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => InspectError::not_a_model(path, "no such file or folder", "check the path"),
        _ => InspectError::io(path, e),
    })?;
    if meta.is_dir() {
        return inspect_dir(path, opts);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".gguf") || starts_with_gguf_magic(path)? {
        return gguf_model::inspect(path, opts);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if name == "config.json" || name == hf::INDEX {
        return inspect_dir(parent, opts);
    }
    if name.ends_with(".safetensors") {
        let layout = hf::Layout {
            shards: vec![name],
            index: None,
            notes: vec![],
        };
        return hf::inspect(parent, layout, opts);
    }
    Err(InspectError::not_a_model(
        path,
        "neither a .gguf nor a .safetensors file",
        "pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file",
    ))
}

fn starts_with_gguf_magic(path: &Path) -> Result<bool, InspectError> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(|e| InspectError::io(path, e))?;
    Ok(f.read_exact(&mut magic).is_ok() && &magic == b"GGUF")
}

fn inspect_dir(dir: &Path, opts: &InspectOptions) -> Result<ModelInfo, InspectError> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| InspectError::io(dir, e))? {
        let entry = entry.map_err(|e| InspectError::io(dir, e))?;
        if entry.path().is_file() {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if names.contains(hf::INDEX) || names.iter().any(|n| n.ends_with(".safetensors")) {
        let layout = hf::layout(dir, &names)?;
        return hf::inspect(dir, layout, opts);
    }
    let ggufs: Vec<&String> = names.iter().filter(|n| n.ends_with(".gguf")).collect();
    let sets: BTreeSet<String> = ggufs
        .iter()
        .map(|n| gguf_model::first_of_split(n).unwrap_or_else(|| (*n).clone()))
        .collect();
    match sets.len() {
        1 => {
            let first = sets.into_iter().next().unwrap_or_default();
            return gguf_model::inspect(&dir.join(first), opts);
        }
        n if n > 1 => {
            return Err(InspectError::not_a_model(
                dir,
                format!(
                    "the folder holds {n} GGUF models ({})",
                    sets.into_iter().collect::<Vec<_>>().join(", ")
                ),
                "pass the one you mean",
            ));
        }
        _ => {}
    }
    if names
        .iter()
        .any(|n| n.ends_with(".bin") || n.ends_with(".pt") || n.ends_with(".pth"))
    {
        return Err(InspectError::not_a_model(
            dir,
            "the weights are PyTorch pickles (*.bin, *.pt), not safetensors",
            "convert them with transformers' `save_pretrained(..., safe_serialization=True)`; pickles are not read, since loading one runs code",
        ));
    }
    Err(InspectError::not_a_model(
        dir,
        "no *.safetensors and no .gguf file here",
        "pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file",
    ))
}

#[cfg(test)]
#[path = "../tests/fixtures/mod.rs"]
mod fixtures;
