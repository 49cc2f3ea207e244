//! The data plane's HTTP client to runtimes: HTTP/1 connections driven by the request's own task.
//!
//! A pooled client (reqwest, or hyper-util's, which reqwest wraps) runs every connection in a task
//! of its own: a request is handed to it over a channel, the response comes back over another,
//! and each body chunk is asked for and delivered across tasks again. On a 2-core machine each
//! of those hand-offs tends to wake tokio's other worker (an eventfd write and a context switch),
//! which showed as the largest part of what the gateway added at concurrency 1. Here the request's
//! task polls the connection itself, while it waits for the response head and while it reads the
//! body ([`UpstreamBody`]); when the body is done the connection goes back to a small pool of
//! idle connections per runtime address.
//!
//! Idle connections are not polled, so one the runtime closed while idle is found out when it is
//! taken: it is polled once, and dropped if it has ended. A request refused by a connection that
//! closed before the request could be written is sent again once, on a new connection (what
//! hyper-util's client does for "canceled" requests). reqwest stays for health checks and probes.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{self, HeaderMap, HeaderValue, Uri, header};
use futures::Stream;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A runtime's answer: status, headers, and a body still to read.
pub type UpstreamResponse = http::Response<UpstreamBody>;

/// Idle connections kept per runtime address.
const MAX_IDLE_PER_HOST: usize = 256;

/// Why an attempt got no answer.
#[derive(Debug)]
pub struct SendError {
    /// The connection could not be made (the endpoint is down or unreachable).
    pub connect: bool,
    /// The connection attempt timed out.
    pub timed_out: bool,
    /// What went wrong, with its causes.
    pub message: String,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One HTTP/1 connection: the handle requests are sent on, and the state machine that does the I/O.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    io: Pin<Box<Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
}

