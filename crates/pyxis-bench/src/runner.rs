//! Drives one load point: a closed loop of workers, or a dispatcher that sends on schedule;
//! collects every request's record while the progress bar follows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::client::{self, Target};
use crate::config::{Amount, Load, TenantKey};
use crate::metrics::RequestRecord;
use crate::progress::Progress;
use crate::schedule::Arrivals;
use crate::workload::RequestSet;

/// What every request task needs.
pub(crate) struct Shared {
    pub client: reqwest::Client,
    pub target: Target,
    pub set: RequestSet,
    pub tenants: Vec<TenantKey>,
    /// Tenant index per request index, cycled.
    pub cycle: Vec<usize>,
}

impl Shared {
    async fn one(&self, index: u64, salt: u64) -> RequestRecord {
        let tenant = self.cycle[(index % self.cycle.len() as u64) as usize];
        let key = self.tenants.get(tenant).map(|t| t.key.as_str());
        let req = self.set.get(index, salt);
        let mut rec = client::send(&self.client, &self.target, key, &req).await;
        rec.tenant = tenant;
        rec
    }
}

/// Requests in flight now and at most.
#[derive(Default)]
struct InFlight {
    now: AtomicU64,
    peak: AtomicU64,
}

struct Slot(Arc<InFlight>);

impl InFlight {
    fn enter(self: &Arc<Self>) -> Slot {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
        Slot(self.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One point's raw results.
pub(crate) struct PointRun {
    pub records: Vec<RequestRecord>,
    /// First request sent to last response ended (vLLM's `benchmark_duration`).
    pub duration: Duration,
    pub peak_in_flight: u64,
}

/// Parameters of one point.
pub(crate) struct PointSpec {
    pub load: Load,
    pub amount: Amount,
    pub max_concurrency: Option<u32>,
    /// Seed of the arrival schedule.
    pub seed: u64,
    /// Request stream (see [`RequestSet::get`]).
    pub salt: u64,
}

/// Runs one point to the end: every admitted request finishes (or times out) before it returns.
pub(crate) async fn run_point(shared: Arc<Shared>, spec: PointSpec, progress: &Progress) -> PointRun {
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let flight = Arc::new(InFlight::default());
    let start = Instant::now();
    let PointSpec {
        load,
        amount,
        max_concurrency,
        seed,
        salt,
    } = spec;
    match load {
        Load::Concurrency(c) => {
            let next = Arc::new(AtomicU64::new(0));
            for _ in 0..c {
                let (shared, tx, next, flight) = (shared.clone(), tx.clone(), next.clone(), flight.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if !amount.admits(i, start.elapsed()) {
                            break;
                        }
                        let slot = flight.enter();
                        let rec = shared.one(i, salt).await;
                        drop(slot);
                        if tx.send(rec).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        Load::Rate(_) | Load::Burst { .. } => {
            let (shared, tx, flight) = (shared.clone(), tx.clone(), flight.clone());
            tokio::spawn(dispatch(
                shared,
                tx,
                flight,
                load,
                amount,
                max_concurrency,
                seed,
                salt,
                start,
            ));
        }
    }
    drop(tx);
    let mut records = Vec::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            r = rx.recv() => {
                let Some(rec) = r else { break };
                if rec.failure.is_some() { failed += 1 } else { ok += 1 }
                records.push(rec);
                progress.update(ok, failed, flight.now.load(Ordering::Relaxed), start.elapsed());
            }
            _ = tick.tick() => progress.update(ok, failed, flight.now.load(Ordering::Relaxed), start.elapsed()),
        }
    }
    let duration = start.elapsed();
    progress.finish();
    PointRun {
        records,
        duration,
        peak_in_flight: flight.peak.load(Ordering::Relaxed),
    }
}

/// Open loop: sends each request at its scheduled offset (later if `max_concurrency` requests are
/// in flight, as vLLM's semaphore does), each in its own task.
#[allow(clippy::too_many_arguments)]
async fn dispatch(
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<RequestRecord>,
    flight: Arc<InFlight>,
    load: Load,
    amount: Amount,
    max_concurrency: Option<u32>,
    seed: u64,
    salt: u64,
    start: Instant,
) {
    let sem = max_concurrency.map(|m| Arc::new(Semaphore::new(m as usize)));
    for (i, at) in (0u64..).zip(Arrivals::new(load, seed)) {
        if !amount.admits(i, at) {
            break;
        }
        tokio::time::sleep_until((start + at).into()).await;
        let permit = match &sem {
            Some(s) => match s.clone().acquire_owned().await {
                // A request held back by the cap past the end of a timed point is not sent.
                Ok(_) if !amount.admits(i, start.elapsed()) => break,
                Ok(p) => Some(p),
                Err(_) => break,
            },
            None => None,
        };
        let (shared, tx, flight) = (shared.clone(), tx.clone(), flight.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let slot = flight.enter();
            let rec = shared.one(i, salt).await;
            drop(slot);
            let _ = tx.send(rec);
        });
    }
}
