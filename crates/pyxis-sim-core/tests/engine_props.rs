//! Properties of the engine model: no token lost or duplicated, KV within capacity, exact counts,
//! every request finishes, prefix hits lower TTFT, preemption recovers, batching saturates.

use std::collections::HashMap;

use proptest::prelude::*;
use pyxis_sim_core::generator::{request_key, token_at};
use pyxis_sim_core::{Engine, EngineConfig, EngineEvent, FinishReason, SimRequest, StopPolicy};

fn small_config(num_blocks: u32, block_size: u32, budget: u32, max_seqs: u32) -> EngineConfig {
    let mut c = EngineConfig::for_names("h100", "llama-3-8b").expect("profile");
    c.num_blocks = num_blocks;
    c.block_size = block_size;
    c.max_num_batched_tokens = budget;
    c.max_num_seqs = max_seqs;
    c.max_model_len = num_blocks * block_size;
    c.frontend_latency_s = 0.0;
    c
}

#[derive(Debug, Clone)]
struct Spec {
    at_step: u32,
    prefix: u8,
    prompt: u32,
    max_tokens: u32,
    ignore_eos: bool,
    abort_after: Option<u32>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u32..40,
        0u8..3,
        1u32..120,
        1u32..60,
        any::<bool>(),
        prop::option::weighted(0.15, 0u32..30),
    )
        .prop_map(|(at_step, prefix, prompt, max_tokens, ignore_eos, abort_after)| Spec {
            at_step,
            prefix,
            prompt,
            max_tokens,
            ignore_eos,
            abort_after,
        })
}

fn prompt_for(i: usize, s: &Spec) -> Vec<u32> {
    // Requests with the same `prefix` share their first 48 tokens.
    let mut p: Vec<u32> = (0..48).map(|k| 1000 + u32::from(s.prefix) * 100 + k).collect();
    p.truncate(s.prompt.min(48) as usize);
    while (p.len() as u32) < s.prompt {
        p.push(5000 + (i as u32) * 200 + p.len() as u32);
    }
    p
}

/// Tokens (index, id) per request, (reason, completion, prompt) per finished request, aborts.
type Outcome = (
    HashMap<u64, Vec<(u32, u32)>>,
    HashMap<u64, (FinishReason, u32, u32)>,
    u64,
);

