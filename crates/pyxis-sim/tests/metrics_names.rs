//! The simulator's `/metrics` against a real scrape of vLLM 0.32 (CPU build, tiny model):
//! same `vllm:` families, same types, same label names, same histogram buckets.

mod common;

use std::collections::BTreeMap;

use common::*;
use pyxis_sim::Surface;

const REAL: &str = include_str!("fixtures/vllm_0.32_cpu_metrics.txt");

/// family → (type, sorted label names of its first sample, `le` bounds when a histogram).
fn families(text: &str) -> BTreeMap<String, (String, Vec<String>, Vec<String>)> {
    let mut out: BTreeMap<String, (String, Vec<String>, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE vllm:") {
            let mut p = rest.split(' ');
            let name = format!("vllm:{}", p.next().unwrap_or(""));
            if !name.ends_with("_created") {
                out.insert(name, (p.next().unwrap_or("").to_string(), Vec::new(), Vec::new()));
            }
        } else if line.starts_with("vllm:") {
            let (head, _) = line.rsplit_once(' ').expect("value");
            let (name, labels) = head.split_once('{').unwrap_or((head, ""));
            let fam = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            let Some(entry) = out.get_mut(fam) else { continue };
            let mut names: Vec<String> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| k != "le")
                .collect();
            names.sort();
            if entry.1.is_empty() {
                entry.1 = names;
            }
            if let Some(le) = labels.split(',').find_map(|kv| kv.strip_prefix("le=\"")) {
                entry.2.push(le.trim_end_matches(['"', '}']).to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_types_labels_and_buckets_match_real_vllm() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.hardware = "cpu".into();
    spec.model = "tiny".into();
    spec.served_model_names = vec!["tiny".into()];
    let h = start(spec).await;
    let ours = client()
        .get(format!("{}/metrics", h.url()))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    check_exposition(&ours);
    check_exposition(REAL);
    let (real, mine) = (families(REAL), families(&ours));
    for (name, (kind, labels, buckets)) in &real {
        let Some((k, l, b)) = mine.get(name) else {
            panic!("missing family {name}")
        };
        assert_eq!(k, kind, "{name}: type");
        assert_eq!(l, labels, "{name}: label names");
        if kind == "histogram" {
            assert_eq!(b, buckets, "{name}: buckets");
        }
    }
    // The real server has the `vllm:` families and nothing of ours is extra but LoRA info.
    let extra: Vec<&String> = mine.keys().filter(|k| !real.contains_key(*k)).collect();
    assert!(extra.is_empty(), "families vLLM does not have: {extra:?}");
    h.shutdown().await;
}
