//! What the operator knows about runtime kinds and accelerator classes: default images, ports, health routes,
//! GPU resource names, and which kinds `runtime: auto` tries on a class, in order.
//!
//! Image tags are defaults to be pinned by the cluster admin (`--image KIND=IMAGE`); ports and health routes come
//! from shared/reference/runtimes.md.

use std::collections::BTreeMap;
use std::fmt;

use pyxis_resources::{DeployRuntime, RuntimeKind};

/// Who makes the accelerators of a class, which decides the GPU resource, the images and the tolerations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    Nvidia,
    Amd,
    /// No accelerator: `accelerator.count` is CPU cores.
    Cpu,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvidia",
            Vendor::Amd => "amd",
            Vendor::Cpu => "cpu",
        }
    }

    /// The extended resource a pod requests for its accelerators, and the taint key GPU nodes usually carry.
    pub fn gpu_resource(self) -> Option<&'static str> {
        match self {
            Vendor::Nvidia => Some("nvidia.com/gpu"),
            Vendor::Amd => Some("amd.com/gpu"),
            Vendor::Cpu => None,
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The vendor of an accelerator class: `cpu`, AMD Instinct (`mi*`), else NVIDIA.
pub fn vendor(class: &str) -> Vendor {
    if class == "cpu" {
        Vendor::Cpu
    } else if class.starts_with("mi") {
        Vendor::Amd
    } else {
        Vendor::Nvidia
    }
}

/// Memory of one accelerator of a class in GiB, as published on the derived `Runtime` (the gateway's cost and
/// capacity models read it). Unknown classes and `cpu` get a nominal 16.
pub fn memory_gib(class: &str) -> f64 {
    match class {
        "b200" => 180.0,
        "h200" => 141.0,
        "h100" | "a100" | "h800" => 80.0,
        "l40s" | "l40" | "a40" | "a6000" => 48.0,
        "v100" => 32.0,
        "a10g" | "a10" | "l4" => 24.0,
        "mi325x" => 256.0,
        "mi300x" => 192.0,
        "mi250x" | "mi250" => 128.0,
        _ => 16.0,
    }
}

/// Fixed facts of one runtime kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Port the server listens on unless `spec.port` says otherwise.
    pub port: u16,
    /// Route polled by the readiness (and startup) probe.
    pub ready_path: &'static str,
    /// Route polled by the liveness probe.
    pub live_path: &'static str,
}

/// The profile of a deployable kind (`openai` is a hosted API, not deployable: `None`).
pub fn profile(kind: RuntimeKind) -> Option<Profile> {
    let p = |port, path| Profile {
        port,
        ready_path: path,
        live_path: path,
    };
    Some(match kind {
        RuntimeKind::Vllm | RuntimeKind::TensorrtLlm => p(8000, "/health"),
        RuntimeKind::Sglang => p(30000, "/health"),
        RuntimeKind::Tgi => p(3000, "/health"),
        RuntimeKind::Triton => Profile {
            port: 8000,
            ready_path: "/v2/health/ready",
            live_path: "/v2/health/live",
        },
        RuntimeKind::Ollama => p(11434, "/"),
        RuntimeKind::Llamacpp => p(8080, "/health"),
        RuntimeKind::Openai => return None,
    })
}

/// The built-in default image of a kind for a vendor; `None` where there is no official one (set `spec.image` or
/// `--image`).
pub fn default_image(kind: RuntimeKind, vendor: Vendor) -> Option<&'static str> {
    use RuntimeKind as K;
    use Vendor as V;
    Some(match (kind, vendor) {
        (K::Vllm, V::Nvidia) => "vllm/vllm-openai:v0.11.0",
        (K::Vllm, V::Amd) => "rocm/vllm:latest",
        (K::Sglang, V::Nvidia) => "lmsysorg/sglang:latest",
        (K::Tgi, V::Nvidia) => "ghcr.io/huggingface/text-generation-inference:3.3.5",
        (K::Tgi, V::Amd) => "ghcr.io/huggingface/text-generation-inference:3.3.5-rocm",
        (K::Triton, V::Nvidia) => "nvcr.io/nvidia/tritonserver:25.08-trtllm-python-py3",
        (K::TensorrtLlm, V::Nvidia) => "nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
        (K::Ollama, V::Nvidia | V::Cpu) => "ollama/ollama:0.12.3",
        (K::Ollama, V::Amd) => "ollama/ollama:0.12.3-rocm",
        (K::Llamacpp, V::Nvidia) => "ghcr.io/ggml-org/llama.cpp:server-cuda",
        (K::Llamacpp, V::Amd) => "ghcr.io/ggml-org/llama.cpp:server-rocm",
        (K::Llamacpp, V::Cpu) => "ghcr.io/ggml-org/llama.cpp:server",
        _ => return None,
    })
}