/// Runs a scenario; returns per-request (tokens, finish) and checks invariants after every step.
fn run(cfg: EngineConfig, specs: &[Spec]) -> Outcome {
    let mut e = Engine::new(cfg);
    let mut tokens: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
    let mut finished = HashMap::new();
    let mut now = 0.0;
    let mut step = 0u32;
    let mut events = Vec::new();
    let mut aborted = 0;
    loop {
        for (i, s) in specs.iter().enumerate() {
            if s.at_step == step {
                let mut r = SimRequest::new(i as u64, prompt_for(i, s), s.max_tokens);
                r.ignore_eos = s.ignore_eos;
                e.submit(now, r).expect("fits");
            }
            if let Some(a) = s.abort_after
                && s.at_step + a == step
                && !finished.contains_key(&(i as u64))
                && e.abort(i as u64)
            {
                aborted += 1;
            }
        }
        events.clear();
        match e.step_into(now, &mut events) {
            Some(info) => {
                assert!(info.duration > 0.0);
                now = info.end();
            }
            None => {
                if step > 50 && !e.has_work() {
                    break;
                }
                now += 0.001;
            }
        }
        e.check_invariants().expect("engine invariants");
        assert!(e.pool().num_used() <= e.pool().num_blocks());
        for ev in &events {
            match ev {
                EngineEvent::Token { id, token, index } => tokens.entry(*id).or_default().push((*index, *token)),
                EngineEvent::Finished {
                    id,
                    reason,
                    usage,
                    timing,
                } => {
                    assert!(timing.first_token >= timing.arrival && timing.finished >= timing.first_token);
                    assert!(
                        finished
                            .insert(*id, (*reason, usage.completion_tokens, usage.prompt_tokens))
                            .is_none()
                    );
                }
            }
        }
        step += 1;
        assert!(step < 100_000, "engine stalled");
    }
    assert_eq!(e.num_requests(), 0);
    assert_eq!(e.metrics().success_abort, aborted);
    (tokens, finished, aborted)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_token_lost_or_duplicated(specs in prop::collection::vec(spec(), 1..24), blocks in 24u32..48, budget in 16u32..256) {
        let cfg = small_config(blocks, 8, budget, 8);
        let (tokens, finished, _) = run(cfg.clone(), &specs);
        for (i, s) in specs.iter().enumerate() {
            let id = i as u64;
            let toks = tokens.get(&id).cloned().unwrap_or_default();
            // Indices are exactly 0, 1, 2, ... with no gap or repeat, even across preemptions.
            for (k, (idx, _)) in toks.iter().enumerate() {
                prop_assert_eq!(*idx, k as u32);
            }
            let key = request_key(cfg.seed, None, None, &prompt_for(i, s));
            for (idx, tok) in &toks {
                prop_assert_eq!(*tok, token_at(key, *idx));
            }
            match finished.get(&id) {
                Some((reason, n, prompt)) => {
                    prop_assert_eq!(*n as usize, toks.len());
                    prop_assert_eq!(*prompt, s.prompt);
                    if s.ignore_eos {
                        prop_assert_eq!(*n, s.max_tokens);
                        prop_assert_eq!(*reason, FinishReason::Length);
                    } else {
                        prop_assert!(*n <= s.max_tokens);
                    }
                }
                // Only an aborted request may end without Finished.
                None => prop_assert!(s.abort_after.is_some()),
            }
        }
    }

    #[test]
    fn same_seed_same_output(specs in prop::collection::vec(spec(), 1..10)) {
        let cfg = small_config(64, 16, 128, 16);
        let a = run(cfg.clone(), &specs);
        let b = run(cfg.clone(), &specs);
        prop_assert_eq!(&a.0, &b.0);
        let mut other = cfg;
        other.seed = 99;
        let c = run(other, &specs);
        let long = specs.iter().enumerate().find(|(_, s)| s.max_tokens > 4 && s.abort_after.is_none());
        if let Some((i, _)) = long {
            prop_assert_ne!(a.0.get(&(i as u64)), c.0.get(&(i as u64)));
        }
    }
}

#[test]
fn natural_stop_uses_stop_reason() {
    let mut cfg = small_config(256, 16, 512, 16);
    cfg.stop_policy = StopPolicy::Natural { min: 3, max: 5 };
    let mut e = Engine::new(cfg);
    e.submit(0.0, SimRequest::new(1, vec![7; 10], 100)).expect("submit");
    let mut now = 0.0;
    let mut fin = None;
    while let Some(r) = e.step(now) {
        now = r.info.end();
        for ev in r.events {
            if let EngineEvent::Finished { reason, usage, .. } = ev {
                fin = Some((reason, usage.completion_tokens));
            }
        }
    }
    let (reason, n) = fin.expect("finished");
    assert_eq!(reason, FinishReason::Stop);
    assert!((3..=5).contains(&n));
}

/// Next step, waiting out the frontend latency when nothing is ready yet.
fn next_step(e: &mut Engine, now: &mut f64) -> Option<pyxis_sim_core::StepResult> {
    loop {
        if let Some(r) = e.step(*now) {
            *now = r.info.end();
            return Some(r);
        }
        match e.next_wakeup(*now) {
            Some(w) if w > *now => *now = w,
            _ => return None,
        }
    }
}

fn ttft_of(e: &mut Engine, now: &mut f64, id: u64, prompt: Vec<u32>) -> (f64, u32) {
    let mut r = SimRequest::new(id, prompt, 4);
    r.ignore_eos = true;
    e.submit(*now, r).expect("submit");
    let start = *now;
    let mut first = None;
    let mut cached = 0;
    while let Some(r) = next_step(e, now) {
        for ev in r.events {
            match ev {
                EngineEvent::Token { index: 0, .. } => first = Some(*now - start),
                EngineEvent::Finished { usage, .. } => cached = usage.cached_tokens,
                _ => {}
            }
        }
    }
    (first.expect("first token"), cached)
}

