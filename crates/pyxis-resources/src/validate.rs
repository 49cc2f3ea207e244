//! Semantic checks that serde cannot express: names, numeric ranges, URLs, the real-or-simulated rule, and the
//! cross-document rules (unique names, `Model.runtimes` naming existing `Runtime`s).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ConfigError;
use crate::locate::Seg::{self, Index, Key};
use crate::meta::{MAX_NAME_LEN, Metadata, is_valid_name};
use crate::parse::{AnyResource, Cx, Parsed};
use crate::url::check_endpoint;
use crate::{ModelSpec, RuntimeSpec, TenantSpec};

/// Checks of one resource on its own.
pub(crate) fn check_resource(cx: &Cx<'_>, res: &AnyResource, errors: &mut Vec<ConfigError>) {
    let mut e = |path: &[Seg<'_>], msg: String| errors.push(cx.error(path, msg));
    match res {
        AnyResource::Tenant(r) => {
            check_metadata(&r.metadata, &mut e);
            check_tenant(&r.spec, &mut e);
        }
        AnyResource::Model(r) => {
            check_metadata(&r.metadata, &mut e);
            check_model(&r.spec, &mut e);
        }
        AnyResource::Runtime(r) => {
            check_metadata(&r.metadata, &mut e);
            check_runtime(&r.spec, &mut e);
        }
    }
}

type Report<'r> = dyn FnMut(&[Seg<'_>], String) + 'r;

fn check_metadata(m: &Metadata, e: &mut Report<'_>) {
    if !is_valid_name(&m.name) {
        e(
            &[Key("metadata"), Key("name")],
            format!(
                "\"{}\" is not a valid name: use 1 to {MAX_NAME_LEN} lowercase letters, digits, '-' or '.', \
                 starting and ending with a letter or digit",
                m.name
            ),
        );
    }
}

/// `Some(message)` unless `v` is finite and greater than 0.
fn positive(v: f64) -> Option<String> {
    (!(v.is_finite() && v > 0.0)).then(|| format!("must be greater than 0, got {v}"))
}

/// `Some(message)` unless `v` is finite and at least 0.
fn non_negative(v: f64) -> Option<String> {
    (!(v.is_finite() && v >= 0.0)).then(|| format!("must be at least 0, got {v}"))
}

fn check_tenant(s: &TenantSpec, e: &mut Report<'_>) {
    if let Some(msg) = positive(s.weight) {
        e(&[Key("spec"), Key("weight")], msg);
    }
}

fn check_model(s: &ModelSpec, e: &mut Report<'_>) {
    if s.version.trim().is_empty() {
        e(&[Key("spec"), Key("version")], "must not be empty".into());
    }
    if s.served_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        e(&[Key("spec"), Key("servedName")], "must not be empty".into());
    }
    if s.parameters == 0 {
        e(&[Key("spec"), Key("parameters")], "must be greater than 0".into());
    }
    if s.context_length == 0 {
        e(&[Key("spec"), Key("contextLength")], "must be greater than 0".into());
    }
    if s.runtimes.is_empty() {
        e(&[Key("spec"), Key("runtimes")], "must name at least one Runtime".into());
    }
    let mut seen = BTreeSet::new();
    for (i, r) in s.runtimes.iter().enumerate() {
        if !seen.insert(r) {
            e(
                &[Key("spec"), Key("runtimes"), Index(i)],
                format!("\"{r}\" is listed twice"),
            );
        }
    }
}

