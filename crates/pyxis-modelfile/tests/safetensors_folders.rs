//! `inspect_path` on Hugging Face folders written on the fly: single file, sharded, quantised, broken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::fs;
use std::path::Path;

use fixtures::*;
use pyxis_modelfile::{Format, InspectError, inspect_path};
use pyxis_resources::{ModelSpec, Precision};
use serde_json::json;

fn single_llama(dir: &Path) {
    let t = tiny_llama_tensors("BF16");
    fs::write(dir.join("model.safetensors"), safetensors(&borrowed(&t))).unwrap();
    write_json(&dir.join("config.json"), &tiny_llama_config());
}

fn err_text(r: Result<pyxis_modelfile::ModelInfo, InspectError>) -> String {
    match r {
        Ok(i) => panic!("expected an error, got {i:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn single_file_folder() {
    let d = tempfile::tempdir().unwrap();
    single_llama(d.path());
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.format, Format::Safetensors);
    assert_eq!(info.architecture, "LlamaForCausalLM");
    assert_eq!(info.parameters, TINY_LLAMA_PARAMS);
    assert_eq!(info.weights_bytes, 2 * TINY_LLAMA_PARAMS);
    assert_eq!(
        (info.precision.as_str(), info.precision_class),
        ("bf16", Some(Precision::Bf16))
    );
    assert_eq!(info.bytes_per_param, 2.0);
    assert_eq!(info.context_length, Some(2048));
    assert_eq!(
        (info.layers, info.hidden_size, info.kv_heads, info.head_dim),
        (Some(2), Some(64), Some(2), Some(16))
    );
    // 2 layers × 2 KV heads × 16 × (K and V) × 2 bytes.
    assert_eq!(info.kv_bytes_per_token, Some(256));
    assert_eq!(info.memory.kv_bytes_full_context, Some(256 * 2048));
    assert_eq!(info.files, vec!["config.json", "model.safetensors"]);
    assert_eq!(info.tensors, 21);
    // cpu + 9 GPU classes × 4 counts; a tiny model fits each, except 8 devices for its 4 heads.
    assert_eq!(info.fits.len(), 37);
    for f in &info.fits {
        assert_eq!(f.fits, f.count < 8, "{f:?}");
    }
    let eight = info.fits.iter().find(|f| f.count == 8).unwrap();
    assert_eq!(
        eight.reason.as_deref(),
        Some("4 attention heads do not split over 8 devices")
    );
}

#[test]
fn weights_gib_matches_model_spec() {
    let d = tempfile::tempdir().unwrap();
    single_llama(d.path());
    let info = inspect_path(d.path()).unwrap();
    let spec: ModelSpec = serde_json::from_value(json!({
        "version": "1", "parameters": info.parameters, "contextLength": 2048, "runtimes": ["r"],
        "precision": info.precision_class.unwrap().as_str()
    }))
    .unwrap();
    assert_eq!(info.weights_gib(), spec.weights_gib());
    assert!((info.weights_gib() - info.weights_bytes as f64 / (1u64 << 30) as f64).abs() < 1e-12);
}

#[test]
fn sharded_folder_with_index_equals_single() {
    let d = tempfile::tempdir().unwrap();
    write_sharded_llama(d.path());
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.parameters, TINY_LLAMA_PARAMS);
    assert_eq!(info.tensors, 21);
    assert_eq!(
        info.files,
        vec![
            "config.json",
            "generation_config.json",
            "tokenizer_config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ]
    );
    // Passing the index or config.json itself inspects the folder.
    let via_index = inspect_path(&d.path().join("model.safetensors.index.json")).unwrap();
    assert_eq!(via_index.parameters, TINY_LLAMA_PARAMS);
    let via_config = inspect_path(&d.path().join("config.json")).unwrap();
    assert_eq!(via_config.parameters, TINY_LLAMA_PARAMS);
}

#[test]
fn one_shard_alone_is_inspected_with_the_folder_config() {
    let d = tempfile::tempdir().unwrap();
    write_sharded_llama(d.path());
    let info = inspect_path(&d.path().join("model-00001-of-00002.safetensors")).unwrap();
    assert!(info.parameters < TINY_LLAMA_PARAMS && info.parameters > 0);
    assert_eq!(info.layers, Some(2));
}

#[test]
fn missing_shard_is_named() {
    let d = tempfile::tempdir().unwrap();
    write_sharded_llama(d.path());
    fs::remove_file(d.path().join("model-00002-of-00002.safetensors")).unwrap();
    let e = err_text(inspect_path(d.path()));
    assert!(e.contains("model.safetensors.index.json"), "{e}");
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("fetch the missing shards"),
        "{e}"
    );
}

