//! A GGUF file, or a split set (`name-00001-of-00003.gguf`), as a `ModelInfo`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::{Bad, InspectError};
use crate::ggml;
use crate::gguf::{self, Gguf, TypeTotal, Value};
use crate::info::{Format, InspectOptions, MemoryEstimate, ModelInfo};
use crate::memory;

fn read_file(path: &Path) -> Result<Gguf, InspectError> {
    let f = File::open(path).map_err(|e| InspectError::io(path, e))?;
    let len = f.metadata().map_err(|e| InspectError::io(path, e))?.len();
    gguf::read(BufReader::with_capacity(1 << 16, f), len).map_err(|b| b.at(path))
}

/// `(prefix, number, count)` of a llama.cpp split file name: `prefix-00002-of-00005.gguf`.
fn split_name(name: &str) -> Option<(&str, u32, u32)> {
    let stem = name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    if no.len() != 5 || count.len() != 5 {
        return None;
    }
    Some((prefix, no.parse().ok()?, count.parse().ok()?))
}

/// The first file of the split set `name` belongs to, when it is one.
pub(crate) fn first_of_split(name: &str) -> Option<String> {
    let (prefix, _, count) = split_name(name)?;
    Some(format!("{prefix}-00001-of-{count:05}.gguf"))
}

/// Reads `path` and, when its metadata says it is one of a split set, every file of the set.
/// Returns the metadata of the first file, the tensor totals of all, and their names.
fn read_set(path: &Path) -> Result<(Gguf, Vec<String>), InspectError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let this = read_file(path)?;
    let count = this.kv.get("split.count").and_then(Value::as_u64).unwrap_or(1);
    if count <= 1 {
        return Ok((this, vec![file_name]));
    }
    let Some((prefix, _, named_count)) = split_name(&file_name) else {
        return Err(Bad::invalid(
            format!(
                "split.count says the model is in {count} files, but this name is not `<name>-0000N-of-{count:05}.gguf`"
            ),
            "keep the names llama-gguf-split gave the files",
        )
        .at(path));
    };
    if u64::from(named_count) != count {
        return Err(Bad::invalid(
            format!("split.count says {count} files but the name says {named_count}"),
            "keep the names llama-gguf-split gave the files",
        )
        .at(path));
    }
    let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let mut first: Option<Gguf> = None;
    let mut types: BTreeMap<&'static str, TypeTotal> = BTreeMap::new();
    let mut tensor_count = 0u64;
    let mut names = vec![];
    for i in 1..=named_count {
        let name = format!("{prefix}-{i:05}-of-{named_count:05}.gguf");
        let p = dir.join(&name);
        let part = if name == file_name {
            this.clone()
        } else if p.is_file() {
            read_file(&p)?
        } else {
            return Err(InspectError::not_a_model(
                &p,
                format!("part {i} of the {named_count} files of this split model is missing"),
                "download every part into the same folder",
            ));
        };
        for (ty, t) in &part.types {
            let total = types.entry(ty).or_default();
            total.tensors += t.tensors;
            total.elements = total.elements.saturating_add(t.elements);
            total.bytes = total.bytes.saturating_add(t.bytes);
        }
        tensor_count = tensor_count.saturating_add(part.tensor_count);
        names.push(name);
        if first.is_none() {
            first = Some(part);
        }
    }
    let mut first = first.unwrap_or(this);
    first.types = types;
    first.tensor_count = tensor_count;
    Ok((first, names))
}

fn positive_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0)
}

/// A per-layer value: a scalar for every layer, or an array with one entry a layer.
fn per_layer(v: Option<&Value>, layers: u32) -> Option<Vec<u64>> {
    match v? {
        Value::Arr(items) => items.iter().map(Value::as_u64).collect(),
        scalar => scalar.as_u64().map(|n| vec![n; layers as usize]),
    }
}

