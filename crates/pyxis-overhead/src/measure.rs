//! The measurement core: latency at concurrency 1 (whole and streamed answers) and closed-loop saturation,
//! direct to the upstream and through a proxy, alternating request by request (block by block for saturation)
//! so that drift (CPU frequency, caches, neighbours' load) falls on both alike. Each proxy is paired with its
//! own direct baseline: a slow proxy's leftover work must not land on another proxy's figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{ClientError, Conn, Endpoint, StreamTiming, Target};
use crate::progress::Progress;
use crate::stats::Dist;

/// How much to measure.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Unmeasured requests per target before each latency phase.
    pub warmup: usize,
    /// Non-streamed requests per target at concurrency 1.
    pub latency_requests: usize,
    /// Streamed requests per target at concurrency 1.
    pub stream_requests: usize,
    /// Longest time of each concurrency-1 phase after warm-up; fewer requests are made when it runs out, so a
    /// slow proxy does not stretch the run.
    #[serde(serialize_with = "secs")]
    pub phase_limit: Duration,
    /// Workers of the closed loop.
    pub concurrency: usize,
    /// Closed-loop time per target and kind of answer.
    #[serde(serialize_with = "secs")]
    pub saturation: Duration,
    /// The closed-loop time is cut into this many blocks, targets alternating block by block.
    pub rounds: usize,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Plan {
    /// Progress units `measure` reports for `targets` targets.
    pub fn units(&self, targets: usize) -> u64 {
        let t = targets as u64;
        let sat_ms = self.saturation.as_millis() as u64;
        t * (self.warmup + self.latency_requests + self.stream_warmup() + self.stream_requests) as u64 + 2 * t * sat_ms
    }

    fn stream_warmup(&self) -> usize {
        (self.warmup / 4).max(1)
    }
}

/// What was measured for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub name: String,
    /// Non-streamed request to end of body, concurrency 1.
    pub latency_ms: Dist,
    /// Streamed: to the first content chunk.
    pub ttft_ms: Dist,
    /// Streamed: first content chunk to last.
    pub first_to_last_ms: Dist,
    /// Streamed: to `[DONE]`.
    pub stream_total_ms: Dist,
    /// Content chunks per streamed answer (the least seen).
    pub chunks: usize,
    /// Closed loop, non-streamed: completed requests per second.
    pub rps_whole: f64,
    /// Closed loop, streamed.
    pub rps_stream: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("{target}: {source}")]
    Client { target: String, source: ClientError },
    #[error("{target}: no successful {phase} request ({errors} failed; first: {first})")]
    NoSamples {
        target: String,
        phase: &'static str,
        errors: u64,
        first: String,
    },
}

/// Errors seen for one target, without stopping the run.
#[derive(Default)]
struct Tally {
    errors: u64,
    first: Option<String>,
}

impl Tally {
    fn add(&mut self, e: &ClientError) {
        self.errors += 1;
        self.first.get_or_insert_with(|| e.to_string());
    }
}

/// Checks every target answers both kinds of request, so a misconfiguration fails at once and clearly.
pub async fn preflight(targets: &[Target]) -> Result<Vec<Arc<Endpoint>>, MeasureError> {
    let mut eps = Vec::new();
    for t in targets {
        let err = |source| MeasureError::Client {
            target: t.name.clone(),
            source,
        };
        let ep = Endpoint::resolve(t).await.map_err(err)?;
        let mut c = Conn::open(ep.clone()).await.map_err(err)?;
        c.whole().await.map_err(err)?;
        c.stream().await.map_err(err)?;
        eps.push(ep);
    }
    Ok(eps)
}

/// The same measurements direct and through a proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub direct: Figures,
    pub through: Figures,
}

