//! Embeddings over HTTP: vLLM's `/v1/embeddings`, Ollama's `/api/embed` and `/v1/embeddings`,
//! TGI's absence of them; plus TGI's `adapter_id` naming the base model.

mod common;

use base64::Engine as _;
use common::*;
use pyxis_sim::{EngineSpec, Surface};
use serde_json::{Value, json};

fn vector(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("embedding array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt()
}

fn embed_spec(surface: Surface, served: &str) -> EngineSpec {
    let mut s = fast_spec(surface);
    s.served_model_names = vec![served.into()];
    s
}

async fn post(url: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// A 400 in vLLM's shape naming `param`.
fn assert_bad(status: u16, v: &Value, param: &str) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["param"], param, "{v}");
    assert_eq!(v["error"]["code"], 400, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_embeddings_shape_determinism_encodings_and_errors() {
    let h = start(embed_spec(Surface::Vllm, "nomic-embed-text")).await;
    let url = h.url();
    let before = metric(&url, "vllm:prompt_tokens_total", &[]).await.expect("metric");

    let (st, v) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "nomic-embed-text", "input": "hello world"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "nomic-embed-text");
    assert!(v["id"].as_str().expect("id").starts_with("embd-"));
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    let one = vector(&data[0]["embedding"]);
    assert_eq!(one.len(), 768, "nomic-embed-text has 768 dimensions");
    assert!((norm(&one) - 1.0).abs() < 1e-5);
    // BOS hello world
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 3);

    // Same input, same vector; a batch keeps order and agrees with single requests.
    let (_, again) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "nomic-embed-text", "input": "hello world"}),
    )
    .await;
    assert_eq!(vector(&again["data"][0]["embedding"]), one);
    let (st, batch) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "nomic-embed-text", "input": ["goodbye moon", "hello world"]}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(batch["data"][1]["index"], 1);
    assert_eq!(vector(&batch["data"][1]["embedding"]), one);
    let other = vector(&batch["data"][0]["embedding"]);
    assert_ne!(other, one);
    assert_eq!(batch["usage"]["prompt_tokens"], 6);

    // Token ids, plain or nested, embed like the text they tokenize from.
    let tok: Value = client()
        .post(format!("{url}/tokenize"))
        .json(&json!({"prompt": "hello world"}))
        .send()
        .await
        .expect("tokenize")
        .json()
        .await
        .expect("json");
    let ids = tok["tokens"].clone();
    let (st, v) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "nomic-embed-text", "input": ids}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(vector(&v["data"][0]["embedding"]), one);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let (st, v) = post(&url, "/v1/embeddings", json!({"input": [ids, [400, 401]]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["model"], "nomic-embed-text", "model defaults to the served name");
    assert_eq!(v["data"].as_array().expect("data").len(), 2);
    assert_eq!(vector(&v["data"][0]["embedding"]), one);

    // base64 is the little-endian f32 bytes of the same vector.
    let (st, v) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "nomic-embed-text", "input": "hello world", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(st, 200);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().expect("base64 string"))
        .expect("valid base64");
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded.len(), 768);
    assert!(decoded.iter().zip(&one).all(|(a, b)| (a - b).abs() <= 1e-7));

    // `dimensions` keeps a renormalised prefix.
    let (st, v) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "nomic-embed-text", "input": "hello world", "dimensions": 64}),
    )
    .await;
    assert_eq!(st, 200);
    let short = vector(&v["data"][0]["embedding"]);
    assert_eq!(short.len(), 64);
    assert!((norm(&short) - 1.0).abs() < 1e-5);
    let scale = f64::from(short[0]) / f64::from(one[0]);
    assert!(
        short
            .iter()
            .zip(&one)
            .all(|(s, f)| (f64::from(*s) - f64::from(*f) * scale).abs() < 1e-5)
    );

    // Errors name the parameter.
    let (st, v) = post(&url, "/v1/embeddings", json!({"model": "nope", "input": "x"})).await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["type"], "NotFoundError");
    assert_eq!(v["error"]["param"], "model");
    for (body, param) in [
        (json!({"input": "x", "dimensions": 0}), "dimensions"),
        (json!({"input": "x", "dimensions": 769}), "dimensions"),
        (json!({"input": "x", "encoding_format": "hex"}), "encoding_format"),
        (json!({"input": ""}), "input"),
        (json!({"input": []}), "input"),
        (json!({"input": [1, "a"]}), "input"),
        (json!({"input": 5}), "input"),
        (json!({"input": "word ".repeat(9000)}), "input"),
    ] {
        let (st, v) = post(&url, "/v1/embeddings", body.clone()).await;
        assert_bad(st, &v, param);
    }
    let (st, v) = post(&url, "/v1/embeddings", json!({"model": "nomic-embed-text"})).await;
    assert_bad(st, &v, "body.input");

    // The inputs went through the engine: exactly their prompt tokens were counted.
    let after = metric(&url, "vllm:prompt_tokens_total", &[]).await.expect("metric");
    assert_eq!(after - before, f64::from(3 + 3 + 6 + 3 + 5 + 3 + 3));

    // Faults apply: overload is vLLM's 503.
    h.set_faults(pyxis_sim::FaultConfig {
        overload: true,
        ..Default::default()
    });
    let (st, _) = post(&url, "/v1/embeddings", json!({"input": "x"})).await;
    assert_eq!(st, 503);

    // A replica with another seed gives the same vector; another model does not.
    let mut spec = embed_spec(Surface::Vllm, "nomic-embed-text");
    spec.seed = 99;
    let replica = start(spec).await;
    let (_, v) = post(&replica.url(), "/v1/embeddings", json!({"input": "hello world"})).await;
    assert_eq!(vector(&v["data"][0]["embedding"]), one);
    replica.shutdown().await;
    let plain = start(fast_spec(Surface::Vllm)).await;
    let (_, v) = post(&plain.url(), "/v1/embeddings", json!({"input": "hello world"})).await;
    assert_eq!(vector(&v["data"][0]["embedding"]).len(), 384, "default dimension");
    plain.shutdown().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_embed_and_openai_embeddings() {
    let h = start(embed_spec(Surface::Ollama, "mxbai-embed-large")).await;
    let url = h.url();
    let (st, v) = post(
        &url,
        "/api/embed",
        json!({"model": "mxbai-embed-large", "input": "why is the sky blue"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["model"], "mxbai-embed-large");
    let e = v["embeddings"].as_array().expect("embeddings");
    assert_eq!(e.len(), 1);
    let one = vector(&e[0]);
    assert_eq!(one.len(), 1024, "a large model has 1024 dimensions");
    assert!((norm(&one) - 1.0).abs() < 1e-5);
    assert_eq!(v["prompt_eval_count"], 6);
    assert!(v["total_duration"].as_u64().expect("ns") > 0);
    assert!(v["load_duration"].is_u64());

    // A list, `:latest`, and `dimensions`.
    let (st, v) = post(
        &url,
        "/api/embed",
        json!({"model": "mxbai-embed-large:latest", "input": ["why is the sky blue", "why is grass green"], "dimensions": 32}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["prompt_eval_count"], 6 + 5);
    let short = vector(&v["embeddings"][0]);
    assert_eq!(short.len(), 32);
    assert!((norm(&short) - 1.0).abs() < 1e-5);
    let scale = f64::from(short[0]) / f64::from(one[0]);
    assert!(
        short
            .iter()
            .zip(&one)
            .all(|(s, f)| (f64::from(*s) - f64::from(*f) * scale).abs() < 1e-5)
    );

    // Truncation: on by default, an error when turned off.
    let long = "word ".repeat(9000);
    let (st, v) = post(&url, "/api/embed", json!({"model": "mxbai-embed-large", "input": long})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["prompt_eval_count"], 8192);
    let (st, v) = post(
        &url,
        "/api/embed",
        json!({"model": "mxbai-embed-large", "input": long, "truncate": false}),
    )
    .await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().expect("error").contains("context length"));

    // Ollama's other answers.
    let (st, v) = post(&url, "/api/embed", json!({"model": "mxbai-embed-large", "input": ""})).await;
    assert_eq!((st, v), (200, json!({"model": "mxbai-embed-large", "embeddings": []})));
    let (st, v) = post(&url, "/api/embed", json!({"model": "nope", "input": "x"})).await;
    assert_eq!((st, v), (404, json!({"error": "model 'nope' not found"})));
    let (st, v) = post(
        &url,
        "/api/embed",
        json!({"model": "mxbai-embed-large", "input": [1, 2]}),
    )
    .await;
    assert_eq!((st, v), (400, json!({"error": "invalid input type"})));

    // /api/show marks the model as embedding-only.
    let (_, show) = post(&url, "/api/show", json!({"model": "mxbai-embed-large"})).await;
    assert_eq!(show["capabilities"], json!(["embedding"]));

    // Ollama's OpenAI layer: OpenAI's body, same vectors.
    let (st, v) = post(
        &url,
        "/v1/embeddings",
        json!({"model": "mxbai-embed-large", "input": ["why is the sky blue"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(vector(&v["data"][0]["embedding"]), one);
    assert_eq!(v["usage"], json!({"prompt_tokens": 6, "total_tokens": 6}));
    let (st, v) = post(&url, "/v1/embeddings", json!({"model": "nope", "input": "x"})).await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["param"], "model");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_has_no_embeddings_and_adapter_id_of_the_base_is_the_base() {
    let mut spec = fast_spec(Surface::Tgi);
    spec.tuning.lora_adapters = vec!["sql".into()];
    let h = start(spec).await;
    let url = h.url();
    let r = client()
        .post(format!("{url}/v1/embeddings"))
        .json(&json!({"input": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "TGI serves no /v1/embeddings");

    let generate = |adapter: Option<&str>| {
        let mut params = json!({"max_new_tokens": 8, "seed": 3});
        if let Some(a) = adapter {
            params["adapter_id"] = json!(a);
        }
        post(
            &url,
            "/generate",
            json!({"inputs": "Tell me about rivers.", "parameters": params}),
        )
    };
    let (st, base) = generate(None).await;
    assert_eq!(st, 200, "{base}");
    let (st, named) = generate(Some("llama-3-8b")).await;
    assert_eq!(
        st, 200,
        "the served model name is the base model, not an adapter: {named}"
    );
    assert_eq!(named["generated_text"], base["generated_text"]);
    let (st, sql) = generate(Some("sql")).await;
    assert_eq!(st, 200);
    assert_ne!(
        sql["generated_text"], base["generated_text"],
        "a loaded adapter changes the output"
    );
    let (st, v) = generate(Some("unknown")).await;
    assert_eq!(st, 404);
    assert_eq!(v["error_type"], "not_found");
    h.shutdown().await;
}
