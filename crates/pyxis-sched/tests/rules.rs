//! One test per scheduling rule: VTC order, weights, lift, stop-filling, classes and floors, caps and eviction,
//! timeouts, cancellation, reloads.

use pyxis_sched::{ClassConfig, Pending, Rejected, SchedConfig, Scheduler, TenantConfig};

const BIG: u64 = u64::MAX;

fn cfg() -> SchedConfig {
    SchedConfig {
        input_weight: 1.0,
        output_weight: 2.0,
        max_queued_total: 1000,
        default_timeout_ms: 0,
    }
}

fn req(id: u64, tenant: &str, input: u32, output: u32) -> Pending {
    Pending {
        id,
        tenant: tenant.into(),
        input_tokens: input,
        max_output_tokens: output,
    }
}

fn class(name: &str, value: i32, preemptible: bool, min_share: f64) -> ClassConfig {
    ClassConfig {
        name: name.into(),
        value,
        preemptible,
        min_share,
    }
}

fn tenant(weight: f64, class: &str) -> TenantConfig {
    TenantConfig {
        weight,
        class: class.into(),
        max_queued: None,
        timeout_ms: None,
    }
}

fn counter(s: &Scheduler, t: &str) -> f64 {
    s.stats()
        .into_iter()
        .find(|x| x.tenant == t)
        .map_or(-1.0, |x| x.counter)
}

fn drain(s: &mut Scheduler, now: u64) -> Vec<String> {
    std::iter::from_fn(|| s.next(now, BIG).map(|d| d.tenant)).collect()
}

#[test]
fn least_counter_first_and_input_charged_at_dispatch() {
    let mut s = Scheduler::new(cfg(), vec![]);
    for i in 0..4 {
        s.enqueue(0, req(i, "a", 100, 10)).unwrap();
        s.enqueue(0, req(10 + i, "b", 100, 10)).unwrap();
    }
    let order = drain(&mut s, 1);
    assert_eq!(order, ["a", "b", "a", "b", "a", "b", "a", "b"]);
    assert_eq!(counter(&s, "a"), 400.0);
    assert_eq!(counter(&s, "b"), 400.0);
}

#[test]
fn output_charges_move_a_tenant_back() {
    let mut s = Scheduler::new(cfg(), vec![]);
    for i in 0..3 {
        s.enqueue(0, req(i, "a", 10, 10)).unwrap();
        s.enqueue(0, req(10 + i, "b", 10, 10)).unwrap();
    }
    assert_eq!(s.next(0, BIG).unwrap().tenant, "a");
    assert_eq!(s.next(0, BIG).unwrap().tenant, "b");
    s.charge_output("a", 50); // a's running request streamed 50 tokens: 100 units
    let order = drain(&mut s, 0);
    assert_eq!(order, ["b", "b", "a", "a"], "b catches up first");
    assert_eq!(counter(&s, "a"), 130.0);
}

#[test]
fn weights_split_service_in_proportion() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.set_tenant("light", tenant(1.0, ""));
    s.set_tenant("heavy", tenant(3.0, ""));
    for i in 0..400 {
        s.enqueue(0, req(i, "light", 100, 0)).unwrap();
        s.enqueue(0, req(1000 + i, "heavy", 100, 0)).unwrap();
    }
    let first: Vec<String> = (0..200).filter_map(|_| s.next(0, BIG).map(|d| d.tenant)).collect();
    let heavy = first.iter().filter(|t| *t == "heavy").count();
    assert!((148..=152).contains(&heavy), "heavy got {heavy} of 200");
}

#[test]
fn returning_tenant_is_lifted_to_the_backlogged_minimum() {
    let mut s = Scheduler::new(cfg(), vec![]);
    for i in 0..50 {
        s.enqueue(0, req(i, "a", 100, 0)).unwrap();
    }
    for _ in 0..20 {
        s.next(0, BIG).unwrap();
    }
    assert_eq!(counter(&s, "a"), 2000.0);
    s.enqueue(1, req(100, "b", 100, 0)).unwrap();
    assert_eq!(counter(&s, "b"), 2000.0, "lifted, not starting at 0");
    // The newcomer wins the tie, then they alternate: no long run of b spending saved credit.
    let order: Vec<String> = (0..4).filter_map(|_| s.next(2, BIG).map(|d| d.tenant)).collect();
    assert_eq!(order, ["b", "a", "a", "a"]);
}

