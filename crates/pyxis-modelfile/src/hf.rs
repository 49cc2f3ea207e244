//! A Hugging Face model folder: `config.json`, safetensors shards (with or without an index), tokenizer files.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use pyxis_resources::Precision;
use serde_json::Value;

use crate::config::{self, HfConfig, Quant};
use crate::error::{Bad, HINT_REDOWNLOAD, InspectError};
use crate::info::{Format, InspectOptions, MemoryEstimate, ModelInfo};
use crate::memory;
use crate::safetensors::{self, Dtype, Tensor};

pub(crate) const INDEX: &str = "model.safetensors.index.json";
const CONFIG: &str = "config.json";
const AUX: [&str; 2] = ["generation_config.json", "tokenizer_config.json"];
/// JSON side files are small; the largest indexes (DeepSeek V3, ~90k tensors) are a few MiB.
const MAX_JSON_BYTES: u64 = 64 << 20;

/// Reads a JSON file of at most `MAX_JSON_BYTES`.
fn read_json(path: &Path) -> Result<Value, InspectError> {
    let f = File::open(path).map_err(|e| InspectError::io(path, e))?;
    let mut text = Vec::new();
    f.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| InspectError::io(path, e))?;
    if text.len() as u64 > MAX_JSON_BYTES {
        return Err(Bad::invalid(
            format!("the file is larger than {} MiB", MAX_JSON_BYTES >> 20),
            "this is not a model's JSON side file: check the folder",
        )
        .at(path));
    }
    serde_json::from_slice(&text)
        .map_err(|e| Bad::invalid(format!("not valid JSON: {e}"), "fix the file or download it again").at(path))
}

/// Which safetensors files of `dir` hold the model, read from the index when there is one.
pub(crate) struct Layout {
    pub shards: Vec<String>,
    pub index: Option<BTreeMap<String, String>>,
    pub notes: Vec<String>,
}

/// A shard name from an index must be a plain file in the folder.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && Path::new(name).file_name().is_some_and(|f| f == name)
}

pub(crate) fn layout(dir: &Path, names: &BTreeSet<String>) -> Result<Layout, InspectError> {
    if names.contains(INDEX) {
        let path = dir.join(INDEX);
        let json = read_json(&path)?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| Bad::invalid("no `weight_map` object", HINT_REDOWNLOAD).at(&path))?;
        let mut index = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().filter(|s| plain_file_name(s)).ok_or_else(|| {
                Bad::invalid(
                    format!("tensor `{tensor}` maps to {shard}, which is not a file name in this folder"),
                    HINT_REDOWNLOAD,
                )
                .at(&path)
            })?;
            index.insert(tensor.clone(), shard.to_string());
        }
        let shards: BTreeSet<String> = index.values().cloned().collect();
        if let Some(missing) = shards.iter().find(|s| !names.contains(*s)) {
            return Err(InspectError::Malformed {
                path,
                problem: format!("it names shard `{missing}`, which is not in the folder"),
                hint: "the download is incomplete: fetch the missing shards".into(),
            });
        }
        return Ok(Layout {
            shards: shards.into_iter().collect(),
            index: Some(index),
            notes: vec![],
        });
    }
    let all: Vec<String> = names.iter().filter(|n| n.ends_with(".safetensors")).cloned().collect();
    let mut notes = vec![];
    let shards = if names.contains("model.safetensors") {
        vec!["model.safetensors".to_string()]
    } else {
        // Mistral ships `consolidated.safetensors` beside the Hugging Face shards: the same weights twice.
        let (consolidated, rest): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|n| n.starts_with("consolidated"));
        if !consolidated.is_empty() && !rest.is_empty() {
            notes.push(format!(
                "ignored {} (the same weights in Mistral's layout)",
                consolidated.join(", ")
            ));
            rest
        } else {
            all
        }
    };
    Ok(Layout {
        shards,
        index: None,
        notes,
    })
}

fn read_shard(path: &Path) -> Result<Vec<Tensor>, InspectError> {
    let f = File::open(path).map_err(|e| InspectError::io(path, e))?;
    let len = f.metadata().map_err(|e| InspectError::io(path, e))?.len();
    safetensors::read_header(f, len).map_err(|b| b.at(path))
}

/// Packed integer weights hold `32 / bits` parameters per element; scales and zero points are not
/// parameters.
fn counted(t: &Tensor, quant: Option<&Quant>) -> u64 {
    const AUX_SUFFIXES: [&str; 16] = [
        ".qzeros",
        ".scales",
        ".g_idx",
        ".weight_scale",
        ".weight_scale_inv",
        ".weight_zero_point",
        ".weight_g_idx",
        ".weight_shape",
        ".input_scale",
        ".k_scale",
        ".v_scale",
        ".absmax",
        ".quant_map",
        ".nested_absmax",
        ".nested_quant_map",
        ".bitsandbytes__nf4",
    ];
    let Some(q) = quant else { return t.elements };
    if AUX_SUFFIXES.iter().any(|s| t.name.ends_with(s)) || t.name.contains(".quant_state.") {
        return 0;
    }
    let packed_int = matches!(t.dtype, Dtype::I32 | Dtype::U32)
        && (t.name.ends_with(".qweight") || t.name.ends_with(".weight_packed"));
    match q.bits {
        Some(bits) if packed_int => t.elements.saturating_mul(32) / u64::from(bits),
        Some(4) if q.method == "bitsandbytes" && t.dtype == Dtype::U8 => t.elements.saturating_mul(2),
        _ => t.elements,
    }
}

