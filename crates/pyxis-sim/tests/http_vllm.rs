//! End to end over HTTP against the vLLM surface: OpenAI routes (streaming and not, usage,
//! include_usage), errors in vLLM's shape, models, LoRA load/unload, /metrics, aborts.

mod common;

use common::*;
use pyxis_sim::Surface;
use pyxis_sim::pyxis_sim_core::Tokenizer;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_non_stream_has_exact_usage() {
    let h = start(fast_spec(Surface::Vllm)).await;
    let r = client()
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama-3-8b", "Tell me about rivers.", 12, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["id"].as_str().expect("id").starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "llama-3-8b");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let text = v["choices"][0]["message"]["content"].as_str().expect("content");
    assert_eq!(v["usage"]["completion_tokens"], 12);
    assert_eq!(
        Tokenizer::new(128_256).count(text),
        12,
        "text re-tokenises to the reported count"
    );
    // BOS + <|im_start|> system You are terse . <|im_end|> <|im_start|> user Tell me about rivers . <|im_end|> <|im_start|> assistant
    assert_eq!(v["usage"]["prompt_tokens"], 18);
    assert_eq!(v["usage"]["total_tokens"], 30);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_matches_vllm_chunk_shape() {
    let h = start(fast_spec(Surface::Vllm)).await;
    let mut body = chat_body("llama-3-8b", "Stream please.", 9, true);
    body["stream_options"] = json!({"include_usage": true});
    let r = client()
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    let text = r.text().await.expect("body");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    let content: Vec<&Value> = chunks[1..chunks.len() - 1].iter().collect();
    assert_eq!(content.len(), 9, "one chunk per token");
    for c in &content[..8] {
        assert!(c["choices"][0]["finish_reason"].is_null());
        assert!(c.get("usage").is_none());
    }
    assert_eq!(content[8]["choices"][0]["finish_reason"], "length");
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 9);
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id per stream");

    // Without include_usage there is no usage chunk.
    let r = client()
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama-3-8b", "Stream please.", 4, true))
        .send()
        .await
        .expect("send");
    let data = sse_data(&r.text().await.expect("body"));
    assert_eq!(data.len(), 1 + 4 + 1);
    assert!(!data.iter().any(|d| d.contains("\"usage\"")));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stream_and_not() {
    let h = start(fast_spec(Surface::Vllm)).await;
    let r = client()
        .post(format!("{}/v1/completions", h.url()))
        .json(&json!({"model": "llama-3-8b", "prompt": "Once upon a time", "max_tokens": 5, "ignore_eos": true}))
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["prompt_tokens"], 5, "BOS + 4 words");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let full = v["choices"][0]["text"].as_str().expect("text").to_string();

    let r = client()
        .post(format!("{}/v1/completions", h.url()))
        .json(
            &json!({"model": "llama-3-8b", "prompt": "Once upon a time", "max_tokens": 5, "ignore_eos": true,
                      "stream": true, "stream_options": {"include_usage": true}}),
        )
        .send()
        .await
        .expect("send");
    let data = sse_data(&r.text().await.expect("body"));
    assert_eq!(data.len(), 5 + 1 + 1);
    let streamed: String = data[..5]
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).expect("chunk")["choices"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(streamed, full, "same prompt, same text, streamed or not");
    // The default max_tokens of the completions API is 16.
    let v: Value = client()
        .post(format!("{}/v1/completions", h.url()))
        .json(&json!({"model": "llama-3-8b", "prompt": [1, 500, 600], "ignore_eos": true}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["usage"]["completion_tokens"], 16);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_vllm_shape() {
    let h = start(fast_spec(Surface::Vllm)).await;
    let c = client();
    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("nope", "hi", 4, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "NotFoundError");
    assert_eq!(v["error"]["param"], "model");
    assert_eq!(v["error"]["code"], 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("`nope` does not exist")
    );

    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama-3-8b", "hi", 9000, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "BadRequestError");
    assert_eq!(v["error"]["param"], "max_tokens");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("max_tokens=9000 cannot be greater than max_model_len=8192")
    );

    // A prompt that leaves no room: vLLM 0.32's "maximum context length" error.
    let long = "word ".repeat(8200);
    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama-3-8b", &long, 5, false))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "BadRequestError");
    assert_eq!(v["error"]["param"], "input_tokens");
    let msg = v["error"]["message"].as_str().expect("msg");
    assert!(msg.contains("maximum context length is 8192 tokens"), "{msg}");

    // Prompt + max_tokens over the context is clamped, as vLLM 0.32 does.
    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama-3-8b", &"word ".repeat(8000), 500, false))
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    let used = v["usage"]["total_tokens"].as_u64().expect("total");
    assert_eq!(used, 8192);

    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "Bad Request");

    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&json!({"model": "llama-3-8b"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["param"],
        "body.messages"
    );

    // `model` may be left out, as in vLLM.
    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["model"], "llama-3-8b");

    let r = c.get(format!("{}/no/such/route", h.url())).send().await.expect("send");
    assert_eq!(r.status(), 404);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_version_models_and_lora() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.served_model_names = vec!["llama3".into(), "llama3-alias".into()];
    let h = start(spec).await;
    let c = client();
    let r = c.get(format!("{}/health", h.url())).send().await.expect("health");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "");
    let v: Value = c
        .get(format!("{}/version", h.url()))
        .send()
        .await
        .expect("v")
        .json()
        .await
        .expect("json");
    assert_eq!(v["version"], "0.32.0");
    let models = |c: reqwest::Client, url: String| async move {
        let v: Value = c
            .get(format!("{url}/v1/models"))
            .send()
            .await
            .expect("models")
            .json()
            .await
            .expect("json");
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|m| (m["id"].as_str().unwrap_or("").to_string(), m["parent"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        models(c.clone(), h.url()).await,
        vec![("llama3".into(), Value::Null), ("llama3-alias".into(), Value::Null)]
    );

    let r = c
        .post(format!("{}/v1/load_lora_adapter", h.url()))
        .json(&json!({"lora_name": "sql", "lora_path": "org/sql-lora"}))
        .send()
        .await
        .expect("load");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.expect("text"),
        "Success: LoRA adapter 'sql' added successfully."
    );
    assert!(
        models(c.clone(), h.url())
            .await
            .contains(&("sql".to_string(), json!("llama3")))
    );
    let r = c
        .post(format!("{}/v1/load_lora_adapter", h.url()))
        .json(&json!({"lora_name": "sql", "lora_path": "org/sql-lora"}))
        .send()
        .await
        .expect("load");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["type"],
        "InvalidUserInput"
    );
    let r = c
        .post(format!("{}/v1/load_lora_adapter", h.url()))
        .json(&json!({"lora_name": "x", "lora_path": "/definitely/not/here"}))
        .send()
        .await
        .expect("load");
    assert_eq!(r.status(), 404);

    // The adapter answers under its own name and changes the output.
    let base: Value = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("llama3", "same", 8, false))
        .send()
        .await
        .expect("b")
        .json()
        .await
        .expect("json");
    let lora: Value = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("sql", "same", 8, false))
        .send()
        .await
        .expect("l")
        .json()
        .await
        .expect("json");
    assert_eq!(lora["model"], "sql");
    assert_ne!(
        base["choices"][0]["message"]["content"],
        lora["choices"][0]["message"]["content"]
    );

    let r = c
        .post(format!("{}/v1/unload_lora_adapter", h.url()))
        .json(&json!({"lora_name": "sql"}))
        .send()
        .await
        .expect("unload");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.expect("text"),
        "Success: LoRA adapter 'sql' removed successfully."
    );
    let r = c
        .post(format!("{}/v1/unload_lora_adapter", h.url()))
        .json(&json!({"lora_name": "sql"}))
        .send()
        .await
        .expect("unload");
    assert_eq!(r.status(), 404);
    let r = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&chat_body("sql", "same", 8, false))
        .send()
        .await
        .expect("gone");
    assert_eq!(r.status(), 404);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_deterministic_under_seed() {
    let h1 = start(fast_spec(Surface::Vllm)).await;
    let h2 = start(fast_spec(Surface::Vllm)).await;
    let mut other = fast_spec(Surface::Vllm);
    other.seed = 8;
    let h3 = start(other).await;
    let text = |url: String, seed: Option<u64>| async move {
        let mut b = chat_body("llama-3-8b", "Determinism?", 10, false);
        if let Some(s) = seed {
            b["seed"] = json!(s);
        }
        let v: Value = client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&b)
            .send()
            .await
            .expect("s")
            .json()
            .await
            .expect("j");
        v["choices"][0]["message"]["content"].as_str().expect("c").to_string()
    };
    let a = text(h1.url(), None).await;
    assert_eq!(
        a,
        text(h2.url(), None).await,
        "same engine seed, same prompt → same text"
    );
    assert_eq!(a, text(h1.url(), None).await);
    assert_ne!(a, text(h3.url(), None).await, "engine seed changes the text");
    assert_ne!(a, text(h1.url(), Some(1)).await, "request seed changes the text");
    for h in [h1, h2, h3] {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_under_load() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.speedup = 2.0;
    let h = start(spec).await;
    let url = h.url();
    let lbl = [("model_name", "llama-3-8b"), ("engine", "0")];
    // Parses as Prometheus text and starts at zero.
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let scrape = parse_prometheus(&text);
    let names: std::collections::HashSet<String> = scrape
        .samples
        .iter()
        .map(|s| s.metric.replace("vllm_", "vllm:"))
        .collect();
    for n in [
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_success_total",
    ] {
        assert!(names.contains(n), "missing {n}");
        assert!(text.contains(&format!("# TYPE {n} ")), "vLLM's own name {n}");
    }
    assert_eq!(metric(&url, "vllm:generation_tokens_total", &lbl).await, Some(0.0));

    // 24 concurrent streams of 200 tokens with a shared 600-token system prompt, after one
    // request that puts the prompt in the prefix cache (requests admitted in the same step as
    // the first computation of a prefix cannot hit it, in vLLM as here).
    let system = "alpha beta gamma delta ".repeat(150);
    let warm = json!({"model": "llama-3-8b", "max_tokens": 1, "messages": [{"role": "system", "content": system}, {"role": "user", "content": "warm"}]});
    client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&warm)
        .send()
        .await
        .expect("warm")
        .text()
        .await
        .expect("body");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let url = url.clone();
        let system = system.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"model": "llama-3-8b", "max_tokens": 200, "ignore_eos": true, "stream": true,
                              "messages": [{"role": "system", "content": system}, {"role": "user", "content": format!("q{i}")}]});
            let r = client().post(format!("{url}/v1/chat/completions")).json(&body).send().await.expect("send");
            r.text().await.expect("body").len()
        }));
    }
    // The gauges move while the batch runs (polled: arrivals spread under CPU contention).
    let (mut running, mut kv) = (0.0f64, 0.0f64);
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        running = running.max(metric(&url, "vllm:num_requests_running", &lbl).await.expect("running"));
        kv = kv.max(metric(&url, "vllm:kv_cache_usage_perc", &lbl).await.expect("kv"));
        if running >= 20.0 {
            break;
        }
    }
    assert!(running >= 10.0, "running {running}");
    assert!(kv > 0.0 && kv <= 1.0, "kv {kv}");
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(metric(&url, "vllm:num_requests_running", &lbl).await, Some(0.0));
    assert_eq!(
        metric(&url, "vllm:generation_tokens_total", &lbl).await,
        Some(24.0 * 200.0 + 1.0)
    );
    assert_eq!(
        metric(&url, "vllm:request_success_total", &[("finished_reason", "length")]).await,
        Some(25.0)
    );
    assert_eq!(
        metric(&url, "vllm:request_success_total", &[("finished_reason", "stop")]).await,
        Some(0.0)
    );
    let hits = metric(&url, "vllm:prefix_cache_hits_total", &lbl).await.expect("hits");
    let queries = metric(&url, "vllm:prefix_cache_queries_total", &lbl)
        .await
        .expect("queries");
    assert!(
        hits > 0.8 * queries,
        "shared system prompt hits the prefix cache: {hits}/{queries}"
    );
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let scrape = parse_prometheus(&text);
    let ttft = scrape
        .samples
        .iter()
        .find(|s| s.metric == "vllm_time_to_first_token_seconds")
        .expect("ttft");
    match &ttft.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets.iter().find(|b| b.less_than.is_infinite()).expect("+Inf bucket");
            assert_eq!(inf.count, 25.0);
        }
        other => panic!("TTFT is not a histogram: {other:?}"),
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_hit_reports_cached_tokens_and_lowers_ttft() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.hardware = "a100".into();
    spec.speedup = 5.0;
    let h = start(spec).await;
    let system = "the quick brown fox jumps over the lazy dog ".repeat(400); // ~3600 tokens
    let ask = |q: &str| {
        json!({"model": "llama-3-8b", "max_tokens": 1, "ignore_eos": true,
               "messages": [{"role": "system", "content": system}, {"role": "user", "content": q}]})
    };
    let c = client();
    let t0 = std::time::Instant::now();
    let a: Value = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&ask("first"))
        .send()
        .await
        .expect("a")
        .json()
        .await
        .expect("j");
    let cold = t0.elapsed();
    let t1 = std::time::Instant::now();
    let b: Value = c
        .post(format!("{}/v1/chat/completions", h.url()))
        .json(&ask("second"))
        .send()
        .await
        .expect("b")
        .json()
        .await
        .expect("j");
    let warm = t1.elapsed();
    assert_eq!(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .expect("cached");
    assert!(cached >= 3584, "cached {cached}");
    assert!(warm < cold, "warm {warm:?} cold {cold:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_aborts_in_engine() {
    let mut spec = fast_spec(Surface::Vllm);
    spec.speedup = 1.0;
    let h = start(spec).await;
    let url = h.url();
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("llama-3-8b", "long one", 2000, true))
        .send()
        .await
        .expect("send");
    let mut s = r.bytes_stream();
    use futures::StreamExt;
    let _ = s.next().await;
    let _ = s.next().await;
    assert_eq!(metric(&url, "vllm:num_requests_running", &[]).await, Some(1.0));
    drop(s);
    let mut aborted = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        aborted = metric(&url, "vllm:request_success_total", &[("finished_reason", "abort")]).await;
        if aborted == Some(1.0) {
            break;
        }
    }
    assert_eq!(aborted, Some(1.0));
    assert_eq!(metric(&url, "vllm:num_requests_running", &[]).await, Some(0.0));
    h.shutdown().await;
}
