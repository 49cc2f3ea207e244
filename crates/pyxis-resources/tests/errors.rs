//! Config-error tests: each broken fleet and its exact error messages, with file, line and column.

mod common;

use common::{FLEET, assert_errors, edit, errors};

#[test]
fn fixture_is_valid() {
    assert_eq!(errors(FLEET), Vec::<String>::new());
}

#[test]
fn syntax_error_has_its_line() {
    assert_errors(
        &edit("  contextLength: 8192", "  contextLength: [8192"),
        &[
            "fleet.yaml:31:11: Model \"llama-3-8b\": did not find expected ',' or ']', while parsing a flow sequence at line 30 column 18",
        ],
    );
    assert_errors(
        &edit("    memoryGiB: 80\n", "    memoryGiB: 80\n  bad\n"),
        &[
            "fleet.yaml:13:1: Runtime \"h100-pool\": could not find expected ':', while scanning a simple key at line 12 column 3",
        ],
    );
}

#[test]
fn syntax_error_does_not_hide_other_documents() {
    let src = edit("  kind: vllm", "  kind: vllm: x").replace("  contextLength: 8192", "  contextLength: big");
    assert_errors(
        &src,
        &[
            "fleet.yaml:6:13: Runtime \"h100-pool\": mapping values are not allowed in this context",
            "fleet.yaml:30:18: Model \"llama-3-8b\": spec.contextLength: invalid type: string \"big\", expected u32",
        ],
    );
}

#[test]
fn unknown_field_top_level() {
    assert_errors(
        &edit("kind: Runtime\n", "kind: Runtime\nstatus: {}\n"),
        &[
            "fleet.yaml:3:1: Runtime \"h100-pool\": unknown field `status`, expected one of `apiVersion`, `kind`, `metadata`, `spec`",
        ],
    );
}

#[test]
fn unknown_field_top_level_third_document() {
    assert_errors(
        &edit("kind: Model\n", "kind: Model\nstatus: {}\n"),
        &[
            "fleet.yaml:24:1: Model \"llama-3-8b\": unknown field `status`, expected one of `apiVersion`, `kind`, `metadata`, `spec`",
        ],
    );
}

/// The fixture's documents in reverse: the Model, then `a100-pool`, then `h100-pool` (lines 21-31).
fn reversed(src: &str) -> String {
    let docs: Vec<&str> = src.split("---\n").collect();
    docs.into_iter().rev().collect::<Vec<_>>().join("---\n")
}

#[test]
fn unknown_field_in_accelerator_of_third_document() {
    let src = reversed(&edit("    memoryGiB: 80", "    memoryGib: 80"));
    assert_eq!(src.lines().nth(30), Some("    memoryGib: 80"));
    assert_errors(
        &src,
        &[
            "fleet.yaml:31:5: Runtime \"h100-pool\": spec.accelerator: unknown field `memoryGib`, expected one of `type`, `count`, `memoryGiB`",
        ],
    );
}

#[test]
fn unknown_field_in_metadata() {
    assert_errors(
        &edit("  name: llama-3-8b\n", "  name: llama-3-8b\n  namespace: prod\n"),
        &[
            "fleet.yaml:26:3: Model \"llama-3-8b\": metadata: unknown field `namespace`, expected one of `name`, `labels`, `annotations`",
        ],
    );
}

#[test]
fn unknown_field_in_spec() {
    assert_errors(
        &edit("  version: \"3.1\"", "  verison: \"3.1\""),
        &[
            "fleet.yaml:28:3: Model \"llama-3-8b\": spec: unknown field `verison`, expected one of `displayName`, `servedName`, `version`, `parameters`, `contextLength`, `runtimes`, `precision`, `embedding`",
        ],
    );
}

#[test]
fn unknown_field_nested_first_and_third_document() {
    assert_errors(
        &edit("    replicas: 2", "    replica: 2"),
        &[
            "fleet.yaml:8:5: Runtime \"h100-pool\": spec.simulated: unknown field `replica`, expected one of `replicas`, `speedup`, `seed`",
        ],
    );
    assert_errors(
        &edit("    memoryGiB: 80", "    memoryGib: 80"),
        &[
            "fleet.yaml:11:5: Runtime \"h100-pool\": spec.accelerator: unknown field `memoryGib`, expected one of `type`, `count`, `memoryGiB`",
        ],
    );
    // The third document, in a flow mapping.
    let third = FLEET.replace(
        "accelerator: {type: a100, count: 2,",
        "accelerator: {type: a100, cnt: 2,",
    );
    assert_errors(
        &third,
        &[
            "fleet.yaml:20:29: Runtime \"a100-pool\": spec.accelerator: unknown field `cnt`, expected one of `type`, `count`, `memoryGiB`",
        ],
    );
}