fn precision_class(precision: &str, quant: Option<&Quant>) -> Option<Precision> {
    if let Some(q) = quant {
        return match (q.method.as_str(), q.bits) {
            ("fp8", _) => Some(Precision::Fp8),
            (m, _) if m.contains("fp4") => Some(Precision::Int4),
            (_, Some(b)) if b <= 4 => Some(Precision::Int4),
            (_, Some(b)) if b <= 8 => Some(Precision::Int8),
            _ => None,
        };
    }
    match precision {
        "bf16" => Some(Precision::Bf16),
        "fp16" => Some(Precision::Fp16),
        "fp8" => Some(Precision::Fp8),
        "int8" => Some(Precision::Int8),
        "fp4" => Some(Precision::Int4),
        _ => None,
    }
}

/// Inspects the safetensors files `layout` picked in `dir` (names relative to `dir`).
pub(crate) fn inspect(dir: &Path, layout: Layout, opts: &InspectOptions) -> Result<ModelInfo, InspectError> {
    let mut files = vec![];
    let mut notes = layout.notes;
    let config_path = dir.join(CONFIG);
    let (cfg, raw) = if config_path.is_file() {
        files.push(CONFIG.to_string());
        let raw = read_json(&config_path)?;
        (config::parse(&raw), raw)
    } else {
        if dir.join("adapter_config.json").is_file() {
            notes.push("adapter_config.json: this is a LoRA/PEFT adapter, not a whole model".into());
        }
        notes.push("no config.json: architecture and attention shape unknown, so no KV cache figure".into());
        (HfConfig::default(), Value::Null)
    };
    let mut context_length = cfg.context_length;
    for aux in AUX {
        let p = dir.join(aux);
        if !p.is_file() {
            continue;
        }
        files.push(aux.to_string());
        if aux == "tokenizer_config.json" && context_length.is_none() {
            // Transformers writes 1e30 here when unset; only a plausible integer counts.
            context_length = read_json(&p)
                .ok()
                .and_then(|v| v.get("model_max_length").and_then(Value::as_u64))
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n > 0 && n < 1 << 28);
        }
    }
    if layout.index.is_some() {
        files.push(INDEX.to_string());
    }
    files.extend(layout.shards.iter().cloned());

    if layout.shards.is_empty() {
        return Err(InspectError::not_a_model(
            dir,
            "no *.safetensors file",
            "pass a Hugging Face model folder or a .gguf file",
        ));
    }
    let quant = cfg.quant.as_ref();
    let mut seen: HashSet<String> = HashSet::new();
    let mut by_shard: HashMap<&str, HashSet<String>> = HashMap::new();
    let (mut parameters, mut weights_bytes, mut tensors) = (0u64, 0u64, 0u64);
    let mut by_dtype: BTreeMap<Dtype, u64> = BTreeMap::new();
    for shard in &layout.shards {
        let list = read_shard(&dir.join(shard))?;
        let names = by_shard.entry(shard.as_str()).or_default();
        for t in list {
            if layout.index.is_some() {
                names.insert(t.name.clone());
            }
            if !seen.insert(t.name.clone()) {
                continue;
            }
            let n = counted(&t, quant);
            parameters = parameters.saturating_add(n);
            weights_bytes = weights_bytes.saturating_add(t.bytes);
            tensors += 1;
            let d = by_dtype.entry(t.dtype).or_default();
            *d = d.saturating_add(n);
        }
    }
    if let Some(index) = &layout.index
        && let Some((tensor, shard)) = index
            .iter()
            .find(|(t, s)| !by_shard.get(s.as_str()).is_some_and(|names| names.contains(*t)))
    {
        return Err(Bad::invalid(
            format!("it puts tensor `{tensor}` in `{shard}`, which does not hold it"),
            "the index and the shards disagree: download the model again",
        )
        .at(&dir.join(INDEX)));
    }

    let dominant = by_dtype.iter().max_by_key(|(_, n)| **n).map(|(d, _)| *d);
    let precision = match (quant, dominant) {
        (Some(q), _) => q.label(),
        (None, Some(d)) => d.precision_name().to_string(),
        (None, None) => "unknown".to_string(),
    };
    if let Some(q) = quant {
        notes.push(format!(
            "quantised ({}): packed weights counted unpacked; scales and zero points are in the bytes, not the parameters",
            q.label()
        ));
    }
    if dominant == Some(Dtype::F32) && quant.is_none() {
        notes.push("fp32 checkpoint: vLLM serves it as bf16 by default, in half the weight memory shown".into());
    }
    if raw
        .get("sliding_window")
        .is_some_and(|w| w.as_u64().is_some_and(|w| w > 0))
    {
        notes.push("sliding-window attention: layers that use it keep less KV than shown".into());
    }
    let mla = cfg.kv_lora_rank.map(|r| (r, cfg.qk_rope_head_dim.unwrap_or(0)));
    let kv_bytes_per_token =
        memory::kv_per_token_hf(cfg.layers, cfg.kv_heads, cfg.head_dim, mla, opts.kv_bytes_per_element);
    let mut info = ModelInfo {
        format: Format::Safetensors,
        name: dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned()),
        architecture: cfg.architecture.clone().unwrap_or_else(|| "unknown".into()),
        parameters,
        tensors,
        context_length,
        precision_class: precision_class(&precision, quant),
        precision,
        bytes_per_param: if parameters == 0 {
            0.0
        } else {
            weights_bytes as f64 / parameters as f64
        },
        layers: cfg.layers,
        hidden_size: cfg.hidden_size,
        attention_heads: cfg.attention_heads,
        kv_heads: cfg.kv_heads,
        head_dim: cfg.head_dim,
        kv_lora_rank: cfg.kv_lora_rank,
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
