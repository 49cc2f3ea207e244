//! Probing a runtime over HTTP: which kind it is (routes only one kind has, and `/v1/models`'
//! `owned_by`), then its identity, health and load through that kind's adapter. The only I/O of
//! the crate; the decision itself ([`classify_kind`]) is pure.

use std::time::Duration;

use futures::future::join_all;
use pyxis_resources::RuntimeKind;
use serde::Serialize;
use serde_json::Value;

use crate::adapter::Adapter;
use crate::types::{Identity, LoadSample, Probe, ProbeMethod, TritonBackend};
use crate::{AdapterOptions, adapter, adapter_with};

/// Per-request limit: a runtime that cannot answer a metadata GET in this long is not usable.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Per-model identity probes stop after this many models (an Ollama host can hold hundreds).
const MAX_MODEL_PROBES: usize = 16;

/// GETs that tell the kinds apart, each answered by one kind only (runtimes.md §0 "Version" and
/// "Model identity" rows), plus the OpenAI model list whose `owned_by` names vLLM, SGLang,
/// TRT-LLM and llama.cpp.
const DISTINGUISHING: &[&str] = &[
    "/api/version",
    "/v2",
    "/info",
    "/props",
    "/get_model_info",
    "/version",
    "/v1/models",
];

/// What `pyxis inspect URL` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detected {
    pub kind: RuntimeKind,
    /// Which answer settled the kind, e.g. `GET /info has model_id`.
    pub evidence: String,
    pub identity: Identity,
    /// The kind's health route and what it answered (`None`: no answer).
    pub health_path: String,
    pub health_status: Option<u16>,
    pub healthy: bool,
    /// Where metrics were looked for and what came back; `None` when the kind has none.
    pub metrics_url: Option<String>,
    pub metrics_status: Option<u16>,
    /// One scrape's load (no rate: that needs two samples).
    pub load: Option<LoadSample>,
    /// For Triton: the backend its models' inputs show, to pick the adapter's request shape.
    pub triton_backend: Option<TritonBackend>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProbeError {
    #[error("could not reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answers HTTP but not like any runtime Pyxis knows; answers: {answers}")]
    Unrecognized { url: String, answers: String },
}

/// One probe's outcome: status and body, or the transport error.
type Answer = Result<(u16, Vec<u8>), String>;

async fn call(
    client: &reqwest::Client,
    url: String,
    probe: &Probe,
    model: Option<&str>,
    bearer: Option<&str>,
) -> Answer {
    let mut rb = match probe.method {
        ProbeMethod::Get => client.get(url),
        ProbeMethod::Post => client
            .post(url)
            .header("content-type", "application/json")
            .body(probe.body_for(model).unwrap_or_default()),
    }
    .timeout(TIMEOUT);
    if let Some(b) = bearer {
        rb = rb.bearer_auth(b);
    }
    let resp = rb.send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| error_chain(&e))?;
    Ok((status, body.to_vec()))
}

async fn get(client: &reqwest::Client, url: String, bearer: Option<&str>) -> Answer {
    call(client, url, &Probe::get(""), None, bearer).await
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn ok_json<'a>(answers: &'a [(&str, u16, &[u8])], path: &str) -> Option<(&'a str, Value)> {
    answers
        .iter()
        .find(|(p, st, _)| *p == path && (200..300).contains(st))
        .and_then(|(p, _, b)| serde_json::from_slice::<Value>(b).ok().map(|v| (*p, v)))
        .filter(|(_, v)| v.is_object())
}

