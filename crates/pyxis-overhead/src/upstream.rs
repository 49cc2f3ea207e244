//! A static OpenAI-compatible server, as fast as a server can be: fixed answers, no model. The upstream the
//! overhead is measured against, on its own single-threaded runtime in its own thread.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::Deserialize;
use tokio::sync::{oneshot, watch};

/// Models whose name contains this hold their stream open after the first chunk (the memory test).
pub const HOLD_MARKER: &str = "hold";
/// The model names the upstream announces; any name is answered.
pub const FAST_MODEL: &str = "overhead-fast";
pub const HOLD_MODEL: &str = "overhead-hold";

/// How the static server answers.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamConfig {
    /// Content chunks in a streamed answer (at least 1).
    pub chunks: usize,
    /// Longest a held stream stays open after its first chunk, unless released sooner.
    pub hold: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            chunks: 32,
            hold: Duration::from_secs(300),
        }
    }
}

/// State shared by the handlers and the [`Upstream`] handle.
#[derive(Clone)]
struct Shared {
    cfg: UpstreamConfig,
    /// Bumped to end every held stream.
    release: Arc<watch::Sender<u64>>,
    held: Arc<AtomicUsize>,
}

/// The server running in its own thread; stopped on drop.
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// Binds 127.0.0.1:`port` (0: any free port) and serves on a current-thread runtime in a new thread, so the
    /// load generator's runtime never runs upstream work and the upstream's latency does not depend on it.
    pub fn start(cfg: UpstreamConfig, port: u16) -> std::io::Result<Upstream> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let shared = Shared {
            cfg,
            release: Arc::new(watch::channel(0u64).0),
            held: Arc::new(AtomicUsize::new(0)),
        };
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let app = router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("overhead-upstream".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    // Without TCP_NODELAY every chunk after the first waits for the previous one's ACK (Nagle).
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    // A bare Router would rebuild its route map for every connection (10,000 in the memory test).
                    let _ = axum::serve(listener, app.into_make_service())
                        .with_graceful_shutdown(async {
                            let _ = shutdown_rx.await;
                        })
                        .await;
                });
            })?;
        Ok(Upstream {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets every held stream finish now.
    pub fn release_held(&self) {
        self.shared.release.send_modify(|g| *g += 1);
    }

    /// Streams now held open.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.release_held();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Graceful shutdown waits for connections in use; a client that never lets go must not hang the drop.
        let Some(t) = self.thread.take() else { return };
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { "{}" }))
        .route("/version", get(|| async { r#"{"version":"pyxis-overhead-upstream"}"# }))
        .with_state(shared)
}

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    stream: bool,
}

async fn models() -> Response {
    json_response(format!(
        r#"{{"object":"list","data":[{{"id":"{FAST_MODEL}","object":"model","created":0,"owned_by":"pyxis-overhead"}},{{"id":"{HOLD_MODEL}","object":"model","created":0,"owned_by":"pyxis-overhead"}}]}}"#
    ))
}

async fn chat(axum::extract::State(st): axum::extract::State<Shared>, body: Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg =
                serde_json::json!({"error": {"message": format!("bad request: {e}"), "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, axum::Json(msg)).into_response();
        }
    };
    let model = quoted(&req.model);
    if !req.stream {
        return json_response(whole_answer(&model));
    }
    let hold = req.model.contains(HOLD_MARKER);
    let mut r = Response::new(Body::from_stream(stream_body(st, model, hold)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn json_response(s: String) -> Response {
    let mut r = Response::new(Body::from(s));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The model name as a JSON string literal.
fn quoted(model: &str) -> String {
    serde_json::to_string(model).unwrap_or_else(|_| "\"model\"".into())
}

/// The non-streamed answer: one short message and its usage.
pub fn whole_answer(model_json: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-overhead","object":"chat.completion","created":0,"model":{model_json},"choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}}}}"#
    )
}

/// Content chunk `i` of `n` as an SSE event: the first carries the role, the last the finish reason.
pub fn chunk_event(model_json: &str, i: usize, n: usize) -> String {
    let delta = if i == 0 {
        r#"{"role":"assistant","content":"tok"}"#
    } else {
        r#"{"content":" tok"}"#
    };
    let finish = if i + 1 == n { r#""stop""# } else { "null" };
    format!(
        "data: {{\"id\":\"chatcmpl-overhead\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":{model_json},\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

/// The closing events: usage (as `stream_options.include_usage` asks) and `[DONE]`.
pub fn closing_events(model_json: &str, n: usize) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-overhead\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":{model_json},\"choices\":[],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        n + 8
    )
}

/// Counts a held stream while it lives.
struct HeldGuard(Arc<AtomicUsize>);

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct StreamState {
    cfg: UpstreamConfig,
    model: String,
    /// For a held stream: its place in the count and the release signal, subscribed at once so that a release
    /// sent before the first chunk is written still ends it.
    hold: Option<(HeldGuard, watch::Receiver<u64>)>,
    next: usize,
}

fn stream_body(
    st: Shared,
    model: String,
    hold: bool,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let hold = hold.then(|| {
        st.held.fetch_add(1, Ordering::Relaxed);
        (HeldGuard(st.held.clone()), st.release.subscribe())
    });
    let state = StreamState {
        cfg: st.cfg,
        model,
        hold,
        next: 0,
    };
    futures::stream::unfold(state, |mut s| async move {
        let n = s.cfg.chunks.max(1);
        let i = s.next;
        if i > n {
            return None;
        }
        s.next += 1;
        if i == 1
            && let Some((_guard, mut rx)) = s.hold.take()
        {
            tokio::select! {
                _ = tokio::time::sleep(s.cfg.hold) => {}
                _ = rx.changed() => {}
            }
        } else if i > 0 {
            // Returning Pending once makes hyper write what it has, so every chunk is its own write, as a
            // token-by-token server does, rather than one coalesced burst.
            tokio::task::yield_now().await;
        }
        let text = if i < n {
            chunk_event(&s.model, i, n)
        } else {
            closing_events(&s.model, n)
        };
        Some((Ok(Bytes::from(text)), s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyxis_protocol::sse::SseFramer;

    #[test]
    fn whole_answer_is_an_openai_chat_completion() {
        let v: serde_json::Value = serde_json::from_str(&whole_answer(&quoted("m\"x"))).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "m\"x");
        assert_eq!(v["choices"][0]["message"]["content"], "ok");
        assert_eq!(v["usage"]["total_tokens"], 9);
    }

    #[test]
    fn stream_events_frame_as_openai_chunks_and_end_with_done() {
        let m = quoted("m");
        let n = 4;
        let mut text: String = (0..n).map(|i| chunk_event(&m, i, n)).collect();
        text.push_str(&closing_events(&m, n));
        let mut framer = SseFramer::new();
        let mut events = Vec::new();
        framer.push(text.as_bytes(), &mut events);
        assert!(!framer.has_partial());
        assert_eq!(events.len(), n + 2);
        assert!(events.last().unwrap().is_done());
        let chunks: Vec<serde_json::Value> = events[..n + 1]
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks[1]["choices"][0]["finish_reason"].is_null());
        assert_eq!(chunks[n - 1]["choices"][0]["finish_reason"], "stop");
        assert!(chunks[..n].iter().all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[n]["choices"].as_array().unwrap().len(), 0);
        assert_eq!(chunks[n]["usage"]["completion_tokens"], n);
    }
}
