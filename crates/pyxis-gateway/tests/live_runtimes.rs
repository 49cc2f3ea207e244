//! The gateway in front of real runtimes: vLLM (CPU build) and llama.cpp's `llama-server`, started by
//! `scripts/live-runtimes` (docs/live-tests.md). Opt-in through `PYXIS_LIVE_VLLM_URL` and
//! `PYXIS_LIVE_LLAMACPP_URL`; without them every test says it did NOT run and passes, unless
//! `PYXIS_REQUIRE_LIVE=1` (CI), which turns the missing servers into a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use pyxis_gateway::fleet::Endpoint;
use pyxis_gateway::{Gateway, ServeConfig};
use pyxis_resources::RuntimeKind;
use pyxis_store::{AuditQuery, AuditRecord, Store};
use serde_json::{Value, json};

const KEY: &str = "pyx-live";
/// Both scripts' servers take 512 tokens per request (vLLM `--max-model-len 512`; llama-server
/// `-c 2048 -np 4`, 512 a slot).
const CONTEXT: u32 = 512;
const BOTH: &str = "live-both";

/// One real runtime under test.
#[derive(Clone, Debug)]
struct Rt {
    kind: RuntimeKind,
    /// The `Runtime` resource's name.
    runtime: &'static str,
    url: String,
    served: String,
    /// The public model served by this runtime alone.
    model: &'static str,
}

/// Held for a test's whole run: nextest runs each test in its own process, and the load checks need
/// the runtimes to themselves (two cores also make vLLM slow under parallel tests).
struct Serial {
    _lock: std::fs::File,
}

fn serial() -> Serial {
    let f = std::fs::File::create(std::env::temp_dir().join("pyxis-live-runtimes.lock")).unwrap();
    f.lock().unwrap();
    Serial { _lock: f }
}

/// The runtimes named by the environment; `None` (after saying so) when the test must not run.
fn live(test: &str) -> Option<Vec<Rt>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut rts = Vec::new();
    if let Some(url) = var("PYXIS_LIVE_VLLM_URL") {
        rts.push(Rt {
            kind: RuntimeKind::Vllm,
            runtime: "real-vllm",
            url: url.trim_end_matches('/').to_string(),
            served: var("PYXIS_LIVE_VLLM_MODEL").unwrap_or_else(|| "tiny".into()),
            model: "live-vllm",
        });
    }
    if let Some(url) = var("PYXIS_LIVE_LLAMACPP_URL") {
        rts.push(Rt {
            kind: RuntimeKind::Llamacpp,
            runtime: "real-llamacpp",
            url: url.trim_end_matches('/').to_string(),
            served: var("PYXIS_LIVE_LLAMACPP_MODEL").unwrap_or_else(|| "tiny".into()),
            model: "live-llamacpp",
        });
    }
    let required = var("PYXIS_REQUIRE_LIVE").as_deref() == Some("1");
    if rts.len() < 2 && required {
        panic!(
            "{test}: PYXIS_REQUIRE_LIVE=1 but PYXIS_LIVE_VLLM_URL and PYXIS_LIVE_LLAMACPP_URL are not both set: \
             run `scripts/live-runtimes install && scripts/live-runtimes start` and `eval \"$(scripts/live-runtimes env)\"`"
        );
    }
    if rts.is_empty() {
        eprintln!(
            "NOT RUN: {test} needs real runtimes: PYXIS_LIVE_VLLM_URL and/or PYXIS_LIVE_LLAMACPP_URL \
             (scripts/live-runtimes start; eval \"$(scripts/live-runtimes env)\"; docs/live-tests.md)"
        );
        return None;
    }
    if rts.len() < 2 {
        eprintln!(
            "PARTLY RUN: {test} covers only {:?}; set both URLs for the rest",
            rts[0].kind
        );
    }
    Some(rts)
}

/// A model per runtime, and one served by all of them when they know it by one name.
fn fleet(rts: &[Rt]) -> String {
    let mut y = String::from("apiVersion: pyxis.dev/v1alpha1\nkind: Tenant\nmetadata: {name: default}\nspec: {}\n");
    for rt in rts {
        y.push_str(&format!(
            "---\napiVersion: pyxis.dev/v1alpha1\nkind: Runtime\nmetadata: {{name: {}}}\nspec:\n  kind: {}\n  endpoints: [\"{}\"]\n  accelerator: {{type: cpu, count: 1, memoryGiB: 1}}\n  pricePerAcceleratorHour: 0.05\n",
            rt.runtime, rt.kind, rt.url
        ));
        y.push_str(&model_yaml(rt.model, &rt.served, &[rt.runtime]));
    }
    if let Some(shared) = shared_served(rts) {
        let names: Vec<&str> = rts.iter().map(|r| r.runtime).collect();
        y.push_str(&model_yaml(BOTH, &shared, &names));
    }
    y
}

