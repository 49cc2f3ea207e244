//! Properties over random fleets and histories: what decide() must never do, whatever it learned.

mod common;

use common::{Ep, ep, req, views};
use proptest::prelude::*;
use pyxis_router::{
    EjectionConfig, FilterReason, LoadSignal, RouteRequest, Router, RoutingConfig, backoff_ms, prefix_blocks,
};

#[derive(Debug, Clone)]
struct Case {
    eps: Vec<Ep>,
    ejected: Vec<bool>,
    exclude: Vec<usize>,
    /// (endpoint, prompt group, prefix blocks dispatched) before the decision.
    history: Vec<(usize, u8, usize)>,
    ttfts: Vec<(usize, u32, u32, f64)>,
    group: u8,
    session: Option<u8>,
    guard: u32,
    budget: Option<u64>,
    weights_gib: f64,
}

/// (healthy, memory GiB, in flight, (waiting, running, KV use, signal age ms), price)
type EndpointSpec = (bool, f64, u32, Option<(u32, u32, f64, u64)>, Option<f64>);

fn endpoint() -> impl Strategy<Value = EndpointSpec> {
    (
        prop::bool::weighted(0.8),
        prop_oneof![Just(0.0), Just(16.0), Just(24.0), Just(80.0), Just(160.0)],
        0u32..60,
        prop::option::of((0u32..30, 0u32..60, 0.0f64..1.0, 0u64..20_000)),
        prop::option::of(0.05f64..2.0),
    )
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..13).prop_flat_map(|n| {
        (
            prop::collection::vec(endpoint(), n),
            prop::collection::vec(prop::bool::weighted(0.15), n),
            prop::collection::vec(0..n, 0..3),
            prop::collection::vec((0..n, 0u8..3, 1usize..17), 0..20),
            prop::collection::vec((0..n, 1u32..4000, 0u32..50, 1.0f64..3000.0), 0..30),
            0u8..3,
            prop::option::of(0u8..3),
            0u32..20,
            prop::option::of(20u64..2000),
            prop_oneof![Just(0.0), Just(15.0), Just(60.0)],
        )
            .prop_map(
                |(specs, ejected, exclude, history, ttfts, group, session, guard, budget, weights_gib)| Case {
                    eps: specs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (healthy, memory_gib, in_flight, load, price))| Ep {
                            healthy,
                            memory_gib,
                            in_flight,
                            load: load.map(|(waiting, running, kv_use, age_ms)| LoadSignal {
                                waiting,
                                running,
                                kv_use,
                                tokens_per_s: 0.0,
                                age_ms,
                            }),
                            price,
                            ..ep(i)
                        })
                        .collect(),
                    ejected,
                    exclude,
                    history,
                    ttfts,
                    group,
                    session,
                    guard,
                    budget,
                    weights_gib,
                },
            )
    })
}

fn prompt(group: u8) -> Vec<u8> {
    let mut p = vec![group; 512 * 12];
    p.extend((0..512 * 4).map(|i| (i % 251) as u8));
    p
}

