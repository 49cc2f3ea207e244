//! The data plane's HTTP client to runtimes: hyper's pooled HTTP/1 client, used bare.
//!
//! reqwest (still used for health checks and probes) puts a URL parse, a redirect layer, a retry
//! layer and its own body type in front of the same hyper client; on a static upstream at
//! saturation those were about a tenth of the gateway's CPU. Here a request is an
//! `http::Request` built from the endpoint's base URL and the adapter's path, the answer is
//! hyper's `Incoming` body, read whole or relayed as a stream of `Bytes`.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{self, HeaderMap, HeaderValue, Uri, header};
use futures::Stream;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A runtime's answer: status, headers, and a body still to read.
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;

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

/// Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl UpstreamClient {
    pub fn new(connect_timeout: Duration, pool_idle_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(pool_idle_timeout)
            .build(http);
        UpstreamClient { client }
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
        let uri = join(base, path)?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        self.client.request(req).await.map_err(|e| SendError {
            connect: e.is_connect(),
            timed_out: timed_out(&e),
            message: with_causes(&e),
        })
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

/// Whether an I/O timeout is among the error's causes (hyper's connector reports its connect timeout so).
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
        let c = UpstreamClient::new(Duration::from_secs(1), Duration::from_secs(1));
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
        assert!(e.message.contains("onnect"), "{e}");
    }
}