impl Conn {
    /// Moves the connection's I/O along; `Some` once the connection has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> Option<hyper::Result<()>> {
        match self.io.as_mut().poll(cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections by runtime address, in one shard per I/O thread ([`crate::cores::current`])
/// and one for every other thread: a connection's socket is registered with the reactor of the
/// thread that opened it, so it is reused from there (another thread's task would be woken
/// through that thread).
struct Pool {
    shards: Box<[Mutex<IdleByAddress>]>,
}

type IdleByAddress = HashMap<String, Vec<Idle>>;

impl Pool {
    fn new(shards: usize) -> Pool {
        Pool {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self) -> std::sync::MutexGuard<'_, IdleByAddress> {
        let i = crate::cores::current() % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, key: &str, max_idle: Duration) -> Option<Conn> {
        let mut map = self.shard();
        let list = map.get_mut(key)?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() < max_idle {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Closes idle connections older than `max_idle` (those of runtimes that left the fleet too).
    fn prune(&self, max_idle: Duration) {
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            for list in map.values_mut() {
                list.retain(|idle| idle.since.elapsed() < max_idle);
            }
            map.retain(|_, list| !list.is_empty());
        }
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        let shards = self.shards.iter();
        shards
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }

    fn put(&self, key: &str, conn: Conn) {
        let mut map = self.shard();
        let list = match map.get_mut(key) {
            Some(list) => list,
            None => map.entry(key.to_string()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// A runtime URL and API path, parsed: what a request to it needs from them.
struct Target {
    /// `host:port`, the key of the idle pool.
    authority: Arc<str>,
    host: HeaderValue,
    /// The path (and query) alone, as a request on a connection to the runtime asks for it.
    origin_form: Uri,
}

/// Runtime URLs remembered before the cache starts over.
const MAX_TARGETS: usize = 1024;

impl Target {
    fn parse(base: &str, path: &str) -> Result<Target, SendError> {
        let uri = join(base, path)?;
        let authority = match uri.authority() {
            Some(a) if uri.scheme_str() == Some("http") => a.as_str(),
            _ => {
                return Err(SendError {
                    connect: true,
                    timed_out: false,
                    message: format!("{base}: only http:// runtime URLs are supported"),
                });
            }
        };
        let invalid = |e: &dyn std::fmt::Display| SendError {
            connect: true,
            timed_out: false,
            message: format!("invalid URL {base}{path}: {e}"),
        };
        let host = HeaderValue::from_str(authority).map_err(|e| invalid(&e))?;
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = uri.path_and_query().cloned();
        let origin_form = Uri::from_parts(parts).map_err(|e| invalid(&e))?;
        Ok(Target {
            authority: Arc::from(authority),
            host,
            origin_form,
        })
    }
}

type Targets = HashMap<String, HashMap<String, Arc<Target>>>;

/// Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct UpstreamClient {
    pool: Arc<Pool>,
    targets: Arc<std::sync::RwLock<Targets>>,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .finish()
    }
}

impl UpstreamClient {
    /// `shards`: one idle pool per I/O thread plus one for other threads (see [`Pool`]).
    pub fn new(connect_timeout: Duration, pool_idle_timeout: Duration, shards: usize) -> Self {
        UpstreamClient {
            pool: Arc::new(Pool::new(shards)),
            targets: Arc::default(),
            connect_timeout,
            pool_idle_timeout,
        }
    }

    /// Closes connections idle for longer than the pool keeps them. Called periodically (the
    /// health loop), so that connections to runtimes that left the fleet do not stay open.
    pub fn prune_idle(&self) {
        self.pool.prune(self.pool_idle_timeout);
    }

    /// Idle connections in the pool.
    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Where a call to `base` + `path` goes, parsed once and remembered (an endpoint's URL and an
    /// API route make a handful of pairs, not one per request).
    fn target(&self, base: &str, path: &str) -> Result<Arc<Target>, SendError> {
        if let Some(t) = self
            .targets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(base)
            .and_then(|by| by.get(path))
        {
            return Ok(t.clone());
        }
        let t = Arc::new(Target::parse(base, path)?);
        let mut targets = self.targets.write().unwrap_or_else(|p| p.into_inner());
        if targets.len() >= MAX_TARGETS {
            // Endpoints come and go with reloads; start over rather than grow without bound.
            targets.clear();
        }
        targets
            .entry(base.to_string())
            .or_default()
            .insert(path.to_string(), t.clone());
        Ok(t)
    }

    /// POSTs `body` as JSON to `base` + `path`, with `headers` added. Resolves when the response
    /// headers arrive.
    pub async fn post_json(
        &self,
        base: &str,
        path: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, SendError> {
        let target = self.target(base, path)?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::HOST, target.host.clone());
        let authority = target.authority.clone();
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = target.origin_form.clone();
        *req.headers_mut() = headers;
        if let Some(conn) = self.ready_idle(&authority) {
            match send_on(conn, req).await {
                Ok((resp, conn)) => return Ok(self.wrap(resp, conn, authority)),
                // The runtime closed the idle connection before the request could be written:
                // nothing reached it, and hyper hands the request back for a new connection.
                Err(mut e) if e.error().is_canceled() => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(failed(&e.into_error(), false)),
                },
                Err(e) => return Err(failed(&e.into_error(), false)),
            }
        }
        let conn = self.connect(&authority).await?;
        match send_on(conn, req).await {
            Ok((resp, conn)) => Ok(self.wrap(resp, conn, authority)),
            Err(e) => Err(failed(&e.into_error(), false)),
        }
    }

    /// An idle connection to `authority` that is still open and ready for a request.
    fn ready_idle(&self, authority: &str) -> Option<Conn> {
        while let Some(mut conn) = self.pool.take(authority, self.pool_idle_timeout) {
            // One quiet poll: a connection the runtime closed while it sat idle reads its end now.
            let cx = &mut quiet();
            let ready = conn.drive(cx).is_none() && matches!(conn.send.poll_ready(cx), Poll::Ready(Ok(())));
            if ready {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self, authority: &str) -> Result<Conn, SendError> {
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(authority)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(failed(&e, true)),
            Err(_) => {
                return Err(SendError {
                    connect: true,
                    timed_out: true,
                    message: format!(
                        "tcp connect to {authority} timed out after {} ms",
                        self.connect_timeout.as_millis()
                    ),
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let (send, io) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| failed(&e, true))?;
        Ok(Conn { send, io: Box::pin(io) })
    }

    fn wrap(&self, resp: http::Response<Incoming>, conn: Conn, key: Arc<str>) -> UpstreamResponse {
        resp.map(|inner| UpstreamBody {
            inner,
            conn: Some(conn),
            pool: Some((self.pool.clone(), key)),
        })
    }
}

/// A context whose waker does nothing. The channels between a connection's `SendRequest` half
/// and its I/O half only change when this task drives the I/O half, right before it looks at
/// them, so they are polled with it: waking the task from inside its own poll would make tokio
/// reschedule it as a yield and wake the other worker to steal it.
fn quiet() -> Context<'static> {
    Context::from_waker(std::task::Waker::noop())
}

/// Sends `req` on `conn`, driving the connection until the response head arrives. A request the
/// connection refused before writing any of it comes back in the error.
async fn send_on(
    mut conn: Conn,
    req: http::Request<Full<Bytes>>,
) -> Result<(http::Response<Incoming>, Conn), TrySendError<http::Request<Full<Bytes>>>> {
    let mut pending = std::pin::pin!(conn.send.try_send_request(req));
    let resp = poll_fn(|cx| {
        // The I/O half registers this task's waker with the socket and its timers.
        let ended = conn.drive(cx);
        if let Poll::Ready(r) = pending.as_mut().poll(&mut quiet()) {
            return Poll::Ready(r);
        }
        match ended {
            // The connection failed or closed without answering: the dispatcher has handed
            // the error to the pending request.
            Some(_) => pending.as_mut().poll(cx),
            None => Poll::Pending,
        }
    })
    .await?;
    Ok((resp, conn))
}

fn failed(e: &(dyn std::error::Error + 'static), connect: bool) -> SendError {
    SendError {
        connect,
        timed_out: timed_out(e),
        message: with_causes(e),
    }
}

/// A response body that keeps its connection moving while it is read, and gives the connection
/// back to the pool once the body has been read to its end.
pub struct UpstreamBody {
    inner: Incoming,
    conn: Option<Conn>,
    pool: Option<(Arc<Pool>, Arc<str>)>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("inner", &self.inner)
            .field("holds_connection", &self.conn.is_some())
            .finish()
    }
}

impl UpstreamBody {
    fn release(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        // Let the connection see the end of the message; it is reusable once it is ready again.
        // Quietly: an idle connection in the pool must not wake this task later.
        let cx = &mut quiet();
        if conn.drive(cx).is_none()
            && matches!(conn.send.poll_ready(cx), Poll::Ready(Ok(())))
            && let Some((pool, key)) = self.pool.take()
        {
            pool.put(&key, conn);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        // Asking the body for a frame tells the I/O half it may read on, so a second round
        // often finds the next frame without a trip through the scheduler.
        for _ in 0..2 {
            let Some(conn) = &mut this.conn else { break };
            if conn.drive(cx).is_some() {
                // Ended: what it read is in the body channel, its error (if any) comes out of
                // the body, which is read with the real waker from here on.
                this.conn = None;
                break;
            }
            match Pin::new(&mut this.inner).poll_frame(&mut quiet()) {
                Poll::Ready(None) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Poll::Ready(frame) => return Poll::Ready(frame),
                Poll::Pending => {}
            }
        }
        if this.conn.is_some() {
            // Woken by the socket (or by the I/O half's own wake-ups) when there is more.
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `base` (scheme, authority, optional path prefix without a trailing slash) joined with `path`.
fn join(base: &str, path: &str) -> Result<Uri, SendError> {
    let mut s = String::with_capacity(base.len() + path.len());
    s.push_str(base);
    s.push_str(path);
    Uri::try_from(s).map_err(|e| SendError {
        connect: true,
        timed_out: false,
        message: format!("invalid URL {base}{path}: {e}"),
    })
}

/// The whole body.
pub async fn read_body(resp: UpstreamResponse) -> Result<Bytes, String> {
    match resp.into_body().collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(with_causes(&e)),
    }
}

/// The body as it arrives, read by read.
pub fn body_stream(resp: UpstreamResponse) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static {
    BodyDataStream::new(resp.into_body())
}

/// Whether an I/O timeout is among the error's causes.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut src = Some(e);
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        src = s.source();
    }
    false
}

/// An error and its sources, on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.ends_with(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::body::Body as AxumBody;
    use axum::response::Response;
    use axum::routing::post;
    use futures::StreamExt;
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn joins_base_and_path() {
        let u = join("http://127.0.0.1:8000", "/v1/chat/completions").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8000/v1/chat/completions");
        let u = join("http://gw.example:80/tenant-a", "/v2/models/m/generate?x=1").unwrap();
        assert_eq!(
            u.path_and_query().unwrap().as_str(),
            "/tenant-a/v2/models/m/generate?x=1"
        );
        assert!(join("http://bad host", "/v1").is_err());
    }

    #[test]
    fn a_timeout_anywhere_in_the_causes_counts() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let t = Outer(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"));
        assert!(timed_out(&t));
        assert_eq!(with_causes(&t), "tcp connect error: connect timed out");
        let r = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!timed_out(&r));
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = UpstreamClient::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let e = c
            .post_json(
                &format!("http://127.0.0.1:{port}"),
                "/v1/completions",
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap_err();
        assert!(e.connect && !e.timed_out, "{e}");
        let e = c
            .post_json("https://127.0.0.1:1", "/v1/completions", HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert!(e.message.contains("only http://"), "{e}");
    }

    #[test]
    fn targets_are_parsed_once_and_the_cache_stays_bounded() {
        let c = UpstreamClient::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let a = c.target("http://10.0.0.7:8000/prefix", "/v1/chat/completions").unwrap();
        assert_eq!(&*a.authority, "10.0.0.7:8000");
        assert_eq!(a.host, "10.0.0.7:8000");
        assert_eq!(a.origin_form.to_string(), "/prefix/v1/chat/completions");
        let again = c.target("http://10.0.0.7:8000/prefix", "/v1/chat/completions").unwrap();
        assert!(Arc::ptr_eq(&a, &again), "the second call is served from the cache");
        let other = c.target("http://10.0.0.7:8000/prefix", "/v1/completions").unwrap();
        assert_eq!(other.origin_form.to_string(), "/prefix/v1/completions");
        // Bad URLs are refused every time, never cached.
        for _ in 0..2 {
            assert!(c.target("https://10.0.0.7:8000", "/v1/completions").is_err());
            assert!(c.target("http://bad host", "/v1/completions").is_err());
        }
        for i in 0..(MAX_TARGETS + 10) {
            c.target(&format!("http://10.0.{}.{}:8000", i / 250, i % 250), "/v1/completions")
                .unwrap();
        }
        let n = c.targets.read().unwrap().len();
        assert!((1..=MAX_TARGETS).contains(&n), "{n} runtime URLs cached");
    }

    /// A server that echoes the request body (or streams it back in three pieces at `/stream`),
    /// counting the connections it accepts; `/close` answers with `connection: close`.
    async fn echo_server() -> (String, Arc<AtomicUsize>) {
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/echo", post(|body: Bytes| async move { body }))
            .route(
                "/close",
                post(|body: Bytes| async move {
                    Response::builder()
                        .header("connection", "close")
                        .body(AxumBody::from(body))
                        .unwrap()
                }),
            )
            .route(
                "/stream",
                post(|| async {
                    let parts = futures::stream::iter(["a", "b", "c"]).then(|p| async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok::<_, std::io::Error>(Bytes::from(p))
                    });
                    AxumBody::from_stream(parts)
                }),
            );
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc));
            }
        });
        (url, accepted)
    }

    /// POSTs `body` to the echo server's `/echo` and reads the answer whole.
    async fn echo(c: &UpstreamClient, url: &str, body: &'static str) -> Bytes {
        let resp = c
            .post_json(url, "/echo", HeaderMap::new(), Bytes::from(body))
            .await
            .unwrap();
        read_body(resp).await.unwrap()
    }

    #[tokio::test]
    async fn each_io_thread_reuses_its_own_connections() {
        let (url, accepted) = echo_server().await;
        let cores = crate::cores::Cores::start(2).unwrap();
        let c = UpstreamClient::new(Duration::from_secs(1), Duration::from_secs(60), cores.len() + 1);
        // Nine sequential requests on an I/O thread, then one on this (non-I/O) thread.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (c2, url2) = (c.clone(), url.clone());
        cores.spawn_connection(async move {
            let mut ok = 0;
            for _ in 0..9 {
                if echo(&c2, &url2, "x").await == "x" {
                    ok += 1;
                }
            }
            let _ = tx.send((crate::cores::current(), ok));
        });
        let (thread, ok) = rx.await.unwrap();
        assert_eq!(ok, 9);
        assert!(thread == 1 || thread == 2, "ran on an I/O thread, not {thread}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for the thread's nine requests"
        );
        assert_eq!(echo(&c, &url, "y").await, "y");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "another thread does not take a connection the I/O thread's reactor polls"
        );
        assert_eq!(c.idle_connections(), 2);
    }

    #[tokio::test]
    async fn connections_are_reused_after_whole_and_streamed_bodies() {
        let (url, accepted) = echo_server().await;
        let c = UpstreamClient::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        for i in 0..20 {
            let body = Bytes::from(format!("{{\"n\":{i}}}"));
            let resp = c
                .post_json(&url, "/echo", HeaderMap::new(), body.clone())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(read_body(resp).await.unwrap(), body);
        }
        let resp = c
            .post_json(&url, "/stream", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        let pieces: Vec<Bytes> = body_stream(resp).map(|r| r.unwrap()).collect().await;
        assert_eq!(pieces, ["a", "b", "c"].map(Bytes::from), "read by read, as sent");
        assert_eq!(echo(&c, &url, "x").await, "x");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for every sequential request"
        );
        // Two at once need two connections; both go back to the pool.
        let (a, b) = tokio::join!(
            c.post_json(&url, "/stream", HeaderMap::new(), Bytes::new()),
            c.post_json(&url, "/stream", HeaderMap::new(), Bytes::new())
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (a, b) = tokio::join!(read_body(a), read_body(b));
        assert_eq!((a.unwrap(), b.unwrap()), (Bytes::from("abc"), Bytes::from("abc")));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn closed_and_abandoned_connections_are_not_reused() {
        let (url, accepted) = echo_server().await;
        let c = UpstreamClient::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        for _ in 0..3 {
            let resp = c
                .post_json(&url, "/close", HeaderMap::new(), Bytes::from("bye"))
                .await
                .unwrap();
            assert_eq!(read_body(resp).await.unwrap(), "bye");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "the runtime closed each one");
        // A body dropped half read takes its connection with it.
        let resp = c
            .post_json(&url, "/stream", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        let mut s = Box::pin(body_stream(resp));
        assert_eq!(s.next().await.unwrap().unwrap(), "a");
        drop(s);
        let resp = c
            .post_json(&url, "/echo", HeaderMap::new(), Bytes::from("again"))
            .await
            .unwrap();
        assert_eq!(read_body(resp).await.unwrap(), "again");
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        // Idle longer than the pool keeps connections: a new one.
        let short = UpstreamClient::new(Duration::from_secs(1), Duration::from_millis(20), 1);
        let resp = short
            .post_json(&url, "/echo", HeaderMap::new(), Bytes::from("1"))
            .await
            .unwrap();
        read_body(resp).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        let resp = short
            .post_json(&url, "/echo", HeaderMap::new(), Bytes::from("2"))
            .await
            .unwrap();
        assert_eq!(read_body(resp).await.unwrap(), "2");
        assert_eq!(accepted.load(Ordering::SeqCst), 7);
        assert_eq!(short.idle_connections(), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        short.prune_idle();
        assert_eq!(
            short.idle_connections(),
            0,
            "expired idle connections are closed by the prune"
        );
    }
}
