//! A tiny HTTP server that answers from a fixture folder's `routes.txt`:
//! `METHOD PATH STATUS FILE [h:name=value]... [match:substring]` (`-` = empty body; `match:` picks
//! the route only when the request body contains the substring). Bodies go out in 7-byte pieces so
//! clients see streams split mid-event, as from a real runtime. Anything else is a 404.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;

#[derive(Debug, Clone)]
struct Route {
    method: String,
    path: String,
    status: u16,
    file: Option<String>,
    headers: Vec<(String, String)>,
    matcher: Option<String>,
}

struct Replay {
    kind: String,
    routes: Vec<Route>,
}

fn parse(kind: &str) -> Vec<Route> {
    // No folder: a server that answers 404 to everything.
    let Ok(text) = std::fs::read_to_string(super::dir(kind).join("routes.txt")) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mut r = Route {
                method: f[0].into(),
                path: f[1].into(),
                status: f[2].parse().expect("status"),
                file: (f[3] != "-").then(|| f[3].to_string()),
                headers: Vec::new(),
                matcher: None,
            };
            for extra in &f[4..] {
                if let Some(h) = extra.strip_prefix("h:") {
                    let (k, v) = h.split_once('=').expect("h:name=value");
                    r.headers.push((k.into(), v.into()));
                } else if let Some(m) = extra.strip_prefix("match:") {
                    r.matcher = Some(m.into());
                }
            }
            r
        })
        .collect()
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("json") => "application/json",
        Some("sse") => "text/event-stream",
        Some("ndjson") => "application/x-ndjson",
        Some("prom") => "text/plain; version=0.0.4",
        _ => "text/plain",
    }
}

async fn answer(State(s): State<Arc<Replay>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body);
    let route = s.routes.iter().find(|r| {
        r.method == method.as_str()
            && r.path == uri.path()
            && r.matcher.as_ref().is_none_or(|m| body.contains(m.as_str()))
    });
    let Some(r) = route else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("Not Found"))
            .unwrap_or_default();
    };
    let bytes = r.file.as_ref().map(|f| super::read(&s.kind, f)).unwrap_or_default();
    let mut b = Response::builder().status(r.status);
    if let Some(f) = &r.file {
        b = b.header(header::CONTENT_TYPE, content_type(f));
    }
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes.chunks(7).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    b.body(Body::from_stream(futures::stream::iter(pieces)))
        .unwrap_or_default()
}

/// Serves `fixtures/<kind>` on a free loopback port; returns the base URL.
pub async fn serve(kind: &str) -> String {
    let state = Arc::new(Replay {
        kind: kind.to_string(),
        routes: parse(kind),
    });
    let app = Router::new().fallback(answer).with_state(state);
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}
