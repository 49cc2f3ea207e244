//! Log line shapes: JSON lines carry the request's `request_id` and `trace_id` at top level; human
//! lines leave out the `otel.*` span fields that only steer the exporter, and other noise.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::spans::SPAN_TARGET;

/// The ids a request span carries, kept in the span's extensions for the JSON formatter.
#[derive(Debug, Default, Clone)]
struct RequestIds {
    request_id: Option<String>,
    trace_id: Option<String>,
}

impl Visit for RequestIds {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "pyxis.request_id" => self.request_id = Some(value.to_string()),
            "trace_id" => self.trace_id = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `display(..)` values arrive here; Debug of a Display wrapper prints the plain value.
        match field.name() {
            "pyxis.request_id" => self.request_id = Some(format!("{value:?}")),
            "trace_id" => self.trace_id = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// Captures request ids from this crate's spans (and only those, so other spans cost nothing).
pub(crate) struct RequestIdsLayer;

impl<S> Layer<S> for RequestIdsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != SPAN_TARGET {
            return;
        }
        let mut ids = RequestIds::default();
        attrs.record(&mut ids);
        if (ids.request_id.is_some() || ids.trace_id.is_some())
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(ids);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.metadata().target() != SPAN_TARGET {
            return;
        }
        let mut ext = span.extensions_mut();
        match ext.get_mut::<RequestIds>() {
            Some(ids) => values.record(ids),
            None => {
                let mut ids = RequestIds::default();
                values.record(&mut ids);
                if ids.request_id.is_some() || ids.trace_id.is_some() {
                    ext.insert(ids);
                }
            }
        }
    }
}

/// tracing-subscriber's JSON line with `request_id` and `trace_id` added at top level when the
/// event is inside a request span.
pub(crate) struct JsonWithIds {
    inner: Format<Json>,
}

impl JsonWithIds {
    pub(crate) fn new() -> Self {
        JsonWithIds {
            inner: tracing_subscriber::fmt::format()
                .json()
                .with_current_span(true)
                .with_span_list(false),
        }
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Span fields as a JSON object that later records are appended to, instead of tracing's
/// `JsonFields`, which parses and re-serializes the whole object on every `Span::record` (tens of
/// microseconds per request). A field recorded twice appears twice; readers keep the last.
pub(crate) struct AppendJsonFields;

struct JsonVisitor<'a> {
    out: &'a mut String,
}

impl JsonVisitor<'_> {
    fn key(&mut self, field: &Field) {
        if !self.out.is_empty() {
            self.out.push(',');
        }
        push_json_str(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.out, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            push_json_str(self.out, &value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        push_json_str(self.out, &format!("{value:?}"));
    }
}

impl<'w> FormatFields<'w> for AppendJsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut body = String::new();
        fields.record(&mut JsonVisitor { out: &mut body });
        write!(writer, "{{{body}}}")
    }

    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &Record<'_>) -> fmt::Result {
        let mut more = String::new();
        fields.record(&mut JsonVisitor { out: &mut more });
        if more.is_empty() {
            return Ok(());
        }
        let f = &mut current.fields;
        if f.ends_with('}') {
            f.pop();
            if f.len() > 1 {
                f.push(',');
            }
        } else {
            f.clear();
            f.push('{');
        }
        f.push_str(&more);
        f.push('}');
        Ok(())
    }
}

impl<S, N> FormatEvent<S, N> for JsonWithIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut ids = RequestIds::default();
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if let Some(found) = span.extensions().get::<RequestIds>() {
                    ids.request_id = ids.request_id.or_else(|| found.request_id.clone());
                    ids.trace_id = ids.trace_id.or_else(|| found.trace_id.clone());
                }
            }
        }
        if ids.request_id.is_none() && ids.trace_id.is_none() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let Some(body) = line.trim_end().strip_suffix('}') else {
            return writer.write_str(&line);
        };
        writer.write_str(body)?;
        if let Some(r) = &ids.request_id {
            write!(writer, ",\"request_id\":{}", json_str(r))?;
        }
        if let Some(t) = &ids.trace_id {
            write!(writer, ",\"trace_id\":{}", json_str(t))?;
        }
        writer.write_str("}\n")
    }
}

/// Human field formatting: `name=value` like tracing's default, minus `otel.*` fields and span
/// attributes that say the same for every request of a route.
pub(crate) struct HumanFields;

const HUMAN_HIDDEN: &[&str] = &[
    "http.request.method",
    "http.route",
    "gen_ai.operation.name",
    "gen_ai.system",
];

struct HumanVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for HumanVisitor<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("otel.") || HUMAN_HIDDEN.contains(&name) {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{sep}{value:?}")
        } else {
            write!(self.writer, "{sep}{name}={value:?}")
        };
    }
}

impl<'w> FormatFields<'w> for HumanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut v = HumanVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }

    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &Record<'_>) -> fmt::Result {
        let mut more = String::new();
        self.format_fields(Writer::new(&mut more), fields)?;
        if more.is_empty() {
            return Ok(());
        }
        if !current.fields.is_empty() {
            current.fields.push(' ');
        }
        current.fields.push_str(&more);
        Ok(())
    }
}
