//! The Grafana dashboard queries only series the gateway exports, with labels those series carry.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly on purpose

mod common;

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

const DASHBOARD: &str = include_str!("../../../deploy/grafana/pyxis-dashboard.json");

/// Every PromQL string in the dashboard: panel targets and template variable queries.
fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) if s.contains("pyxis_") => out.push(s.clone()),
                    _ => queries(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| queries(x, out)),
        _ => {}
    }
}

/// Sample name → label names, read from the exposition text.
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let text = common::exercised().encode();
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*""#).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let end = line.find(['{', ' ']).unwrap();
        let labels = out.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            let close = line.rfind('}').unwrap();
            for c in label.captures_iter(&line[end..=close]) {
                labels.insert(c[1].to_string());
            }
        }
    }
    out
}

#[test]
fn dashboard_refers_only_to_exported_metrics_and_their_labels() {
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for v in ["datasource", "tenant", "model"] {
        assert!(vars.contains(&v), "template variable ${v} missing: {vars:?}");
    }
    let rows: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows, ["Fleet", "Tenants", "Latency", "Queues", "Cost"]);

    let mut qs = Vec::new();
    queries(&dash, &mut qs);
    assert!(qs.len() > 30, "{} queries", qs.len());
    let metrics = exported();
    // A name followed by a selector or a range, or a bare name argument.
    let ident = Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*").unwrap();
    let selector = Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}").unwrap();
    let matcher = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""#).unwrap();
    let by = Regex::new(r"\bby\s*\(([^)]*)\)").unwrap();
    let mut used = BTreeSet::new();
    for q in &qs {
        let names: Vec<&str> = ident
            .find_iter(q)
            .map(|m| m.as_str())
            .filter(|n| n.starts_with("pyxis"))
            .collect();
        assert!(!names.is_empty() || q.starts_with("label_values"), "no metric in `{q}`");
        let mut labels_here = BTreeSet::from(["le".to_string()]);
        for n in &names {
            assert!(!n.contains(':'), "recording-rule name `{n}` in `{q}`: none are shipped");
            let labels = metrics
                .get(*n)
                .unwrap_or_else(|| panic!("`{n}` in `{q}` is not exported; exported: {:?}", metrics.keys()));
            labels_here.extend(labels.iter().cloned());
            used.insert(n.to_string());
        }
        for c in selector.captures_iter(q) {
            let Some(labels) = metrics.get(&c[1]) else { continue };
            for m in matcher.captures_iter(&c[2]) {
                assert!(
                    labels.contains(&m[1]),
                    "`{}` has no label `{}` (in `{q}`)",
                    &c[1],
                    &m[1]
                );
            }
        }
        for c in by.captures_iter(q) {
            for l in c[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                assert!(labels_here.contains(l), "`by ({l})` over metrics without it in `{q}`");
            }
        }
    }
    // Every family has a panel.
    for f in common::FAMILIES {
        let base = f.trim_end_matches("_count");
        assert!(
            used.iter().any(|u| u.starts_with(base)),
            "no panel shows {f}; used: {used:?}"
        );
    }
}
