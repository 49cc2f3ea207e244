//! The Deployment, Service and claim built per runtime kind and accelerator class, checked as JSON.

use pyxis_resources::{DeployRuntime, ModelDeploymentSpec, RuntimeKind};
use serde_json::{Value, json};

use crate::catalog::choose;
use crate::workload::{BuildOptions, Target, build};

fn spec(v: Value) -> ModelDeploymentSpec {
    serde_json::from_value(v).unwrap()
}

/// The built objects as JSON, with `kind` chosen as the operator would.
fn built(spec: &ModelDeploymentSpec, served: &str, kueue: Option<&str>) -> (Value, Value, Option<Value>) {
    let opts = BuildOptions::default();
    let source = spec.source.clone().unwrap_or(served.to_string());
    let kind = choose(
        spec.runtime,
        spec.fallback.as_deref(),
        &spec.accelerator.r#type,
        &source,
        spec.image.is_some(),
        &opts.images,
    )
    .unwrap();
    let t = Target {
        name: "m",
        namespace: "ml",
        spec,
        served_name: served,
        context_length: 4096,
        kind,
        kueue_queue: kueue,
        owner: None,
    };
    let w = build(&t, &opts).unwrap();
    let cache = w.cache.as_ref().map(json);
    (json(&w.deployment), json(&w.service), cache)
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

fn server(dep: &Value) -> &Value {
    &dep["spec"]["template"]["spec"]["containers"][0]
}

fn args(dep: &Value) -> Vec<String> {
    server(dep)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn has(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

fn env(dep: &Value) -> Vec<(String, Value)> {
    server(dep)["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e.get("value").cloned().unwrap_or(e["valueFrom"].clone()),
            )
        })
        .collect()
}

fn env_of(dep: &Value, name: &str) -> Option<Value> {
    env(dep).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

#[test]
fn vllm_on_four_h100() {
    let s = spec(json!({"model": "llama", "runtime": "vllm", "accelerator": {"type": "h100", "count": 4}}));
    let (dep, svc, cache) = built(&s, "meta-llama/Llama-3.1-8B-Instruct", None);
    let c = server(&dep);
    assert_eq!(c["image"], "vllm/vllm-openai:v0.11.0");
    assert_eq!(c["command"], json!(["vllm", "serve"]));
    let a = args(&dep);
    assert_eq!(a[0], "meta-llama/Llama-3.1-8B-Instruct");
    assert!(has(&a, "--tensor-parallel-size", "4") && has(&a, "--port", "8000") && has(&a, "--max-model-len", "4096"));
    assert_eq!(c["resources"], json!({"limits": {"nvidia.com/gpu": "4"}}));
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8000, "protocol": "TCP"}])
    );
    for (probe, path) in [
        ("startupProbe", "/health"),
        ("readinessProbe", "/health"),
        ("livenessProbe", "/health"),
    ] {
        assert_eq!(c[probe]["httpGet"], json!({"path": path, "port": "http"}), "{probe}");
    }
    assert_eq!(c["startupProbe"]["failureThreshold"], 180);
    assert_eq!(env_of(&dep, "HF_HOME"), Some(json!("/models/hf")));
    assert_eq!(
        env_of(&dep, "HF_TOKEN"),
        Some(json!({"secretKeyRef": {"name": "hf-token", "key": "token", "optional": true}}))
    );
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], json!({"pyxis.dev/accelerator": "h100"}));
    assert_eq!(
        pod["tolerations"][0],
        json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    );
    assert_eq!(pod["enableServiceLinks"], false);
    let warm = &pod["initContainers"][0];
    assert_eq!(warm["name"], "warm-cache");
    assert_eq!(warm["command"][3], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(pod["volumes"][0], json!({"name": "model-cache", "emptyDir": {}}));
    assert_eq!(
        pod["volumes"][1],
        json!({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    );
    assert_eq!(
        dep["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": 0, "maxUnavailable": 1})
    );
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"],
        json!({"pyxis.dev/model-deployment": "m"})
    );
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(svc["spec"]["selector"], json!({"pyxis.dev/model-deployment": "m"}));
    assert!(cache.is_none());
}