#[test]
fn wrong_type() {
    assert_errors(
        &edit("  contextLength: 8192", "  contextLength: big"),
        &["fleet.yaml:30:18: Model \"llama-3-8b\": spec.contextLength: invalid type: string \"big\", expected u32"],
    );
    assert_errors(
        &edit("    replicas: 2", "    replicas: -2"),
        &["fleet.yaml:8:15: Runtime \"h100-pool\": spec.simulated.replicas: invalid type: integer `-2`, expected u32"],
    );
    assert_errors(
        &edit("  kind: tgi", "  kind: vLLM"),
        &[
            "fleet.yaml:18:9: Runtime \"a100-pool\": spec.kind: unknown variant `vLLM`, expected one of `vllm`, `sglang`, `tgi`, `triton`, `tensorrt-llm`, `ollama`, `llamacpp`, `openai`",
        ],
    );
}

#[test]
fn missing_required_field() {
    assert_errors(
        &edit("  version: \"3.1\"\n", ""),
        &["fleet.yaml:28:3: Model \"llama-3-8b\": spec: missing field `version`"],
    );
    assert_errors(
        &edit("  accelerator: {type: a100, count: 2, memoryGiB: 80}\n", ""),
        &["fleet.yaml:18:3: Runtime \"a100-pool\": spec: missing field `accelerator`"],
    );
    assert_errors(
        &edit("metadata:\n  name: h100-pool\n", ""),
        &[
            "fleet.yaml:1:1: Runtime: missing field `metadata`",
            "fleet.yaml:29:14: Model \"llama-3-8b\": spec.runtimes[0]: no Runtime named \"h100-pool\" (known: a100-pool)",
        ],
    );
}

#[test]
fn bad_api_version() {
    assert_errors(
        &edit(
            "apiVersion: pyxis.dev/v1alpha1\nkind: Model",
            "apiVersion: v1\nkind: Model",
        ),
        &["fleet.yaml:22:1: Model \"llama-3-8b\": apiVersion: expected \"pyxis.dev/v1alpha1\", found \"v1\""],
    );
}

#[test]
fn unknown_kind() {
    assert_errors(
        &edit("kind: Model", "kind: Modle"),
        &[
            "fleet.yaml:23:1: kind: unknown kind \"Modle\" (known kinds: Model, ModelDeployment, PriorityTier, RoutingPolicy, Runtime, Tenant)",
        ],
    );
    assert_errors(
        &edit("kind: Model\n", ""),
        &[
            "fleet.yaml:22:1: missing field `kind` (known kinds: Model, ModelDeployment, PriorityTier, RoutingPolicy, Runtime, Tenant)",
        ],
    );
}

#[test]
fn bad_name() {
    assert_errors(
        &edit("  name: llama-3-8b", "  name: Llama_3"),
        &[
            "fleet.yaml:25:3: Model \"Llama_3\": metadata.name: \"Llama_3\" is not a valid name: use 1 to 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
        ],
    );
}

#[test]
fn duplicate_name() {
    assert_errors(
        &edit("  name: a100-pool", "  name: h100-pool"),
        &[
            "fleet.yaml:16:3: Runtime \"h100-pool\": metadata.name: duplicate Runtime \"h100-pool\", first defined at fleet.yaml:4:3",
            "fleet.yaml:31:25: Model \"llama-3-8b\": spec.runtimes[1]: no Runtime named \"a100-pool\" (known: h100-pool)",
        ],
    );
}

#[test]
fn dangling_runtime_reference() {
    assert_errors(
        &edit("runtimes: [h100-pool, a100-pool]", "runtimes: [h100-pool, h200-pool]"),
        &[
            "fleet.yaml:31:25: Model \"llama-3-8b\": spec.runtimes[1]: no Runtime named \"h200-pool\" (known: a100-pool, h100-pool)",
        ],
    );
    assert_errors(
        &edit(
            "runtimes: [h100-pool, a100-pool]",
            "runtimes:\n    - h100-pool\n    - h200-pool",
        ),
        &[
            "fleet.yaml:33:7: Model \"llama-3-8b\": spec.runtimes[1]: no Runtime named \"h200-pool\" (known: a100-pool, h100-pool)",
        ],
    );
}

#[test]
fn endpoints_and_simulated() {
    assert_errors(
        &edit("  endpoints: [", "  simulated: {}\n  endpoints: ["),
        &[
            "fleet.yaml:19:3: Runtime \"a100-pool\": spec.simulated: a Runtime has either endpoints (real servers) or simulated (the built-in simulator), not both",
        ],
    );
    assert_errors(
        &edit("  endpoints: [\"http://10.0.0.7:8080\"]\n", ""),
        &[
            "fleet.yaml:17:1: Runtime \"a100-pool\": spec: a Runtime needs either endpoints (real servers) or simulated (the built-in simulator)",
        ],
    );
    assert_errors(
        &edit("  endpoints: [\"http://10.0.0.7:8080\"]", "  endpoints: []"),
        &[
            "fleet.yaml:17:1: Runtime \"a100-pool\": spec: a Runtime needs either endpoints (real servers) or simulated (the built-in simulator)",
        ],
    );
}

