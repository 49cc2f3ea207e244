//! Over real HTTP: `detect` and the translators against a replay server answering from each kind's
//! fixtures, and against the simulator's vLLM, TGI and Ollama surfaces.

#[path = "../common/mod.rs"]
mod common;

mod replay;
mod sim;

use pyxis_adapters::{Adapter, Ctx, StreamTranslator, UpstreamRequest, Whole};
use pyxis_protocol::OpenAiError;
use std::time::Duration;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn post(c: &reqwest::Client, base: &str, up: &UpstreamRequest) -> reqwest::RequestBuilder {
    let mut rb = c
        .post(format!("{base}{}", up.path))
        .header("content-type", "application/json")
        .body(up.body.clone());
    for (k, v) in &up.headers {
        rb = rb.header(*k, *v);
    }
    rb
}

/// Sends `up` and feeds the streamed body, as it arrives, to the adapter's translator.
pub async fn stream_over_http(a: &dyn Adapter, base: &str, up: &UpstreamRequest, ctx: &Ctx<'_>) -> Vec<String> {
    use futures::StreamExt;
    let resp = post(&client(), base, up).send().await.expect("send");
    assert!(resp.status().is_success(), "{} {}", up.path, resp.status());
    let mut t: Box<dyn StreamTranslator> = a.stream_translator(up.dialect, ctx);
    let mut events = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        t.feed_into(&chunk.expect("chunk"), &mut events);
    }
    let end = t.finish();
    common::render(&events, &end)
}

/// Sends `up` and translates the whole reply.
pub async fn whole_over_http(
    a: &dyn Adapter,
    base: &str,
    up: &UpstreamRequest,
    ctx: &Ctx<'_>,
) -> Result<Whole, OpenAiError> {
    let resp = post(&client(), base, up).send().await.expect("send");
    assert!(resp.status().is_success(), "{} {}", up.path, resp.status());
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body");
    a.translate_whole(up.dialect, &headers, &body, ctx)
}
