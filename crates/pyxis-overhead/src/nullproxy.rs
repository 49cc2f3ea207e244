//! A proxy that does nothing but forward: axum in, reqwest out, the body streamed back as it comes. Measured
//! beside Pyxis it shows the floor: what one more HTTP hop on this machine costs before any gateway logic.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use tokio::sync::oneshot;

/// Largest request body forwarded.
const BODY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
struct Forward {
    client: reqwest::Client,
    upstream: String,
}

/// The forwarder on its own multi-threaded runtime (as many workers as CPUs, like the `pyxis` binary).
pub struct NullProxy {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl NullProxy {
    pub fn start(upstream: &str) -> std::io::Result<NullProxy> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(std::io::Error::other)?;
        let app = Router::new()
            .route("/v1/chat/completions", post(forward))
            .with_state(Forward {
                client,
                upstream: upstream.trim_end_matches('/').to_string(),
            });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("overhead-null-proxy".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let _ = axum::serve(listener, app.into_make_service())
                        .with_graceful_shutdown(async {
                            let _ = shutdown_rx.await;
                        })
                        .await;
                });
            })?;
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

async fn forward(State(f): State<Forward>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let body = match axum::body::to_bytes(req.into_body(), BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let resp = match f
        .client
        .post(format!("{}{path}", f.upstream))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    out
}
