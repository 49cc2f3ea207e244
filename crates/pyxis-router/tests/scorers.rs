//! Each scorer alone (the other weights zero), then the blend: rotation, the load guard, the TTFT model.

mod common;

use common::{eps, req, views};
use pyxis_router::{LoadSignal, RouteRequest, Router, RoutingConfig, Weights, prefix_blocks};

fn only(pick: fn(&mut Weights)) -> Router {
    let mut w = Weights {
        load: 0.0,
        latency: 0.0,
        prefix: 0.0,
        cost: 0.0,
        session: 0.0,
    };
    pick(&mut w);
    Router::new(RoutingConfig {
        weights: w,
        ..RoutingConfig::default()
    })
}

fn signal(waiting: u32, running: u32, kv_use: f64, age_ms: u64) -> Option<LoadSignal> {
    Some(LoadSignal {
        waiting,
        running,
        kv_use,
        tokens_per_s: 0.0,
        age_ms,
    })
}

#[test]
fn load_prefers_fewer_in_flight_and_counts_waiting_and_kv() {
    let mut r = only(|w| w.load = 1.0);
    let mut e = eps(3);
    e[0].in_flight = 4;
    e[1].in_flight = 2;
    e[2].in_flight = 3;
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.chosen, Some(1), "{}", d.explain());
    assert!(d.candidates[1].load > d.candidates[2].load && d.candidates[2].load > d.candidates[0].load);
    // The scrape shows a queue on ep1 that this gateway's in-flight count does not.
    e[1].load = signal(6, 8, 0.5, 0);
    assert_eq!(r.decide(0, &req(&[]), &views(&e), &[]).chosen, Some(2));
    // KV near full on ep2 (preemptions ahead) makes it worse than ep0.
    e[1].load = None;
    e[1].in_flight = 5;
    e[2].load = signal(0, 3, 1.0, 0);
    assert_eq!(r.decide(0, &req(&[]), &views(&e), &[]).chosen, Some(0));
}

#[test]
fn stale_signals_weigh_less() {
    let mut r = only(|w| w.load = 1.0);
    let mut e = eps(2);
    e[0].load = signal(10, 10, 0.5, 0);
    e[1].load = signal(10, 10, 0.5, 60_000);
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.chosen, Some(1), "{}", d.explain());
    assert!(
        d.candidates[0].load_units > 3.0 * d.candidates[1].load_units,
        "{}",
        d.explain()
    );
}

#[test]
fn latency_prefers_the_endpoint_predicted_fastest() {
    let mut r = only(|w| w.latency = 1.0);
    let e = eps(3);
    for i in 0..60u32 {
        let p = 500 + (i % 6) * 300;
        r.on_first_token(0, &e[0].key, p, 0, 20.0 + 0.03 * f64::from(p));
        r.on_first_token(0, &e[1].key, p, 0, 60.0 + 0.25 * f64::from(p));
        r.on_first_token(0, &e[2].key, p, 0, 30.0 + 0.10 * f64::from(p));
    }
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.chosen, Some(0), "{}", d.explain());
    let t = |i: usize| d.candidates[i].predicted_ttft_ms;
    assert!(
        (t(0) - 80.0).abs() < 8.0 && (t(1) - 560.0).abs() < 50.0,
        "{}",
        d.explain()
    );
    assert_eq!(d.candidates[0].latency, 1.0);
    assert!((d.candidates[1].latency - t(0) / t(1)).abs() < 1e-12);
    // Two 2k-token prompts still waiting for their first token on ep0: at the prior's 60 ms per 1k queued
    // tokens, 80 + 240 ms > 230 ms, so the next-fastest wins.
    let mut e = e;
    e[0].in_flight = 2;
    r.on_dispatch(0, &e[0].key, &req(&[]));
    r.on_dispatch(0, &e[0].key, &req(&[]));
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.candidates[0].queued_tokens, 4000);
    assert_eq!(d.chosen, Some(2), "{}", d.explain());
    // Their first tokens came: the queue is gone, and what it cost was learned.
    r.on_first_token(0, &e[0].key, 2000, 1, 80.0);
    r.on_first_token(0, &e[0].key, 2000, 1, 80.0 + 60.0);
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.candidates[0].queued_tokens, 0);
    assert_eq!(d.chosen, Some(0), "{}", d.explain());
    // Nothing in flight: anything still awaiting a first token is dropped (it failed or was cancelled).
    r.on_dispatch(0, &e[0].key, &req(&[]));
    e[0].in_flight = 0;
    assert_eq!(r.decide(0, &req(&[]), &views(&e), &[]).candidates[0].queued_tokens, 0);
}

