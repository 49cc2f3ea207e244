//! I/O threads: one single-threaded tokio runtime per core, each serving whole client connections.
//!
//! On tokio's multi-threaded runtime a request moves between workers: the worker whose
//! `epoll_wait` sees the client's bytes is not always the one that sees the runtime's answer, and
//! a task woken on one worker wakes an idle one to steal it (an eventfd write or a futex wake and
//! a context switch each time). At concurrency 1 on 2 cores that hand-off was the largest part of
//! what the gateway added to a request (`pyxis overhead`). Here the accept loop hands each new
//! connection to the I/O thread with the fewest open connections, and everything the connection
//! does (its requests, their upstream connections, streamed bodies) stays on that thread. The
//! upstream pool is sharded by I/O thread ([`current`]) so a request reuses connections whose
//! sockets the same thread polls.
//!
//! Background work (health checks, the audit writer, reloads) stays on the main runtime. The I/O
//! runtimes are stopped last, when the [`Cores`] is dropped: connections that one of them opened
//! for a shared client (a PostgreSQL pool, Redis) keep working until the gateway has drained.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// 1-based index of the I/O thread this is; 0 on every other thread.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Which I/O thread runs the caller: `1..=n` on the gateway's I/O threads, `0` anywhere else.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

struct Core {
    handle: Handle,
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
}

/// The I/O threads. Dropping it stops them; tasks still on them are dropped.
pub struct Cores {
    cores: Vec<Core>,
}

impl std::fmt::Debug for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cores").field("threads", &self.cores.len()).finish()
    }
}

impl Cores {
    /// Starts `n` I/O threads (at least one), each with a single-threaded runtime with I/O and
    /// timers.
    pub fn start(n: usize) -> std::io::Result<Cores> {
        let mut cores = Vec::new();
        for i in 1..=n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Names its blocking-pool threads (`spawn_blocking`); the I/O thread is named below.
                .thread_name(format!("pyxis-io-{i}-blk"))
                .build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("pyxis-io-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                    // Dropping the runtime here drops the tasks still on it.
                })?;
            cores.push(Core {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
            });
        }
        Ok(Cores { cores })
    }

    /// The number of I/O threads.
    pub fn len(&self) -> usize {
        self.cores.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.cores.is_empty()
    }

    /// Runs `conn` on the I/O thread with the fewest connections open. It is polled only there,
    /// so sockets it creates or adopts (`TcpStream::from_std`) belong to that thread's reactor.
    pub fn spawn_connection<F>(&self, conn: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(core) = self.cores.iter().min_by_key(|c| c.open.load(Ordering::Relaxed)) else {
            // Not reached: `start` makes at least one thread. Serve it on the caller's runtime then.
            tokio::spawn(conn);
            return;
        };
        let open = core.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        core.handle.spawn(async move {
            let _done = Decrement(open);
            conn.await;
        });
    }

    /// Open connections per I/O thread.
    pub fn open_connections(&self) -> Vec<usize> {
        self.load().open_connections()
    }

    /// A handle that reads the open-connection counts without keeping the threads alive.
    pub fn load(&self) -> IoLoad {
        IoLoad(self.cores.iter().map(|c| c.open.clone()).collect())
    }
}

/// Open connections per I/O thread, readable after the threads are gone (for `/metrics`).
#[derive(Clone, Debug)]
pub struct IoLoad(Arc<[Arc<AtomicUsize>]>);

impl IoLoad {
    /// Open connections on I/O threads `1..=n`, in order.
    pub fn open_connections(&self) -> Vec<usize> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        for c in &mut self.cores {
            if let Some(stop) = c.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_loaded_thread_and_stay_there() {
        let cores = Cores::start(2).unwrap();
        assert_eq!(cores.len(), 2);
        assert_eq!(current(), 0, "the test's own thread is not an I/O thread");
        let (release, held) = tokio::sync::watch::channel(false);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            let mut held = held.clone();
            cores.spawn_connection(async move {
                let before = current();
                let _ = held.wait_for(|r| *r).await;
                let _ = tx.send((before, current()));
            });
            seen.push(rx);
        }
        assert_eq!(cores.open_connections(), vec![2, 2], "spread by open connections");
        release.send(true).unwrap();
        let mut per_thread = [0; 3];
        for rx in seen {
            let (before, after) = rx.await.unwrap();
            assert_eq!(before, after, "a connection's task does not move between threads");
            assert!(before == 1 || before == 2);
            per_thread[before] += 1;
        }
        assert_eq!(per_thread, [0, 2, 2]);
        for _ in 0..100 {
            if cores.open_connections() == vec![0, 0] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            cores.open_connections(),
            vec![0, 0],
            "finished connections are no longer counted"
        );
    }

    #[tokio::test]
    async fn dropping_stops_the_threads_and_their_tasks() {
        let cores = Cores::start(1).unwrap();
        struct Flag(Option<oneshot::Sender<()>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                let _ = self.0.take().map(|t| t.send(()));
            }
        }
        let (tx, dropped) = oneshot::channel();
        let (started_tx, started) = oneshot::channel();
        cores.spawn_connection(async move {
            let _flag = Flag(Some(tx));
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started.await.unwrap();
        drop(cores);
        tokio::time::timeout(std::time::Duration::from_secs(5), dropped)
            .await
            .expect("the pending task was dropped with its runtime")
            .unwrap();
    }
}