#[test]
fn tgi_on_mi300x_uses_amd_gpus_and_shards() {
    let s = spec(json!({"model": "m", "runtime": "tgi", "accelerator": {"type": "mi300x", "count": 8}}));
    let (dep, _, _) = built(&s, "org/model", None);
    let c = server(&dep);
    assert_eq!(c["image"], "ghcr.io/huggingface/text-generation-inference:3.3.5-rocm");
    assert!(c.get("command").is_none(), "the image's text-generation-launcher");
    assert!(has(&args(&dep), "--num-shard", "8") && has(&args(&dep), "--port", "3000"));
    assert_eq!(c["resources"]["limits"], json!({"amd.com/gpu": "8"}));
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["tolerations"][0]["key"], "amd.com/gpu");
    assert_eq!(
        pod["initContainers"][0]["command"],
        json!(["text-generation-server", "download-weights", "org/model"])
    );
}

#[test]
fn sglang_and_trtllm_serve_tensor_parallel_flags() {
    let s = spec(json!({"model": "m", "runtime": "sglang", "accelerator": {"type": "h200", "count": 2}}));
    let (dep, svc, _) = built(&s, "org/model", None);
    let a = args(&dep);
    assert!(has(&a, "--tp", "2") && has(&a, "--model-path", "org/model") && a.contains(&"--enable-metrics".into()));
    assert_eq!(svc["spec"]["ports"][0]["port"], 30000);
    let s = spec(json!({"model": "m", "runtime": "tensorrt-llm", "accelerator": {"type": "h100", "count": 8}}));
    let (dep, _, _) = built(&s, "org/model", None);
    assert_eq!(server(&dep)["command"], json!(["trtllm-serve"]));
    assert!(has(&args(&dep), "--tp_size", "8"));
}

#[test]
fn triton_runs_one_rank_per_gpu_with_its_own_health_routes() {
    let s = spec(json!({"model": "m", "runtime": "triton", "source": "llama-trtllm-repo",
                        "accelerator": {"type": "h100", "count": 2}}));
    let (dep, _, _) = built(&s, "llama", None);
    let c = server(&dep);
    assert_eq!(c["command"], json!(["mpirun", "--allow-run-as-root"]));
    let a = args(&dep);
    assert_eq!(a.iter().filter(|x| *x == "tritonserver").count(), 2);
    assert_eq!(a.iter().filter(|x| *x == ":").count(), 1);
    assert!(a.contains(&"--model-repository=/models/llama-trtllm-repo".into()));
    assert!(a.contains(&"--load-model=tensorrt_llm".into()));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/v2/health/live");
    let ports: Vec<i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [8000, 8001, 8002]);
    assert!(
        dep["spec"]["template"]["spec"].get("initContainers").is_none(),
        "engines are prepared, not downloaded"
    );
}

