//! The command line and environment of each runtime kind's server, and of the init container that downloads the
//! weights into the cache volume before the server starts (the warm-up).
//!
//! Flags are each server's documented ones; the kinds' entry points are those of their official images.

use pyxis_resources::RuntimeKind;

use crate::catalog::Vendor;

/// Where the model cache volume is mounted in every container.
pub const CACHE_DIR: &str = "/models";

/// What the server container (and its warm-up) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `None`: the image's entry point.
    pub command: Option<Vec<String>>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Extra container ports besides `http`, e.g. Triton's gRPC and metrics ports.
    pub extra_ports: Vec<(&'static str, u16)>,
    /// The init container that fills the cache; `None` when the server downloads by itself or cannot.
    pub warm: Option<Warm>,
}

/// An init container's command, run in the server's image with the cache volume mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warm {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// The inputs of a launch.
#[derive(Debug, Clone, Copy)]
pub struct LaunchCx<'a> {
    /// Hugging Face repository id, Ollama tag, or a path (absolute, or relative to the cache volume).
    pub source: &'a str,
    /// The model id clients (through the gateway) send.
    pub served: &'a str,
    pub port: u16,
    /// Accelerators per pod: the tensor-parallel size on GPUs, CPU cores on `cpu`.
    pub count: u32,
    pub context_length: u32,
    pub vendor: Vendor,
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(s).collect()
}

fn hf_env() -> Vec<(String, String)> {
    vec![(s("HF_HOME"), format!("{CACHE_DIR}/hf"))]
}

/// A Hugging Face repository id, as opposed to a path: only those are downloaded ahead.
fn is_repo(source: &str) -> bool {
    !source.starts_with('/') && !source.starts_with('.')
}

/// A path inside the cache volume for a relative `source`.
fn in_cache(source: &str) -> String {
    if source.starts_with('/') {
        source.to_string()
    } else {
        format!("{CACHE_DIR}/{source}")
    }
}

/// Downloads a Hugging Face repository into `HF_HOME` with the `huggingface_hub` the image ships.
fn hf_download(source: &str) -> Option<Warm> {
    is_repo(source).then(|| Warm {
        command: vec![
            s("python3"),
            s("-c"),
            s("import sys\nfrom huggingface_hub import snapshot_download\nsnapshot_download(sys.argv[1])"),
            s(source),
        ],
        env: hf_env(),
    })
}

