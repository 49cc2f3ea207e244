//! Semantic checks that serde cannot express: names, numeric ranges, URLs, the real-or-simulated rule, and the
//! cross-document rules (unique names, `Model.runtimes` naming existing `Runtime`s).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ConfigError;
use crate::locate::Seg::{self, Index, Key};
use crate::meta::{MAX_NAME_LEN, Metadata, is_valid_name};
use crate::parse::{AnyResource, Cx, Parsed};
use crate::url::check_endpoint;
use crate::{ModelDeploymentSpec, ModelSpec, PriorityTierSpec, RoutingPolicySpec, RuntimeSpec, TenantSpec};

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
        AnyResource::PriorityTier(r) => {
            check_metadata(&r.metadata, &mut e);
            check_tier(&r.spec, &mut e);
        }
        AnyResource::RoutingPolicy(r) => {
            check_metadata(&r.metadata, &mut e);
            check_policy(&r.spec, &mut e);
        }
        AnyResource::ModelDeployment(r) => {
            check_metadata(&r.metadata, &mut e);
            check_deployment(&r.spec, &mut e);
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
    if let Some(q) = &s.quotas {
        let counts = [
            ("requestsPerMinute", q.requests_per_minute.map(u64::from)),
            ("tokensPerMinute", q.tokens_per_minute),
            ("concurrentRequests", q.concurrent_requests.map(u64::from)),
            ("tokensPerDay", q.tokens_per_day),
            ("tokensPerMonth", q.tokens_per_month),
        ];
        for (key, v) in counts {
            if v == Some(0) {
                e(
                    &[Key("spec"), Key("quotas"), Key(key)],
                    "must be at least 1 (remove the field for no limit)".into(),
                );
            }
        }
        for (key, v) in [("costPerDay", q.cost_per_day), ("costPerMonth", q.cost_per_month)] {
            if let Some(msg) = v.and_then(positive) {
                e(&[Key("spec"), Key("quotas"), Key(key)], msg);
            }
        }
    }
    if let Some(q) = &s.queue {
        if q.max_queued == Some(0) {
            e(
                &[Key("spec"), Key("queue"), Key("maxQueued")],
                "must be at least 1".into(),
            );
        }
        if q.timeout_ms == Some(0) {
            e(
                &[Key("spec"), Key("queue"), Key("timeoutMs")],
                "must be at least 1".into(),
            );
        }
    }
    for (class, n) in s.accelerator_quota.iter().flatten() {
        if let Some(msg) = accelerator_type(class) {
            e(
                &[Key("spec"), Key("acceleratorQuota"), Key(class)],
                format!("{msg} (accelerator class, got {n})"),
            );
        }
    }
}

fn check_tier(s: &PriorityTierSpec, e: &mut Report<'_>) {
    if !(s.min_share.is_finite() && (0.0..=1.0).contains(&s.min_share)) {
        e(
            &[Key("spec"), Key("minShare")],
            format!("must be between 0 and 1, got {}", s.min_share),
        );
    }
}

fn check_policy(s: &RoutingPolicySpec, e: &mut Report<'_>) {
    if s.models.is_empty() {
        e(
            &[Key("spec"), Key("models")],
            "must name at least one Model, or \"*\" for every model".into(),
        );
    }
    if let Some(w) = &s.weights {
        for (key, v) in [
            ("load", w.load),
            ("latency", w.latency),
            ("prefix", w.prefix),
            ("cost", w.cost),
            ("session", w.session),
        ] {
            if let Some(msg) = v.and_then(non_negative) {
                e(&[Key("spec"), Key("weights"), Key(key)], msg);
            }
        }
    }
    if s.latency_budget_ms == Some(0) {
        e(&[Key("spec"), Key("latencyBudgetMs")], "must be at least 1".into());
    }
    if let Some(r) = &s.retry {
        if r.max_attempts.is_some_and(|n| !(1..=10).contains(&n)) {
            e(
                &[Key("spec"), Key("retry"), Key("maxAttempts")],
                "must be between 1 and 10".into(),
            );
        }
        if r.budget_ratio
            .is_some_and(|v| !(v.is_finite() && (0.0..=1.0).contains(&v)))
        {
            e(
                &[Key("spec"), Key("retry"), Key("budgetRatio")],
                "must be between 0 and 1".into(),
            );
        }
        if r.attempt_timeout_ms == Some(0) {
            e(
                &[Key("spec"), Key("retry"), Key("attemptTimeoutMs")],
                "must be at least 1".into(),
            );
        }
    }
    if let Some(j) = &s.ejection {
        for (key, v) in [
            ("consecutiveFailures", j.consecutive_failures.map(u64::from)),
            ("baseMs", j.base_ms),
            ("maxMs", j.max_ms),
        ] {
            if v == Some(0) {
                e(&[Key("spec"), Key("ejection"), Key(key)], "must be at least 1".into());
            }
        }
        if let (Some(base), Some(max)) = (j.base_ms, j.max_ms)
            && max < base
        {
            e(
                &[Key("spec"), Key("ejection"), Key("maxMs")],
                format!("must be at least baseMs ({base})"),
            );
        }
    }
}