#[test]
fn lift_uses_remembered_virtual_time_when_nobody_is_backlogged() {
    let mut s = Scheduler::new(cfg(), vec![]);
    for i in 0..10 {
        s.enqueue(0, req(i, "a", 100, 0)).unwrap();
    }
    drain(&mut s, 0);
    // a's queue is empty (its requests are in flight); b arrives: lifted to the last served level.
    s.enqueue(5, req(50, "b", 100, 0)).unwrap();
    assert_eq!(counter(&s, "b"), 900.0);
    // a comes back and is not lifted above its own counter.
    s.enqueue(6, req(51, "a", 100, 0)).unwrap();
    assert_eq!(counter(&s, "a"), 1000.0);
    assert_eq!(s.next(7, BIG).unwrap().tenant, "b");
}

#[test]
fn head_that_does_not_fit_stops_filling() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.enqueue(0, req(1, "a", 500, 500)).unwrap();
    s.enqueue(0, req(2, "b", 10, 10)).unwrap();
    assert!(s.next(0, 999).is_none(), "b's small request must not jump the queue");
    let d = s.next(0, 1000).unwrap();
    assert_eq!((d.id, d.cost_tokens), (1, 1000));
    assert_eq!(s.next(0, 20).unwrap().id, 2);
}

#[test]
fn higher_class_strictly_first() {
    let mut s = Scheduler::new(cfg(), vec![class("hi", 10, false, 0.0), class("lo", 1, false, 0.0)]);
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("l", tenant(1.0, "lo"));
    for i in 0..3 {
        s.enqueue(0, req(i, "l", 10, 10)).unwrap();
    }
    for i in 0..3 {
        s.enqueue(1, req(10 + i, "h", 1000, 1000)).unwrap();
    }
    let order = drain(&mut s, 2);
    assert_eq!(order, ["h", "h", "h", "l", "l", "l"]);
}

#[test]
fn class_below_its_floor_is_served_first() {
    let big = SchedConfig {
        max_queued_total: 10_000,
        ..cfg()
    };
    let mut s = Scheduler::new(big, vec![class("hi", 10, false, 0.0), class("lo", 1, false, 0.2)]);
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("l", tenant(1.0, "lo"));
    for i in 0..1000 {
        s.enqueue(0, req(i, "h", 100, 100)).unwrap();
        s.enqueue(0, req(10_000 + i, "l", 100, 100)).unwrap();
    }
    let mut lo = 0;
    for k in 0..500u64 {
        if s.next(k * 10, BIG).unwrap().tenant == "l" {
            lo += 1;
        }
    }
    assert!((98..=102).contains(&lo), "lo got {lo} of 500 at a 20% floor");
}

#[test]
fn floor_debt_from_an_idle_higher_class_is_forgotten() {
    let big = SchedConfig {
        max_queued_total: 10_000,
        ..cfg()
    };
    let mut s = Scheduler::new(big, vec![class("hi", 10, false, 0.0), class("lo", 1, false, 0.1)]);
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("l", tenant(1.0, "lo"));
    // lo alone takes everything for a long time...
    for i in 0..2000 {
        s.enqueue(0, req(i, "l", 100, 100)).unwrap();
    }
    for _ in 0..1000 {
        assert_eq!(s.next(0, BIG).unwrap().tenant, "l");
    }
    // ...then hi saturates: lo is served again after a bounded number of hi dispatches, not after 9000.
    for i in 0..1000 {
        s.enqueue(1, req(10_000 + i, "h", 100, 100)).unwrap();
    }
    let order: Vec<String> = (0..100).filter_map(|_| s.next(1, BIG).map(|d| d.tenant)).collect();
    let first_lo = order.iter().position(|t| t == "l").unwrap();
    assert!((30..=50).contains(&first_lo), "lo waited {first_lo} dispatches");
    let lo = order.iter().filter(|t| *t == "l").count();
    assert!((5..=12).contains(&lo), "{lo}");
}

#[test]
fn unknown_class_is_the_default_class_of_value_zero() {
    let mut s = Scheduler::new(cfg(), vec![class("neg", -1, false, 0.0)]);
    s.set_tenant("x", tenant(1.0, "nope"));
    s.set_tenant("n", tenant(1.0, "neg"));
    s.enqueue(0, req(1, "n", 1, 1)).unwrap();
    s.enqueue(0, req(2, "x", 1, 1)).unwrap();
    assert_eq!(s.next(0, BIG).unwrap().tenant, "x");
    assert_eq!(s.stats().iter().find(|t| t.tenant == "x").unwrap().class, "default");
}

#[test]
fn tenant_cap_is_429_and_total_cap_503() {
    let mut s = Scheduler::new(
        SchedConfig {
            max_queued_total: 3,
            ..cfg()
        },
        vec![],
    );
    s.set_tenant(
        "a",
        TenantConfig {
            max_queued: Some(2),
            ..tenant(1.0, "")
        },
    );
    s.enqueue(0, req(1, "a", 1, 1)).unwrap();
    s.enqueue(0, req(2, "a", 1, 1)).unwrap();
    let e = s.enqueue(0, req(3, "a", 1, 1)).unwrap_err();
    assert!(matches!(e, Rejected::TenantQueueFull { .. }), "{e:?}");
    assert!(e.to_string().contains("tenant's queue is full"));
    s.enqueue(0, req(4, "b", 1, 1)).unwrap();
    let e = s.enqueue(0, req(5, "c", 1, 1)).unwrap_err();
    assert!(
        matches!(e, Rejected::QueueFull { retry_after_ms } if retry_after_ms >= 100),
        "{e:?}"
    );
    assert_eq!((s.queued(), s.queued_for("a"), s.queued_for("c")), (3, 2, 0));
}