#[test]
fn index_and_shards_must_agree() {
    let d = tempfile::tempdir().unwrap();
    write_sharded_llama(d.path());
    let p = d.path().join("model.safetensors.index.json");
    let mut idx: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    idx["weight_map"]["lm_head.weight"] = json!("model-00001-of-00002.safetensors");
    write_json(&p, &idx);
    let e = err_text(inspect_path(d.path()));
    assert!(
        e.contains("`lm_head.weight` in `model-00001-of-00002.safetensors`"),
        "{e}"
    );
}

#[test]
fn index_cannot_point_outside_the_folder() {
    let d = tempfile::tempdir().unwrap();
    write_sharded_llama(d.path());
    let p = d.path().join("model.safetensors.index.json");
    write_json(&p, &json!({"weight_map": {"a": "../../etc/passwd"}}));
    let e = err_text(inspect_path(d.path()));
    assert!(e.contains("not a file name in this folder"), "{e}");
}

#[test]
fn truncated_shard_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    single_llama(d.path());
    let p = d.path().join("model.safetensors");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = err_text(inspect_path(d.path()));
    assert!(
        e.contains("model.safetensors") && e.contains("download or convert it again"),
        "{e}"
    );
}

#[test]
fn header_length_beyond_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.safetensors");
    let mut b = (1u64 << 40).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    fs::write(&p, b).unwrap();
    let e = err_text(inspect_path(&p));
    assert!(e.contains("above the 100 MiB"), "{e}");
}

#[test]
fn unknown_dtype_is_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.safetensors");
    let header = br#"{"w":{"dtype":"F12","shape":[2],"data_offsets":[0,3]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend_from_slice(&[0, 0, 0]);
    fs::write(&p, b).unwrap();
    let e = err_text(inspect_path(&p));
    assert!(
        e.contains("`w` has dtype `F12`") && e.contains("Pyxis maintainers"),
        "{e}"
    );
}

#[test]
fn broken_config_is_an_error_and_missing_config_a_note() {
    let d = tempfile::tempdir().unwrap();
    single_llama(d.path());
    fs::write(d.path().join("config.json"), "{ not json").unwrap();
    let e = err_text(inspect_path(d.path()));
    assert!(e.contains("config.json") && e.contains("not valid JSON"), "{e}");
    fs::remove_file(d.path().join("config.json")).unwrap();
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.architecture, "unknown");
    assert_eq!(info.kv_bytes_per_token, None);
    assert!(info.notes.iter().any(|n| n.contains("no config.json")));
}

#[test]
fn pickles_and_empty_folders_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let e = err_text(inspect_path(d.path()));
    assert!(e.contains("no *.safetensors and no .gguf"), "{e}");
    fs::write(d.path().join("pytorch_model.bin"), b"x").unwrap();
    let e = err_text(inspect_path(d.path()));
    assert!(e.contains("PyTorch pickles") && e.contains("safe_serialization"), "{e}");
    let e = err_text(inspect_path(&d.path().join("nope")));
    assert!(e.contains("no such file or folder"), "{e}");
}

#[test]
fn gptq_weights_are_counted_unpacked() {
    let d = tempfile::tempdir().unwrap();
    // A 256 × 128 linear layer in 4-bit GPTQ, group 128: qweight packs 8 values per int32.
    let t = [
        ("l.qweight", "I32", vec![128 / 8, 256]),
        ("l.qzeros", "I32", vec![1, 256 / 8]),
        ("l.scales", "F16", vec![1, 256]),
        ("l.g_idx", "I32", vec![128]),
        ("norm.weight", "F16", vec![128]),
    ];
    fs::write(d.path().join("model.safetensors"), safetensors(&t)).unwrap();
    let mut cfg = tiny_llama_config();
    cfg["quantization_config"] = json!({"quant_method": "gptq", "bits": 4, "group_size": 128});
    write_json(&d.path().join("config.json"), &cfg);
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.parameters, 128 * 256 + 128);
    assert_eq!(info.weights_bytes, 16 * 256 * 4 + 32 * 4 + 256 * 2 + 128 * 4 + 128 * 2);
    assert_eq!(
        (info.precision.as_str(), info.precision_class),
        ("gptq-int4", Some(Precision::Int4))
    );
    assert!(info.bytes_per_param < 0.6, "{}", info.bytes_per_param);
}

