//! FAIRBENCH smoke runs at a tenth of the documented durations: the scheduler keeps its bound and its shares
//! on the engine simulator where FCFS does not, without costing throughput.

use pyxis_sched::fairbench::{BenchOptions, Scenario, fairbench_with};

fn short() -> BenchOptions {
    BenchOptions {
        scale: 0.1,
        ..BenchOptions::default()
    }
}

#[test]
fn s1_two_tenant_overload() {
    let r = fairbench_with(Scenario::S1, 3, &short());
    assert!(r.error.is_none(), "{:?}", r.error);
    assert!(r.capacity_wtok_s > 1000.0, "{}", r.capacity_wtok_s);
    assert!(
        r.vtc.gap_over_bound > 0.0 && r.vtc.gap_over_bound <= 1.0,
        "{}",
        r.vtc.gap_over_bound
    );
    assert!(
        r.fcfs.max_gap > 5.0 * r.vtc.max_gap,
        "{} vs {}",
        r.fcfs.max_gap,
        r.vtc.max_gap
    );
    assert!(r.vtc.throughput_tok_s >= 0.97 * r.fcfs.throughput_tok_s);
    assert!(
        r.vtc.jain_mean > 0.98 && r.vtc.jain_mean > r.fcfs.jain_mean,
        "{:?}",
        (r.vtc.jain_mean, r.fcfs.jain_mean)
    );
}

#[test]
fn s5_weighted_shares() {
    let r = fairbench_with(Scenario::S5, 3, &short());
    let err = |p: &pyxis_sched::fairbench::PolicyReport| {
        p.extra
            .iter()
            .find(|m| m.name == "max relative share error")
            .map(|m| m.value)
    };
    let (v, f) = (err(&r.vtc).unwrap(), err(&r.fcfs).unwrap());
    assert!(v < 0.05, "VTC share error {v}");
    assert!(f > 0.5, "FCFS splits by arrival rate, not weight: {f}");
    let g6 = r.checks.iter().find(|c| c.goal.starts_with("G6")).unwrap();
    assert!(g6.pass);
}

#[test]
fn unknown_profile_is_reported_not_panicked() {
    let opts = BenchOptions {
        hardware: "abacus".into(),
        ..short()
    };
    let r = fairbench_with(Scenario::S1, 1, &opts);
    assert!(r.error.as_deref().is_some_and(|e| e.contains("abacus")));
}
