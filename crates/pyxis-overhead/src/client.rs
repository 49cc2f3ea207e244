//! The load generator's client: one hyper HTTP/1 connection per worker, no pool, no retries, so that its own
//! cost is small and the same for every target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pyxis_protocol::sse::SseFramer;

/// What went wrong with one request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0} is not an http:// base URL")]
    BadUrl(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// One system under test: the upstream itself, or a proxy in front of it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Shown in the table: `direct`, `pyxis`, `litellm`.
    pub name: String,
    /// `http://host:port`, optionally with a path prefix; `/v1/chat/completions` is appended.
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model answered at once.
    pub model: String,
    /// The model whose streams the upstream holds open (memory test).
    pub hold_model: String,
}

/// A target resolved once, with its request bodies built once.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    addr: SocketAddr,
    authority: HeaderValue,
    path: String,
    auth: Option<HeaderValue>,
    pub whole_body: Bytes,
    pub stream_body: Bytes,
    pub hold_body: Bytes,
}

fn body(model: &str, stream: bool) -> Bytes {
    let mut v = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say ok."}],
        "max_tokens": 64,
        "stream": stream,
    });
    if stream {
        v["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(v.to_string())
}

impl Endpoint {
    pub async fn resolve(t: &Target) -> Result<Arc<Endpoint>, ClientError> {
        let uri: http::Uri = t
            .base_url
            .parse()
            .map_err(|_| ClientError::BadUrl(t.base_url.clone()))?;
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::BadUrl(t.base_url.clone()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::BadUrl(t.base_url.clone()))?
            .to_string();
        let host_port = if uri.port().is_some() {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ClientError::Resolve(host_port.clone()))?;
        let auth = match &t.api_key {
            Some(k) => {
                Some(HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| ClientError::BadUrl("api key".into()))?)
            }
            None => None,
        };
        Ok(Arc::new(Endpoint {
            name: t.name.clone(),
            addr,
            authority: HeaderValue::from_str(&authority).map_err(|_| ClientError::BadUrl(t.base_url.clone()))?,
            path: format!("{}/v1/chat/completions", uri.path().trim_end_matches('/')),
            auth,
            whole_body: body(&t.model, false),
            stream_body: body(&t.model, true),
            hold_body: body(&t.hold_model, true),
        }))
    }

    fn post(&self, body: Bytes) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(self.path.as_str())
            .header(HOST, self.authority.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(a) = &self.auth {
            b = b.header(AUTHORIZATION, a.clone());
        }
        Ok(b.body(Full::new(body))?)
    }

    /// `GET path`; the status code (for readiness polls).
    pub async fn get_status(self: &Arc<Self>, path: &str) -> Result<u16, ClientError> {
        let mut c = Conn::open(self.clone()).await?;
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(HOST, self.authority.clone());
        if let Some(a) = &self.auth {
            b = b.header(AUTHORIZATION, a.clone());
        }
        let resp = c.tx.send_request(b.body(Full::new(Bytes::new()))?).await?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok(status)
    }
}

/// Timings of one streamed answer, in seconds from the moment the request was handed to the connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamTiming {
    /// To the first content chunk.
    pub ttft: f64,
    /// From the first content chunk to the last.
    pub first_to_last: f64,
    /// To `[DONE]`.
    pub total: f64,
    /// Content chunks seen.
    pub chunks: usize,
}

/// A keep-alive connection to one endpoint.
pub struct Conn {
    pub ep: Arc<Endpoint>,
    tx: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(ep: Arc<Endpoint>) -> Result<Conn, ClientError> {
        let stream = tokio::net::TcpStream::connect(ep.addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: ep.addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { ep, tx })
    }

    /// Waits until the connection can take a request, reconnecting if the server closed it, so that neither
    /// waiting nor reconnecting falls inside a timed request.
    async fn ready(&mut self) -> Result<(), ClientError> {
        if self.tx.ready().await.is_err() {
            *self = Conn::open(self.ep.clone()).await?;
            self.tx.ready().await?;
        }
        Ok(())
    }