#[test]
fn higher_class_evicts_oldest_queued_preemptible_of_the_lowest_class() {
    let classes = vec![
        class("hi", 10, false, 0.0),
        class("batch", 1, true, 0.0),
        class("bulk", 0, true, 0.0),
    ];
    let mut s = Scheduler::new(
        SchedConfig {
            max_queued_total: 4,
            ..cfg()
        },
        classes,
    );
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("b", tenant(1.0, "batch"));
    s.set_tenant("u", tenant(1.0, "bulk"));
    s.enqueue(0, req(1, "b", 1, 1)).unwrap();
    s.enqueue(1, req(2, "u", 1, 1)).unwrap();
    s.enqueue(2, req(3, "u", 1, 1)).unwrap();
    s.enqueue(3, req(4, "b", 1, 1)).unwrap();
    assert_eq!(
        s.enqueue(4, req(5, "h", 1, 1)).unwrap(),
        vec![2],
        "oldest of the lowest class"
    );
    assert_eq!(s.enqueue(5, req(6, "b", 1, 1)).unwrap(), vec![3], "batch evicts bulk");
    // bulk is empty now; batch cannot evict batch (same class).
    assert!(matches!(
        s.enqueue(6, req(7, "b", 1, 1)),
        Err(Rejected::QueueFull { .. })
    ));
    assert_eq!(s.enqueue(7, req(8, "h", 1, 1)).unwrap(), vec![1]);
    assert!(!s.cancel(2), "evicted ids are gone");
    assert_eq!(s.queued(), 4);
}

#[test]
fn non_preemptible_lower_class_is_never_evicted() {
    let mut s = Scheduler::new(
        SchedConfig {
            max_queued_total: 1,
            ..cfg()
        },
        vec![class("hi", 10, false, 0.0), class("lo", 1, false, 0.0)],
    );
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("l", tenant(1.0, "lo"));
    s.enqueue(0, req(1, "l", 1, 1)).unwrap();
    assert!(matches!(
        s.enqueue(0, req(2, "h", 1, 1)),
        Err(Rejected::QueueFull { .. })
    ));
}

#[test]
fn timeouts_per_tenant_or_default_and_next_deadline() {
    let mut s = Scheduler::new(
        SchedConfig {
            default_timeout_ms: 1000,
            ..cfg()
        },
        vec![],
    );
    s.set_tenant(
        "fast",
        TenantConfig {
            timeout_ms: Some(100),
            ..tenant(1.0, "")
        },
    );
    s.set_tenant(
        "never",
        TenantConfig {
            timeout_ms: Some(0),
            ..tenant(1.0, "")
        },
    );
    s.enqueue(10, req(1, "other", 1, 1)).unwrap();
    s.enqueue(20, req(2, "fast", 1, 1)).unwrap();
    s.enqueue(30, req(3, "never", 1, 1)).unwrap();
    assert_eq!(s.next_deadline_ms(), Some(120));
    assert!(s.expire(119).is_empty());
    assert_eq!(s.expire(120), vec![2]);
    assert_eq!(s.next_deadline_ms(), Some(1010));
    assert_eq!(s.expire(5000), vec![1]);
    assert_eq!(s.next_deadline_ms(), None);
    assert_eq!(s.queued(), 1);
    assert_eq!(s.next(5000, BIG).unwrap().waited_ms, 4970);
}

#[test]
fn cancel_removes_and_the_tenant_leaves_the_backlog() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.enqueue(0, req(1, "a", 1, 1)).unwrap();
    s.enqueue(0, req(2, "a", 1, 1)).unwrap();
    s.enqueue(0, req(3, "b", 1, 1)).unwrap();
    assert!(s.cancel(1));
    assert!(!s.cancel(1));
    assert_eq!(s.next(0, BIG).unwrap().id, 2, "head skips the cancelled request");
    assert!(s.cancel(3));
    assert_eq!(s.queued(), 0);
    assert!(s.next(0, BIG).is_none());
    // Ids may be reused once they left the queue.
    s.enqueue(1, req(1, "a", 1, 1)).unwrap();
    assert_eq!(s.next(1, BIG).unwrap().id, 1);
}

