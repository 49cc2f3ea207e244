//! The virtual-time runner: determinism under a seed, pluggable routing and admission, and
//! behaviour a policy comparison relies on (prefix affinity raises hits, saturation raises TTFT).

use pyxis_sim_core::sim::{
    AdmissionScheduler, Fifo, FnRouter, LeastLoaded, PrefixAffinity, QueuedRequest, RoundRobin, SimConfig,
    VirtualFleet, run_default,
};
use pyxis_sim_core::workload::{Arrival, LengthDist, TenantSpec, Workload, WorkloadSpec};
use pyxis_sim_core::{Engine, EngineConfig, Time};

fn engines(n: usize) -> Vec<Engine> {
    let cfg = EngineConfig::for_names("h100", "llama-3-8b").expect("profile");
    (0..n).map(|_| Engine::new(cfg.clone())).collect()
}

fn workload(rate: f64, seed: u64, prefix_groups: u32) -> Workload {
    let t = |name: &str| TenantSpec {
        name: name.into(),
        weight: 1.0,
        prompt_tokens: LengthDist::LogNormal {
            median: 1200.0,
            sigma: 0.5,
            min: 16,
            max: 6000,
        },
        output_tokens: LengthDist::LogNormal {
            median: 100.0,
            sigma: 0.5,
            min: 4,
            max: 800,
        },
        prefix_groups,
        prefix_tokens: 1000,
        lora: None,
    };
    Workload::new(
        WorkloadSpec {
            arrival: Arrival::Poisson { rate },
            duration_s: 60.0,
            max_requests: None,
            tenants: vec![t("a"), t("b")],
            seed,
        },
        128_256,
    )
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let a = run_default(engines(4), &mut workload(40.0, 1, 0), SimConfig::default());
    let b = run_default(engines(4), &mut workload(40.0, 1, 0), SimConfig::default());
    let c = run_default(engines(4), &mut workload(40.0, 2, 0), SimConfig::default());
    assert_eq!(a, b);
    assert_ne!(a.overall.ttft, c.overall.ttft);
    assert_eq!(a.overall.completed, a.issued);
    assert!(a.overall.completed > 2000);
    assert_eq!(a.tenants.len(), 2);
    assert_eq!(a.tenants[0].completed + a.tenants[1].completed, a.overall.completed);
}

#[test]
fn latency_grows_and_throughput_saturates_with_load() {
    let light = run_default(engines(1), &mut workload(2.0, 3, 0), SimConfig::default());
    // ~1,400 prompt tokens a request: 12/s uses about half of an H100's prefill FLOPs, 40/s is
    // past saturation.
    let heavy = run_default(engines(1), &mut workload(12.0, 3, 0), SimConfig::default());
    let overload = run_default(engines(1), &mut workload(40.0, 3, 0), SimConfig::default());

    assert!(heavy.overall.ttft.p90 > light.overall.ttft.p90);
    assert!(
        heavy.overall.itl.p50 > light.overall.itl.p50,
        "bigger batches, slower steps"
    );
    // Past saturation, twice the offered load does not double what is served per engine-second.
    let served = |r: &pyxis_sim_core::report::Report| r.overall.output_tokens as f64 / r.simulated_s;
    assert!(
        served(&overload) < 1.6 * served(&heavy),
        "{} vs {}",
        served(&overload),
        served(&heavy)
    );
    assert!(
        overload.overall.ttft.p50 > 5.0 * heavy.overall.ttft.p50,
        "queues build past saturation"
    );
}

#[test]
fn prefix_affinity_raises_hits_over_round_robin() {
    // 600 shared 1,000-token prefixes (documents) over 4 engines: more than one engine's KV cache
    // holds, so where a request lands decides whether its prefix is still cached.
    let cfg = SimConfig::default();
    let rr = VirtualFleet::new(engines(4), cfg.clone()).run(
        &mut workload(30.0, 5, 300),
        &mut RoundRobin::default(),
        &mut Fifo::default(),
    );
    let pa = VirtualFleet::new(engines(4), cfg).run(
        &mut workload(30.0, 5, 300),
        &mut PrefixAffinity::new(8),
        &mut Fifo::default(),
    );
    assert!(
        pa.overall.prefix_hit_rate > rr.overall.prefix_hit_rate + 0.05,
        "prefix-aware {:.3} vs round robin {:.3}",
        pa.overall.prefix_hit_rate,
        rr.overall.prefix_hit_rate
    );
    assert!(pa.overall.ttft.p50 < rr.overall.ttft.p50);
}