/// The order `runtime: auto` tries kinds in on a vendor's accelerators, when the deployment gives no `fallback`.
/// Triton is never picked automatically: it serves a prebuilt TensorRT-LLM engine repository, not a checkpoint.
pub fn auto_order(vendor: Vendor) -> &'static [RuntimeKind] {
    use RuntimeKind as K;
    match vendor {
        Vendor::Nvidia => &[K::Vllm, K::Sglang, K::Tgi, K::TensorrtLlm, K::Llamacpp, K::Ollama],
        Vendor::Amd => &[K::Vllm, K::Tgi, K::Llamacpp, K::Ollama],
        Vendor::Cpu => &[K::Llamacpp, K::Ollama],
    }
}

/// What the weights named by `source` are, which decides the kinds that can load them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// A Hugging Face checkpoint repository id or a directory (safetensors).
    Checkpoint,
    /// A GGUF file or a repository of GGUF files (name ends in `.gguf` or contains `gguf`).
    Gguf,
    /// An Ollama library tag such as `llama3.1:8b` (a `:` and no `/`).
    OllamaTag,
}

pub fn source_format(source: &str) -> SourceFormat {
    if source.to_ascii_lowercase().contains("gguf") {
        SourceFormat::Gguf
    } else if source.contains(':') && !source.contains('/') {
        SourceFormat::OllamaTag
    } else {
        SourceFormat::Checkpoint
    }
}

/// Whether `kind` can load weights in `format`.
pub fn loads(kind: RuntimeKind, format: SourceFormat) -> bool {
    use RuntimeKind as K;
    match format {
        SourceFormat::Checkpoint => matches!(kind, K::Vllm | K::Sglang | K::Tgi | K::TensorrtLlm | K::Triton),
        SourceFormat::Gguf => matches!(kind, K::Llamacpp | K::Ollama),
        SourceFormat::OllamaTag => kind == K::Ollama,
    }
}

/// Images the cluster admin set per kind (`--image vllm=...`) or per kind and vendor (`--image vllm/amd=...`);
/// they take precedence over [`default_image`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Images(BTreeMap<(RuntimeKind, Option<Vendor>), String>);

impl Images {
    /// Parses `KIND=IMAGE` or `KIND/VENDOR=IMAGE` flags.
    pub fn parse(flags: &[String]) -> Result<Images, String> {
        let mut map = BTreeMap::new();
        for flag in flags {
            let (key, image) = flag
                .split_once('=')
                .filter(|(_, i)| !i.is_empty())
                .ok_or_else(|| format!("--image {flag:?}: expected KIND=IMAGE or KIND/VENDOR=IMAGE"))?;
            let (kind, vendor) = match key.split_once('/') {
                Some((k, v)) => (k, Some(v)),
                None => (key, None),
            };
            let kind: RuntimeKind = kind.parse().map_err(|e| format!("--image {flag:?}: {e}"))?;
            let vendor = match vendor {
                None => None,
                Some("nvidia") => Some(Vendor::Nvidia),
                Some("amd") => Some(Vendor::Amd),
                Some("cpu") => Some(Vendor::Cpu),
                Some(v) => return Err(format!("--image {flag:?}: unknown vendor {v:?} (nvidia, amd, cpu)")),
            };
            map.insert((kind, vendor), image.to_string());
        }
        Ok(Images(map))
    }

    /// The image for `kind` on `vendor`: the admin's per-vendor, then per-kind setting, then the default.
    pub fn image(&self, kind: RuntimeKind, vendor: Vendor) -> Option<String> {
        self.0
            .get(&(kind, Some(vendor)))
            .or_else(|| self.0.get(&(kind, None)))
            .cloned()
            .or_else(|| default_image(kind, vendor).map(str::to_string))
    }
}

/// Why no runtime kind could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRuntime(pub String);