fn check_runtime(s: &RuntimeSpec, e: &mut Report<'_>) {
    let endpoints = s.endpoint_urls();
    match (&s.simulated, endpoints.is_empty()) {
        (Some(_), false) => e(
            &[Key("spec"), Key("simulated")],
            "a Runtime has either endpoints (real servers) or simulated (the built-in simulator), not both".into(),
        ),
        (None, true) => e(
            &[Key("spec")],
            "a Runtime needs either endpoints (real servers) or simulated (the built-in simulator)".into(),
        ),
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for (i, url) in endpoints.iter().enumerate() {
        let path = [Key("spec"), Key("endpoints"), Index(i)];
        if let Err(why) = check_endpoint(url) {
            e(&path, format!("\"{url}\" is not a valid endpoint URL: it {why}"));
        } else if !seen.insert(url) {
            e(&path, format!("\"{url}\" is listed twice"));
        }
    }
    if let Some(sim) = &s.simulated {
        if sim.replicas == 0 {
            e(
                &[Key("spec"), Key("simulated"), Key("replicas")],
                "must be at least 1".into(),
            );
        }
        if let Some(msg) = positive(sim.speedup) {
            e(&[Key("spec"), Key("simulated"), Key("speedup")], msg);
        }
    }
    let acc = &s.accelerator;
    let ty = acc.r#type.as_str();
    let ty_path = [Key("spec"), Key("accelerator"), Key("type")];
    if ty.is_empty() {
        e(&ty_path, "must not be empty".into());
    } else if ty.chars().any(|c| c.is_ascii_uppercase()) {
        e(
            &ty_path,
            format!("\"{ty}\" must be lowercase (\"{}\")", ty.to_ascii_lowercase()),
        );
    } else if !ty
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
    {
        e(
            &ty_path,
            format!("\"{ty}\" may only contain lowercase letters, digits, '-', '_' and '.'"),
        );
    }
    if acc.count == 0 {
        e(
            &[Key("spec"), Key("accelerator"), Key("count")],
            "must be at least 1".into(),
        );
    }
    if let Some(msg) = positive(acc.memory_gib) {
        e(&[Key("spec"), Key("accelerator"), Key("memoryGiB")], msg);
    }
    for (key, price) in [
        ("pricePerAcceleratorHour", s.price_per_accelerator_hour),
        ("pricePerMillionTokens", s.price_per_million_tokens),
    ] {
        if let Some(msg) = price.and_then(non_negative) {
            e(&[Key("spec"), Key(key)], msg);
        }
    }
    if let Some(var) = &s.api_key_env {
        let ok = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            e(
                &[Key("spec"), Key("apiKeyEnv")],
                format!(
                    "\"{var}\" is not a valid environment variable name (letters, digits and '_', not starting with a digit)"
                ),
            );
        }
    }
}

/// Checks across documents: unique kind + name, and `Model.runtimes` naming `Runtime`s of the file.
pub(crate) fn check_fleet(docs: &[Parsed<'_>], errors: &mut Vec<ConfigError>) {
    let name_path = [Key("metadata"), Key("name")];
    let mut first: BTreeMap<(&str, &str), &Parsed<'_>> = BTreeMap::new();
    for p in docs {
        let (Some(kind), Some(name)) = (p.kind, p.name.as_deref()) else {
            continue;
        };
        if let Some(prev) = first.get(&(kind, name)) {
            let (line, col) = prev.cx.position(&name_path);
            let at = ConfigError::new(prev.cx.file, Some(line), col, "").location();
            errors.push(p.cx.error(
                &name_path,
                format!("duplicate {kind} \"{name}\", first defined at {at}"),
            ));
        } else {
            first.insert((kind, name), p);
        }
    }
    let runtimes: BTreeSet<&str> = first.keys().filter(|(k, _)| *k == "Runtime").map(|(_, n)| *n).collect();
    let known = if runtimes.is_empty() {
        "none".to_string()
    } else {
        runtimes.iter().copied().collect::<Vec<_>>().join(", ")
    };
    let tenants: BTreeSet<&str> = first.keys().filter(|(k, _)| *k == "Tenant").map(|(_, n)| *n).collect();
    for p in docs {
        if let Some(AnyResource::Runtime(r)) = &p.resource
            && let Some(t) = &r.spec.dedicated_to
            && !tenants.contains(t.as_str())
        {
            errors.push(p.cx.error(
                &[Key("spec"), Key("dedicatedTo")],
                format!("no Tenant named \"{t}\" to dedicate this runtime to"),
            ));
        }
    }
    for p in docs {
        let Some(AnyResource::Model(m)) = &p.resource else {
            continue;
        };
        for (i, r) in m.spec.runtimes.iter().enumerate() {
            if !runtimes.contains(r.as_str()) {
                errors.push(p.cx.error(
                    &[Key("spec"), Key("runtimes"), Index(i)],
                    format!("no Runtime named \"{r}\" (known: {known})"),
                ));
            }
        }
    }
}