#[test]
fn prefix_prefers_the_endpoint_holding_the_longest_prefix() {
    let mut r = only(|w| w.prefix = 1.0);
    let e = eps(4);
    let system = vec![b's'; 4096];
    let mut a = system.clone();
    a.extend_from_slice(&[b'a'; 4096]);
    let mut b = system.clone();
    b.extend_from_slice(&[b'b'; 4096]);
    let (ba, bb) = (prefix_blocks(&a, 512), prefix_blocks(&b, 512));
    r.on_dispatch(0, &e[2].key, &req(&ba));
    r.on_dispatch(0, &e[3].key, &req(&bb[..10]));
    let d = r.decide(0, &req(&bb), &views(&e), &[]);
    // ep2 holds the 8 shared blocks, ep3 10 of this prompt's 16.
    assert_eq!(d.chosen, Some(3), "{}", d.explain());
    assert_eq!(d.candidates[2].prefix_depth, 8);
    assert_eq!(d.candidates[3].prefix_depth, 10);
    assert_eq!(d.candidates[0].prefix_depth, 0);
    assert_eq!(d.candidates[3].prefix, 10.0 / 16.0);
    assert_eq!(d.candidates[3].uncached_tokens, 750, "2000 tokens, 6/16 not cached");
    assert_eq!(r.decide(0, &req(&ba), &views(&e), &[]).chosen, Some(2));
}

#[test]
fn prefix_index_is_bounded_per_endpoint() {
    let mut r = only(|w| w.prefix = 1.0);
    let mut e = eps(2);
    // 2 GiB left after the weights at 64 blocks a GiB: the 256-block floor.
    e[0].memory_gib = 19.0;
    let old = prefix_blocks(&[1u8; 512 * 16], 512);
    r.decide(0, &req(&old), &views(&e), &[]);
    r.on_dispatch(0, &e[0].key, &req(&old));
    for i in 0..100u32 {
        let p: Vec<u8> = (0..512 * 16)
            .map(|j| (j as u32 ^ i.wrapping_mul(2_654_435_761)) as u8)
            .collect();
        r.on_dispatch(0, &e[0].key, &req(&prefix_blocks(&p, 512)));
    }
    let d = r.decide(0, &req(&old), &views(&e), &[]);
    assert_eq!(d.candidates[0].prefix_depth, 0, "1,600 newer blocks pushed it out");
}

#[test]
fn cost_prefers_the_cheapest() {
    let mut r = only(|w| w.cost = 1.0);
    let mut e = eps(3);
    e[0].price = Some(0.40);
    e[1].price = Some(0.10);
    e[2].price = Some(0.20);
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    assert_eq!(d.chosen, Some(1));
    assert_eq!(d.candidates[0].cost, 0.25);
    assert_eq!(d.candidates[2].cost, 0.5);
    // Unknown price is not penalised.
    e[0].price = None;
    assert_eq!(r.decide(0, &req(&[]), &views(&e), &[]).candidates[0].cost, 1.0);
}

