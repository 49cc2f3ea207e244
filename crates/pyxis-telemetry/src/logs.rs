//! Installs the tracing subscriber: fmt (JSON or human) behind a reloadable filter, the request-id
//! layer, and the OpenTelemetry layer when `OTEL_*` configures an endpoint.

use std::io::IsTerminal;
use std::str::FromStr;

use parking_lot::Mutex;
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets, filter_fn};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, reload};

use crate::TelemetryError;
use crate::logfmt::{AppendJsonFields, HumanFields, JsonWithIds, RequestIdsLayer};
use crate::otel::{OtelConfig, OtelPipeline};
use crate::spans::SPAN_TARGET;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Human,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    /// `json`, or `text`/`human`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(LogFormat::Json),
            "text" | "human" => Ok(LogFormat::Human),
            other => Err(TelemetryError::Config(format!(
                "unknown log format `{other}`: use json or text"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `EnvFilter` directives, e.g. `info` or `debug,hyper=info` (what `PYXIS_LOG` holds today).
    pub level: String,
}

/// Keeps logging and trace export running; flushes and stops the exporter on `shutdown` or drop.
pub struct TelemetryGuard {
    filter: reload::Handle<EnvFilter, Registry>,
    level: Mutex<String>,
    otel: Mutex<Option<OtelPipeline>>,
}

/// The directive string actually installed: the user's, plus our spans at `info` so warnings keep
/// their request context even when info events are filtered out.
fn filter_for(level: &str) -> Result<EnvFilter, TelemetryError> {
    let level = level.trim();
    let level = if level.is_empty() { "info" } else { level };
    EnvFilter::builder()
        .parse(format!("{level},{SPAN_TARGET}=info"))
        .map_err(|e| TelemetryError::Level(format!("`{level}`: {e}")))
}

impl TelemetryGuard {
    /// Changes the log filter while running, e.g. `debug,hyper=info`. On error the old filter stays.
    pub fn set_level(&self, directives: &str) -> Result<(), TelemetryError> {
        let f = filter_for(directives)?;
        self.filter
            .reload(f)
            .map_err(|e| TelemetryError::Level(format!("cannot swap the log filter: {e}")))?;
        *self.level.lock() = directives.trim().to_string();
        Ok(())
    }

    /// The directives last set (for an admin route to show).
    pub fn level(&self) -> String {
        self.level.lock().clone()
    }

    /// Whether spans are being exported over OTLP.
    pub fn tracing_enabled(&self) -> bool {
        self.otel.lock().is_some()
    }

    /// Exports buffered spans now (blocks up to the export timeout).
    pub fn flush(&self) -> Result<(), TelemetryError> {
        match self.otel.lock().as_ref() {
            Some(p) => p.force_flush(),
            None => Ok(()),
        }
    }

    /// Exports what is buffered and stops the exporter. Call it while the process's runtime still
    /// runs, before returning from `main`; dropping the guard does the same.
    pub fn shutdown(self) -> Result<(), TelemetryError> {
        self.stop_otel()
    }

    fn stop_otel(&self) -> Result<(), TelemetryError> {
        match self.otel.lock().take() {
            Some(mut p) => p.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.stop_otel() {
            eprintln!("pyxis: {e}");
        }
    }
}

/// Installs the global subscriber: logs to stderr (colour only on a terminal), traces over OTLP
/// when the `OTEL_*` variables configure an endpoint. Also routes `log` records into tracing.
pub fn init(cfg: LogConfig) -> Result<TelemetryGuard, TelemetryError> {
    let otel = OtelConfig::from_env()?;
    let ansi = std::io::stderr().is_terminal();
    let (subscriber, guard) = build(&cfg, otel.as_ref(), BoxMakeWriter::new(std::io::stderr), ansi)?;
    subscriber
        .try_init()
        .map_err(|e| TelemetryError::Config(format!("a global tracing subscriber is already set: {e}")))?;
    Ok(guard)
}

/// The subscriber [`init`] installs, not installed: for tests (`tracing::subscriber::set_default`)
/// or for a caller that installs it itself.
pub fn build(
    cfg: &LogConfig,
    otel: Option<&OtelConfig>,
    writer: BoxMakeWriter,
    ansi: bool,
) -> Result<
    (
        impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + use<>,
        TelemetryGuard,
    ),
    TelemetryError,
> {
    let (filter, handle) = reload::Layer::new(filter_for(&cfg.level)?);
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = match cfg.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(AppendJsonFields)
            .event_format(JsonWithIds::new())
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .fmt_fields(HumanFields)
            .with_ansi(ansi)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    };
    let pipeline = otel.map(OtelPipeline::start).transpose()?;
    // Traces take Pyxis's spans at info whatever the log level, and warnings and errors as span
    // events; changing the log level never changes what is traced.
    let otel_layer = pipeline.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_filter(
                filter_fn(|m| {
                    if m.is_span() {
                        m.target().starts_with("pyxis") && *m.level() <= Level::INFO
                    } else {
                        *m.level() <= Level::WARN
                    }
                })
                .with_max_level_hint(LevelFilter::INFO),
            )
    });
    // Filtered, so that an unfiltered layer does not switch every debug callsite in every crate on.
    let ids_layer = RequestIdsLayer.with_filter(Targets::new().with_target(SPAN_TARGET, Level::INFO));
    let subscriber = Registry::default().with(fmt_layer).with(ids_layer).with(otel_layer);
    let guard = TelemetryGuard {
        filter: handle,
        level: Mutex::new(cfg.level.trim().to_string()),
        otel: Mutex::new(pipeline),
    };
    Ok((subscriber, guard))
}