/// The launch of `kind` (a deployable kind; `openai` gets an empty launch).
pub fn launch(kind: RuntimeKind, cx: &LaunchCx<'_>) -> Launch {
    let port = s(cx.port);
    // On CPUs `count` is cores, not a tensor-parallel degree.
    let tp = s(if cx.vendor == Vendor::Cpu { 1 } else { cx.count });
    let ctx = s(cx.context_length);
    let base = Launch {
        command: None,
        args: Vec::new(),
        env: Vec::new(),
        extra_ports: Vec::new(),
        warm: None,
    };
    match kind {
        RuntimeKind::Vllm => Launch {
            command: Some(strings(&["vllm", "serve"])),
            args: strings(&[
                cx.source,
                "--served-model-name",
                cx.served,
                "--host",
                "0.0.0.0",
                "--port",
                &port,
                "--tensor-parallel-size",
                &tp,
                "--max-model-len",
                &ctx,
            ]),
            env: hf_env(),
            warm: hf_download(cx.source),
            ..base
        },
        RuntimeKind::Sglang => Launch {
            command: Some(strings(&["python3", "-m", "sglang.launch_server"])),
            args: strings(&[
                "--model-path",
                cx.source,
                "--served-model-name",
                cx.served,
                "--host",
                "0.0.0.0",
                "--port",
                &port,
                "--tp",
                &tp,
                "--context-length",
                &ctx,
                // Metrics are off by default in SGLang; the gateway reads its queue gauges.
                "--enable-metrics",
            ]),
            env: hf_env(),
            warm: hf_download(cx.source),
            ..base
        },
        RuntimeKind::Tgi => Launch {
            // TGI serves one model and ignores the request's `model`, so it needs no served name.
            args: strings(&[
                "--model-id",
                cx.source,
                "--hostname",
                "0.0.0.0",
                "--port",
                &port,
                "--num-shard",
                &tp,
            ]),
            env: hf_env(),
            warm: is_repo(cx.source).then(|| Warm {
                command: strings(&["text-generation-server", "download-weights", cx.source]),
                env: hf_env(),
            }),
            ..base
        },
        RuntimeKind::Triton => triton(cx, &port),
        RuntimeKind::TensorrtLlm => Launch {
            command: Some(strings(&["trtllm-serve"])),
            args: strings(&[
                cx.source,
                "--host",
                "0.0.0.0",
                "--port",
                &port,
                "--tp_size",
                &tp,
                "--max_seq_len",
                &ctx,
            ]),
            env: hf_env(),
            warm: hf_download(cx.source),
            ..base
        },
        RuntimeKind::Ollama => {
            let models = format!("{CACHE_DIR}/ollama");
            Launch {
                args: strings(&["serve"]),
                env: vec![
                    (s("OLLAMA_HOST"), format!("0.0.0.0:{port}")),
                    (s("OLLAMA_MODELS"), models.clone()),
                    // Keep the model loaded once warm instead of unloading it after 5 idle minutes.
                    (s("OLLAMA_KEEP_ALIVE"), s("-1")),
                    (s("OLLAMA_CONTEXT_LENGTH"), ctx),
                ],
                warm: Some(Warm {
                    command: strings(&[
                        "/bin/sh",
                        "-c",
                        "ollama serve & pid=$!; until ollama list >/dev/null 2>&1; do sleep 1; done; \
                         ollama pull \"$PYXIS_SOURCE\"; status=$?; kill $pid; exit $status",
                    ]),
                    env: vec![
                        (s("OLLAMA_HOST"), s("127.0.0.1:11434")),
                        (s("OLLAMA_MODELS"), models),
                        (s("PYXIS_SOURCE"), s(cx.source)),
                    ],
                }),
                ..base
            }
        }
        RuntimeKind::Llamacpp => {
            let mut args = if cx.source.starts_with('/') {
                strings(&["-m", cx.source])
            } else {
                // llama-server downloads a Hugging Face GGUF repository itself into LLAMA_CACHE.
                strings(&["-hf", cx.source])
            };
            args.extend(strings(&[
                "--host",
                "0.0.0.0",
                "--port",
                &port,
                "--alias",
                cx.served,
                "--metrics",
            ]));
            if cx.vendor != Vendor::Cpu {
                // Offload every layer; llama.cpp splits layers across all GPUs it sees.
                args.extend(strings(&["-ngl", "999"]));
            }
            Launch {
                args,
                env: vec![(s("LLAMA_CACHE"), format!("{CACHE_DIR}/llamacpp"))],
                ..base
            }
        }
        RuntimeKind::Openai => base,
    }
}

/// Triton serves a TensorRT-LLM model repository prepared in the cache volume (engines are built for a fixed
/// tensor-parallel size, so they cannot be made here). With several GPUs one MPI rank runs per GPU, as
/// `launch_triton_server.py` of tensorrtllm_backend does: rank 0 loads every model, the others only `tensorrt_llm`.
fn triton(cx: &LaunchCx<'_>, port: &str) -> Launch {
    let repo = format!("--model-repository={}", in_cache(cx.source));
    let ports = [
        format!("--http-port={port}"),
        s("--grpc-port=8001"),
        s("--metrics-port=8002"),
    ];
    let extra_ports = vec![("grpc", 8001), ("metrics", 8002)];
    if cx.count <= 1 || cx.vendor == Vendor::Cpu {
        let mut args = vec![repo];
        args.extend(ports);
        return Launch {
            command: Some(strings(&["tritonserver"])),
            args,
            env: Vec::new(),
            extra_ports,
            warm: None,
        };
    }
    let mut args = Vec::new();
    for rank in 0..cx.count {
        if rank > 0 {
            args.push(s(":"));
        }
        args.extend([s("-n"), s("1"), s("tritonserver"), repo.clone()]);
        if rank > 0 {
            args.extend([s("--model-control-mode=explicit"), s("--load-model=tensorrt_llm")]);
        }
        args.extend(ports.iter().cloned());
        args.push(s("--disable-auto-complete-config"));
        args.push(format!("--backend-config=python,shm-region-prefix-name=prefix{rank}_"));
    }
    Launch {
        command: Some(strings(&["mpirun", "--allow-run-as-root"])),
        args,
        env: Vec::new(),
        extra_ports,
        warm: None,
    }
}
