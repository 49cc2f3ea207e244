//! What `inspect_path` reports about a model, and the options of the memory estimate.

use pyxis_resources::Precision;
use serde::Serialize;

pub(crate) const GIB: f64 = (1u64 << 30) as f64;

/// The file format the weights are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Hugging Face folder: `config.json` and one or more `*.safetensors`.
    Safetensors,
    /// A llama.cpp GGUF file (or a split set of them).
    Gguf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Gguf => "gguf",
        }
    }
}

/// Everything `pyxis inspect` tells about one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub format: Format,
    /// Folder or file name, or GGUF `general.name`.
    pub name: String,
    /// `architectures[0]` (else `model_type`) of `config.json`, or GGUF `general.architecture`.
    pub architecture: String,
    /// Sum of the tensors' element counts (packed integer weights counted unpacked; quantisation
    /// scales and zero points not counted).
    pub parameters: u64,
    pub tensors: u64,
    /// Longest context the model was built for, in tokens.
    pub context_length: Option<u32>,
    /// `bf16`, `fp16`, `fp32`, `fp8`, `gptq-int4`… for safetensors; the llama.cpp file type (`Q4_K_M`,
    /// `F16`…) for GGUF.
    pub precision: String,
    /// The Pyxis precision class of `precision`, rounding up (GGUF Q5/Q6 → int8); none for fp32.
    pub precision_class: Option<Precision>,
    /// Average bytes a parameter takes in the files: `weights_bytes / parameters`.
    pub bytes_per_param: f64,
    pub layers: Option<u32>,
    pub hidden_size: Option<u32>,
    pub attention_heads: Option<u32>,
    pub kv_heads: Option<u32>,
    pub head_dim: Option<u32>,
    /// MLA models (DeepSeek V2/V3): the latent the KV cache holds per layer, instead of K and V heads.
    pub kv_lora_rank: Option<u32>,
    /// Bytes of tensor data in the files.
    pub weights_bytes: u64,
    /// KV cache bytes one token takes over all layers, at `InspectOptions::kv_bytes_per_element`.
    pub kv_bytes_per_token: Option<u64>,
    pub memory: MemoryEstimate,
    /// One entry per accelerator class and tensor-parallel count.
    pub fits: Vec<Fit>,
    /// The files read, relative to the inspected folder (or the file itself).
    pub files: Vec<String>,
    /// Assumptions and doubts worth knowing, in words.
    pub notes: Vec<String>,
}

impl ModelInfo {
    /// Memory of the weights in GiB, as `pyxis_resources::ModelSpec::weights_gib` computes it:
    /// parameters × bytes per parameter.
    pub fn weights_gib(&self) -> f64 {
        self.parameters as f64 * self.bytes_per_param / GIB
    }

    /// The smallest tensor-parallel count of `accelerator` that holds the model at full context.
    pub fn min_count(&self, accelerator: &str) -> Option<u32> {
        self.fits
            .iter()
            .filter(|f| f.accelerator == accelerator && f.fits)
            .map(|f| f.count)
            .min()
    }
}

/// Memory on one device at batch 1 (tensor parallel 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryEstimate {
    pub weights_bytes: u64,
    pub kv_bytes_per_token: Option<u64>,
    /// The context the full-context figure is for: `InspectOptions::context_tokens`, else the model's.
    pub context_tokens: Option<u32>,
    pub kv_bytes_full_context: Option<u64>,
    pub overhead_bytes: u64,
    /// How `overhead_bytes` was reckoned, in words.
    pub overhead_rule: String,
    /// Weights + KV for the full context (0 when unknown) + overhead.
    pub total_bytes: u64,
}

impl MemoryEstimate {
    pub(crate) fn empty() -> Self {
        MemoryEstimate {
            weights_bytes: 0,
            kv_bytes_per_token: None,
            context_tokens: None,
            kv_bytes_full_context: None,
            overhead_bytes: 0,
            overhead_rule: String::new(),
            total_bytes: 0,
        }
    }
}

/// Whether the model fits on `count` devices of one accelerator class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub accelerator: String,
    /// Tensor-parallel size: weights (and KV heads) split across this many devices.
    pub count: u32,
    /// Memory of one device.
    pub memory_gib: f64,
    /// What one device needs: its share of the weights and of the full-context KV, plus overhead.
    pub per_device_bytes: u64,
    pub fits: bool,
    /// Tokens of KV cache (batch 1) the memory left after weights and overhead holds; none when the
    /// KV size is unknown or nothing is left.
    pub max_context_tokens: Option<u64>,
    /// Why it does not fit, when it does not.
    pub reason: Option<String>,
}

/// A class of accelerator and the memory of one device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcceleratorClass {
    /// Lowercase, as `Runtime.spec.accelerator.type` spells it.
    pub name: &'static str,
    pub memory_gib: f64,
}

/// The GPU classes `fits` checks (marketing sizes, taken as GiB); `cpu` comes from the options.
pub const ACCELERATORS: &[AcceleratorClass] = &[
    AcceleratorClass {
        name: "l4",
        memory_gib: 24.0,
    },
    AcceleratorClass {
        name: "a10g",
        memory_gib: 24.0,
    },
    AcceleratorClass {
        name: "a100-40",
        memory_gib: 40.0,
    },
    AcceleratorClass {
        name: "l40s",
        memory_gib: 48.0,
    },
    AcceleratorClass {
        name: "a100",
        memory_gib: 80.0,
    },
    AcceleratorClass {
        name: "h100",
        memory_gib: 80.0,
    },
    AcceleratorClass {
        name: "h200",
        memory_gib: 141.0,
    },
    AcceleratorClass {
        name: "b200",
        memory_gib: 180.0,
    },
    AcceleratorClass {
        name: "mi300x",
        memory_gib: 192.0,
    },
];

/// Tensor-parallel counts checked for each GPU class.
pub const TP_COUNTS: [u32; 4] = [1, 2, 4, 8];

/// Knobs of the memory estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectOptions {
    /// Memory of the `cpu` class, in GiB.
    pub cpu_memory_gib: f64,
    /// Context for the full-context KV figure and the fit; default: the model's own.
    pub context_tokens: Option<u32>,
    /// Bytes per KV cache element: 2 for fp16/bf16 (vLLM `auto`, llama.cpp `f16`), 1 for fp8.
    pub kv_bytes_per_element: u32,
    /// Fixed overhead per device, GiB: CUDA context, cuBLAS/NCCL workspaces, CUDA graphs.
    pub overhead_fixed_gib: f64,
    /// Overhead proportional to the device's share of the weights: activations, fragmentation.
    pub overhead_fraction: f64,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            cpu_memory_gib: 64.0,
            context_tokens: None,
            kv_bytes_per_element: 2,
            overhead_fixed_gib: 1.0,
            overhead_fraction: 0.10,
        }
    }
}
