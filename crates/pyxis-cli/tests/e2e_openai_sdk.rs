//! The official `openai` Python package against the real gateway.
//!
//! Needs a Python with `openai` installed, named by `PYXIS_TEST_PYTHON` (scripts/test sets it up).
//! Without it the test says so loudly and fails, unless `PYXIS_SKIP_PYTHON=1` is set on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn official_openai_sdk() {
    let python = match std::env::var("PYXIS_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("PYXIS_SKIP_PYTHON").as_deref() == Ok("1") {
                eprintln!("SKIPPED official_openai_sdk: PYXIS_SKIP_PYTHON=1 (this test did NOT run)");
                return;
            }
            panic!(
                "PYXIS_TEST_PYTHON is not set: run the tests with scripts/test (it makes a venv with the openai package), or set PYXIS_SKIP_PYTHON=1 to skip this test knowingly"
            );
        }
    };
    let srv = Server::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/openai_sdk_check.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&srv.url)
        .arg(KEY)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openai SDK checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("openai SDK checks passed"));
}