fn model_yaml(name: &str, served: &str, runtimes: &[&str]) -> String {
    format!(
        "---\napiVersion: pyxis.dev/v1alpha1\nkind: Model\nmetadata: {{name: {name}}}\nspec: {{servedName: \"{served}\", version: \"0\", parameters: 1M, contextLength: {CONTEXT}, runtimes: [{}]}}\n",
        runtimes.join(", ")
    )
}

/// The served name every runtime shares, when there are several runtimes and they agree.
fn shared_served(rts: &[Rt]) -> Option<String> {
    let first = &rts.first()?.served;
    (rts.len() > 1 && rts.iter().all(|r| &r.served == first)).then(|| first.clone())
}

struct Live {
    gw: Gateway,
    dir: tempfile::TempDir,
    c: reqwest::Client,
}

/// A gateway over the real runtimes, once every endpoint is healthy, knows its version and has a
/// load sample (the health loop runs every 2 s).
async fn start(rts: &[Rt]) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, fleet(rts)).unwrap();
    let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join("data"));
    cfg.fleet_file = Some(file);
    cfg.demo_api_key = Some(KEY.into());
    let gw = Gateway::start(cfg).await.unwrap();
    let t0 = Instant::now();
    loop {
        let view = gw.state.view();
        let missing: Vec<String> = view
            .endpoints
            .iter()
            .filter(|e| !e.is_healthy() || e.version().is_none() || e.load_sample().is_none())
            .map(|e| {
                format!(
                    "{} ({}): healthy {}, version {:?}, load {:?}",
                    e.url,
                    e.kind,
                    e.is_healthy(),
                    e.version(),
                    e.load_sample()
                )
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "after 15 s of health checks: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Live {
        gw,
        dir,
        c: reqwest::Client::new(),
    }
}

impl Live {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.c
            .post(format!("{}{path}", self.gw.url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn endpoint(&self, rt: &Rt) -> Arc<Endpoint> {
        self.gw
            .state
            .view()
            .endpoints
            .iter()
            .find(|e| e.url == rt.url)
            .unwrap()
            .clone()
    }

    /// Shuts the gateway down (draining its audit writer) and reads its audit log, oldest first.
    async fn audit(self) -> Vec<AuditRecord> {
        self.gw.shutdown().await.unwrap();
        let store = Store::open(&self.dir.path().join("data")).await.unwrap();
        let mut rows = store
            .query_audit(&AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        rows.sort_by_key(|r| r.seq);
        rows
    }
}

fn endpoint_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-pyxis-endpoint")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The data events of an SSE body, `[DONE]` included.
fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_string)
        .collect()
}

/// A stream's JSON chunks and its finish reason, after checking its framing: SSE content type,
/// `[DONE]` last, every chunk of `object` for `model`, exactly one `finish_reason`.
async fn stream_chunks(r: reqwest::Response, what: &str, object: &str, model: &str) -> (Vec<Value>, String) {
    assert_eq!(r.status(), 200, "{what}");
    assert_eq!(r.headers()["content-type"], "text/event-stream", "{what}");
    let text = r.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{what}: {text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{what}: chunk {e:?}: {err}")))
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], object, "{what}: {c}");
        assert_eq!(c["model"], model, "{what}: public name in every chunk: {c}");
    }
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(|_| c))
        .collect();
    assert_eq!(finishes.len(), 1, "{what}: exactly one finish_reason: {text}");
    let reason = finishes[0]["choices"][0]["finish_reason"].as_str().unwrap().to_string();
    (chunks, reason)
}

fn usage_chunk<'a>(chunks: &'a [Value], what: &str) -> &'a Value {
    let with: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(with.len(), 1, "{what}: one usage chunk: {chunks:?}");
    assert_eq!(chunks.last(), Some(with[0]), "{what}: usage comes last");
    &with[0]["usage"]
}

