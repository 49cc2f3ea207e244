//! Properties over random arrivals, dispatches, output charges, finishes, cancels, evictions and expiries:
//! every request ends exactly once, counters never go down, the in-flight budget is respected, and the
//! weight-normalised service gap of two tenants of one class backlogged together stays within
//! U/w_f + U/w_g (2U at equal weights), U = max(w_in·L_input, w_out·M).

use std::collections::HashMap;

use proptest::prelude::*;
use pyxis_sched::{ClassConfig, Pending, SchedConfig, Scheduler, TenantConfig};

const M: u64 = 400; // in-flight budget, tokens
const L: u32 = 100; // longest input
const MAX_OUT: u32 = 100;
const W_IN: f64 = 1.0;
const W_OUT: f64 = 2.0;
const TENANTS: usize = 5;
/// Tenants 0..3 share class "std"; tenant 3 and 4 are "bulk" (lower, preemptible, 10% floor).
const CLASS_OF: [&str; TENANTS] = ["std", "std", "std", "bulk", "bulk"];

#[derive(Debug, Clone)]
enum Op {
    Enqueue { tenant: usize, input: u32, output: u32 },
    Next,
    Charge { pick: usize, tokens: u32 },
    Finish { pick: usize },
    Cancel { pick: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TENANTS, 1..=L, 0..=MAX_OUT).prop_map(|(tenant, input, output)| Op::Enqueue { tenant, input, output }),
        4 => Just(Op::Next),
        4 => (any::<usize>(), 1..=24u32).prop_map(|(pick, tokens)| Op::Charge { pick, tokens }),
        2 => any::<usize>().prop_map(|pick| Op::Finish { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (1..200u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Queued,
    Dispatched,
    Cancelled,
    Expired,
    Evicted,
    Refused,
}

struct InFlight {
    tenant: usize,
    cost: u64,
    left: u32,
}

fn name(t: usize) -> String {
    format!("t{t}")
}

fn run(weights: &[f64], timeouts: &[Option<u64>], ops: &[Op]) -> Result<(), TestCaseError> {
    let classes = vec![
        ClassConfig {
            name: "std".into(),
            value: 1,
            preemptible: false,
            min_share: 0.0,
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
            input_weight: W_IN,
            output_weight: W_OUT,
            max_queued_total: 14,
            default_timeout_ms: 0,
        },
        classes,
    );
    for t in 0..TENANTS {
        s.set_tenant(
            &name(t),
            TenantConfig {
                weight: weights[t],
                class: CLASS_OF[t].into(),
                max_queued: (t % 2 == 0).then_some(6),
                timeout_ms: timeouts[t],
            },
        );
    }
    let u = (W_IN * f64::from(L)).max(W_OUT * M as f64);
    let mut now = 0u64;
    let mut next_id = 0u64;
    let mut fate: HashMap<u64, Fate> = HashMap::new();
    let mut info: HashMap<u64, (usize, u32, u32)> = HashMap::new();
    let mut queued: Vec<Vec<u64>> = vec![Vec::new(); TENANTS];
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut used = 0u64;
    let mut service = [0.0f64; TENANTS];
    // Min and max of s_f - s_g over the current interval in which both are backlogged.
    let mut span: HashMap<(usize, usize), (f64, f64)> = HashMap::new();
    let mut last_counter: HashMap<String, f64> = HashMap::new();
    let mut worst = 0.0f64;

    let settle = |ids: &[u64], to: Fate, fate: &mut HashMap<u64, Fate>, queued: &mut Vec<Vec<u64>>| {
        for id in ids {
            assert_eq!(
                fate.get(id),
                Some(&Fate::Queued),
                "{id} left the queue twice or was never queued"
            );
            fate.insert(*id, to);
            for q in queued.iter_mut() {
                q.retain(|x| x != id);
            }
        }
    };

    for op in ops {
        let backlogged_before: Vec<bool> = (0..TENANTS).map(|t| !queued[t].is_empty()).collect();
        match *op {
            Op::Enqueue { tenant, input, output } => {
                next_id += 1;
                let id = next_id;
                info.insert(id, (tenant, input, output));
                let p = Pending {
                    id,
                    tenant: name(tenant),
                    input_tokens: input,
                    max_output_tokens: output,
                };
                match s.enqueue(now, p) {
                    Ok(evicted) => {
                        settle(&evicted, Fate::Evicted, &mut fate, &mut queued);
                        fate.insert(id, Fate::Queued);
                        queued[tenant].push(id);
                    }
                    Err(_) => {
                        fate.insert(id, Fate::Refused);
                    }
                }
            }
            Op::Next => {
                if let Some(d) = s.next(now, M - used) {
                    let (tenant, input, output) = info[&d.id];
                    prop_assert_eq!(&d.tenant, &name(tenant));
                    prop_assert_eq!(d.cost_tokens, u64::from(input) + u64::from(output));
                    prop_assert!(d.cost_tokens <= M - used, "over the budget");
                    prop_assert_eq!(queued[tenant].first(), Some(&d.id), "FIFO within a tenant");
                    settle(&[d.id], Fate::Dispatched, &mut fate, &mut queued);
                    used += d.cost_tokens;
                    service[tenant] += W_IN * f64::from(input) / weights[tenant];
                    in_flight.push(InFlight {
                        tenant,
                        cost: d.cost_tokens,
                        left: output,
                    });
                }
            }
            Op::Charge { pick, tokens } => {
                if !in_flight.is_empty() {
                    let n_in = in_flight.len();
                    let r = &mut in_flight[pick % n_in];
                    let n = tokens.min(r.left);
                    r.left -= n;
                    s.charge_output(&name(r.tenant), n);
                    service[r.tenant] += W_OUT * f64::from(n) / weights[r.tenant];
                }
            }
            Op::Finish { pick } => {
                if !in_flight.is_empty() {
                    let r = in_flight.swap_remove(pick % in_flight.len());
                    used -= r.cost;
                }
            }
            Op::Cancel { pick } => {
                let live: Vec<u64> = queued.iter().flatten().copied().collect();
                if live.is_empty() {
                    prop_assert!(!s.cancel(next_id + 1));
                } else {
                    let id = live[pick % live.len()];
                    prop_assert!(s.cancel(id));
                    settle(&[id], Fate::Cancelled, &mut fate, &mut queued);
                }
            }
            Op::Advance { ms } => {
                now += ms;
                let gone = s.expire(now);
                settle(&gone, Fate::Expired, &mut fate, &mut queued);
                if let Some(d) = s.next_deadline_ms() {
                    prop_assert!(d > now);
                }
            }
        }

        // Queue lengths agree with the model.
        prop_assert_eq!(s.queued(), queued.iter().map(Vec::len).sum::<usize>());
        for (t, q) in queued.iter().enumerate() {
            prop_assert_eq!(s.queued_for(&name(t)), q.len());
        }
        // Counters are monotone.
        for st in s.stats() {
            let prev = last_counter.insert(st.tenant.clone(), st.counter).unwrap_or(0.0);
            prop_assert!(st.counter >= prev, "{} went from {prev} to {}", st.tenant, st.counter);
        }
        // Service gap between tenants of one class backlogged throughout.
        let backlogged_after: Vec<bool> = (0..TENANTS).map(|t| !queued[t].is_empty()).collect();
        for f in 0..TENANTS {
            for g in f + 1..TENANTS {
                if CLASS_OF[f] != CLASS_OF[g] {
                    continue;
                }
                let d = service[f] - service[g];
                if backlogged_before[f]
                    && backlogged_before[g]
                    && let Some((lo, hi)) = span.get_mut(&(f, g))
                {
                    *lo = lo.min(d);
                    *hi = hi.max(d);
                    let gap = *hi - *lo;
                    let bound = u / weights[f] + u / weights[g];
                    worst = worst.max(gap / bound);
                    prop_assert!(gap <= bound + 1e-6, "gap {gap} > bound {bound} for t{f}, t{g}");
                }
                if backlogged_after[f] && backlogged_after[g] {
                    span.entry((f, g)).or_insert((d, d));
                } else {
                    span.remove(&(f, g));
                }
            }
        }
    }
    // Draining with an unbounded budget dispatches everything still queued, once.
    while let Some(d) = s.next(now, u64::MAX) {
        settle(&[d.id], Fate::Dispatched, &mut fate, &mut queued);
    }
    prop_assert_eq!(s.queued(), 0);
    prop_assert!(fate.values().all(|f| *f != Fate::Queued), "a request was lost");
    prop_assert_eq!(fate.len() as u64, next_id);
    prop_assert!(worst <= 1.0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fates_counters_budget_and_gap(
        weights in proptest::collection::vec(prop_oneof![Just(0.5), Just(1.0), Just(2.0), Just(3.0)], TENANTS),
        timeouts in proptest::collection::vec(prop_oneof![Just(None), (50..400u64).prop_map(Some)], TENANTS),
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        run(&weights, &timeouts, &ops)?;
    }

    /// Saturated, in phases where only some tenants send: pairs stay backlogged long, and tenants return to a
    /// queue whose counters moved on while they were away (the lift's case).
    #[test]
    fn gap_bound_under_saturation_in_phases(
        weights in proptest::collection::vec(prop_oneof![Just(1.0), Just(2.0)], TENANTS),
        phases in proptest::collection::vec((1u8..32, proptest::collection::vec(prop_oneof![
            3 => (0..TENANTS, 1..=L, 0..=MAX_OUT).prop_map(|(tenant, input, output)| Op::Enqueue { tenant, input, output }),
            3 => Just(Op::Next),
            6 => (any::<usize>(), 1..=24u32).prop_map(|(pick, tokens)| Op::Charge { pick, tokens }),
            2 => any::<usize>().prop_map(|pick| Op::Finish { pick }),
        ], 1..150)), 1..6),
    ) {
        let mut ops = Vec::new();
        for (mask, chunk) in phases {
            let active: Vec<usize> = (0..TENANTS).filter(|t| mask & (1 << t) != 0).collect();
            for op in chunk {
                ops.push(match op {
                    Op::Enqueue { tenant, input, output } => Op::Enqueue { tenant: active[tenant % active.len()], input, output },
                    other => other,
                });
            }
        }
        run(&weights, &[None; TENANTS], &ops)?;
    }
}