#[test]
fn prefix_hit_lowers_ttft() {
    let cfg = EngineConfig::for_names("a100", "llama-3-8b").expect("cfg");
    let mut e = Engine::new(cfg);
    let mut now = 0.0;
    let system: Vec<u32> = (0..4000).map(|i| 100 + i).collect();
    let mut p1 = system.clone();
    p1.extend([9, 9, 9]);
    let mut p2 = system.clone();
    p2.extend([8, 8, 8, 8]);
    let (cold, cached_cold) = ttft_of(&mut e, &mut now, 1, p1);
    let (warm, cached_warm) = ttft_of(&mut e, &mut now, 2, p2);
    assert_eq!(cached_cold, 0);
    assert_eq!(cached_warm, 4000, "all full blocks of the shared prefix");
    assert!(warm < cold * 0.5, "cold {cold} warm {warm}");
    let m = e.metrics();
    assert_eq!(m.prefix_cache_queries, 4003 + 4004);
    assert_eq!(m.prefix_cache_hits, 4000);
    // A different adapter never hits the base model's blocks.
    e.load_lora("ad").expect("load");
    let mut p3 = system.clone();
    p3.push(1);
    let mut r = SimRequest::new(3, p3.clone(), 2);
    r.lora = Some("ad".into());
    assert_eq!(e.cached_prefix_tokens(&p3, Some("ad")), 0);
    assert_eq!(e.cached_prefix_tokens(&p3, None), 4000);
    e.submit(now, r).expect("submit");
}

#[test]
fn preemption_happens_and_everything_finishes() {
    // 24 blocks of 16 tokens; 8 requests of 40 + 60 tokens cannot all fit.
    let cfg = small_config(24, 16, 512, 8);
    let specs: Vec<Spec> = (0..8)
        .map(|_| Spec {
            at_step: 0,
            prefix: 0,
            prompt: 40,
            max_tokens: 60,
            ignore_eos: true,
            abort_after: None,
        })
        .collect();
    let mut e = Engine::new(cfg.clone());
    for (i, s) in specs.iter().enumerate() {
        let mut r = SimRequest::new(i as u64, prompt_for(i, s), s.max_tokens);
        r.ignore_eos = true;
        e.submit(0.0, r).expect("submit");
    }
    let mut now = 0.0;
    let mut counts = [0u32; 8];
    while let Some(r) = e.step(now) {
        now = r.info.end();
        e.check_invariants().expect("invariants");
        for ev in r.events {
            if let EngineEvent::Token { id, .. } = ev {
                counts[id as usize] += 1;
            }
        }
    }
    assert!(e.metrics().num_preemptions > 0, "KV pressure must preempt");
    assert_eq!(counts, [60; 8]);
    assert_eq!(e.metrics().success_length, 8);
}

#[test]
fn lora_slots_limit_the_batch() {
    let mut cfg = small_config(256, 16, 1024, 16);
    cfg.max_loras = 1;
    let mut e = Engine::new(cfg);
    e.load_lora("a").expect("a");
    e.load_lora("b").expect("b");
    assert!(e.load_lora("a").is_err());
    for (i, l) in ["a", "b", "a"].iter().enumerate() {
        let mut r = SimRequest::new(i as u64, vec![5; 20], 3);
        r.ignore_eos = true;
        r.lora = Some((*l).into());
        e.submit(0.0, r).expect("submit");
    }
    let r = e.step(0.0).expect("step");
    // Requests 0 and 2 (adapter a) run; 1 (adapter b) waits for a's slot.
    assert_eq!(r.info.num_seqs, 2);
    let s = e.stats();
    assert_eq!(s.running_loras, vec!["a".to_string()]);
    assert_eq!(s.waiting_loras, vec!["b".to_string()]);
    let mut r = SimRequest::new(9, vec![5; 5], 3);
    r.lora = Some("zzz".into());
    assert!(e.submit(0.0, r).is_err());
}

#[test]
fn frontend_latency_delays_the_first_step() {
    let mut cfg = small_config(256, 16, 1024, 16);
    cfg.frontend_latency_s = 0.02;
    let mut e = Engine::new(cfg);
    e.submit(1.0, SimRequest::new(1, vec![5; 20], 3)).expect("submit");
    assert!(e.step(1.0).is_none());
    assert_eq!(e.next_wakeup(1.0), Some(1.02));
    assert!(e.step(1.02).is_some());
}