/// Measures `direct` (the upstream itself) and `through` (a proxy in front of it), interleaved.
pub async fn measure_pair(
    direct: &Target,
    through: &Target,
    plan: &Plan,
    progress: &Progress,
) -> Result<Comparison, MeasureError> {
    let figs = measure(&[direct.clone(), through.clone()], plan, progress).await?;
    let [direct, through] = <[Figures; 2]>::try_from(figs).map_err(|f| MeasureError::NoSamples {
        target: through.name.clone(),
        phase: "any",
        errors: 0,
        first: format!("{} figures for 2 targets", f.len()),
    })?;
    Ok(Comparison { direct, through })
}

/// Measures every target, interleaved; the figures come in the order of `targets`.
async fn measure(targets: &[Target], plan: &Plan, progress: &Progress) -> Result<Vec<Figures>, MeasureError> {
    let eps = preflight(targets).await?;
    let n = eps.len();
    let mut tallies: Vec<Tally> = (0..n).map(|_| Tally::default()).collect();
    let mut conns = Vec::with_capacity(n);
    for ep in &eps {
        conns.push(Conn::open(ep.clone()).await.map_err(|source| MeasureError::Client {
            target: ep.name.clone(),
            source,
        })?);
    }

    progress.phase(format!(
        "latency, concurrency 1, non-streamed: {} requests per target",
        plan.latency_requests
    ));
    let mut latency: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut clock = PhaseClock::new(plan, n, plan.warmup + plan.latency_requests);
    for round in 0..plan.warmup + plan.latency_requests {
        if clock.expired(round, plan.warmup) {
            break;
        }
        for j in 0..n {
            // Rotating who goes first cancels any effect of order within a round.
            let i = (round + j) % n;
            match conns[i].whole().await {
                Ok(d) if round >= plan.warmup => latency[i].push(d.as_secs_f64()),
                Ok(_) => {}
                Err(e) => tallies[i].add(&e),
            }
            clock.done(progress);
        }
    }
    clock.finish(progress);

    progress.phase(format!(
        "latency, concurrency 1, streamed: {} requests per target",
        plan.stream_requests
    ));
    let mut streams: Vec<Vec<StreamTiming>> = vec![Vec::new(); n];
    let sw = plan.stream_warmup();
    let mut clock = PhaseClock::new(plan, n, sw + plan.stream_requests);
    for round in 0..sw + plan.stream_requests {
        if clock.expired(round, sw) {
            break;
        }
        for j in 0..n {
            let i = (round + j) % n;
            match conns[i].stream().await {
                Ok(t) if round >= sw => streams[i].push(t),
                Ok(_) => {}
                Err(e) => tallies[i].add(&e),
            }
            clock.done(progress);
        }
    }
    clock.finish(progress);
    drop(conns);

    let mut rps = vec![[0.0f64; 2]; n];
    for (k, stream) in [false, true].into_iter().enumerate() {
        progress.phase(format!(
            "saturation, concurrency {}, {}: {:.0} s per target",
            plan.concurrency,
            if stream { "streamed" } else { "non-streamed" },
            plan.saturation.as_secs_f64()
        ));
        let rounds = plan.rounds.max(1);
        let block = plan.saturation / rounds as u32;
        let mut done = vec![0u64; n];
        for round in 0..rounds {
            for j in 0..n {
                let i = (round + j) % n;
                let r = closed_loop(&eps[i], plan.concurrency, block, stream, progress).await;
                done[i] += r.ok;
                tallies[i].errors += r.tally.errors;
                if let Some(f) = r.tally.first {
                    tallies[i].first.get_or_insert(f);
                }
            }
        }
        for i in 0..n {
            rps[i][k] = done[i] as f64 / (block * rounds as u32).as_secs_f64();
        }
    }

    let mut out = Vec::with_capacity(n);
    for (i, ep) in eps.iter().enumerate() {
        let t = &tallies[i];
        let none = |phase| MeasureError::NoSamples {
            target: ep.name.clone(),
            phase,
            errors: t.errors,
            first: t.first.clone().unwrap_or_default(),
        };
        if latency[i].is_empty() {
            return Err(none("non-streamed"));
        }
        if streams[i].is_empty() {
            return Err(none("streamed"));
        }
        let s = &streams[i];
        let col = |f: fn(&StreamTiming) -> f64| s.iter().map(f).collect::<Vec<_>>();
        out.push(Figures {
            name: ep.name.clone(),
            latency_ms: Dist::of_seconds(&latency[i]),
            ttft_ms: Dist::of_seconds(&col(|t| t.ttft)),
            first_to_last_ms: Dist::of_seconds(&col(|t| t.first_to_last)),
            stream_total_ms: Dist::of_seconds(&col(|t| t.total)),
            chunks: s.iter().map(|t| t.chunks).min().unwrap_or(0),
            rps_whole: rps[i][0],
            rps_stream: rps[i][1],
            errors: t.errors,
            first_error: t.first.clone(),
        });
    }
    Ok(out)
}