/// Decides the kind from the distinguishing probes' answers `(path, status, body)`; returns the
/// kind and the evidence. Order matters where two kinds share a route (`/version`: vLLM and
/// TRT-LLM; `/v1/models`: everyone).
pub fn classify_kind(answers: &[(&str, u16, &[u8])]) -> Option<(RuntimeKind, String)> {
    let has = |v: &Value, k: &str| v.get(k).is_some_and(|x| !x.is_null());
    if ok_json(answers, "/api/version").is_some_and(|(_, v)| v["version"].is_string()) {
        return Some((
            RuntimeKind::Ollama,
            "GET /api/version answers a version (Ollama)".into(),
        ));
    }
    if ok_json(answers, "/v2").is_some_and(|(_, v)| v["name"] == "triton" || v["extensions"].is_array()) {
        return Some((
            RuntimeKind::Triton,
            "GET /v2 answers KServe v2 server metadata (Triton)".into(),
        ));
    }
    if ok_json(answers, "/info").is_some_and(|(_, v)| {
        v["model_id"].is_string() && (v["router"] == "text-generation-router" || has(&v, "max_total_tokens"))
    }) {
        return Some((
            RuntimeKind::Tgi,
            "GET /info has model_id and max_total_tokens (TGI)".into(),
        ));
    }
    if ok_json(answers, "/props")
        .is_some_and(|(_, v)| has(&v, "build_info") || has(&v, "total_slots") || has(&v, "default_generation_settings"))
    {
        return Some((
            RuntimeKind::Llamacpp,
            "GET /props has build_info / total_slots (llama.cpp)".into(),
        ));
    }
    let owned_by = ok_json(answers, "/v1/models").and_then(|(_, v)| {
        v.get("data")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(|m| m.get("owned_by"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let owner = |o: &str| owned_by.as_deref() == Some(o);
    if owner("sglang") || ok_json(answers, "/get_model_info").is_some_and(|(_, v)| has(&v, "model_path")) {
        return Some((
            RuntimeKind::Sglang,
            "GET /get_model_info or /v1/models owned_by sglang (SGLang)".into(),
        ));
    }
    if owner("tensorrt_llm") {
        return Some((
            RuntimeKind::TensorrtLlm,
            "/v1/models owned_by tensorrt_llm (trtllm-serve)".into(),
        ));
    }
    if owner("vllm") {
        return Some((RuntimeKind::Vllm, "/v1/models owned_by vllm (vLLM)".into()));
    }
    if owner("llamacpp") {
        return Some((RuntimeKind::Llamacpp, "/v1/models owned_by llamacpp (llama.cpp)".into()));
    }
    if ok_json(answers, "/version").is_some_and(|(_, v)| v["version"].is_string()) {
        // vLLM and trtllm-serve both have `/version`; vLLM is far the commoner.
        return Some((
            RuntimeKind::Vllm,
            "GET /version answers a version (vLLM; trtllm-serve has it too)".into(),
        ));
    }
    if ok_json(answers, "/v1/models").is_some_and(|(_, v)| v["data"].is_array()) {
        return Some((
            RuntimeKind::Openai,
            "only GET /v1/models answers (OpenAI-compatible)".into(),
        ));
    }
    None
}

/// Detects the runtime at `base_url` and reads its identity, health and load.
pub async fn detect(client: &reqwest::Client, base_url: &str) -> Result<crate::Detected, ProbeError> {
    detect_with(client, base_url, None).await
}

/// [`detect`] with a bearer token for runtimes behind one.
pub async fn detect_with(
    client: &reqwest::Client,
    base_url: &str,
    bearer: Option<&str>,
) -> Result<crate::Detected, ProbeError> {
    let base = base_url.trim_end_matches('/');
    let probes: Vec<Probe> = DISTINGUISHING.iter().map(|p| Probe::get(p)).collect();
    let answers: Vec<Answer> = join_all(
        probes
            .iter()
            .map(|p| call(client, format!("{base}{}", p.path), p, None, bearer)),
    )
    .await;
    if let Some(Err(reason)) = answers
        .iter()
        .find(|a| a.is_err())
        .filter(|_| answers.iter().all(Result::is_err))
    {
        return Err(ProbeError::Unreachable {
            url: base.to_string(),
            reason: reason.clone(),
        });
    }
    let seen: Vec<(&str, u16, &[u8])> = DISTINGUISHING
        .iter()
        .zip(&answers)
        .filter_map(|(p, a)| a.as_ref().ok().map(|(st, b)| (*p, *st, b.as_slice())))
        .collect();
    let Some((kind, evidence)) = classify_kind(&seen) else {
        let answers = DISTINGUISHING
            .iter()
            .zip(&answers)
            .map(|(p, a)| match a {
                Ok((st, _)) => format!("GET {p} {st}"),
                Err(_) => format!("GET {p} no answer"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ProbeError::Unrecognized {
            url: base.to_string(),
            answers,
        });
    };
    let a = adapter(kind);
    let identity = identity_with(client, base, a, bearer, &seen).await;
    let health_path = a.health_path().to_string();
    let health_status = get(client, format!("{base}{health_path}"), bearer)
        .await
        .ok()
        .map(|(st, _)| st);
    let metrics_url = a.metrics_url(base);
    let (metrics_status, load) = match &metrics_url {
        Some(url) => match get(client, url.clone(), bearer).await {
            Ok((st, body)) => (
                Some(st),
                (200..300)
                    .contains(&st)
                    .then(|| a.parse_load(&String::from_utf8_lossy(&body), None, 0))
                    .flatten(),
            ),
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    let triton_backend = (kind == RuntimeKind::Triton)
        .then(|| {
            let backends: Vec<&str> = identity.models.iter().filter_map(|m| m.backend.as_deref()).collect();
            if backends.contains(&"vllm") {
                Some(TritonBackend::Vllm)
            } else if backends.contains(&"tensorrtllm") {
                Some(TritonBackend::TensorrtLlm)
            } else {
                None
            }
        })
        .flatten();
    Ok(Detected {
        kind,
        evidence,
        identity,
        healthy: health_status.is_some_and(|s| (200..300).contains(&s)),
        health_path,
        health_status,
        metrics_url,
        metrics_status,
        load,
        triton_backend,
    })
}

/// Runs an adapter's identity probes against `base_url` and merges what they say.
pub async fn fetch_identity(
    client: &reqwest::Client,
    base_url: &str,
    adapter: &dyn Adapter,
    bearer: Option<&str>,
) -> Identity {
    identity_with(client, base_url.trim_end_matches('/'), adapter, bearer, &[]).await
}

async fn identity_with(
    client: &reqwest::Client,
    base: &str,
    a: &dyn Adapter,
    bearer: Option<&str>,
    seen: &[(&str, u16, &[u8])],
) -> Identity {
    let mut id = Identity::default();
    let plain: Vec<&Probe> = a.identity_probes().iter().filter(|p| !p.per_model).collect();
    // GETs already answered while detecting are not asked again.
    let fetched = join_all(plain.iter().map(|p| async move {
        let cached = (p.method == ProbeMethod::Get)
            .then(|| seen.iter().find(|(path, _, _)| *path == p.path))
            .flatten();
        match cached {
            Some((_, st, b)) => Ok((*st, b.to_vec())),
            None => call(client, format!("{base}{}", p.path), p, None, bearer).await,
        }
    }))
    .await;
    for (p, ans) in plain.iter().zip(fetched) {
        if let Ok((st, body)) = ans
            && (200..300).contains(&st)
        {
            id.merge(a.parse_identity(&p.label_for(None), &body));
        }
    }
    let models: Vec<String> = id.models.iter().take(MAX_MODEL_PROBES).map(|m| m.id.clone()).collect();
    for p in a.identity_probes().iter().filter(|p| p.per_model) {
        let fetched = join_all(models.iter().map(|m| {
            let url = format!("{base}{}", p.path_for(Some(m)));
            async move { (m, call(client, url, p, Some(m), bearer).await) }
        }))
        .await;
        for (m, ans) in fetched {
            if let Ok((st, body)) = ans
                && (200..300).contains(&st)
            {
                id.merge(a.parse_identity(&p.label_for(Some(m)), &body));
            }
        }
    }
    id
}

/// Scrapes an endpoint's metrics and reads its load; `None` when the kind has no metrics, the
/// scrape fails, or it shows none of the kind's gauges.
pub async fn fetch_load(
    client: &reqwest::Client,
    base_url: &str,
    adapter: &dyn Adapter,
    bearer: Option<&str>,
    prev: Option<&LoadSample>,
    now_ms: u64,
) -> Option<LoadSample> {
    let url = adapter.metrics_url(base_url)?;
    let (st, body) = get(client, url, bearer).await.ok()?;
    if !(200..300).contains(&st) {
        return None;
    }
    adapter.parse_load(&String::from_utf8_lossy(&body), prev, now_ms)
}

/// The adapter `detect` suggests for a detected runtime (Triton's backend included).
pub fn suggested_adapter(d: &Detected) -> &'static dyn Adapter {
    adapter_with(
        d.kind,
        AdapterOptions {
            triton_backend: d.triton_backend.unwrap_or_default(),
            ..AdapterOptions::default()
        },
    )
}