fn check_deployment(s: &ModelDeploymentSpec, e: &mut Report<'_>) {
    if let Some(msg) = accelerator_type(&s.accelerator.r#type) {
        e(&[Key("spec"), Key("accelerator"), Key("type")], msg);
    }
    if s.accelerator.count == 0 {
        e(
            &[Key("spec"), Key("accelerator"), Key("count")],
            "must be at least 1".into(),
        );
    }
    if s.replicas == 0 {
        e(&[Key("spec"), Key("replicas")], "must be at least 1".into());
    }
    if s.port == Some(0) {
        e(&[Key("spec"), Key("port")], "must be between 1 and 65535".into());
    }
    if s.fallback.iter().flatten().any(|k| *k == crate::RuntimeKind::Openai) {
        e(
            &[Key("spec"), Key("fallback")],
            "\"openai\" is not a runtime the operator can deploy".into(),
        );
    }
    if let Some(c) = &s.cache
        && c.size.trim().is_empty()
    {
        e(&[Key("spec"), Key("cache"), Key("size")], "must not be empty".into());
    }
}

/// `Some(message)` unless `ty` is a valid accelerator class name.
fn accelerator_type(ty: &str) -> Option<String> {
    if ty.is_empty() {
        Some("must not be empty".into())
    } else if ty.chars().any(|c| c.is_ascii_uppercase()) {
        Some(format!("\"{ty}\" must be lowercase (\"{}\")", ty.to_ascii_lowercase()))
    } else if !ty
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
    {
        Some(format!(
            "\"{ty}\" may only contain lowercase letters, digits, '-', '_' and '.'"
        ))
    } else {
        None
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
    if let Some(msg) = accelerator_type(&acc.r#type) {
        e(&[Key("spec"), Key("accelerator"), Key("type")], msg);
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
    if s.max_in_flight_tokens == Some(0) {
        e(&[Key("spec"), Key("maxInFlightTokens")], "must be at least 1".into());
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
    let names = |kind: &str| -> BTreeSet<&str> { first.keys().filter(|(k, _)| *k == kind).map(|(_, n)| *n).collect() };
    let tiers = names("PriorityTier");
    let models = names("Model");
    let list = |set: &BTreeSet<&str>| {
        if set.is_empty() {
            "none".to_string()
        } else {
            set.iter().copied().collect::<Vec<_>>().join(", ")
        }
    };
    let mut policy_of: BTreeMap<&str, &str> = BTreeMap::new();
    for p in docs {
        match &p.resource {
            Some(AnyResource::Tenant(t)) => {
                if let Some(tier) = &t.spec.priority_tier
                    && !tiers.contains(tier.as_str())
                {
                    errors.push(p.cx.error(
                        &[Key("spec"), Key("priorityTier")],
                        format!("no PriorityTier named \"{tier}\" (known: {})", list(&tiers)),
                    ));
                }
            }
            Some(AnyResource::RoutingPolicy(r)) => {
                for (i, m) in r.spec.models.iter().enumerate() {
                    let path = [Key("spec"), Key("models"), Index(i)];
                    if m != "*" && !models.contains(m.as_str()) {
                        errors.push(p.cx.error(&path, format!("no Model named \"{m}\" (known: {})", list(&models))));
                    } else if let Some(other) = policy_of.insert(m.as_str(), r.metadata.name.as_str()) {
                        let what = if m == "*" {
                            "the default (\"*\")".to_string()
                        } else {
                            format!("Model \"{m}\"")
                        };
                        errors.push(p.cx.error(
                            &path,
                            format!("{what} already has the RoutingPolicy \"{other}\"; a model has at most one"),
                        ));
                    }
                }
            }
            Some(AnyResource::ModelDeployment(d)) => {
                if !models.contains(d.spec.model.as_str()) {
                    errors.push(p.cx.error(
                        &[Key("spec"), Key("model")],
                        format!("no Model named \"{}\" (known: {})", d.spec.model, list(&models)),
                    ));
                }
                if let Some(t) = &d.spec.tenant
                    && !tenants.contains(t.as_str())
                {
                    errors.push(p.cx.error(
                        &[Key("spec"), Key("tenant")],
                        format!("no Tenant named \"{t}\" (known: {})", list(&tenants)),
                    ));
                }
            }
            _ => {}
        }
    }
    let deployed: BTreeSet<&str> = docs
        .iter()
        .filter_map(|p| match &p.resource {
            Some(AnyResource::ModelDeployment(d)) => Some(d.spec.model.as_str()),
            _ => None,
        })
        .collect();
    for p in docs {
        let Some(AnyResource::Model(m)) = &p.resource else {
            continue;
        };
        if m.spec.runtimes.is_empty() && !deployed.contains(m.metadata.name.as_str()) {
            errors.push(p.cx.error(
                &[Key("spec"), Key("runtimes")],
                "must name at least one Runtime (or be served by a ModelDeployment)",
            ));
        }
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
