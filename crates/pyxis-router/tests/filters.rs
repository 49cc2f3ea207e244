//! Each filter alone: the endpoint it removes is reported with its reason and never chosen.

mod common;

use common::{eps, req, views};
use pyxis_router::{FilterReason, Router, RoutingConfig, fits};

fn only(reason: FilterReason, d: &pyxis_router::Decision<'_>, removed: usize) {
    assert_eq!(d.candidates[removed].rejected, Some(reason), "{}", d.explain());
    assert_ne!(d.chosen, Some(removed));
    for (i, c) in d.candidates.iter().enumerate() {
        if i != removed {
            assert_eq!(c.rejected, None, "{}", d.explain());
        }
    }
}

#[test]
fn excluded_endpoints_are_skipped() {
    let e = eps(3);
    let mut r = Router::new(RoutingConfig::default());
    let d = r.decide(0, &req(&[]), &views(&e), &[1]);
    only(FilterReason::Excluded, &d, 1);
    let d = r.decide(0, &req(&[]), &views(&e), &[0, 1, 2]);
    assert_eq!(d.chosen, None);
}

#[test]
fn unhealthy_endpoints_are_skipped() {
    let mut e = eps(3);
    e[2].healthy = false;
    let mut r = Router::new(RoutingConfig::default());
    for t in 0..10 {
        only(FilterReason::Unhealthy, &r.decide(t, &req(&[]), &views(&e), &[]), 2);
    }
}

#[test]
fn ejected_endpoints_are_skipped_until_a_probe_passes() {
    let e = eps(2);
    let mut r = Router::new(RoutingConfig::default());
    for _ in 0..5 {
        r.on_failure(1_000, &e[0].key);
    }
    assert!(r.is_ejected(1_000, &e[0].key));
    only(FilterReason::Ejected, &r.decide(2_000, &req(&[]), &views(&e), &[]), 0);
    assert!(r.probe_due(30_999).is_empty());
    assert_eq!(r.probe_due(31_000), vec![e[0].key.clone()]);
    // The back-off only says when to probe: still out until the probe passes.
    only(FilterReason::Ejected, &r.decide(40_000, &req(&[]), &views(&e), &[]), 0);
    r.on_success(40_000, &e[0].key);
    assert!(!r.is_ejected(40_000, &e[0].key));
    assert!(
        r.decide(40_001, &req(&[]), &views(&e), &[]).candidates[0]
            .rejected
            .is_none()
    );
}

#[test]
fn adapter_must_be_loaded() {
    let mut e = eps(3);
    e[0].adapters = vec!["sql".into()];
    e[1].adapters = vec!["sql".into(), "chat".into()];
    let mut r = Router::new(RoutingConfig::default());
    let rq = pyxis_router::RouteRequest {
        adapter: Some("sql"),
        ..req(&[])
    };
    only(FilterReason::Adapter, &r.decide(0, &rq, &views(&e), &[]), 2);
    assert!(
        r.decide(0, &req(&[]), &views(&e), &[])
            .candidates
            .iter()
            .all(|c| c.rejected.is_none())
    );
}

#[test]
fn model_must_fit_with_headroom() {
    assert!(fits(15.0, 22.5, 0.2));
    assert!(!fits(15.0, 17.0, 0.2));
    assert!(fits(15.0, 18.0, 0.2), "exactly at the limit fits");
    assert!(
        fits(0.0, 10.0, 0.2) && fits(15.0, 0.0, 0.2) && fits(f64::NAN, 10.0, 0.2),
        "unknown sizes fit"
    );
    assert!(!fits(140.0, 80.0, 0.0));
    assert!(fits(140.0, 160.0, f64::NAN), "a broken headroom counts as none");
    let mut e = eps(3);
    e[1].memory_gib = 16.0;
    let mut r = Router::new(RoutingConfig::default());
    only(FilterReason::TooSmall, &r.decide(0, &req(&[]), &views(&e), &[]), 1);
}

