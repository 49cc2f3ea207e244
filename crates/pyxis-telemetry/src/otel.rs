//! OpenTelemetry traces over OTLP/HTTP (protobuf), configured only by the standard `OTEL_*`
//! variables and off when no endpoint is set.
//!
//! The exporter sends with the workspace's reqwest 0.13 (no second reqwest, no gRPC stack). The
//! SDK's batch processor exports from its own thread with a plain `block_on`, where reqwest cannot
//! run, so each request is handed to a one-thread tokio runtime that this module owns.

use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::TelemetryError;

/// Where traces go and how they are labelled, from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelConfig {
    /// The full OTLP/HTTP traces URL, e.g. `http://collector:4318/v1/traces`.
    pub traces_endpoint: String,
    pub headers: Vec<(String, String)>,
    pub service_name: String,
    pub timeout: Duration,
}

const DEFAULT_SERVICE_NAME: &str = "pyxis";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl OtelConfig {
    /// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (`/v1/traces` appended), `OTEL_EXPORTER_OTLP_HEADERS` (then `..._TRACES_HEADERS`),
    /// `OTEL_SERVICE_NAME`. `Ok(None)`: tracing export is off (no endpoint, or
    /// `OTEL_SDK_DISABLED=true`).
    pub fn from_env() -> Result<Option<Self>, TelemetryError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`OtelConfig::from_env`] over any source of variables (tests cannot set the process's).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, TelemetryError> {
        let var = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let traces_endpoint = if let Some(e) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            e
        } else if let Some(e) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            format!("{}/v1/traces", e.trim_end_matches('/'))
        } else {
            return Ok(None);
        };
        let uri: http::Uri = traces_endpoint.parse().map_err(|e| {
            TelemetryError::Config(format!("OTLP traces endpoint `{traces_endpoint}` is not a URL: {e}"))
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(TelemetryError::Config(format!(
                    "OTLP traces endpoint `{traces_endpoint}` uses https, but this build has no TLS; send to an http collector (e.g. a local OpenTelemetry Collector) instead"
                )));
            }
            _ => {
                return Err(TelemetryError::Config(format!(
                    "OTLP traces endpoint `{traces_endpoint}` needs an http:// scheme"
                )));
            }
        }
        for k in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(p) = var(k) {
                if p != "http/protobuf" {
                    return Err(TelemetryError::Config(format!(
                        "{k}={p} is not supported; Pyxis exports OTLP over http/protobuf only"
                    )));
                }
                break;
            }
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for k in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
            if let Some(v) = var(k) {
                for (name, value) in parse_headers(k, &v)? {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                    headers.push((name, value));
                }
            }
        }
        let timeout = ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
            .iter()
            .find_map(|k| var(k))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Ok(Some(OtelConfig {
            traces_endpoint,
            headers,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()),
            timeout,
        }))
    }
}

/// `k1=v1,k2=v2`, values percent-decoded (the W3C baggage form the spec names).
fn parse_headers(var: &str, s: &str) -> Result<Vec<(String, String)>, TelemetryError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                TelemetryError::Config(format!("{var}: `{pair}` is not key=value (expected k1=v1,k2=v2)"))
            })?;
            let (k, v) = (k.trim(), percent_decode(v.trim()));
            http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| TelemetryError::Config(format!("{var}: `{k}` is not a valid header name")))?;
            http::HeaderValue::from_str(&v).map_err(|_| {
                TelemetryError::Config(format!("{var}: the value of `{k}` is not a valid header value"))
            })?;
            Ok((k.to_string(), v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|c| (*c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// reqwest 0.13 as the exporter's HTTP client, each request run on the exporter's own runtime.
#[derive(Debug)]
struct ReqwestOnRuntime {
    client: reqwest::Client,
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ReqwestOnRuntime {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let (status, headers, body) = self
            .rt
            .spawn(async move {
                let resp = client.execute(request).await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// The running trace pipeline: provider, tracer and the exporter's runtime thread.
pub(crate) struct OtelPipeline {
    pub(crate) provider: SdkTracerProvider,
    pub(crate) tracer: SdkTracer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtelPipeline {
    pub(crate) fn start(cfg: &OtelConfig) -> Result<Self, TelemetryError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Otel(format!("cannot build the exporter's runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pyxis-otlp".into())
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })
            .map_err(|e| TelemetryError::Otel(format!("cannot start the exporter's thread: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| TelemetryError::Otel(format!("cannot build the OTLP HTTP client: {e}")))?;
        let headers: HashMap<String, String> = cfg.headers.iter().cloned().collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(ReqwestOnRuntime { client, rt: handle })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.traces_endpoint.clone())
            .with_headers(headers)
            .with_timeout(cfg.timeout)
            .build()
            .map_err(|e| TelemetryError::Otel(format!("cannot build the OTLP exporter: {e}")))?;
        let resource = Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .build();
        let tracer = provider.tracer("pyxis");
        Ok(OtelPipeline {
            provider,
            tracer,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Exports what is buffered, then stops the exporter's thread. Blocks the calling thread for
    /// at most the export timeout.
    pub(crate) fn shutdown(&mut self) -> Result<(), TelemetryError> {
        let res = self
            .provider
            .shutdown()
            .map_err(|e| TelemetryError::Otel(format!("trace export at shutdown failed: {e}")));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        res
    }

    pub(crate) fn force_flush(&self) -> Result<(), TelemetryError> {
        self.provider
            .force_flush()
            .map_err(|e| TelemetryError::Otel(format!("trace flush failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Result<Option<OtelConfig>, TelemetryError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        OtelConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(cfg(&[]).unwrap(), None);
        assert_eq!(cfg(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
        let disabled = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ];
        assert_eq!(cfg(&disabled).unwrap(), None);
    }

    #[test]
    fn endpoints_headers_and_service_name_follow_the_spec() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-team=ml"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Team=infra"),
            ("OTEL_SERVICE_NAME", "pyxis-eu"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.traces_endpoint, "http://c:4318/v1/traces");
        assert_eq!(
            c.headers,
            vec![("api-key".into(), "a b".into()), ("X-Team".into(), "infra".into())]
        );
        assert_eq!(c.service_name, "pyxis-eu");
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/custom"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.traces_endpoint, "http://t:9/custom");
        assert_eq!(c.service_name, "pyxis");
    }

    #[test]
    fn unusable_settings_are_errors_that_say_why() {
        let e = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]).unwrap_err();
        assert!(e.to_string().contains("no TLS"), "{e}");
        let e = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("http/protobuf"), "{e}");
        let e = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("OTEL_EXPORTER_OTLP_HEADERS"), "{e}");
    }
}