/// Checks a usage object against the finish reason and `max_tokens`; returns the completion tokens.
/// Random weights mostly run to the limit (`length`), but may sample the end-of-text token (`stop`).
fn assert_usage(u: &Value, reason: &str, max: u64, what: &str) -> u64 {
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = u["completion_tokens"].as_u64().unwrap_or(0);
    assert!(prompt > 0, "{what}: {u}");
    assert_eq!(u["total_tokens"].as_u64(), Some(prompt + completion), "{what}: {u}");
    match reason {
        "length" => assert_eq!(completion, max, "{what}: {u}"),
        "stop" => assert!((1..=max).contains(&completion), "{what}: {u}"),
        _ => panic!("{what}: finish_reason {reason:?}"),
    }
    completion
}

/// `finish_reason` and usage of a whole reply.
fn whole_usage(v: &Value, max: u64, what: &str) -> u64 {
    let reason = v["choices"][0]["finish_reason"].as_str().unwrap_or_default();
    assert_usage(&v["usage"], reason, max, what)
}

/// The version the runtime itself reports: vLLM's `/version`, llama.cpp's `/props` build info.
async fn own_version(c: &reqwest::Client, rt: &Rt) -> String {
    let (path, pointer) = match rt.kind {
        RuntimeKind::Vllm => ("/version", "/version"),
        _ => ("/props", "/build_info"),
    };
    let v: Value = c
        .get(format!("{}{path}", rt.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{:?} {path} has no {pointer}: {v}", rt.kind))
        .to_string()
}

/// Far over 512 tokens with a 2,048-token byte-level vocabulary.
fn long_prompt() -> String {
    "The quick brown fox jumps over the lazy dog, 0123456789. ".repeat(120)
}

#[tokio::test]
async fn chat_completions_usage_and_errors_on_each_runtime() {
    let Some(rts) = live("chat_completions_usage_and_errors_on_each_runtime") else {
        return;
    };
    let _serial = serial();
    let live = start(&rts).await;
    let msgs = json!([{"role": "user", "content": "Hello!"}]);
    // Completion tokens each call's client saw, per kind, for the audit check below.
    let mut seen: BTreeMap<RuntimeKind, [u64; 4]> = BTreeMap::new();
    for rt in &rts {
        let k = rt.kind;
        let model = rt.model;

        // Chat, whole.
        let r = live
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": msgs, "max_tokens": 8}),
            )
            .await;
        assert_eq!(r.status(), 200, "{k} chat");
        assert_eq!(endpoint_of(&r), rt.url, "{k} chat");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion", "{k}: {v}");
        assert_eq!(v["model"], model, "{k}: the public name, not the served one: {v}");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{k}: {v}");
        assert!(v["choices"][0]["message"]["content"].is_string(), "{k}: {v}");
        let chat = whole_usage(&v, 8, &format!("{k} chat"));

        // Chat, streamed, with usage asked for.
        let r = live
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": msgs, "max_tokens": 6, "stream": true,
                       "stream_options": {"include_usage": true}}),
            )
            .await;
        let what = format!("{k} chat stream + usage");
        let (chunks, reason) = stream_chunks(r, &what, "chat.completion.chunk", model).await;
        let chat_stream = assert_usage(usage_chunk(&chunks, &what), &reason, 6, &what);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(!text.is_empty(), "{what}: some text: {chunks:?}");

        // Chat, streamed, usage not asked for: none sent (the audit still learns it, below).
        let r = live
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": msgs, "max_tokens": 5, "stream": true}),
            )
            .await;
        let what = format!("{k} chat stream, no usage asked");
        let (chunks, _) = stream_chunks(r, &what, "chat.completion.chunk", model).await;
        assert!(
            chunks.iter().all(|c| !c["usage"].is_object()),
            "{what}: no usage chunk: {chunks:?}"
        );

        // Completions, whole and streamed.
        let r = live
            .post(
                "/v1/completions",
                json!({"model": model, "prompt": "def main(", "max_tokens": 7}),
            )
            .await;
        assert_eq!(r.status(), 200, "{k} completions");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "text_completion", "{k}: {v}");
        assert_eq!(v["model"], model, "{k}: {v}");
        assert!(v["choices"][0]["text"].is_string(), "{k}: {v}");
        let completions = whole_usage(&v, 7, &format!("{k} completions"));

        let r = live
            .post(
                "/v1/completions",
                json!({"model": model, "prompt": "import os\n", "max_tokens": 4, "stream": true,
                       "stream_options": {"include_usage": true}}),
            )
            .await;
        let what = format!("{k} completions stream + usage");
        let (chunks, reason) = stream_chunks(r, &what, "text_completion", model).await;
        let completions_stream = assert_usage(usage_chunk(&chunks, &what), &reason, 4, &what);

        // The runtime's own refusal, in OpenAI's shape with its status: a prompt longer than the context.
        let r = live
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": long_prompt()}], "max_tokens": 8}),
            )
            .await;
        let status = r.status();
        assert_eq!(endpoint_of(&r), rt.url, "{k}: the runtime refused it, not the gateway");
        let e: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{k} prompt over the context: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error", "{k}: {e}");
        assert_eq!(e["error"]["code"], "context_length_exceeded", "{k}: {e}");
        assert!(
            e["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{k}: {e}"
        );
        eprintln!("{k}: prompt over the context -> {status} {e}");
        seen.insert(k, [chat, chat_stream, completions, completions_stream]);
    }

    let rows = live.audit().await;
    for rt in &rts {
        let k = rt.kind;
        let mine: Vec<&AuditRecord> = rows.iter().filter(|r| r.model == rt.model).collect();
        assert_eq!(mine.len(), 6, "{k}: one record a call: {mine:?}");
        for r in &mine {
            assert_eq!(r.runtime_kind.as_deref(), Some(k.as_str()), "{k}: {r:?}");
            assert_eq!(r.runtime.as_deref(), Some(rt.runtime), "{k}: {r:?}");
            assert_eq!(r.endpoint.as_deref(), Some(rt.url.as_str()), "{k}: {r:?}");
            assert!(
                r.runtime_version.as_deref().is_some_and(|v| !v.is_empty()),
                "{k}: {r:?}"
            );
        }
        let [chat, chat_stream, completions, completions_stream] = seen[&k];
        let shape: Vec<(i64, bool)> = mine.iter().map(|r| (r.status, r.stream)).collect();
        assert_eq!(
            shape,
            [
                (200, false),
                (200, true),
                (200, true),
                (200, false),
                (200, true),
                (400, false)
            ],
            "{k}"
        );
        let tokens: Vec<u64> = mine.iter().map(|r| r.completion_tokens as u64).collect();
        assert_eq!(
            [tokens[0], tokens[1], tokens[3], tokens[4], tokens[5]],
            [chat, chat_stream, completions, completions_stream, 0],
            "{k}: the audit has the usage the client saw"
        );
        assert!(
            (1..=5).contains(&tokens[2]),
            "{k}: usage learned from a stream whose client did not ask for it: {tokens:?}"
        );
        let own = own_version(&reqwest::Client::new(), rt).await;
        assert!(
            mine.iter().all(|r| r.runtime_version.as_deref() == Some(own.as_str())),
            "{k}: {own}"
        );
        assert!(
            mine[..5].iter().all(|r| r.prompt_tokens > 0 && r.cost_usd > 0.0),
            "{k}: {mine:?}"
        );
        assert_eq!(mine[5].error_type.as_deref(), Some("invalid_request"), "{k}");
    }
}