#[test]
fn duplicate_queued_id_is_refused() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.enqueue(0, req(1, "a", 1, 1)).unwrap();
    assert!(s.enqueue(0, req(1, "b", 1, 1)).is_err());
    assert_eq!(s.queued(), 1);
}

#[test]
fn weight_change_applies_to_the_next_charge() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.enqueue(0, req(1, "a", 100, 0)).unwrap();
    s.next(0, BIG).unwrap();
    s.set_tenant("a", tenant(4.0, ""));
    s.charge_output("a", 100);
    assert_eq!(counter(&s, "a"), 150.0);
}

#[test]
fn class_change_moves_queued_requests() {
    let mut s = Scheduler::new(cfg(), vec![class("hi", 10, false, 0.0)]);
    s.enqueue(0, req(1, "a", 1, 1)).unwrap();
    s.enqueue(0, req(2, "b", 1, 1)).unwrap();
    s.enqueue(0, req(3, "b", 1, 1)).unwrap();
    s.set_tenant("b", tenant(1.0, "hi"));
    assert_eq!(drain(&mut s, 0), ["b", "b", "a"]);
}

#[test]
fn class_reload_keeps_every_queued_request() {
    let mut s = Scheduler::new(cfg(), vec![class("hi", 10, false, 0.0), class("lo", 1, false, 0.0)]);
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("l", tenant(1.0, "lo"));
    for i in 0..3 {
        s.enqueue(0, req(i, "h", 1, 1)).unwrap();
        s.enqueue(0, req(10 + i, "l", 1, 1)).unwrap();
    }
    s.cancel(0);
    // Swap priorities.
    s.set_classes(vec![class("hi", 1, false, 0.0), class("lo", 10, false, 0.0)]);
    assert_eq!(s.queued(), 5);
    assert_eq!(drain(&mut s, 0), ["l", "l", "l", "h", "h"]);
}

#[test]
fn lower_class_leaves_headroom_for_a_recently_active_higher_class() {
    let mut s = Scheduler::new(cfg(), vec![class("hi", 10, false, 0.0), class("lo", 1, false, 0.0)]);
    s.set_headroom_tokens(500);
    s.set_tenant("h", tenant(1.0, "hi"));
    s.set_tenant("l", tenant(1.0, "lo"));
    s.enqueue(0, req(1, "l", 100, 100)).unwrap();
    assert_eq!(
        s.next(0, 200).unwrap().id,
        1,
        "no higher class seen yet: all of the budget"
    );
    s.enqueue(0, req(2, "h", 100, 100)).unwrap();
    assert_eq!(s.next(0, 200).unwrap().id, 2);
    s.enqueue(1, req(3, "l", 100, 100)).unwrap();
    assert!(s.next(1, 600).is_none(), "500 tokens stay free for hi");
    assert_eq!(s.next(1, 700).unwrap().id, 3);
}

#[test]
fn long_backlogged_tenant_leaves_headroom_for_interactive_ones() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.set_headroom_tokens(500);
    for i in 0..50 {
        s.enqueue(0, req(i, "heavy", 100, 100)).unwrap();
    }
    // No interactive traffic seen yet: the backlog may use the whole budget.
    assert!(s.next(2000, 200).is_some());
    s.enqueue(2000, req(100, "light", 100, 100)).unwrap();
    assert_eq!(
        s.next(2000, 200).unwrap().tenant,
        "light",
        "interactive: all of the budget"
    );
    // heavy has been backlogged since t=0: it must leave 500 free now.
    assert!(s.next(2001, 600).is_none());
    assert_eq!(s.next(2001, 700).unwrap().tenant, "heavy");
    // A tenant backlogged for under a second is still interactive.
    s.enqueue(2002, req(101, "light", 100, 100)).unwrap();
    s.enqueue(2002, req(102, "light", 100, 100)).unwrap();
    s.charge_output("heavy", 1000);
    assert_eq!(s.next(2500, 200).unwrap().tenant, "light");
    assert_eq!(s.next(2600, 200).unwrap().tenant, "light");
}

#[test]
fn idle_unconfigured_tenants_are_forgotten_after_an_hour() {
    let mut s = Scheduler::new(cfg(), vec![]);
    s.set_tenant("kept", tenant(1.0, ""));
    s.enqueue(0, req(1, "gone", 1, 1)).unwrap();
    s.enqueue(0, req(2, "kept", 1, 1)).unwrap();
    drain(&mut s, 0);
    s.expire(3_599_000);
    assert_eq!(s.stats().len(), 2);
    s.expire(3_700_000);
    let names: Vec<String> = s.stats().into_iter().map(|t| t.tenant).collect();
    assert_eq!(names, ["kept"]);
    s.enqueue(3_700_001, req(3, "gone", 1, 1)).unwrap();
    assert_eq!(s.queued_for("gone"), 1);
}