/// Bounds a concurrency-1 phase by [`Plan::phase_limit`] and keeps the progress bar's count right when it
/// ends early.
struct PhaseClock {
    limit: Duration,
    started: Option<Instant>,
    units: u64,
    shown: u64,
}

impl PhaseClock {
    fn new(plan: &Plan, targets: usize, rounds: usize) -> PhaseClock {
        PhaseClock {
            limit: plan.phase_limit,
            started: None,
            units: (targets * rounds) as u64,
            shown: 0,
        }
    }

    /// Whether the phase is over before `round`; the clock starts once warm-up is done.
    fn expired(&mut self, round: usize, warmup: usize) -> bool {
        if round < warmup {
            return false;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        started.elapsed() > self.limit
    }

    fn done(&mut self, progress: &Progress) {
        self.shown += 1;
        progress.inc(1);
    }

    fn finish(&self, progress: &Progress) {
        progress.inc(self.units.saturating_sub(self.shown));
    }
}

struct LoopResult {
    ok: u64,
    tally: Tally,
}

/// `concurrency` workers, each on its own connection, send back-to-back requests for `dur`; counts the requests
/// that completed within it. Connections are opened before the clock starts.
async fn closed_loop(
    ep: &Arc<Endpoint>,
    concurrency: usize,
    dur: Duration,
    stream: bool,
    progress: &Progress,
) -> LoopResult {
    let mut tally = Tally::default();
    let opened = futures::future::join_all((0..concurrency).map(|_| Conn::open(ep.clone()))).await;
    let mut conns = Vec::with_capacity(concurrency);
    for c in opened {
        match c {
            Ok(c) => conns.push(c),
            Err(e) => tally.add(&e),
        }
    }
    let deadline = Instant::now() + dur;
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let (mut ok, mut t) = (0u64, Tally::default());
                while Instant::now() < deadline {
                    let r = if stream {
                        c.stream().await.map(|_| ())
                    } else {
                        c.whole().await.map(|_| ())
                    };
                    match r {
                        Ok(()) if Instant::now() <= deadline => ok += 1,
                        Ok(()) => {}
                        Err(e) => {
                            t.add(&e);
                            // A refusing target must not spin the CPU the others need.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (ok, t)
            })
        })
        .collect();
    let all = futures::future::join_all(workers);
    tokio::pin!(all);
    let tick = Duration::from_millis(100);
    let mut shown = 0u64;
    let total_ms = dur.as_millis() as u64;
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            _ = tokio::time::sleep(tick) => {
                if shown + 100 <= total_ms {
                    shown += 100;
                    progress.inc(100);
                }
            }
        }
    };
    progress.inc(total_ms - shown);
    let mut ok = 0;
    for r in results {
        match r {
            Ok((n, t)) => {
                ok += n;
                tally.errors += t.errors;
                if let Some(f) = t.first {
                    tally.first.get_or_insert(f);
                }
            }
            Err(e) => {
                tally.errors += 1;
                tally.first.get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    LoopResult { ok, tally }
}
