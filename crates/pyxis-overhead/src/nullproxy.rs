//! A proxy that does nothing but forward, on the gateway's own serve loop (`pyxis_gateway::server::serve_service`:
//! the I/O threads of `pyxis_gateway::cores`, one single-threaded runtime per CPU with a connection staying on one;
//! hyper's HTTP/1 server with `TCP_NODELAY`, the gateway's read-buffer bound and header timeout; graceful drain),
//! hyper-util's pooled legacy client out (`TCP_NODELAY` too, one pool per I/O thread), and the upstream's body
//! relayed frame by frame as it comes. No JSON parsing, no routing, no authentication: measured beside Pyxis it
//! shows the floor, what one more HTTP hop costs on this machine before any gateway logic.
//!
//! `pyxis overhead --null-proxy` runs it as a child process (`overhead --null-proxy-only --port P --upstream
//! URL`, see [`crate::procs::start_null_proxy`]), as it runs Pyxis, so that both pay for their own process and
//! runtime and both have their memory measured. [`NullProxy::start`] runs it in the calling process instead,
//! for tests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pyxis_gateway::cores::{self, Cores};
use pyxis_gateway::server;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Largest request body forwarded.
const BODY_LIMIT: usize = 1 << 20;

/// The answer relayed to the client: the upstream's body as it arrives, or a short error of the proxy's own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

struct Forward {
    /// One client (and connection pool) per I/O thread, indexed by [`cores::current`]; index 0 for any other
    /// thread. A pooled connection's task runs on the thread that opened it.
    clients: Vec<Client<HttpConnector, Full<Bytes>>>,
    /// `http://host:port` without a trailing slash; the request's path and query are appended.
    upstream: String,
}

impl Forward {
    fn new(upstream: &str, threads: usize) -> Forward {
        let client = || {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(Duration::from_secs(5)));
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(http)
        };
        Forward {
            clients: (0..=threads).map(|_| client()).collect(),
            upstream: upstream.trim_end_matches('/').to_string(),
        }
    }

    /// The same method, path and body (with its content type) to the upstream; its status, content type and
    /// body back.
    async fn forward(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, BODY_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => return own_answer(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = match Uri::try_from(format!("{}{path}", self.upstream)) {
            Ok(u) => u,
            Err(e) => return own_answer(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let mut out = Request::new(Full::new(body));
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
            out.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        let client = &self.clients[cores::current() % self.clients.len()];
        let resp = match client.request(out).await {
            Ok(r) => r,
            Err(e) => return own_answer(StatusCode::BAD_GATEWAY, e.to_string()),
        };
        let (up, body) = resp.into_parts();
        let mut answer = Response::new(Either::Left(body));
        *answer.status_mut() = up.status;
        if let Some(ct) = up.headers.get(CONTENT_TYPE) {
            answer.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        answer
    }
}

fn own_answer(status: StatusCode, msg: String) -> Response<ProxyBody> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(msg))));
    *r.status_mut() = status;
    r
}

/// Forwards every request accepted on `listener` to `upstream`, serving connections on `threads` I/O threads
/// (0: one per CPU) through the gateway's own serve loop (`pyxis_gateway::server::serve_service`: the same
/// hyper settings, I/O threads and drain), until `shutdown` resolves and the connections in flight end.
pub async fn serve(listener: TcpListener, upstream: &str, threads: usize, shutdown: impl Future<Output = ()>) {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let cores = match Cores::start(threads) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("null proxy: cannot start {threads} I/O threads: {e}");
            return;
        }
    };
    let fwd = Arc::new(Forward::new(upstream, cores.len()));
    let svc = service_fn(move |req| {
        let fwd = fwd.clone();
        async move { Ok::<_, Infallible>(fwd.forward(req).await) }
    });
    server::serve_service(listener, svc, cores, shutdown).await;
}

/// The forwarder on a task of the calling tokio runtime, stopped on drop (for tests; the benchmark runs it as a
/// child process).
pub struct NullProxy {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl NullProxy {
    /// Binds 127.0.0.1 on a free port and serves there; must be called within a tokio runtime.
    pub async fn start(upstream: &str) -> std::io::Result<NullProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = oneshot::channel::<()>();
        let upstream = upstream.to_string();
        tokio::spawn(async move {
            serve(listener, &upstream, 2, async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(NullProxy {
            addr,
            shutdown: Some(shutdown),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for NullProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