#[test]
fn mla_kv_is_the_latent() {
    let d = tempfile::tempdir().unwrap();
    single_llama(d.path());
    let mut cfg = tiny_llama_config();
    cfg["kv_lora_rank"] = json!(512);
    cfg["qk_rope_head_dim"] = json!(64);
    write_json(&d.path().join("config.json"), &cfg);
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.kv_lora_rank, Some(512));
    assert_eq!(info.kv_bytes_per_token, Some(2 * (512 + 64) * 2));
}

/// Llama-3.1-8B's real tensor shapes, in a sparse file: the header is real, the data a hole.
#[test]
fn llama_3_1_8b_shapes() {
    let d = tempfile::tempdir().unwrap();
    let (v, h, f, l) = (128_256u64, 4096u64, 14_336u64, 32);
    let mut t: Vec<(String, &str, Vec<u64>)> = vec![("model.embed_tokens.weight".into(), "BF16", vec![v, h])];
    for i in 0..l {
        for (n, s) in [
            ("input_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![h, h]),
            ("self_attn.k_proj.weight", vec![1024, h]),
            ("self_attn.v_proj.weight", vec![1024, h]),
            ("self_attn.o_proj.weight", vec![h, h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("mlp.gate_proj.weight", vec![f, h]),
            ("mlp.up_proj.weight", vec![f, h]),
            ("mlp.down_proj.weight", vec![h, f]),
        ] {
            t.push((format!("model.layers.{i}.{n}"), "BF16", s));
        }
    }
    t.push(("model.norm.weight".into(), "BF16", vec![h]));
    t.push(("lm_head.weight".into(), "BF16", vec![v, h]));
    // The header, then the file stretched to its full size without writing the data.
    let mut offset = 0u64;
    let mut map = serde_json::Map::new();
    for (n, dt, s) in &t {
        let bytes = s.iter().product::<u64>() * 2;
        map.insert(
            n.clone(),
            json!({"dtype": dt, "shape": s, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let text = serde_json::to_vec(&serde_json::Value::Object(map)).unwrap();
    let mut header = (text.len() as u64).to_le_bytes().to_vec();
    header.extend_from_slice(&text);
    let p = d.path().join("model.safetensors");
    fs::write(&p, &header).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(header.len() as u64 + offset)
        .unwrap();
    write_json(
        &d.path().join("config.json"),
        &json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072}),
    );
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.parameters, 8_030_261_248);
    assert_eq!(info.kv_bytes_per_token, Some(128 * 1024));
    assert!((info.weights_gib() - 14.957).abs() < 0.001, "{}", info.weights_gib());
    assert_eq!(info.min_count("h100"), Some(1));
    assert_eq!(info.min_count("l4"), Some(2));
    assert_eq!(info.min_count("cpu"), Some(1));
}

#[test]
fn hostile_config_numbers_do_not_overflow() {
    let d = tempfile::tempdir().unwrap();
    single_llama(d.path());
    write_json(
        &d.path().join("config.json"),
        &json!({"num_hidden_layers": 4_000_000_000u64, "num_attention_heads": 4_000_000_000u64,
            "num_key_value_heads": 4_000_000_000u64, "head_dim": 4_000_000_000u64,
            "max_position_embeddings": 4_000_000_000u64}),
    );
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.kv_bytes_per_token, Some(u64::MAX));
    assert!(info.fits.iter().all(|f| !f.fits));
}

#[test]
fn lora_adapter_folder_is_noted() {
    let d = tempfile::tempdir().unwrap();
    let t = [("base_model.model.layers.0.q_proj.lora_A.weight", "F32", vec![8, 64])];
    fs::write(d.path().join("adapter_model.safetensors"), safetensors(&t)).unwrap();
    write_json(
        &d.path().join("adapter_config.json"),
        &json!({"r": 8, "peft_type": "LORA"}),
    );
    let info = inspect_path(d.path()).unwrap();
    assert_eq!(info.parameters, 8 * 64);
    assert!(
        info.notes.iter().any(|n| n.contains("LoRA/PEFT adapter")),
        "{:?}",
        info.notes
    );
}
