//! Valid fleets: what parsing yields, defaults, parameter counts, the shipped examples and the YAML round trip.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{FLEET, edit, errors};
use pyxis_resources::{Fleet, Precision, RuntimeKind, Simulated, TenantSpec};

fn parse(src: &str) -> Fleet {
    match Fleet::parse(src, "fleet.yaml") {
        Ok(f) => f,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

#[test]
fn valid_multi_document_file() {
    let f = parse(FLEET);
    assert_eq!(f.tenants.len(), 0);
    assert_eq!(f.runtimes.len(), 2);
    assert_eq!(f.models.len(), 1);

    let h100 = f.runtime("h100-pool").unwrap();
    assert_eq!(h100.api_version, pyxis_resources::API_VERSION);
    assert_eq!(h100.kind, "Runtime");
    assert_eq!(h100.spec.kind, RuntimeKind::Vllm);
    assert_eq!(
        h100.spec.simulated,
        Some(Simulated {
            replicas: 2,
            speedup: 1.0,
            seed: None
        })
    );
    assert_eq!(h100.spec.endpoints, None);
    assert_eq!(h100.spec.accelerator.r#type, "h100");
    assert_eq!(h100.spec.accelerator.count, 1);
    assert_eq!(h100.spec.accelerator.memory_gib, 80.0);

    let a100 = f.runtime("a100-pool").unwrap();
    assert_eq!(a100.spec.kind, RuntimeKind::Tgi);
    assert_eq!(a100.spec.endpoint_urls(), ["http://10.0.0.7:8080"]);
    assert_eq!(a100.spec.accelerator.total_memory_gib(), 160.0);
    assert!(!a100.spec.is_simulated());

    let m = f.model("llama-3-8b").unwrap();
    assert_eq!(m.metadata.labels.get("family").map(String::as_str), Some("llama"));
    assert_eq!(m.spec.version, "3.1");
    assert_eq!(m.spec.parameters, 8_000_000_000);
    assert_eq!(m.spec.context_length, 8192);
    assert_eq!(m.spec.runtimes, ["h100-pool", "a100-pool"]);
    assert_eq!(m.spec.precision, Precision::Bf16);
    assert!(!m.spec.embedding);
    assert_eq!(m.served_name(), "llama-3-8b");
    assert_eq!(m.spec.served_name(&m.metadata), "llama-3-8b");
    assert!(f.model("nope").is_none() && f.tenant("nope").is_none());
}

#[test]
fn separators_comments_and_crlf() {
    let src = format!(
        "---\n# leading comment\n---\n{}\n---\n...\n",
        FLEET.replace("---\n", "--- # next\n")
    );
    assert_eq!(parse(&src), parse(FLEET));
    assert_eq!(parse(&FLEET.replace('\n', "\r\n")), parse(FLEET));
    // Line numbers stay right with CRLF.
    let crlf = edit("  contextLength: 8192", "  contextLength: big").replace('\n', "\r\n");
    assert_eq!(
        errors(&crlf),
        ["fleet.yaml:30:18: Model \"llama-3-8b\": spec.contextLength: invalid type: string \"big\", expected u32"]
    );
}

#[test]
fn parameter_counts() {
    for (written, value) in [
        ("8B", 8_000_000_000),
        ("\"1.5B\"", 1_500_000_000),
        ("560M", 560_000_000),
        ("70b", 70_000_000_000),
        ("8030261248", 8_030_261_248),
        ("\"8030261248\"", 8_030_261_248),
        ("8.0e9", 8_000_000_000),
    ] {
        let f = parse(&edit("parameters: 8B", &format!("parameters: {written}")));
        assert_eq!(f.models[0].spec.parameters, value, "{written}");
    }
    assert_eq!(
        errors(&edit("parameters: 8B", "parameters: 1.0000000005B")),
        [
            "fleet.yaml:29:15: Model \"llama-3-8b\": spec.parameters: invalid value: string \"1.0000000005B\", expected a parameter count: an integer or a number with a suffix K, M, B or T, like \"8B\" or \"1.5B\""
        ]
    );
}

#[test]
fn unquoted_versions_keep_their_text() {
    let f = parse(&edit("version: \"3.1\"", "version: 3.10"));
    assert_eq!(f.models[0].spec.version, "3.10");
}

#[test]
fn tenant_defaults() {
    let src =
        format!("{FLEET}---\napiVersion: pyxis.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: team-a}}\nspec: {{}}\n");
    let f = parse(&src);
    assert_eq!(f.tenant("team-a").map(|t| &t.spec), Some(&TenantSpec::default()));
    assert_eq!(TenantSpec::default().weight, 1.0);
    // A tenant and a model may share a name; kinds have separate namespaces.
    let same = src.replace("name: team-a", "name: llama-3-8b");
    assert!(parse(&same).tenant("llama-3-8b").is_some());
}

#[test]
fn demo_fleet_is_valid() {
    let parsed = Fleet::parse(pyxis_resources::DEMO_FLEET_YAML, "demo-fleet.yaml");
    assert_eq!(parsed.as_ref().err().map(ToString::to_string), None);
    let f = Fleet::demo();
    assert_eq!(Some(f.clone()), parsed.ok());
    let names = |v: Vec<&str>| v.join(",");
    assert_eq!(names(f.tenants.iter().map(|t| t.name()).collect()), "default");
    assert_eq!(
        names(f.runtimes.iter().map(|r| r.name()).collect()),
        "h100-pool,a100-pool,l4-pool"
    );
    assert_eq!(
        names(f.models.iter().map(|m| m.name()).collect()),
        "llama-3-8b,qwen2.5-7b,nomic-embed-text"
    );
    for r in &f.runtimes {
        assert_eq!(r.spec.kind, RuntimeKind::Vllm);
        assert_eq!(r.spec.simulated, Some(Simulated::default()));
    }
    let l4 = f.runtime("l4-pool").unwrap();
    assert_eq!(
        (l4.spec.accelerator.memory_gib, l4.spec.cloud.as_deref()),
        (24.0, Some("onprem"))
    );
    assert_eq!(
        f.runtime("h100-pool").unwrap().spec.price_per_accelerator_hour,
        Some(4.0)
    );
    let qwen = f.model("qwen2.5-7b").unwrap();
    assert_eq!((qwen.spec.parameters, qwen.spec.context_length), (7_600_000_000, 32768));
    assert_eq!(qwen.spec.runtimes, ["h100-pool", "l4-pool"]);
    assert_eq!(
        f.model("llama-3-8b").unwrap().spec.runtimes,
        ["h100-pool", "a100-pool", "l4-pool"]
    );
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

#[test]
fn example_fleet_is_valid() {
    let f = Fleet::load_file(&example("fleet.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f.tenants.len(), f.runtimes.len(), f.models.len()), (3, 4, 5));
    let kinds: Vec<_> = f.runtimes.iter().map(|r| r.spec.kind).collect();
    assert_eq!(
        kinds,
        [
            RuntimeKind::Vllm,
            RuntimeKind::Tgi,
            RuntimeKind::Llamacpp,
            RuntimeKind::Ollama
        ]
    );
    assert!(f.runtimes.iter().all(|r| !r.spec.is_simulated()));
    assert!(f.tenant("support-bot").unwrap().spec.allows_model("llama-3.1-8b"));
    assert!(!f.tenant("support-bot").unwrap().spec.allows_model("llama-3.1-70b"));
    assert_eq!(
        f.model("llama-3.1-70b").unwrap().served_name(),
        "meta-llama/Llama-3.1-70B-Instruct"
    );
}

#[test]
fn to_yaml_round_trips() {
    let real = Fleet::load_file(&example("fleet.yaml")).unwrap_or_else(|e| panic!("{e}"));
    for f in [Fleet::demo(), parse(FLEET), real] {
        let yaml = f.to_yaml();
        assert_eq!(
            Fleet::parse(&yaml, "out.yaml").map_err(|e| e.to_string()),
            Ok(f.clone()),
            "{yaml}"
        );
    }
}

#[test]
fn load_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, edit("kind: Model", "kind: Modle")).unwrap();
    let err = Fleet::load_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:23:1: kind: unknown kind \"Modle\" (known kinds: Model, ModelDeployment, PriorityTier, RoutingPolicy, Runtime, Tenant)",
            path.display()
        )
    );
    std::fs::write(&path, FLEET).unwrap();
    assert_eq!(Fleet::load_file(&path), Ok(parse(FLEET)));
}

#[test]
fn errors_display_one_per_line() {
    let src = edit("    replicas: 2", "    replicas: 0").replace("contextLength: 8192", "contextLength: 0");
    let e = Fleet::parse(&src, "f.yaml").unwrap_err();
    assert_eq!(e.len(), 2);
    assert_eq!(e.to_string().lines().count(), 2);
    assert_eq!((e.0[1].line, e.0[1].column), (Some(30), Some(3)));
    assert_eq!(
        e.0[1].message,
        "Model \"llama-3-8b\": spec.contextLength: must be greater than 0"
    );
}

#[test]
fn specs_have_json_schemas() {
    let model = serde_json::to_value(schemars::schema_for!(pyxis_resources::ModelSpec)).unwrap();
    let params = &model["properties"]["parameters"];
    assert_eq!(params["x-kubernetes-int-or-string"], true);
    assert_eq!(
        model["required"],
        serde_json::json!(["version", "parameters", "contextLength", "runtimes"])
    );
    let runtime = serde_json::to_value(schemars::schema_for!(pyxis_resources::RuntimeSpec)).unwrap();
    assert_eq!(runtime["additionalProperties"], false);
    let kinds = serde_json::to_string(&runtime["$defs"]["RuntimeKind"]).unwrap();
    assert!(kinds.contains("tensorrt-llm"), "{kinds}");
}
