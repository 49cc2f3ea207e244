//! Shared fixtures of the integration tests.
#![allow(dead_code)]

use pyxis_resources::Fleet;

/// A valid three-document fleet: a simulated Runtime (lines 1-11), a real one (13-20), a Model (22-31).
pub const FLEET: &str = "\
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata:
  name: h100-pool
spec:
  kind: vllm
  simulated:
    replicas: 2
  accelerator:
    type: h100
    memoryGiB: 80
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata:
  name: a100-pool
spec:
  kind: tgi
  endpoints: [\"http://10.0.0.7:8080\"]
  accelerator: {type: a100, count: 2, memoryGiB: 80}
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata:
  name: llama-3-8b
  labels: {family: llama}
spec:
  version: \"3.1\"
  parameters: 8B
  contextLength: 8192
  runtimes: [h100-pool, a100-pool]
";

/// `FLEET` with the first occurrence of `from` replaced by `to` (which must exist).
pub fn edit(from: &str, to: &str) -> String {
    assert!(FLEET.contains(from), "fixture has no {from:?}");
    FLEET.replacen(from, to, 1)
}

/// The errors of parsing `src` as `fleet.yaml`, one string each.
pub fn errors(src: &str) -> Vec<String> {
    match Fleet::parse(src, "fleet.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts that `src` fails with exactly `expected`.
#[track_caller]
pub fn assert_errors(src: &str, expected: &[&str]) {
    assert_eq!(errors(src), expected, "\n--- source ---\n{src}");
}