#[test]
fn hardware_constraint_from_config_and_request() {
    let mut e = eps(3);
    e[0].hardware = "A100".into();
    e[2].hardware = "l4".into();
    let cfg = RoutingConfig {
        hardware: Some(vec!["h100".into(), "a100".into()]),
        ..RoutingConfig::default()
    };
    let mut r = Router::new(cfg);
    only(FilterReason::Hardware, &r.decide(0, &req(&[]), &views(&e), &[]), 2);
    let want = vec!["h100".to_string(), "l4".to_string()];
    let rq = pyxis_router::RouteRequest {
        hardware: Some(&want),
        ..req(&[])
    };
    let d = r.decide(0, &rq, &views(&e), &[]);
    // Config allows h100/a100, request h100/l4: only the h100 is left.
    assert_eq!(d.chosen, Some(1));
    assert_eq!(d.candidates[0].rejected, Some(FilterReason::Hardware));
    assert_eq!(d.candidates[2].rejected, Some(FilterReason::Hardware));
}

#[test]
fn region_constraint_needs_a_known_region() {
    let mut e = eps(3);
    e[0].region = Some("US".into());
    e[1].region = None;
    let want = vec!["us".to_string()];
    let mut r = Router::new(RoutingConfig::default());
    let rq = pyxis_router::RouteRequest {
        regions: Some(&want),
        ..req(&[])
    };
    let d = r.decide(0, &rq, &views(&e), &[]);
    assert_eq!(d.chosen, Some(0));
    assert_eq!(d.candidates[1].rejected, Some(FilterReason::Region));
    assert_eq!(d.candidates[2].rejected, Some(FilterReason::Region));
    let cfg = RoutingConfig {
        regions: Some(vec!["eu".into()]),
        ..RoutingConfig::default()
    };
    r.set_config(cfg);
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.chosen, Some(2));
    assert_eq!(d.candidates[0].rejected, Some(FilterReason::Region));
    assert_eq!(d.candidates[1].rejected, Some(FilterReason::Region));
}

#[test]
fn over_budget_endpoints_are_avoided_only_when_another_meets_the_budget() {
    let e = eps(3);
    let mut r = Router::new(RoutingConfig::default());
    for _ in 0..50 {
        r.on_first_token(0, &e[0].key, 2000, 0, 900.0);
        r.on_first_token(0, &e[1].key, 2000, 0, 100.0);
        r.on_first_token(0, &e[2].key, 2000, 0, 400.0);
    }
    let with_budget = |ms| pyxis_router::RouteRequest {
        latency_budget_ms: Some(ms),
        ..req(&[])
    };
    // Predicted 900, 100 and 400 ms. A 700 ms budget is safely met (within 60 %: 420 ms) by ep1 and ep2.
    let d = r.decide(0, &with_budget(700), &views(&e), &[]);
    only(FilterReason::OverBudget, &d, 0);
    assert!(d.explain().contains("over-budget"), "{}", d.explain());
    // 500 ms: only ep1 meets it with the margin; ep2 (400 ms) is too close to call.
    let d = r.decide(0, &with_budget(500), &views(&e), &[]);
    assert_eq!(d.chosen, Some(1));
    assert_eq!(d.candidates[2].rejected, Some(FilterReason::OverBudget));
    // 150 ms: nobody within the margin, ep1 plainly: the others are still avoided.
    let d = r.decide(0, &with_budget(150), &views(&e), &[]);
    assert_eq!(d.chosen, Some(1));
    assert_eq!(d.candidates[0].rejected, Some(FilterReason::OverBudget));
    assert_eq!(d.candidates[2].rejected, Some(FilterReason::OverBudget));
    // Nobody meets 50 ms: nobody is filtered for it, the fastest still wins.
    let tight = pyxis_router::RouteRequest {
        latency_budget_ms: Some(50),
        ..req(&[])
    };
    let d = r.decide(0, &tight, &views(&e), &[]);
    assert!(d.candidates.iter().all(|c| c.rejected.is_none()), "{}", d.explain());
    assert_eq!(d.chosen, Some(1));
    // The configured budget applies to requests without one.
    r.set_config(RoutingConfig {
        latency_budget_ms: Some(700),
        ..RoutingConfig::default()
    });
    only(FilterReason::OverBudget, &r.decide(0, &req(&[]), &views(&e), &[]), 0);
}

#[test]
fn filters_report_the_first_reason() {
    let mut e = eps(1);
    e[0].healthy = false;
    e[0].memory_gib = 1.0;
    let mut r = Router::new(RoutingConfig::default());
    let d = r.decide(0, &req(&[]), &views(&e), &[0]);
    assert_eq!(d.candidates[0].rejected, Some(FilterReason::Excluded));
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.candidates[0].rejected, Some(FilterReason::Unhealthy));
    assert_eq!(d.chosen, None);
    assert!(d.explain().starts_with("chose=none"), "{}", d.explain());
}