#[test]
fn session_sticks_to_the_endpoint_that_served_it() {
    let mut r = only(|w| w.session = 1.0);
    let e = eps(4);
    let rq = RouteRequest {
        session: Some("conv-42"),
        ..req(&[])
    };
    r.on_dispatch(0, &e[3].key, &rq);
    for t in 0..8 {
        let d = r.decide(t, &rq, &views(&e), &[]);
        assert_eq!(d.chosen, Some(3), "{}", d.explain());
        assert_eq!(d.candidates[3].session, 1.0);
    }
    let other = RouteRequest {
        session: Some("conv-43"),
        ..req(&[])
    };
    assert_eq!(r.decide(0, &other, &views(&e), &[]).candidates[3].session, 0.0);
    r.forget(&e[3].key);
    assert_eq!(
        r.decide(0, &rq, &views(&e), &[]).candidates[3].session,
        0.0,
        "forgotten endpoint"
    );
}

#[test]
fn equal_endpoints_rotate() {
    let mut r = Router::new(RoutingConfig::default());
    let e = eps(4);
    let mut seen = [0u32; 4];
    for t in 0..40 {
        if let Some(i) = r.decide(t, &req(&[]), &views(&e), &[]).chosen {
            seen[i] += 1;
        }
    }
    assert_eq!(seen, [10, 10, 10, 10]);
}

#[test]
fn load_guard_turns_affinity_off_on_a_hot_endpoint() {
    let mut r = Router::new(RoutingConfig::default());
    let mut e = eps(3);
    let blocks = prefix_blocks(&[7u8; 512 * 16], 512);
    let sess = RouteRequest {
        session: Some("s"),
        ..req(&blocks)
    };
    r.on_dispatch(0, &e[0].key, &sess);
    e[0].in_flight = 10;
    e[1].in_flight = 2;
    e[2].in_flight = 3;
    let d = r.decide(0, &sess, &views(&e), &[]);
    assert_eq!(
        d.chosen,
        Some(0),
        "within the guard (16): affinity wins: {}",
        d.explain()
    );
    e[0].in_flight = 19;
    let d = r.decide(0, &sess, &views(&e), &[]);
    assert_eq!(d.chosen, Some(1), "{}", d.explain());
    assert!(d.candidates[0].guarded && d.candidates[0].prefix == 0.0 && d.candidates[0].session == 0.0);
    assert!(d.explain().contains("guard"), "{}", d.explain());
}

#[test]
fn first_tokens_teach_the_model_and_speed_scales_load() {
    let mut r = Router::new(RoutingConfig::default());
    let e = eps(2);
    // Learned only when nothing else was in flight (or through a dispatch record).
    r.on_first_token(0, &e[0].key, 1000, 3, 5_000.0);
    assert_eq!(r.predicted_ttft_ms(&e[0].key, 1000, 0).1, 0);
    for i in 0..80u32 {
        let p = 200 + (i % 8) * 400;
        r.on_first_token(0, &e[0].key, p, 0, 15.0 + 0.03 * f64::from(p));
        r.on_first_token(0, &e[1].key, p, 0, 90.0 + 0.27 * f64::from(p));
    }
    let (fast, n) = r.predicted_ttft_ms(&e[0].key, 1000, 0);
    let (slow, _) = r.predicted_ttft_ms(&e[1].key, 1000, 0);
    assert_eq!(n, 80);
    assert!(
        (fast - 45.0).abs() < 5.0 && (slow - 360.0).abs() < 30.0,
        "{fast} {slow}"
    );
    let mut e = e;
    e[0].in_flight = 5;
    e[1].in_flight = 1;
    let d = r.decide(0, &req(&[]), &views(&e), &[]);
    // One request on an 8× slower endpoint is ~8 requests' worth of load.
    assert!(
        d.candidates[1].load_units > 6.0 && d.candidates[1].load_units < 10.0,
        "{}",
        d.explain()
    );
    assert_eq!(d.chosen, Some(0), "{}", d.explain());
}
