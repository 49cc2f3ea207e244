//! Relaying engine tokens to HTTP: streamed (SSE or NDJSON, chunk by chunk) or collected whole.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use pyxis_sim_core::tokenizer::render_token;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::runner::{Delivery, Done, Subscription};
use crate::server::{AppState, InFlight, dropped_connection};

/// Turns a request's tokens into the wire chunks of one API.
pub(crate) trait Framer: Send + 'static {
    /// Chunks before the first token (vLLM's role chunk).
    fn start(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
    /// Chunks for one token; `text` is its rendered text, `d.done` is set on the last one.
    fn token(&mut self, text: &str, d: &Delivery) -> Vec<Bytes>;
    /// Chunks after the last token (usage, `[DONE]`).
    fn end(&mut self, done: &Done) -> Vec<Bytes>;
}

/// One SSE event.
pub(crate) fn sse(json: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// Streams a request's tokens through `framer`. A client that goes away aborts the request; the
/// `stream_cut_after` fault drops the connection after that many chunks; a crash cuts the stream.
pub(crate) fn relay(
    state: Arc<AppState>,
    mut sub: Subscription,
    guard: InFlight,
    content_type: &'static str,
    mut framer: impl Framer,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let cut = state.faults.get().stream_cut_after;
    tokio::spawn(async move {
        let _guard = guard;
        let mut down = state.down.subscribe();
        let mut sent = 0u32;
        let mut first = true;
        if !send_all(&tx, framer.start(), &mut sent, cut).await {
            return;
        }
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = crate::server::wait_down(&mut down) => {
                    let _ = tx.send(Err(std::io::Error::other("engine crashed"))).await;
                    return;
                }
                d = sub.next() => {
                    let Some(d) = d else {
                        let _ = tx.send(Err(std::io::Error::other("engine stopped"))).await;
                        return;
                    };
                    let text = render_token(d.token, first);
                    first = false;
                    if !send_all(&tx, framer.token(&text, &d), &mut sent, cut).await {
                        return;
                    }
                    if let Some(done) = d.done {
                        let _ = send_all(&tx, framer.end(&done), &mut sent, cut).await;
                        return;
                    }
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| dropped_connection())
}

/// Sends chunks; false when the stream must end (client gone, or the cut fault fired).
async fn send_all(
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunks: Vec<Bytes>,
    sent: &mut u32,
    cut: Option<u32>,
) -> bool {
    for c in chunks {
        if cut.is_some_and(|n| *sent >= n) {
            // Let the chunks already sent reach the socket before the connection drops.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tx.send(Err(std::io::Error::other("injected fault: stream cut"))).await;
            return false;
        }
        if tx.send(Ok(c)).await.is_err() {
            return false;
        }
        *sent += 1;
    }
    true
}

/// The whole output of a request.
pub(crate) struct Collected {
    pub text: String,
    pub tokens: Vec<u32>,
    pub done: Done,
}

/// Waits for a request to finish; `None` if the engine went down first.
pub(crate) async fn collect(state: &AppState, mut sub: Subscription) -> Option<Collected> {
    let mut down = state.down.subscribe();
    let mut text = String::new();
    let mut tokens = Vec::new();
    loop {
        tokio::select! {
            _ = crate::server::wait_down(&mut down) => return None,
            d = sub.next() => {
                let d = d?;
                text.push_str(&render_token(d.token, tokens.is_empty()));
                tokens.push(d.token);
                if let Some(done) = d.done {
                    return Some(Collected { text, tokens, done });
                }
            }
        }
    }
}
