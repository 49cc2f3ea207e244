//! The committed CRDs in deploy/crds/ are exactly what the Rust types generate; `PYXIS_UPDATE_CRDS=1` rewrites them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = crd_dir();
    let files = pyxis_operator::crd_files();
    if std::env::var_os("PYXIS_UPDATE_CRDS").is_some() {
        for (name, yaml) in &files {
            std::fs::write(dir.join(name), yaml).unwrap();
        }
    }
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    committed.sort();
    let mut generated: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    generated.sort();
    assert_eq!(
        committed, generated,
        "deploy/crds/ holds other files than the generated CRDs"
    );
    for (name, yaml) in &files {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            on_disk == *yaml,
            "deploy/crds/{name} differs from the generated CRD; run `PYXIS_UPDATE_CRDS=1 cargo nextest run -p pyxis-operator --test crds` (or `pyxis crd`) and commit the result"
        );
    }
}

#[test]
fn crds_yaml_is_every_file_in_order() {
    let all = pyxis_operator::crds_yaml();
    let files = pyxis_operator::crd_files();
    assert_eq!(files.len(), 6);
    let expected: String = files.iter().map(|(_, y)| format!("---\n{y}")).collect();
    assert_eq!(all, expected);
    for kind in [
        "Tenant",
        "Model",
        "Runtime",
        "PriorityTier",
        "RoutingPolicy",
        "ModelDeployment",
    ] {
        assert!(all.contains(&format!("    kind: {kind}\n")), "{kind}");
    }
}

/// The rules of a Kubernetes structural schema that the API server checks on a CRD; each problem as `path: rule`.
fn structural_problems(s: &serde_json::Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    use serde_json::Value;
    let Some(obj) = s.as_object() else {
        out.push(format!("{path}: not a schema object"));
        return;
    };
    for banned in [
        "$ref",
        "definitions",
        "$schema",
        "id",
        "patternProperties",
        "dependencies",
        "additionalItems",
    ] {
        if obj.contains_key(banned) {
            out.push(format!("{path}: `{banned}` is not allowed"));
        }
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push(format!("{path}: uniqueItems: true is not allowed"));
    }
    for k in ["exclusiveMinimum", "exclusiveMaximum"] {
        if obj.get(k).is_some_and(|v| !v.is_boolean()) {
            out.push(format!("{path}: {k} must be a boolean in OpenAPI v3.0"));
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties are mutually exclusive"
        ));
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if in_junctor {
        for k in ["type", "description", "default", "additionalProperties", "nullable"] {
            if obj.contains_key(k) {
                out.push(format!("{path}: `{k}` is not allowed inside anyOf/allOf/oneOf/not"));
            }
        }
    } else if int_or_string {
        if obj.contains_key("type") {
            out.push(format!("{path}: an int-or-string has no type"));
        }
        if let Some(any) = obj.get("anyOf")
            && *any != serde_json::json!([{"type": "integer"}, {"type": "string"}])
        {
            out.push(format!(
                "{path}: an int-or-string anyOf must be [integer, string], got {any}"
            ));
        }
    } else if !preserve && obj.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        out.push(format!("{path}: every schema needs a type"));
    }
    if let (Some(d), Some(t)) = (obj.get("default"), obj.get("type").and_then(Value::as_str)) {
        let ok = match t {
            "string" => d.is_string(),
            "integer" => d.is_i64() || d.is_u64(),
            "number" => d.is_number(),
            "boolean" => d.is_boolean(),
            "array" => d.is_array(),
            "object" => d.is_object(),
            _ => false,
        };
        if !ok {
            out.push(format!("{path}: default {d} is not a {t}"));
        }
    }
    for (name, sub) in obj.get("properties").and_then(Value::as_object).into_iter().flatten() {
        structural_problems(sub, &format!("{path}.{name}"), in_junctor, out);
    }
    if let Some(items) = obj.get("items") {
        structural_problems(items, &format!("{path}[]"), in_junctor, out);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        structural_problems(ap, &format!("{path}{{}}"), in_junctor, out);
    }
    for j in ["anyOf", "allOf", "oneOf"] {
        for (i, sub) in obj.get(j).and_then(Value::as_array).into_iter().flatten().enumerate() {
            // The int-or-string pattern is the one place a junctor may carry types.
            if !(int_or_string && j == "anyOf") {
                structural_problems(sub, &format!("{path}.{j}[{i}]"), true, out);
            }
        }
    }
}

#[test]
fn every_crd_schema_is_structural() {
    let mut problems = Vec::new();
    for crd in pyxis_operator::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        assert_eq!(crd.spec.group, pyxis_operator::crd::GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        for v in &crd.spec.versions {
            assert_eq!(v.name, pyxis_operator::crd::VERSION);
            assert_eq!(format!("{}/{}", crd.spec.group, v.name), pyxis_resources::API_VERSION);
            let schema = serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap();
            structural_problems(&schema, &name, false, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_structural_check_finds_what_the_api_server_rejects() {
    let bad = serde_json::json!({"type": "object", "properties": {
        "a": {"properties": {"x": {"type": "string"}}, "additionalProperties": false, "type": "object"},
        "b": {"type": "number", "exclusiveMinimum": 0},
        "c": {"anyOf": [{"type": "string", "description": "d"}]},
        "d": {"$ref": "#/definitions/X"},
        "e": {"x-kubernetes-int-or-string": true, "anyOf": [{}, {}]},
        "f": {"type": "integer", "default": "one"}
    }});
    let mut problems = Vec::new();
    structural_problems(&bad, "bad", false, &mut problems);
    let text = problems.join("\n");
    for expected in [
        "bad.a: properties and additionalProperties",
        "bad.b: exclusiveMinimum must be a boolean",
        "bad.c: every schema needs a type",
        "bad.c.anyOf[0]: `type` is not allowed",
        "bad.c.anyOf[0]: `description` is not allowed",
        "bad.d: `$ref` is not allowed",
        "bad.e: an int-or-string anyOf must be",
        "bad.f: default \"one\" is not a integer",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
