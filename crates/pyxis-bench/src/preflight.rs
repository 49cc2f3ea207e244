//! One tiny request per key before measuring, so a wrong URL, key or model ends the run at once
//! with an error that says what to fix (vLLM's benchmark does the same "initial test run").

use serde_json::{Value, json};

use crate::client::{error_message, root_cause};
use crate::config::{BenchConfig, Endpoint};
use crate::error::BenchError;

/// Checks the target with each key (or with none).
pub(crate) async fn check(client: &reqwest::Client, base: &str, cfg: &BenchConfig) -> Result<(), BenchError> {
    if cfg.tenants.is_empty() {
        return probe(client, base, cfg, None, None).await;
    }
    for t in &cfg.tenants {
        let name = (cfg.tenants.len() > 1).then_some(t.name.as_str());
        probe(client, base, cfg, Some(&t.key), name).await?;
    }
    Ok(())
}

async fn probe(
    client: &reqwest::Client,
    base: &str,
    cfg: &BenchConfig,
    key: Option<&str>,
    tenant: Option<&str>,
) -> Result<(), BenchError> {
    let url = format!("{base}{}", cfg.endpoint.path());
    let mut body = match cfg.endpoint {
        Endpoint::Chat => json!({"model": cfg.model, "messages": [{"role": "user", "content": "Hello"}]}),
        Endpoint::Completions => json!({"model": cfg.model, "prompt": "Hello"}),
    };
    if let Some(m) = body.as_object_mut() {
        m.insert("max_tokens".into(), json!(1));
        m.insert("stream".into(), json!(false));
    }
    let mut req = client.post(&url).json(&body).timeout(cfg.timeout);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let tenant = tenant.map(str::to_string);
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            BenchError::Rejected {
                url: url.clone(),
                tenant: tenant.clone(),
                message: format!("no answer within --timeout {}", humantime::format_duration(cfg.timeout)),
            }
        } else {
            BenchError::Unreachable {
                url: base.to_string(),
                message: root_cause(&e),
            }
        }
    })?;
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(());
    }
    let message = error_message(&resp.text().await.unwrap_or_default());
    match status {
        401 | 403 => Err(BenchError::Unauthorized {
            url: base.to_string(),
            tenant,
            status,
            message,
        }),
        404 | 400 | 422 if status == 404 || message.to_lowercase().contains("model") => {
            let available = list_models(client, base, key).await;
            match &available {
                Some(models) if models.contains(&cfg.model) && status == 404 => Err(BenchError::NoRoute {
                    url,
                    model: cfg.model.clone(),
                    other: match cfg.endpoint {
                        Endpoint::Chat => "completions",
                        Endpoint::Completions => "chat",
                    },
                }),
                Some(models) if models.contains(&cfg.model) => Err(BenchError::Rejected {
                    url,
                    tenant,
                    message: format!("HTTP {status}: {message}"),
                }),
                _ => Err(BenchError::UnknownModel {
                    url: base.to_string(),
                    model: cfg.model.clone(),
                    tenant,
                    available,
                }),
            }
        }
        _ => Err(BenchError::Rejected {
            url,
            tenant,
            message: format!("HTTP {status}: {message}"),
        }),
    }
}

/// Model ids from `GET /v1/models`, if the server answers it.
pub(crate) async fn list_models(client: &reqwest::Client, base: &str, key: Option<&str>) -> Option<Vec<String>> {
    let mut req = client.get(format!("{base}/v1/models"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: Value = resp.json().await.ok()?;
    let data = v.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
    )
}
