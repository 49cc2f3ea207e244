//! `inspect_path` on GGUF files written on the fly: quantised, per-layer heads, split, damaged, random.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::fs;

use fixtures::*;
use proptest::prelude::*;
use pyxis_modelfile::{Format, InspectOptions, inspect_path, inspect_path_with, render_table};
use pyxis_resources::Precision;

#[test]
fn quantised_llama() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.Q4_K_M.gguf");
    fs::write(&p, tiny_gguf().bytes()).unwrap();
    let info = inspect_path(&p).unwrap();
    assert_eq!(info.format, Format::Gguf);
    assert_eq!((info.name.as_str(), info.architecture.as_str()), ("tiny-gguf", "llama"));
    assert_eq!(info.parameters, TINY_GGUF_PARAMS);
    assert_eq!(info.weights_bytes, TINY_GGUF_BYTES);
    assert_eq!(
        (info.precision.as_str(), info.precision_class),
        ("Q4_K_M", Some(Precision::Int4))
    );
    assert_eq!(info.context_length, Some(4096));
    assert_eq!((info.layers, info.hidden_size), (Some(2), Some(256)));
    assert_eq!(
        (info.attention_heads, info.kv_heads, info.head_dim),
        (Some(8), Some(2), Some(32))
    );
    // 2 layers × 2 KV heads × (32 + 32) × 2 bytes.
    assert_eq!(info.kv_bytes_per_token, Some(512));
    assert_eq!(info.memory.kv_bytes_full_context, Some(512 * 4096));
    assert_eq!(info.files, vec!["tiny.Q4_K_M.gguf"]);
    assert!(
        info.bytes_per_param > 0.5 && info.bytes_per_param < 0.8,
        "{}",
        info.bytes_per_param
    );
    assert!(info.notes.iter().any(|n| n.contains("Q4_K ×10")), "{:?}", info.notes);
    // The folder holding it is inspected the same.
    assert_eq!(inspect_path(d.path()).unwrap().parameters, TINY_GGUF_PARAMS);
}

#[test]
fn per_layer_kv_heads_and_explicit_key_length() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("hybrid.gguf");
    let mut w = GgufWriter::default();
    w.string("general.architecture", "jamba")
        .u32("jamba.block_count", 3)
        .u32("jamba.embedding_length", 128)
        .u32_array("jamba.attention.head_count", &[4, 4, 4])
        .u32_array("jamba.attention.head_count_kv", &[0, 2, 0])
        .u32("jamba.attention.key_length", 64)
        .u32("jamba.attention.value_length", 64);
    w.tensor("w", &[128], F16);
    fs::write(&p, w.bytes()).unwrap();
    let info = inspect_path(&p).unwrap();
    // Only the one attention layer keeps KV: 2 heads × (64 + 64) × 2 bytes.
    assert_eq!(info.kv_bytes_per_token, Some(512));
    assert_eq!((info.kv_heads, info.head_dim), (Some(2), Some(64)));
    assert_eq!(
        (info.precision.as_str(), info.precision_class),
        ("F16", Some(Precision::Fp16))
    );
    assert_eq!(info.context_length, None);
    assert_eq!(info.memory.kv_bytes_full_context, None);
}

#[test]
fn split_set_is_read_whole_from_any_part() {
    let d = tempfile::tempdir().unwrap();
    let mut a = GgufWriter::default();
    a.string("general.architecture", "llama")
        .u32("llama.block_count", 1)
        .u32("split.no", 0)
        .u32("split.count", 2);
    a.tensor("a", &[64, 4], F32);
    let mut b = GgufWriter::default();
    b.u32("split.no", 1).u32("split.count", 2);
    b.tensor("b", &[32, 8], Q8_0);
    fs::write(d.path().join("m-00001-of-00002.gguf"), a.bytes()).unwrap();
    fs::write(d.path().join("m-00002-of-00002.gguf"), b.bytes()).unwrap();
    for start in ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"] {
        let info = inspect_path(&d.path().join(start)).unwrap();
        assert_eq!(info.parameters, 64 * 4 + 32 * 8, "{start}");
        assert_eq!(info.weights_bytes, 64 * 4 * 4 + 8 * 34);
        assert_eq!(info.architecture, "llama");
        assert_eq!(info.files, vec!["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"]);
    }
    assert_eq!(inspect_path(d.path()).unwrap().tensors, 2);
    fs::remove_file(d.path().join("m-00002-of-00002.gguf")).unwrap();
    let e = inspect_path(d.path()).unwrap_err().to_string();
    assert!(e.contains("m-00002-of-00002.gguf"), "{e}");
}