#[test]
fn bad_url() {
    assert_errors(
        &edit("\"http://10.0.0.7:8080\"", "\"http://10.0.0.7:8080\", 10.0.0.8:8080"),
        &[
            "fleet.yaml:19:39: Runtime \"a100-pool\": spec.endpoints[1]: \"10.0.0.8:8080\" is not a valid endpoint URL: it must be an absolute URL starting with http:// or https://",
        ],
    );
    assert_errors(
        &edit("\"http://10.0.0.7:8080\"", "\"http://10.0.0.7:8080/v1?x=1\""),
        &[
            "fleet.yaml:19:15: Runtime \"a100-pool\": spec.endpoints[0]: \"http://10.0.0.7:8080/v1?x=1\" is not a valid endpoint URL: it must not have a query (`?...`)",
        ],
    );
}

#[test]
fn negative_price_and_ranges() {
    let src = edit(
        "    memoryGiB: 80\n",
        "    memoryGiB: 0\n  pricePerAcceleratorHour: -1.5\n",
    )
    .replace("    replicas: 2", "    replicas: 0\n    speedup: -2")
    .replace("contextLength: 8192", "contextLength: 0");
    assert_errors(
        &src,
        &[
            "fleet.yaml:8:5: Runtime \"h100-pool\": spec.simulated.replicas: must be at least 1",
            "fleet.yaml:9:5: Runtime \"h100-pool\": spec.simulated.speedup: must be greater than 0, got -2",
            "fleet.yaml:12:5: Runtime \"h100-pool\": spec.accelerator.memoryGiB: must be greater than 0, got 0",
            "fleet.yaml:13:3: Runtime \"h100-pool\": spec.pricePerAcceleratorHour: must be at least 0, got -1.5",
            "fleet.yaml:32:3: Model \"llama-3-8b\": spec.contextLength: must be greater than 0",
        ],
    );
}

#[test]
fn bad_parameters() {
    assert_errors(
        &edit("parameters: 8B", "parameters: 8Q"),
        &[
            "fleet.yaml:29:15: Model \"llama-3-8b\": spec.parameters: invalid value: string \"8Q\", expected a parameter count: an integer or a number with a suffix K, M, B or T, like \"8B\" or \"1.5B\"",
        ],
    );
    assert_errors(
        &edit("parameters: 8B", "parameters: -8"),
        &[
            "fleet.yaml:29:15: Model \"llama-3-8b\": spec.parameters: invalid value: integer `-8`, expected a parameter count: an integer or a number with a suffix K, M, B or T, like \"8B\" or \"1.5B\"",
        ],
    );
    assert_errors(
        &edit("parameters: 8B", "parameters: 0"),
        &["fleet.yaml:29:3: Model \"llama-3-8b\": spec.parameters: must be greater than 0"],
    );
}

#[test]
fn empty_file() {
    assert_errors(
        "",
        &["fleet.yaml:1: no resources found: expected YAML documents with apiVersion, kind, metadata and spec"],
    );
    assert_errors(
        "---\n# nothing here\n---\n",
        &["fleet.yaml:1: no resources found: expected YAML documents with apiVersion, kind, metadata and spec"],
    );
}

#[test]
fn not_a_mapping() {
    assert_errors(
        &format!("{FLEET}---\n- a\n- b\n"),
        &["fleet.yaml:33:1: expected a resource: a mapping with apiVersion, kind, metadata and spec"],
    );
}

#[test]
fn all_errors_are_collected_in_file_order() {
    let src = edit("  kind: vllm", "  kind: vllmm")
        .replace("  name: a100-pool", "  name: A100")
        .replace("  contextLength: 8192", "  contextLength: 8192\n  foo: 1");
    assert_errors(
        &src,
        &[
            "fleet.yaml:6:9: Runtime \"h100-pool\": spec.kind: unknown variant `vllmm`, expected one of `vllm`, `sglang`, `tgi`, `triton`, `tensorrt-llm`, `ollama`, `llamacpp`, `openai`",
            "fleet.yaml:16:3: Runtime \"A100\": metadata.name: \"A100\" is not a valid name: use 1 to 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
            "fleet.yaml:31:3: Model \"llama-3-8b\": spec: unknown field `foo`, expected one of `displayName`, `servedName`, `version`, `parameters`, `contextLength`, `runtimes`, `precision`, `embedding`",
        ],
    );
}

#[test]
fn load_file_errors() {
    let e = pyxis_resources::Fleet::load_file(std::path::Path::new("/nonexistent/fleet.yaml"));
    assert_eq!(
        e.map_err(|e| e.to_string()),
        Err("/nonexistent/fleet.yaml: cannot read the file: No such file or directory (os error 2)".into())
    );
}

#[test]
fn dedicated_to_an_unknown_tenant() {
    assert_errors(
        &edit("  kind: tgi\n", "  kind: tgi\n  dedicatedTo: team-x\n"),
        &[
            "fleet.yaml:19:3: Runtime \"a100-pool\": spec.dedicatedTo: no Tenant named \"team-x\" to dedicate this runtime to",
        ],
    );
}