#[test]
fn context_and_argument_errors() {
    let cfg = small_config(16, 16, 1024, 16);
    let mut e = Engine::new(cfg);
    let err = e
        .submit(0.0, SimRequest::new(1, vec![1; 200], 100))
        .expect_err("too long");
    assert!(
        err.to_string().contains("maximum context length is 256 tokens"),
        "{err}"
    );
    assert!(e.submit(0.0, SimRequest::new(2, vec![], 1)).is_err());
    assert!(e.submit(0.0, SimRequest::new(3, vec![1], 0)).is_err());
    e.submit(0.0, SimRequest::new(4, vec![1], 1)).expect("ok");
    assert!(e.submit(0.0, SimRequest::new(4, vec![1], 1)).is_err(), "duplicate id");
}

/// Output tokens per second of a closed batch of `b` decoding sequences.
fn decode_throughput(b: u32) -> f64 {
    let cfg = EngineConfig::for_names("h100", "llama-3-8b").expect("cfg");
    let mut e = Engine::new(cfg);
    for i in 0..b {
        let mut r = SimRequest::new(u64::from(i), (0..512).map(|k| 10_000 + i * 1000 + k).collect(), 256);
        r.ignore_eos = true;
        e.submit(0.0, r).expect("submit");
    }
    let mut now = 0.0;
    let mut toks = 0u64;
    let mut start = None;
    while let Some(r) = next_step(&mut e, &mut now) {
        let n = r
            .events
            .iter()
            .filter(|e| matches!(e, EngineEvent::Token { index, .. } if *index > 0))
            .count();
        if n > 0 {
            start.get_or_insert(r.info.start);
            toks += n as u64;
        }
    }
    toks as f64 / (now - start.unwrap_or(0.0))
}

#[test]
fn throughput_saturates_as_the_batch_grows() {
    let t: Vec<f64> = [1u32, 4, 16, 64, 256, 512]
        .iter()
        .map(|b| decode_throughput(*b))
        .collect();
    for w in t.windows(2) {
        assert!(w[1] > w[0], "more batch, more throughput: {t:?}");
    }
    // Nearly linear at first, strongly sublinear at the end.
    assert!(t[1] / t[0] > 3.0, "{t:?}");
    assert!(t[5] / t[4] < 1.5, "{t:?}");
}

#[test]
fn busy_api_server_stretches_the_front_end_delay() {
    // The fitted CPU profile: 9.5 ms idle, 0.82 ms of API-server time per streamed token.
    let cfg = EngineConfig::for_names("cpu", "tiny").expect("cfg");
    let base = cfg.frontend_latency_s;
    let mut e = Engine::new(cfg);
    e.submit(0.0, SimRequest::new(1, vec![5; 8], 2)).expect("submit");
    assert_eq!(e.next_wakeup(0.0), Some(base), "idle: the plain delay");
    assert_eq!(
        e.num_waiting(),
        0,
        "still in the API server, not in vLLM's waiting queue"
    );
    assert_eq!(e.num_incoming(), 1);
    let mut now = 0.0;
    for i in 0..16 {
        let mut r = SimRequest::new(100 + i, vec![6 + i as u32; 8], 400);
        r.ignore_eos = true;
        e.submit(now, r).expect("submit");
    }
    // Long enough (1.7 s) for the API server's recent token rate to build up.
    for _ in 0..100 {
        next_step(&mut e, &mut now);
    }
    assert_eq!(e.num_running(), 16);
    e.submit(now, SimRequest::new(999, vec![7; 8], 2)).expect("submit");
    // ~16 tokens per ~16 ms step through a server paying 0.82 ms each: ρ ≈ 0.8.
    let mut t = now;
    let mut handed = now;
    while e.num_incoming() > 0 {
        handed = next_step(&mut e, &mut t).map_or(t, |r| r.info.start);
    }
    assert!(handed - now > 3.0 * base, "waited {} (idle {base})", handed - now);
}