#[test]
fn two_models_in_a_folder_need_a_choice() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("a.gguf"), tiny_gguf().bytes()).unwrap();
    fs::write(d.path().join("b.gguf"), tiny_gguf().bytes()).unwrap();
    let e = inspect_path(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("2 GGUF models (a.gguf, b.gguf)") && e.contains("pass the one you mean"),
        "{e}"
    );
}

#[test]
fn truncated_file_says_where_and_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("cut.gguf");
    let b = tiny_gguf().bytes();
    fs::write(&p, &b[..b.len() / 2]).unwrap();
    let e = inspect_path(&p).unwrap_err();
    assert_eq!(e.path(), Some(p.as_path()));
    let e = e.to_string();
    assert!(
        e.contains("the tensor data needs") && e.contains("download or convert it again"),
        "{e}"
    );
    fs::write(&p, &b[..100]).unwrap();
    let e = inspect_path(&p).unwrap_err().to_string();
    assert!(e.contains("claims 15 items") && e.contains("cut.gguf"), "{e}");
}

#[test]
fn options_change_the_estimate() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.gguf");
    fs::write(&p, tiny_gguf().bytes()).unwrap();
    let opts = InspectOptions {
        context_tokens: Some(100),
        kv_bytes_per_element: 1,
        cpu_memory_gib: 0.5,
        ..InspectOptions::default()
    };
    let info = inspect_path_with(&p, &opts).unwrap();
    assert_eq!(info.kv_bytes_per_token, Some(256));
    assert_eq!(info.memory.kv_bytes_full_context, Some(25_600));
    let cpu = &info.fits[0];
    assert_eq!((cpu.accelerator.as_str(), cpu.fits), ("cpu", false));
    assert!(cpu.reason.as_deref().unwrap().contains("has 0.5"));
}

#[test]
fn table_shows_the_facts() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.gguf");
    fs::write(&p, tiny_gguf().bytes()).unwrap();
    let t = render_table(&inspect_path(&p).unwrap());
    for needle in [
        "tiny-gguf",
        "llama",
        "Q4_K_M",
        "class int4",
        "4096",
        "h100",
        "mi300x",
        "×8",
        "yes, KV",
    ] {
        assert!(t.contains(needle), "{needle} missing from\n{t}");
    }
}

#[test]
fn cli_renders_json() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("tiny.gguf");
    fs::write(&p, tiny_gguf().bytes()).unwrap();
    let args = pyxis_modelfile::cli::InspectArgs {
        path: p,
        cpu_memory_gib: 64.0,
        context: None,
        kv_bytes: 2,
        output: pyxis_modelfile::cli::InspectOutput::Json,
    };
    let v: serde_json::Value = serde_json::from_str(&pyxis_modelfile::cli::render(&args).unwrap()).unwrap();
    assert_eq!(v["format"], "gguf");
    assert_eq!(v["parameters"], TINY_GGUF_PARAMS);
    assert_eq!(v["precision_class"], "int4");
    assert_eq!(v["fits"].as_array().unwrap().len(), 37);
    assert_eq!(v["memory"]["kv_bytes_per_token"], 512);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the bytes, under either extension, in a folder or alone: an answer or an error, never a panic.
    #[test]
    fn random_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), gguf in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        let name = if gguf { "m.gguf" } else { "model.safetensors" };
        let mut b = if gguf { b"GGUF\x03\0\0\0".to_vec() } else { vec![] };
        b.extend_from_slice(&bytes);
        fs::write(d.path().join(name), &b).unwrap();
        let _ = inspect_path(&d.path().join(name));
        let _ = inspect_path(d.path());
    }
}