fn run(c: &Case) -> (Router, Vec<u64>) {
    let mut r = Router::new(RoutingConfig {
        prefix_max_imbalance: c.guard,
        latency_budget_ms: c.budget,
        ..RoutingConfig::default()
    });
    for (i, e) in c.ejected.iter().enumerate() {
        if *e {
            for _ in 0..5 {
                r.on_failure(0, &c.eps[i].key);
            }
        }
    }
    for (i, p, n) in &c.history {
        let b = prefix_blocks(&prompt(*p), 512);
        let s = format!("s{p}");
        let rq = RouteRequest {
            session: Some(&s),
            ..req(&b[..*n])
        };
        r.on_dispatch(0, &c.eps[*i].key, &rq);
    }
    for (i, p, l, t) in &c.ttfts {
        r.on_first_token(0, &c.eps[*i].key, *p, *l, *t);
    }
    (r, prefix_blocks(&prompt(c.group), 512))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_picks_an_ineligible_endpoint(c in case()) {
        let (mut r, blocks) = run(&c);
        let s = c.session.map(|g| format!("s{g}"));
        let rq = RouteRequest { model_weights_gib: c.weights_gib, session: s.as_deref(), ..req(&blocks) };
        let v = views(&c.eps);
        let d = r.decide(1_000, &rq, &v, &c.exclude);
        prop_assert_eq!(d.candidates.len(), c.eps.len());
        let eligible = |i: usize| {
            c.eps[i].healthy
                && !c.ejected[i]
                && !c.exclude.contains(&i)
                && pyxis_router::fits(c.weights_gib, c.eps[i].memory_gib, 0.2)
        };
        match d.chosen {
            Some(i) => {
                prop_assert!(eligible(i), "{}", d.explain());
                prop_assert!(!r.is_ejected(1_000, &c.eps[i].key));
                prop_assert!(d.candidates[i].rejected.is_none());
            }
            None => prop_assert!((0..c.eps.len()).all(|i| !eligible(i)), "{}", d.explain()),
        }
        for (i, cand) in d.candidates.iter().enumerate() {
            prop_assert_eq!(cand.index, i);
            if !eligible(i) {
                prop_assert!(cand.rejected.is_some() && cand.rejected != Some(FilterReason::OverBudget));
            }
            if cand.rejected.is_none() {
                for s in [cand.load, cand.latency, cand.prefix, cand.cost, cand.session] {
                    prop_assert!((0.0..=1.0).contains(&s), "{}", d.explain());
                }
            }
        }
    }

    #[test]
    fn affinity_never_sends_past_the_load_guard(c in case()) {
        let (mut r, blocks) = run(&c);
        let s = c.session.map(|g| format!("s{g}"));
        let rq = RouteRequest { session: s.as_deref(), ..req(&blocks) };
        let v = views(&c.eps);
        let d = r.decide(1_000, &rq, &v, &c.exclude);
        let live: Vec<_> = d.candidates.iter().filter(|x| x.rejected.is_none()).collect();
        let min = live.iter().map(|x| x.load_units).fold(f64::INFINITY, f64::min);
        for x in &live {
            if x.load_units > min + f64::from(c.guard) {
                prop_assert!(x.prefix == 0.0 && x.session == 0.0, "{}", d.explain());
            }
        }
        if let Some(i) = d.chosen {
            let x = &d.candidates[i];
            if x.load_units > min + f64::from(c.guard) {
                // It won on load, latency and cost alone: with affinity weighed at zero it still wins.
                let mut no_aff = r.config().clone();
                no_aff.weights.prefix = 0.0;
                no_aff.weights.session = 0.0;
                let w = no_aff.weights;
                let plain = |y: &pyxis_router::Scored<'_>| w.load * y.load + w.latency * y.latency + w.cost * y.cost;
                let best = live.iter().map(|y| plain(y)).fold(f64::NEG_INFINITY, f64::max);
                prop_assert!(plain(x) >= best - 1e-9, "{}", d.explain());
            }
        }
    }

    #[test]
    fn explain_lists_every_candidate(c in case()) {
        let (mut r, blocks) = run(&c);
        let v = views(&c.eps);
        let d = r.decide(1_000, &req(&blocks), &v, &c.exclude);
        let line = d.explain();
        prop_assert!(!line.contains('\n'));
        for x in &d.candidates {
            let tag = format!(" | {} {} ", x.index, x.key);
            let at = line.find(&tag);
            prop_assert!(at.is_some(), "{} missing in {}", tag, line);
            let rest = &line[at.unwrap_or(0) + tag.len()..];
            match x.rejected {
                Some(reason) => prop_assert!(rest.starts_with(reason.as_str()), "{}", line),
                None => prop_assert!(rest.starts_with("tot="), "{}", line),
            }
        }
        match d.chosen {
            Some(i) => {
                let head = format!("chose={} {}", i, c.eps[i].key);
                prop_assert!(line.starts_with(&head), "{}", line);
            }
            None => prop_assert!(line.starts_with("chose=none")),
        }
    }

    #[test]
    fn ejection_backoff_doubles_and_caps(
        base in 1u64..100_000,
        extra in 0u64..1_000_000,
        threshold in 1u32..8,
        probes in 1usize..12,
    ) {
        let cfg = EjectionConfig { consecutive_failures: threshold, base_ms: base, max_ms: base + extra };
        let mut r = Router::new(RoutingConfig { ejection: cfg, ..RoutingConfig::default() });
        let key = "http://flaky";
        let mut now = 5u64;
        for k in 0..threshold {
            prop_assert!(!r.is_ejected(now, key), "ejected after {} failures", k);
            r.on_failure(now, key);
        }
        let mut expect = base;
        for n in 1..=probes {
            prop_assert!(r.is_ejected(now, key));
            let until = r.ejected_until(key).unwrap_or(0);
            prop_assert_eq!(until - now, expect.min(base + extra));
            prop_assert_eq!(until - now, backoff_ms(&cfg, n as u32));
            prop_assert!(r.probe_due(until - 1).is_empty());
            prop_assert_eq!(r.probe_due(until), vec![key.to_string()]);
            // The probe fails: ejected again for twice as long, up to the cap.
            now = until;
            r.on_failure(now, key);
            expect = expect.saturating_mul(2);
        }
        let until = r.ejected_until(key).unwrap_or(0);
        r.on_success(until, key);
        prop_assert!(!r.is_ejected(until, key));
    }
}