pub(crate) fn inspect(path: &Path, opts: &InspectOptions) -> Result<ModelInfo, InspectError> {
    let (g, files) = read_set(path)?;
    let mut notes = vec![];
    let arch = match g.kv.get("general.architecture").and_then(Value::as_str) {
        Some(a) => a.to_string(),
        None => {
            notes.push("no general.architecture: shape unknown, so no KV cache figure".into());
            "unknown".to_string()
        }
    };
    let key = |k: &str| g.kv.get(&format!("{arch}.{k}"));
    let num = |k: &str| key(k).and_then(positive_u32);
    // Bounded: a layer count beyond any real model is treated as absent.
    let layers = num("block_count").filter(|&n| n <= 1 << 16);
    let hidden_size = num("embedding_length");
    let heads = layers.and_then(|l| per_layer(key("attention.head_count"), l));
    let attention_heads = heads
        .as_ref()
        .and_then(|h| h.iter().max().copied())
        .and_then(|h| u32::try_from(h).ok());
    let kv_per_layer = layers
        .and_then(|l| per_layer(key("attention.head_count_kv"), l))
        .or_else(|| heads.clone());
    let kv_heads = kv_per_layer
        .as_ref()
        .and_then(|h| h.iter().max().copied())
        .and_then(|h| u32::try_from(h).ok())
        .filter(|&h| h > 0);
    let derived = match (hidden_size, attention_heads) {
        (Some(h), Some(n)) if h.is_multiple_of(n) => Some(h / n),
        _ => None,
    };
    let key_length = num("attention.key_length").or(derived);
    let value_length = num("attention.value_length").or(key_length);
    let kv_lora_rank = num("attention.kv_lora_rank");
    let elem = u64::from(opts.kv_bytes_per_element);
    let kv_bytes_per_token = match (layers, kv_lora_rank) {
        (Some(l), Some(rank)) => {
            let rope = u64::from(num("rope.dimension_count").unwrap_or(0));
            Some(u64::from(l).saturating_mul(u64::from(rank) + rope).saturating_mul(elem))
        }
        _ => match (&kv_per_layer, key_length, value_length) {
            (Some(per), Some(k), Some(v)) => Some(
                per.iter()
                    .fold(0u64, |acc, h| {
                        acc.saturating_add(h.saturating_mul(u64::from(k) + u64::from(v)))
                    })
                    .saturating_mul(elem),
            ),
            _ => None,
        },
    };
    if key("attention.sliding_window").is_some() {
        notes.push("sliding-window attention: layers that use it keep less KV than shown".into());
    }

    let parameters = g.types.values().fold(0u64, |a, t| a.saturating_add(t.elements));
    let weights_bytes = g.types.values().fold(0u64, |a, t| a.saturating_add(t.bytes));
    let dominant = g.types.iter().max_by_key(|(_, t)| t.elements).map(|(n, _)| *n);
    let file_type = g.kv.get("general.file_type").and_then(Value::as_u64);
    let precision = match (file_type.and_then(ggml::file_type_name), file_type, dominant) {
        (Some(name), _, _) => name.to_string(),
        (None, Some(id), _) => format!("file type {id}"),
        (None, None, Some(d)) => d.to_string(),
        (None, None, None) => "unknown".to_string(),
    };
    let mix: Vec<String> = g.types.iter().map(|(n, t)| format!("{n} ×{}", t.tensors)).collect();
    notes.push(format!("tensor types: {}", mix.join(", ")));
    let name =
        g.kv.get("general.name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
    let mut info = ModelInfo {
        format: Format::Gguf,
        name,
        architecture: arch.clone(),
        parameters,
        tensors: g.tensor_count,
        context_length: num("context_length"),
        precision_class: ggml::precision_class(&precision).or_else(|| dominant.and_then(ggml::precision_class)),
        precision,
        bytes_per_param: if parameters == 0 {
            0.0
        } else {
            weights_bytes as f64 / parameters as f64
        },
        layers,
        hidden_size,
        attention_heads,
        kv_heads,
        head_dim: key_length,
        kv_lora_rank,
        weights_bytes,
        kv_bytes_per_token,
        memory: MemoryEstimate::empty(),
        fits: vec![],
        files,
        notes,
    };
    memory::estimate(&mut info, opts);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(split_name("m-00002-of-00005.gguf"), Some(("m", 2, 5)));
        assert_eq!(split_name("a-b-00001-of-00002.gguf"), Some(("a-b", 1, 2)));
        assert_eq!(split_name("m-2-of-5.gguf"), None);
        assert_eq!(split_name("m.gguf"), None);
        assert_eq!(
            first_of_split("m-00002-of-00005.gguf").as_deref(),
            Some("m-00001-of-00005.gguf")
        );
    }
}