/// Picks the runtime kind of a deployment. An explicit kind is taken as asked (it only needs an image); `auto`
/// takes the first kind of `fallback` (or of [`auto_order`]) that loads `source`'s format and has an image for
/// the vendor (`spec.image` counts as one).
pub fn choose(
    runtime: DeployRuntime,
    fallback: Option<&[RuntimeKind]>,
    class: &str,
    source: &str,
    has_image: bool,
    images: &Images,
) -> Result<RuntimeKind, NoRuntime> {
    let vendor = vendor(class);
    let usable = |k: RuntimeKind| profile(k).is_some() && (has_image || images.image(k, vendor).is_some());
    if let Some(kind) = runtime.kind() {
        return if usable(kind) {
            Ok(kind)
        } else {
            Err(NoRuntime(format!(
                "{kind} has no default image for {vendor} accelerators ({class}); set spec.image"
            )))
        };
    }
    let order = fallback.unwrap_or_else(|| auto_order(vendor));
    let format = source_format(source);
    order
        .iter()
        .copied()
        .find(|k| usable(*k) && loads(*k, format))
        .ok_or_else(|| {
            let tried: Vec<&str> = order.iter().map(|k| k.as_str()).collect();
            NoRuntime(format!(
                "no runtime among [{}] can serve {source:?} ({format:?}) on {class}",
                tried.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyxis_resources::DeployRuntime as D;
    use pyxis_resources::RuntimeKind as K;

    #[test]
    fn vendors_and_resources() {
        assert_eq!(vendor("h100"), Vendor::Nvidia);
        assert_eq!(vendor("mi300x"), Vendor::Amd);
        assert_eq!(vendor("cpu"), Vendor::Cpu);
        assert_eq!(vendor("mi300x").gpu_resource(), Some("amd.com/gpu"));
        assert_eq!(vendor("l4").gpu_resource(), Some("nvidia.com/gpu"));
        assert_eq!(vendor("cpu").gpu_resource(), None);
        assert_eq!(memory_gib("h100"), 80.0);
        assert_eq!(memory_gib("mi300x"), 192.0);
    }

    #[test]
    fn source_formats() {
        assert_eq!(
            source_format("meta-llama/Llama-3.1-8B-Instruct"),
            SourceFormat::Checkpoint
        );
        assert_eq!(source_format("/models/llama"), SourceFormat::Checkpoint);
        assert_eq!(
            source_format("bartowski/Llama-3.2-1B-Instruct-GGUF"),
            SourceFormat::Gguf
        );
        assert_eq!(source_format("/models/tiny.gguf"), SourceFormat::Gguf);
        assert_eq!(source_format("llama3.1:8b"), SourceFormat::OllamaTag);
    }

    #[test]
    fn auto_choice_per_class_and_source() {
        let none = Images::default();
        let hf = "meta-llama/Llama-3.1-8B-Instruct";
        assert_eq!(choose(D::Auto, None, "h100", hf, false, &none), Ok(K::Vllm));
        assert_eq!(choose(D::Auto, None, "mi300x", hf, false, &none), Ok(K::Vllm));
        assert_eq!(
            choose(D::Auto, None, "cpu", "org/m-GGUF", false, &none),
            Ok(K::Llamacpp)
        );
        assert_eq!(choose(D::Auto, None, "l4", "qwen2.5:7b", false, &none), Ok(K::Ollama));
        // The fallback order is the deployment's own; kinds without an image for the vendor are skipped.
        let fb = [K::Sglang, K::Tgi];
        assert_eq!(choose(D::Auto, Some(&fb), "mi300x", hf, false, &none), Ok(K::Tgi));
        assert_eq!(choose(D::Auto, Some(&fb), "h100", hf, false, &none), Ok(K::Sglang));
        let err = choose(D::Auto, None, "cpu", hf, false, &none);
        assert_eq!(
            err,
            Err(NoRuntime(format!(
                "no runtime among [llamacpp, ollama] can serve \"{hf}\" (Checkpoint) on cpu"
            )))
        );
    }

    #[test]
    fn explicit_choice_needs_an_image() {
        let none = Images::default();
        assert_eq!(
            choose(D::Triton, None, "h100", "/models/repo", false, &none),
            Ok(K::Triton)
        );
        assert!(choose(D::Sglang, None, "mi300x", "m", false, &none).is_err());
        assert_eq!(choose(D::Sglang, None, "mi300x", "m", true, &none), Ok(K::Sglang));
        let admin = Images::parse(&["sglang/amd=registry.local/sglang:rocm".into()]).unwrap();
        assert_eq!(choose(D::Sglang, None, "mi300x", "m", false, &admin), Ok(K::Sglang));
        assert_eq!(
            admin.image(K::Sglang, Vendor::Amd).as_deref(),
            Some("registry.local/sglang:rocm")
        );
    }

    #[test]
    fn image_flags() {
        let i = Images::parse(&["vllm=r/vllm:1".into(), "vllm/amd=r/vllm:rocm".into()]).unwrap();
        assert_eq!(i.image(K::Vllm, Vendor::Nvidia).as_deref(), Some("r/vllm:1"));
        assert_eq!(i.image(K::Vllm, Vendor::Amd).as_deref(), Some("r/vllm:rocm"));
        assert_eq!(i.image(K::Vllm, Vendor::Cpu).as_deref(), Some("r/vllm:1"));
        assert_eq!(i.image(K::Tgi, Vendor::Cpu), None);
        for bad in ["vllm", "vllm=", "nope=x", "vllm/tpu=x"] {
            assert!(Images::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
