//! The gateway's HTTP/1 server loop: accept, `TCP_NODELAY`, one hyper connection task per client on
//! one of the I/O threads ([`Cores`]), graceful shutdown.
//!
//! `axum::serve` does the same through hyper-util's protocol-sniffing `auto` builder (a rewind
//! buffer and an HTTP/2 check in front of every connection) and offers none of hyper's settings.
//! Serving with hyper's HTTP/1 builder directly took an open stream from 34 to 30 KiB of
//! gateway memory (`pyxis overhead`), bounds each connection's read buffer (`MAX_BUF`) and
//! times out clients that never finish sending their headers.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::cores::Cores;

/// Largest read buffer of one client connection. Bodies larger than this are read in pieces of
/// this size; a request head (request line and headers) must fit in about this much, or the
/// client gets 431.
pub const MAX_BUF: usize = 64 * 1024;

/// A client that has not sent a whole request head within this long is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then waits for requests in flight
/// (streams included) to finish. Connections are accepted here and served on `cores`.
pub async fn serve(listener: TcpListener, app: Router, cores: Arc<Cores>, shutdown: impl Future<Output = ()>) {
    serve_service(listener, TowerToHyperService::new(app), cores, shutdown).await;
}

/// [`serve`] for any hyper service: the same accept loop, hyper settings, I/O threads and
/// graceful drain (`pyxis overhead`'s null proxy uses it, so it differs from the gateway by the
/// gateway's logic alone).
pub async fn serve_service<S, B>(
    listener: TcpListener,
    service: S,
    cores: Arc<Cores>,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<axum::http::Request<Incoming>, Response = axum::http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF);
    let http = Arc::new(http);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without it every streamed chunk after the first waits for the client's delayed ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        // Leaves this runtime's reactor; joins the I/O thread's when the task first runs there.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(error = %e, "cannot hand an accepted connection to an I/O thread");
                continue;
            }
        };
        let (http, service, watcher) = (http.clone(), service.clone(), graceful.watcher());
        cores.spawn_connection(async move {
            let tcp = match TcpStream::from_std(tcp) {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot adopt an accepted connection");
                    return;
                }
            };
            let conn = http.serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A failed accept: a client that left before it was accepted is nothing; running out of
/// descriptors or memory is logged and waited out, so the loop does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed (out of file descriptors? raise `ulimit -n`); retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;

    use super::*;

    async fn start(app: Router) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cores = Arc::new(Cores::start(2).unwrap());
        let server = tokio::spawn(serve(listener, app, cores, async {
            let _ = rx.await;
        }));
        (url, tx, server)
    }

    #[tokio::test]
    async fn oversized_request_head_gets_431_and_normal_requests_pass() {
        let (url, tx, server) = start(Router::new().route("/", get(|| async { "ok" }))).await;
        let client = reqwest::Client::new();
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
        // hyper checks the limit between reads, so a head somewhat over it may still parse.
        let big = "x".repeat(4 * MAX_BUF);
        let r = client.get(&url).header("x-big", big).send().await.unwrap();
        assert_eq!(r.status(), 431);
        let _ = tx.send(());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_flight_finish() {
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        };
        let (url, tx, server) = start(Router::new().route("/", get(slow))).await;
        let req = tokio::spawn(async move { reqwest::get(&url).await?.text().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let _ = tx.send(());
        server.await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150), "waited for the request");
        assert_eq!(req.await.unwrap().unwrap(), "done");
    }
}