/// Admits the tenant with the fewest admissions so far (a toy fair-share scheduler).
#[derive(Default)]
struct FewestFirst {
    queued: Vec<QueuedRequest>,
    admitted: [u64; 2],
}

impl AdmissionScheduler for FewestFirst {
    fn push(&mut self, _now: Time, req: QueuedRequest) {
        self.queued.push(req);
    }
    fn pop(&mut self, _now: Time) -> Option<QueuedRequest> {
        let i = (0..self.queued.len()).min_by_key(|i| (self.admitted[self.queued[*i].tenant as usize], *i))?;
        let r = self.queued.remove(i);
        self.admitted[r.tenant as usize] += 1;
        Some(r)
    }
    fn len(&self) -> usize {
        self.queued.len()
    }
}

#[test]
fn gateway_hooks_plug_in() {
    // Tenant a sends 4x the traffic of b into one engine limited to 8 in flight by the gateway.
    let t = |name: &str, weight: f64| TenantSpec {
        weight,
        ..TenantSpec::fixed(name, 600, 120)
    };
    let spec = WorkloadSpec {
        arrival: Arrival::Poisson { rate: 40.0 },
        duration_s: 30.0,
        max_requests: None,
        tenants: vec![t("a", 4.0), t("b", 1.0)],
        seed: 9,
    };
    let cfg = SimConfig {
        max_in_flight_per_engine: Some(8),
        ..SimConfig::default()
    };
    let fifo = VirtualFleet::new(engines(1), cfg.clone()).run(
        &mut Workload::new(spec.clone(), 128_256),
        &mut LeastLoaded::default(),
        &mut Fifo::default(),
    );
    let fair = VirtualFleet::new(engines(1), cfg.clone()).run(
        &mut Workload::new(spec.clone(), 128_256),
        &mut LeastLoaded::default(),
        &mut FewestFirst::default(),
    );
    assert!(fifo.overall.gateway_queue.p50 > 0.0, "the gateway queue fills");
    // The light tenant waits much less when it is not stuck behind the heavy one.
    assert!(
        fair.tenants[1].ttft.p50 < 0.5 * fifo.tenants[1].ttft.p50,
        "fair {:?} fifo {:?}",
        fair.tenants[1].ttft,
        fifo.tenants[1].ttft
    );
    for e in &fifo.engines {
        assert!(e.max_waiting <= 8);
    }
    // A closure router that refuses everything: all rejected, nothing served.
    let mut refuse =
        FnRouter(|_: Time, _: &pyxis_sim_core::sim::RouteRequest<'_>, _: &[pyxis_sim_core::sim::EngineView<'_>]| None);
    let r =
        VirtualFleet::new(engines(1), cfg).run(&mut Workload::new(spec, 128_256), &mut refuse, &mut Fifo::default());
    assert_eq!(r.overall.completed, 0);
    assert_eq!(r.overall.rejected, r.issued);
}

#[test]
fn closed_loop_keeps_concurrency() {
    let spec = WorkloadSpec {
        arrival: Arrival::Closed {
            concurrency: 16,
            think_s: 0.0,
        },
        duration_s: 20.0,
        max_requests: None,
        tenants: vec![TenantSpec::fixed("a", 256, 64)],
        seed: 1,
    };
    let r = run_default(engines(1), &mut Workload::new(spec, 128_256), SimConfig::default());
    let e = &r.engines[0];
    assert!(e.busy_fraction > 0.95, "{}", e.busy_fraction);
    // Little's law: 16 in flight ≈ throughput × latency.
    let l = r.overall.requests_per_s * r.overall.e2e.mean;
    assert!((l - 16.0).abs() < 1.5, "{l}");
}
