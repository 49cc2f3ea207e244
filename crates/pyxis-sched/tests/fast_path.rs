//! `Scheduler::dispatch_now` (the gateway's path for an arrival that finds nobody queued) is behaviourally the
//! same as `enqueue` then `next`: two schedulers fed the same random arrivals, dispatches, output charges,
//! cancels, expiries and clock moves, one trying the fast path on every arrival, give the same dispatches, the
//! same refusals, evictions and expiries, and the same per-tenant counters after every step. Any state the fast
//! path left different (a class's virtual time, floor credit, rates, sequence order) would show up in a later
//! dispatch order or counter.

use proptest::prelude::*;
use pyxis_sched::{ClassConfig, Pending, SchedConfig, Scheduler, TenantConfig};

const TENANTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Arrive {
        tenant: usize,
        input: u32,
        output: u32,
        free: u64,
    },
    Next {
        free: u64,
    },
    Charge {
        tenant: usize,
        tokens: u32,
    },
    Cancel {
        pick: u64,
    },
    Expire,
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..TENANTS, 1..200u32, 0..200u32, 0..700u64)
            .prop_map(|(tenant, input, output, free)| Op::Arrive { tenant, input, output, free }),
        3 => (0..700u64).prop_map(|free| Op::Next { free }),
        2 => (0..TENANTS, 1..40u32).prop_map(|(tenant, tokens)| Op::Charge { tenant, tokens }),
        1 => (0..64u64).prop_map(|pick| Op::Cancel { pick }),
        1 => Just(Op::Expire),
        2 => (1..3_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn scheduler(headroom: u64, weights: &[f64; TENANTS], max_queued_total: usize) -> Scheduler {
    let classes = vec![
        ClassConfig {
            name: "gold".into(),
            value: 2,
            preemptible: false,
            min_share: 0.0,
        },
        ClassConfig {
            name: "std".into(),
            value: 1,
            preemptible: false,
            min_share: 0.2,
        },
        ClassConfig {
            name: "bulk".into(),
            value: 0,
            preemptible: true,
            min_share: 0.1,
        },
    ];
    let mut s = Scheduler::new(
        SchedConfig {
            input_weight: 1.0,
            output_weight: 2.0,
            max_queued_total,
            default_timeout_ms: 2_000,
        },
        classes,
    );
    s.set_headroom_tokens(headroom);
    let class = ["gold", "std", "std", "bulk"];
    for t in 0..TENANTS {
        s.set_tenant(
            &format!("t{t}"),
            TenantConfig {
                weight: weights[t],
                class: class[t].into(),
                max_queued: (t == 2).then_some(3),
                timeout_ms: None,
            },
        );
    }
    s
}

fn run(headroom: u64, weights: [f64; TENANTS], max_total: usize, ops: &[Op]) -> Result<usize, TestCaseError> {
    let mut fast = scheduler(headroom, &weights, max_total);
    let mut slow = scheduler(headroom, &weights, max_total);
    let mut now = 0u64;
    let mut id = 0u64;
    let mut fast_hits = 0;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Arrive {
                tenant,
                input,
                output,
                free,
            } => {
                id += 1;
                let p = Pending {
                    id,
                    tenant: format!("t{tenant}"),
                    input_tokens: input,
                    max_output_tokens: output,
                };
                let (a, a_disp) = match fast.dispatch_now(now, &p, free) {
                    Some(d) => {
                        fast_hits += 1;
                        (Ok(Vec::new()), Some(d))
                    }
                    None => {
                        let r = fast.enqueue(now, p.clone());
                        let d = if r.is_ok() { fast.next(now, free) } else { None };
                        (r, d)
                    }
                };
                let b = slow.enqueue(now, p);
                let b_disp = if b.is_ok() { slow.next(now, free) } else { None };
                prop_assert_eq!(a, b, "step {}: {:?}", step, op);
                prop_assert_eq!(a_disp, b_disp, "step {}: {:?}", step, op);
            }
            Op::Next { free } => prop_assert_eq!(fast.next(now, free), slow.next(now, free), "step {}", step),
            Op::Charge { tenant, tokens } => {
                fast.charge_output(&format!("t{tenant}"), tokens);
                slow.charge_output(&format!("t{tenant}"), tokens);
            }
            Op::Cancel { pick } => {
                let victim = id.saturating_sub(pick);
                prop_assert_eq!(fast.cancel(victim), slow.cancel(victim), "step {}", step);
            }
            Op::Expire => prop_assert_eq!(fast.expire(now), slow.expire(now), "step {}", step),
            Op::Advance { ms } => now += ms,
        }
        prop_assert_eq!(fast.stats(), slow.stats(), "step {}: {:?}", step, op);
        prop_assert_eq!(fast.queued(), slow.queued());
        prop_assert_eq!(fast.next_deadline_ms(), slow.next_deadline_ms());
    }
    // Drain both: the order of what is left must agree too.
    for _ in 0..200 {
        now += 10;
        let (a, b) = (fast.next(now, u64::MAX), slow.next(now, u64::MAX));
        prop_assert_eq!(&a, &b);
        if a.is_none() {
            break;
        }
    }
    prop_assert_eq!(fast.stats(), slow.stats());
    Ok(fast_hits)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn dispatch_now_is_enqueue_then_next(
        headroom in prop_oneof![Just(0u64), 1..300u64],
        weights in [0.5f64..4.0, 0.5f64..4.0, 0.5f64..4.0, 0.5f64..4.0],
        max_total in prop_oneof![Just(0usize), 1..12usize],
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(headroom, weights, max_total, &ops)?;
    }
}

/// The fast path is taken when it applies, and not when something is queued or the request does not fit.
#[test]
fn fast_path_applies_only_to_an_empty_queue_with_room() {
    let mut s = scheduler(0, &[1.0; TENANTS], 10);
    let p = |id, tenant: &str| Pending {
        id,
        tenant: tenant.into(),
        input_tokens: 10,
        max_output_tokens: 10,
    };
    assert!(s.dispatch_now(0, &p(1, "t1"), 100).is_some());
    assert!(
        s.dispatch_now(0, &p(2, "t1"), 19).is_none(),
        "cost 20 does not fit in 19"
    );
    s.enqueue(0, p(3, "t1")).unwrap();
    assert!(
        s.dispatch_now(0, &p(4, "t2"), 100).is_none(),
        "someone is queued: the queue decides"
    );
    let d = s.next(0, 100).unwrap();
    assert_eq!(d.id, 3);
    let d = s.dispatch_now(5, &p(5, "new-tenant"), 100).unwrap();
    assert_eq!(
        (d.id, d.tenant.as_str(), d.cost_tokens, d.waited_ms),
        (5, "new-tenant", 20, 0)
    );
}

/// Over many random runs the fast path is really exercised (the equivalence above is not vacuous).
#[test]
fn equivalence_runs_exercise_the_fast_path() {
    let ops: Vec<Op> = (0..300)
        .map(|i| match i % 5 {
            0 | 1 => Op::Arrive {
                tenant: i % TENANTS,
                input: 20 + (i as u32 % 50),
                output: 30,
                free: 400,
            },
            2 => Op::Advance { ms: 700 },
            3 => Op::Charge {
                tenant: i % TENANTS,
                tokens: 7,
            },
            _ => Op::Next { free: 150 },
        })
        .collect();
    let hits = run(50, [1.0, 2.0, 1.0, 0.5], 8, &ops).unwrap();
    assert!(hits > 20, "fast path taken {hits} times");
}
