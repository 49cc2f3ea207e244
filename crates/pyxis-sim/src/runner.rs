//! Real-time driver: one task per engine runs `step()`, sleeps the step's duration (divided by
//! `speedup`), then hands each request its tokens through a channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyxis_sim_core::{Engine, EngineEvent, FinishReason, RequestTiming, SimRequest, SubmitError, Usage};
use tokio::sync::{Notify, mpsc};

/// The end of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    pub reason: FinishReason,
    pub usage: Usage,
    pub timing: RequestTiming,
}

/// One output token; `done` is set on the last one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery {
    pub token: u32,
    pub index: u32,
    pub done: Option<Done>,
}

struct Inner {
    engine: Engine,
    subs: HashMap<u64, mpsc::UnboundedSender<Delivery>>,
    next_id: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Notify,
    epoch: Instant,
    speedup: f64,
    stopped: AtomicBool,
}

/// Why a submission failed.
#[derive(Debug)]
pub(crate) enum SubmitFail {
    /// The engine is stopped (crashed or shut down).
    Stopped,
    /// The engine refused the request.
    Rejected(SubmitError),
}

/// Handle on a running engine; cheap to clone.
#[derive(Clone)]
pub(crate) struct EngineRunner {
    shared: Arc<Shared>,
}

/// A submitted request's token stream; dropping it before the end aborts the request.
pub(crate) struct Subscription {
    pub id: u64,
    pub rx: mpsc::UnboundedReceiver<Delivery>,
    runner: EngineRunner,
    finished: bool,
}

impl Subscription {
    /// Next token, or `None` when the engine stopped.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        let d = self.rx.recv().await;
        if d.as_ref().is_some_and(|d| d.done.is_some()) {
            self.finished = true;
        }
        d
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.finished {
            // The client went away (or the handler gave up): free the engine's slot and KV.
            let mut g = self.runner.lock();
            g.subs.remove(&self.id);
            g.engine.abort(self.id);
        }
    }
}

/// Tokio's timer fires on the first millisecond tick at or after a deadline; aiming this much
/// early makes deliveries late by ~0 on average instead of ~1 ms (5 ms of simulated time at 5x).
const TIMER_SLACK: Duration = Duration::from_micros(500);

/// If a wake-up comes this much (wall time) after it was due, the engine clock jumps to now
/// instead of replaying the missed steps back to back.
const MAX_LAG: Duration = Duration::from_millis(250);

impl EngineRunner {
    /// Starts the driving task on the current runtime.
    pub(crate) fn start(engine: Engine, speedup: f64) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                engine,
                subs: HashMap::new(),
                next_id: 1,
            }),
            wake: Notify::new(),
            epoch: Instant::now(),
            speedup: if speedup.is_finite() && speedup > 0.0 {
                speedup
            } else {
                1.0
            },
            stopped: AtomicBool::new(false),
        });
        let runner = EngineRunner { shared };
        tokio::spawn(runner.clone().drive());
        runner
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the engine; keep serving regardless.
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Engine time now (simulated seconds since start).
    pub(crate) fn now(&self) -> f64 {
        self.shared.epoch.elapsed().as_secs_f64() * self.shared.speedup
    }

    fn wall_of(&self, t: f64) -> Instant {
        self.shared.epoch + Duration::from_secs_f64((t / self.shared.speedup).max(0.0))
    }

    /// Reads or changes the engine under its lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        f(&mut self.lock().engine)
    }

    /// Queues a request that reached the server at engine time `arrival` (its id is assigned
    /// here). Stamping the arrival when the HTTP request came in, not after parsing and
    /// tokenising, lets that real work overlap the modelled API-server latency instead of adding
    /// to it.
    pub(crate) fn submit(&self, mut req: SimRequest, arrival: f64) -> Result<Subscription, SubmitFail> {
        if self.shared.stopped.load(Ordering::Relaxed) {
            return Err(SubmitFail::Stopped);
        }
        let now = arrival.min(self.now());
        let (tx, rx) = mpsc::unbounded_channel();
        let id = {
            let mut g = self.lock();
            let id = g.next_id;
            g.next_id += 1;
            req.id = id;
            g.engine.submit(now, req).map_err(SubmitFail::Rejected)?;
            g.subs.insert(id, tx);
            id
        };
        self.shared.wake.notify_one();
        Ok(Subscription {
            id,
            rx,
            runner: self.clone(),
            finished: false,
        })
    }

    /// Stops the task; open subscriptions see their channel close.
    pub(crate) fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.lock().subs.clear();
        self.shared.wake.notify_one();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Relaxed)
    }

    async fn drive(self) {
        let mut events = Vec::new();
        // Engine time at which the next step starts when the engine stays busy: the previous
        // step's ideal end, so timer overshoot does not accumulate into the simulated timeline.
        let mut next_start: Option<f64> = None;
        loop {
            if self.is_stopped() {
                return;
            }
            let now = self.now();
            let t = match next_start {
                Some(t) if self.wall_of(t) + MAX_LAG > Instant::now() => t,
                _ => now,
            };
            events.clear();
            let (step, wakeup) = {
                let mut g = self.lock();
                let step = g.engine.step_into(t, &mut events);
                let wakeup = if step.is_none() { g.engine.next_wakeup(t) } else { None };
                (step, wakeup)
            };
            match step {
                Some(info) => {
                    let due = self.wall_of(info.end());
                    tokio::time::sleep_until(due.checked_sub(TIMER_SLACK).unwrap_or(due).into()).await;
                    self.dispatch(&events);
                    next_start = Some(info.end());
                }
                None => {
                    next_start = None;
                    match wakeup {
                        Some(w) => {
                            tokio::select! {
                                _ = tokio::time::sleep_until(self.wall_of(w).into()) => {}
                                _ = self.shared.wake.notified() => {}
                            }
                        }
                        None => self.shared.wake.notified().await,
                    }
                }
            }
        }
    }

    fn dispatch(&self, events: &[EngineEvent]) {
        let mut gone = Vec::new();
        let mut g = self.lock();
        let mut i = 0;
        while i < events.len() {
            if let EngineEvent::Token { id, token, index } = events[i] {
                // The engine emits a request's Finished right after its last Token.
                let done = match events.get(i + 1) {
                    Some(EngineEvent::Finished {
                        id: fid,
                        reason,
                        usage,
                        timing,
                    }) if *fid == id => {
                        i += 1;
                        Some(Done {
                            reason: *reason,
                            usage: *usage,
                            timing: *timing,
                        })
                    }
                    _ => None,
                };
                let d = Delivery { token, index, done };
                let sent = g.subs.get(&id).is_some_and(|tx| tx.send(d).is_ok());
                if done.is_some() {
                    g.subs.remove(&id);
                } else if !sent {
                    gone.push(id);
                }
            }
            i += 1;
        }
        for id in gone {
            g.subs.remove(&id);
            g.engine.abort(id);
        }
    }
}