    /// One non-streamed request; its latency to the end of the body.
    pub async fn whole(&mut self) -> Result<Duration, ClientError> {
        self.ready().await?;
        let req = self.ep.post(self.ep.whole_body.clone())?;
        let start = Instant::now();
        let resp = self.tx.send_request(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let took = start.elapsed();
        if status != 200 {
            return Err(status_error(status, &bytes));
        }
        if !contains(&bytes, b"\"choices\"") {
            return Err(ClientError::BadResponse(snippet(&bytes)));
        }
        Ok(took)
    }

    /// One streamed request read to `[DONE]`.
    pub async fn stream(&mut self) -> Result<StreamTiming, ClientError> {
        self.ready().await?;
        let req = self.ep.post(self.ep.stream_body.clone())?;
        let start = Instant::now();
        let resp = self.tx.send_request(req).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status != 200 {
            let bytes = body.collect().await?.to_bytes();
            return Err(status_error(status, &bytes));
        }
        let mut reader = SseReader::default();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if let Some(data) = frame.data_ref() {
                let now = Instant::now();
                if reader.push(data, now)? {
                    break;
                }
            }
        }
        let (Some(first), Some(last), Some(done)) = (reader.first, reader.last, reader.done) else {
            return Err(ClientError::BadResponse(format!(
                "the stream ended without content or [DONE] after {} chunks",
                reader.chunks
            )));
        };
        let secs = |t: Instant| t.duration_since(start).as_secs_f64();
        Ok(StreamTiming {
            ttft: secs(first),
            first_to_last: last.duration_since(first).as_secs_f64(),
            total: secs(done),
            chunks: reader.chunks,
        })
    }

    /// Opens a held stream: returns once its first content chunk has arrived, with the body still open; the
    /// stream stays open until the returned body is dropped.
    pub async fn open_held(mut self) -> Result<HeldStream, ClientError> {
        self.ready().await?;
        let req = self.ep.post(self.ep.hold_body.clone())?;
        let resp = self.tx.send_request(req).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status != 200 {
            let bytes = body.collect().await?.to_bytes();
            return Err(status_error(status, &bytes));
        }
        let mut reader = SseReader::default();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                reader.push(data, Instant::now())?;
                if reader.first.is_some() {
                    return Ok(HeldStream {
                        _body: body,
                        _tx: self.tx,
                    });
                }
            }
        }
        Err(ClientError::BadResponse(
            "the held stream ended before its first chunk".into(),
        ))
    }
}

/// An open stream; dropping it closes the connection.
pub struct HeldStream {
    _body: hyper::body::Incoming,
    _tx: SendRequest<Full<Bytes>>,
}

fn status_error(status: u16, body: &[u8]) -> ClientError {
    ClientError::Status {
        status,
        body: snippet(body),
    }
}

fn snippet(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(300)]).trim().to_string()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Follows an SSE body: when the first and last content chunks and `[DONE]` arrived.
#[derive(Default)]
pub struct SseReader {
    framer: SseFramer,
    events: Vec<pyxis_protocol::SseEvent>,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub done: Option<Instant>,
    pub chunks: usize,
}

impl SseReader {
    /// Feeds bytes that arrived at `now`; true once `[DONE]` was seen.
    pub fn push(&mut self, data: &[u8], now: Instant) -> Result<bool, ClientError> {
        self.framer.push(data, &mut self.events);
        for ev in self.events.drain(..) {
            if ev.is_done() {
                self.done = Some(now);
                return Ok(true);
            }
            if ev.event.as_deref() == Some("error") || ev.data.contains("\"error\"") {
                return Err(ClientError::BadResponse(format!("error event: {}", ev.data)));
            }
            if has_content(&ev.data) {
                self.first.get_or_insert(now);
                self.last = Some(now);
                self.chunks += 1;
            }
        }
        Ok(false)
    }
}

/// Whether a chunk carries non-empty content (servers differ in spacing after the colon).
fn has_content(data: &str) -> bool {
    ["\"content\":\"", "\"content\": \""].iter().any(|key| {
        data.match_indices(key)
            .any(|(i, _)| !data[i + key.len()..].starts_with('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_detection_ignores_empty_and_role_only_chunks() {
        assert!(has_content(r#"{"choices":[{"delta":{"content":"tok"}}]}"#));
        assert!(has_content(r#"{"choices": [{"delta": {"content": " tok"}}]}"#));
        assert!(!has_content(
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!has_content(r#"{"choices":[],"usage":{"completion_tokens":3}}"#));
    }

    #[test]
    fn sse_reader_times_first_last_and_done_across_split_frames() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(1);
        let t2 = t0 + Duration::from_millis(2);
        let mut r = SseReader::default();
        assert!(
            !r.push(
                b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"cho",
                t0
            )
            .unwrap()
        );
        assert!(!r.push(b"ices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n", t1).unwrap());
        assert!(r.push(b"data: [DONE]\n\n", t2).unwrap());
        assert_eq!((r.first, r.last, r.done, r.chunks), (Some(t0), Some(t1), Some(t2), 2));
        let mut e = SseReader::default();
        assert!(e.push(b"data: {\"error\":{\"message\":\"x\"}}\n\n", t0).is_err());
    }
}
