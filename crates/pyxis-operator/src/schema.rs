//! Rewrites the spec types' JSON Schemas into what a Kubernetes structural schema accepts.
//!
//! kube's derive already inlines subschemas (no `$ref`/`definitions`), turns `Option` into `nullable`, folds enum
//! `oneOf`s into `enum`, and drops `additionalProperties: false` next to `properties` (the API server rejects the
//! pair). What is left is JSON Schema 2020 syntax that OpenAPI v3.0 (and so `JSONSchemaProps`) spells differently.

use schemars::Schema;
use schemars::transform::transform_subschemas;
use serde_json::Value;

/// Applied to every CRD spec and status type (`#[schemars(transform = structural)]`), recursively:
/// - `exclusiveMinimum: N` / `exclusiveMaximum: N` (numbers) become `minimum: N` / `maximum: N` with the boolean
///   `exclusiveMinimum: true` / `exclusiveMaximum: true` of OpenAPI v3.0; a number there fails to parse as
///   `JSONSchemaProps` and kube's generated `crd()` would panic.
/// - `$schema`, `$id`, `$comment` and `examples` go: the API server rejects or ignores them.
pub fn structural(schema: &mut Schema) {
    transform_subschemas(&mut structural, schema);
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(v @ Value::Number(_)) = obj.get(exclusive).cloned() {
            obj.insert(bound.to_string(), v);
            obj.insert(exclusive.to_string(), Value::Bool(true));
        }
    }
    for key in ["$schema", "$id", "$comment", "examples"] {
        obj.remove(key);
    }
}

/// Applied to each generated CRD as JSON: kube's rewriter hoists the `type`s out of the `anyOf` of an
/// int-or-string field, leaving `anyOf: [{}, {}]`, which validates nothing; this restores the one `anyOf` shape the
/// API server allows there, `[{type: integer}, {type: string}]`.
pub fn int_or_string(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                obj.remove("type");
                obj.insert(
                    "anyOf".into(),
                    serde_json::json!([{ "type": "integer" }, { "type": "string" }]),
                );
            }
            obj.values_mut().for_each(int_or_string);
        }
        Value::Array(items) => items.iter_mut().for_each(int_or_string),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{int_or_string, structural};
    use serde_json::json;

    #[test]
    fn int_or_string_gets_its_canonical_any_of() {
        let mut v = json!({"properties": {"parameters": {"anyOf": [{}, {}], "x-kubernetes-int-or-string": true}}});
        int_or_string(&mut v);
        assert_eq!(
            v,
            json!({"properties": {"parameters": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": true
            }}})
        );
    }

    #[test]
    fn exclusive_bounds_become_openapi_v3_booleans() {
        let mut s: schemars::Schema = serde_json::from_value(json!({
            "type": "object",
            "properties": {
                "weight": {"type": "number", "exclusiveMinimum": 0},
                "nested": {"type": "object", "properties": {"x": {"type": "number", "exclusiveMaximum": 5.5}}},
                "kept": {"type": "number", "minimum": 1}
            },
            "$comment": "dropped"
        }))
        .unwrap();
        structural(&mut s);
        assert_eq!(
            s.as_value(),
            &json!({
                "type": "object",
                "properties": {
                    "weight": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                    "nested": {"type": "object", "properties": {"x": {"type": "number", "maximum": 5.5, "exclusiveMaximum": true}}},
                    "kept": {"type": "number", "minimum": 1}
                }
            })
        );
    }
}