#[test]
fn ollama_on_cpu_requests_cores_and_pulls_ahead() {
    let s = spec(json!({"model": "m", "accelerator": {"type": "cpu", "count": 8}}));
    let (dep, svc, _) = built(&s, "qwen2.5:7b", None);
    let c = server(&dep);
    assert_eq!(c["image"], "ollama/ollama:0.12.3", "auto on cpu with an Ollama tag");
    assert_eq!(c["resources"], json!({"requests": {"cpu": "8"}}));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/");
    assert_eq!(env_of(&dep, "OLLAMA_HOST"), Some(json!("0.0.0.0:11434")));
    assert_eq!(env_of(&dep, "OLLAMA_KEEP_ALIVE"), Some(json!("-1")));
    let pod = &dep["spec"]["template"]["spec"];
    assert!(pod.get("nodeSelector").is_none() && pod.get("tolerations").is_none());
    assert_eq!(
        pod["volumes"].as_array().unwrap().len(),
        1,
        "no /dev/shm volume without GPUs"
    );
    let warm = &pod["initContainers"][0];
    assert!(warm["command"][2].as_str().unwrap().contains("ollama pull"));
    assert!(
        warm["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "PYXIS_SOURCE", "value": "qwen2.5:7b"}))
    );
    assert_eq!(svc["spec"]["ports"][0]["port"], 11434);
}

#[test]
fn llamacpp_on_l4_downloads_gguf_and_offloads() {
    let s = spec(json!({"model": "m", "source": "bartowski/Llama-3.2-1B-Instruct-GGUF",
                        "accelerator": {"type": "l4"}}));
    let (dep, _, _) = built(&s, "llama-1b", None);
    let c = server(&dep);
    assert_eq!(
        c["image"], "ghcr.io/ggml-org/llama.cpp:server-cuda",
        "auto with a GGUF source on NVIDIA"
    );
    let a = args(&dep);
    assert!(
        has(&a, "-hf", "bartowski/Llama-3.2-1B-Instruct-GGUF")
            && has(&a, "--alias", "llama-1b")
            && has(&a, "-ngl", "999")
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(env_of(&dep, "LLAMA_CACHE"), Some(json!("/models/llamacpp")));
}

#[test]
fn user_settings_override_and_extend() {
    let s = spec(
        json!({"model": "m", "runtime": "vllm", "accelerator": {"type": "a100", "count": 1}, "replicas": 2,
        "image": "registry.local/vllm:pinned", "port": 9000, "args": ["--enable-prefix-caching"],
        "env": {"HF_HOME": "/elsewhere", "VLLM_LOGGING_LEVEL": "DEBUG"},
        "cache": {"size": "200Gi", "storageClass": "fast"}}),
    );
    let (dep, svc, cache) = built(&s, "org/model", Some("team-a-queue"));
    let c = server(&dep);
    assert_eq!(c["image"], "registry.local/vllm:pinned");
    let a = args(&dep);
    assert_eq!(a.last().unwrap(), "--enable-prefix-caching");
    assert!(has(&a, "--port", "9000"));
    assert_eq!(
        env_of(&dep, "HF_HOME"),
        Some(json!("/elsewhere")),
        "the user's value wins"
    );
    assert_eq!(env(&dep).iter().filter(|(n, _)| n == "HF_HOME").count(), 1);
    assert_eq!(env_of(&dep, "VLLM_LOGGING_LEVEL"), Some(json!("DEBUG")));
    assert_eq!(svc["spec"]["ports"][0]["port"], 9000);
    assert_eq!(dep["metadata"]["labels"]["kueue.x-k8s.io/queue-name"], "team-a-queue");
    let cache = cache.unwrap();
    assert_eq!(cache["metadata"]["name"], "m-cache");
    assert_eq!(
        cache["spec"]["accessModes"],
        json!(["ReadWriteMany"]),
        "two replicas share the claim"
    );
    assert_eq!(cache["spec"]["resources"]["requests"]["storage"], "200Gi");
    assert_eq!(cache["spec"]["storageClassName"], "fast");
    assert_eq!(
        dep["spec"]["template"]["spec"]["volumes"][0],
        json!({"name": "model-cache", "persistentVolumeClaim": {"claimName": "m-cache"}})
    );
}

#[test]
fn every_deployable_kind_builds_on_its_vendors() {
    for kind in RuntimeKind::ALL.into_iter().filter(|k| *k != RuntimeKind::Openai) {
        for class in ["h100", "mi300x", "cpu"] {
            let runtime: DeployRuntime = serde_json::from_value(json!(kind.as_str())).unwrap();
            let s = spec(
                json!({"model": "m", "runtime": runtime, "accelerator": {"type": class, "count": 2},
                                "image": "example/image:1"}),
            );
            let (dep, _, _) = built(&s, "org/model", None);
            let gpu = server(&dep)["resources"]["limits"].clone();
            match class {
                "h100" => assert_eq!(gpu, json!({"nvidia.com/gpu": "2"}), "{kind}"),
                "mi300x" => assert_eq!(gpu, json!({"amd.com/gpu": "2"}), "{kind}"),
                _ => assert!(gpu.is_null(), "{kind}"),
            }
            assert_eq!(dep["metadata"]["labels"]["pyxis.dev/runtime"], kind.as_str());
        }
    }
}