#[tokio::test]
async fn version_and_load_signal_from_each_runtime() {
    let Some(rts) = live("version_and_load_signal_from_each_runtime") else {
        return;
    };
    let _serial = serial();
    let live = start(&rts).await;
    for rt in &rts {
        let k = rt.kind;
        let ep = live.endpoint(rt);
        let own = own_version(&live.c, rt).await;
        assert_eq!(
            ep.version().as_deref(),
            Some(own.as_str()),
            "{k}: the runtime's own version"
        );
        eprintln!("{k}: version {own}");

        let idle = ep.load_sample().unwrap();
        let before = idle.generated_tokens.expect("a generated-tokens counter");
        if k == RuntimeKind::Vllm {
            assert!(idle.kv_use.is_some(), "vLLM exports its KV cache use: {idle:?}");
        }

        // Four clients back to back keep the runtime busy until a scrape sees it.
        let busy = AtomicBool::new(true);
        let worker = |i: usize| {
            let busy = &busy;
            let live = &live;
            async move {
                let (mut n, mut tokens) = (0u64, 0u64);
                while busy.load(Ordering::Relaxed) {
                    let body = json!({"model": rt.model, "prompt": format!("class C{i}_{n}:"), "max_tokens": 48});
                    let r = live.post("/v1/completions", body).await;
                    assert_eq!(r.status(), 200, "{k} load");
                    let v: Value = r.json().await.unwrap();
                    tokens += whole_usage(&v, 48, &format!("{k} load"));
                    n += 1;
                }
                (n, tokens)
            }
        };
        let watch = async {
            let t0 = Instant::now();
            let seen = loop {
                let s = ep.load_sample().unwrap();
                if s.running + s.waiting > 0 {
                    break Some(s);
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            busy.store(false, Ordering::Relaxed);
            seen
        };
        let (seen, sent) = tokio::join!(watch, join_all((0..4).map(worker)));
        let (sent, generated) = sent.iter().fold((0, 0), |(n, t), (n1, t1)| (n + n1, t + t1));
        let seen = seen.unwrap_or_else(|| panic!("{k}: no scrape saw a running request in 10 s ({sent} requests)"));
        eprintln!("{k}: busy sample {seen:?} ({sent} requests, {generated} tokens)");

        // Once idle again: the gauges fall back and the counter moved by at least what was generated.
        let t0 = Instant::now();
        let after = loop {
            let s = ep.load_sample().unwrap();
            if s.running + s.waiting == 0 && s.generated_tokens.unwrap_or(0.0) >= before + generated as f64 {
                break s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(8),
                "{k}: after {sent} requests generating {generated} tokens, from {before}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        eprintln!("{k}: idle sample {after:?}");
    }
}

#[tokio::test]
async fn one_model_on_both_kinds() {
    let Some(rts) = live("one_model_on_both_kinds") else {
        return;
    };
    let _serial = serial();
    if shared_served(&rts).is_none() {
        eprintln!("NOT RUN: one_model_on_both_kinds needs both runtimes serving one model name");
        return;
    }
    let live = start(&rts).await;
    let urls: BTreeMap<String, RuntimeKind> = rts.iter().map(|r| (r.url.clone(), r.kind)).collect();
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    // Concurrent bursts of distinct prompts: in-flight counts and prefix affinity both spread them.
    for round in 0..4 {
        let calls = (0..6).map(|i| {
            let live = &live;
            async move {
                let stream = i % 2 == 1;
                let mut body = json!({"model": BOTH, "messages": [{"role": "user", "content": format!("r{round} q{i}: hi")}],
                                  "max_tokens": 6, "temperature": 0, "stream": stream});
                if stream {
                    // vLLM, like OpenAI, refuses stream_options on a whole reply.
                    body["stream_options"] = json!({"include_usage": true});
                }
                let r = live.post("/v1/chat/completions", body).await;
                let ep = endpoint_of(&r);
                if stream {
                    let (chunks, reason) = stream_chunks(r, "both, streamed", "chat.completion.chunk", BOTH).await;
                    assert_usage(usage_chunk(&chunks, "both, streamed"), &reason, 6, "both, streamed");
                } else {
                    assert_eq!(r.status(), 200, "{ep}");
                    let v: Value = r.json().await.unwrap();
                    assert_eq!(v["model"], BOTH, "{v}");
                    whole_usage(&v, 6, "both");
                }
                ep
            }
        });
        for ep in join_all(calls).await {
            let kind = urls
                .get(&ep)
                .unwrap_or_else(|| panic!("answered by an unknown endpoint {ep:?}"));
            *served.entry(format!("{kind} {ep}")).or_default() += 1;
        }
        if served.len() == rts.len() {
            break;
        }
    }
    eprintln!("{BOTH}: answers per endpoint {served:?}");
    assert_eq!(
        served.len(),
        rts.len(),
        "every kind served the shared model: {served:?}"
    );

    let rows = live.audit().await;
    let kinds: BTreeMap<String, Option<String>> = rows
        .iter()
        .filter(|r| r.model == BOTH)
        .map(|r| (r.runtime_kind.clone().unwrap_or_default(), r.runtime_version.clone()))
        .collect();
    for rt in &rts {
        let v = kinds
            .get(rt.kind.as_str())
            .unwrap_or_else(|| panic!("no record from {}: {kinds:?}", rt.kind));
        assert_eq!(
            v.as_deref(),
            Some(own_version(&reqwest::Client::new(), rt).await.as_str())
        );
    }
}
