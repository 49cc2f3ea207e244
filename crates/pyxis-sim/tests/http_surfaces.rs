//! The same engine presenting TGI's and Ollama's native APIs.

mod common;

use common::*;
use pyxis_sim::Surface;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_info_generate_stream_metrics() {
    let h = start(fast_spec(Surface::Tgi)).await;
    let c = client();
    let url = h.url();
    assert_eq!(c.get(format!("{url}/health")).send().await.expect("h").status(), 200);
    let info: Value = c
        .get(format!("{url}/info"))
        .send()
        .await
        .expect("i")
        .json()
        .await
        .expect("j");
    assert_eq!(info["model_id"], "llama-3-8b");
    assert_eq!(info["max_total_tokens"], 8192);
    assert_eq!(info["router"], "text-generation-router");
    assert!(info["version"].is_string());

    let r = c
        .post(format!("{url}/generate"))
        .json(&json!({"inputs": "What is a river?", "parameters": {"max_new_tokens": 6, "details": true}}))
        .send()
        .await
        .expect("g");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-prompt-tokens"], "6");
    let generated: u32 = r.headers()["x-generated-tokens"]
        .to_str()
        .expect("h")
        .parse()
        .expect("n");
    assert!(r.headers().contains_key("x-queue-time"));
    let v: Value = r.json().await.expect("j");
    assert_eq!(v["details"]["generated_tokens"], generated);
    assert_eq!(
        v["details"]["tokens"].as_array().expect("tokens").len() as u32,
        generated
    );
    assert!(["length", "eos_token"].contains(&v["details"]["finish_reason"].as_str().expect("reason")));

    let r = c
        .post(format!("{url}/generate_stream"))
        .json(&json!({"inputs": "What is a river?", "parameters": {"max_new_tokens": 6}}))
        .send()
        .await
        .expect("s");
    let body = r.text().await.expect("body");
    assert!(body.starts_with("data:{"), "TGI writes data: without a space");
    assert!(!body.contains("[DONE]"));
    let events: Vec<Value> = sse_data(&body)
        .iter()
        .map(|d| serde_json::from_str(d).expect("event"))
        .collect();
    assert_eq!(events.len(), 6);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["index"], i + 1);
        assert!(e["token"]["id"].is_u64());
        if i < 5 {
            assert!(e["generated_text"].is_null() && e["details"].is_null());
        }
    }
    let last = &events[5];
    let joined: String = events
        .iter()
        .map(|e| e["token"]["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(last["generated_text"], joined.as_str());
    assert_eq!(last["details"]["input_length"], 6);
    assert_eq!(last["details"]["finish_reason"], "length");

    // Validation errors in TGI's shape.
    let r = c
        .post(format!("{url}/generate"))
        .json(&json!({"inputs": "x", "parameters": {"max_new_tokens": 9000}}))
        .send()
        .await
        .expect("v");
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.expect("j");
    assert_eq!(v["error_type"], "validation");
    assert!(v["error"].as_str().expect("e").contains("must be <= 8192"));

    let text = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let scrape = parse_prometheus(&text);
    let get = |n: &str| scrape.samples.iter().find(|s| s.metric == n).map(|s| s.value.clone());
    assert!(matches!(get("tgi_queue_size"), Some(prometheus_parse::Value::Gauge(_))));
    assert!(matches!(
        get("tgi_batch_current_size"),
        Some(prometheus_parse::Value::Gauge(_))
    ));
    assert!(matches!(get("tgi_request_count"), Some(prometheus_parse::Value::Counter(v)) if v == 3.0));
    assert!(matches!(
        get("tgi_request_duration"),
        Some(prometheus_parse::Value::Histogram(_))
    ));
    assert!(!text.contains("vllm:"));

    // Overload is a 429 with TGI's body.
    h.set_faults(pyxis_sim::FaultConfig {
        overload: true,
        ..Default::default()
    });
    let r = c
        .post(format!("{url}/generate"))
        .json(&json!({"inputs": "x"}))
        .send()
        .await
        .expect("o");
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.expect("j"),
        json!({"error": "Model is overloaded", "error_type": "overloaded"})
    );
    // The OpenAI route of TGI answers too, with TGI's error shape.
    let r = c
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("tgi", "x", 3, false))
        .send()
        .await
        .expect("o");
    assert_eq!(r.status(), 429);
    h.set_faults(pyxis_sim::FaultConfig::default());
    let r = c
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat_body("tgi", "x", 3, false))
        .send()
        .await
        .expect("o");
    assert_eq!(r.status(), 200);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_native_api() {
    let mut spec = fast_spec(Surface::Ollama);
    spec.served_model_names = vec!["llama3:8b".into()];
    let h = start(spec).await;
    let c = client();
    let url = h.url();
    let r = c.get(&url).send().await.expect("root");
    assert_eq!(r.text().await.expect("t"), "Ollama is running");
    let v: Value = c
        .get(format!("{url}/api/version"))
        .send()
        .await
        .expect("v")
        .json()
        .await
        .expect("j");
    assert!(v["version"].is_string());
    let tags: Value = c
        .get(format!("{url}/api/tags"))
        .send()
        .await
        .expect("t")
        .json()
        .await
        .expect("j");
    assert_eq!(tags["models"][0]["name"], "llama3:8b");
    assert_eq!(tags["models"][0]["details"]["family"], "llama");
    let ps: Value = c
        .get(format!("{url}/api/ps"))
        .send()
        .await
        .expect("p")
        .json()
        .await
        .expect("j");
    assert_eq!(ps["models"][0]["model"], "llama3:8b");
    let show: Value = c
        .post(format!("{url}/api/show"))
        .json(&json!({"model": "llama3:8b"}))
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert_eq!(show["model_info"]["llama.context_length"], 8192);

    // Streaming NDJSON by default.
    let r = c
        .post(format!("{url}/api/chat"))
        .json(&json!({"model": "llama3:8b", "messages": [{"role": "user", "content": "hello"}], "options": {"num_predict": 5}}))
        .send()
        .await
        .expect("chat");
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = r
        .text()
        .await
        .expect("t")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    let last = lines.last().expect("final");
    assert_eq!(last["done"], true);
    let n = last["eval_count"].as_u64().expect("eval_count") as usize;
    assert_eq!(lines.len(), n + 1);
    assert!(n <= 5);
    assert_eq!(
        last["prompt_eval_count"], 7,
        "BOS <|im_start|> user hello <|im_end|> <|im_start|> assistant"
    );
    assert!(last["total_duration"].as_u64().expect("ns") > 0);
    assert!(
        lines[..n]
            .iter()
            .all(|l| l["done"] == false && l["message"]["role"] == "assistant")
    );

    let v: Value = c
        .post(format!("{url}/api/generate"))
        .json(&json!({"model": "llama3:8b", "prompt": "hello", "stream": false, "options": {"num_predict": 4}}))
        .send()
        .await
        .expect("gen")
        .json()
        .await
        .expect("j");
    assert_eq!(v["done"], true);
    let k = v["eval_count"].as_u64().expect("n");
    assert_eq!(v["context"].as_array().expect("ctx").len() as u64, 2 + k);

    let r = c
        .post(format!("{url}/api/chat"))
        .json(&json!({"model": "nope", "messages": []}))
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("j"),
        json!({"error": "model \"nope\" not found, try pulling it first"})
    );

    h.set_faults(pyxis_sim::FaultConfig {
        overload: true,
        ..Default::default()
    });
    let r = c
        .post(format!("{url}/api/generate"))
        .json(&json!({"model": "llama3:8b", "prompt": "x"}))
        .send()
        .await
        .expect("o");
    assert_eq!(r.status(), 503);
    assert!(
        r.json::<Value>().await.expect("j")["error"]
            .as_str()
            .expect("e")
            .contains("server busy")
    );
    assert_eq!(
        c.get(format!("{url}/metrics")).send().await.expect("m").status(),
        404,
        "Ollama has no /metrics"
    );
    h.shutdown().await;
}
