//! One call's bookkeeping: the in-flight slot on its endpoint and its audit record, finished
//! exactly once — by the handler, by the stream relay, or by `Drop` when the client went away.

use std::sync::Arc;
use std::time::Instant;

use pyxis_telemetry::{Metrics, RequestRecord, StreamRecorder};

use pyxis_protocol::Usage;
use pyxis_store::{AuditRecord, Principal};

use crate::admission::Permit;
use crate::audit::AuditSink;
use crate::fleet::{InFlight, ModelEntry};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct Call {
    sink: AuditSink,
    started: Instant,
    record: AuditRecord,
    slot: Option<InFlight>,
    finished: bool,
    first_token: Option<Instant>,
    /// Completion text being collected, for tenants that opted in to content logging.
    content: Option<String>,
    /// The call's share of its pool's token budget (fair queue), released when it finishes.
    permit: Option<Permit>,
    /// The tenant's quota reservation, settled with the actual usage when it finishes.
    quota: Option<(pyxis_quota::Quotas, pyxis_quota::Reservation)>,
    metrics: Arc<Metrics>,
    /// The model resolved to a declared one (else its label is `unresolved`, so clients cannot mint label values).
    resolved: bool,
    /// Inter-token latencies of a stream, flushed to the histogram once at the end.
    stream_rec: Option<StreamRecorder>,
    /// The request's trace span, when traces are exported.
    pub span: Option<tracing::Span>,
    /// Where to report the time to first token: the model's router, the endpoint, prompt tokens and
    /// the endpoint's load when the request was sent.
    route_fb: Option<(crate::routing::SharedRouter, String, u32, u32)>,
}

impl Call {
    pub fn new(sink: AuditSink, metrics: Arc<Metrics>, request_id: &str, principal: &Principal) -> Self {
        Call {
            sink,
            started: Instant::now(),
            record: AuditRecord {
                request_id: request_id.to_string(),
                started_at_ms: now_ms(),
                tenant: principal.tenant.clone(),
                key_id: Some(principal.key_id.clone()),
                ..AuditRecord::default()
            },
            slot: None,
            finished: false,
            first_token: None,
            content: None,
            permit: None,
            quota: None,
            metrics,
            resolved: false,
            stream_rec: None,
            span: None,
            route_fb: None,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.record.tenant
    }

    /// Holds the quota reservation until the call ends.
    pub fn hold_quota(&mut self, quotas: pyxis_quota::Quotas, r: pyxis_quota::Reservation) {
        self.quota = Some((quotas, r));
    }

    /// Holds the fair-queue permit until the call ends; the wait is the audit record's `queue_ms`.
    pub fn hold_permit(&mut self, permit: Permit) {
        self.record.queue_ms = permit.waited.as_secs_f64() * 1e3;
        self.permit = Some(permit);
    }

    /// Output tokens as they stream, charged to the tenant's fair-share counter.
    pub fn output_tokens(&mut self, n: u32) {
        if let Some(p) = &mut self.permit {
            p.output_tokens(n);
        }
        if let Some(r) = &mut self.stream_rec {
            r.on_chunk(Instant::now());
        }
    }

    pub fn set_stream(&mut self, stream: bool) {
        self.record.stream = stream;
    }

    pub fn set_requested_model(&mut self, model: &str) {
        self.record.requested_model = model.to_string();
        self.record.model = model.to_string();
    }

    pub fn resolve(&mut self, model: &ModelEntry) {
        self.record.model = model.name.clone();
        self.record.model_version = Some(model.version.clone());
        self.resolved = true;
        if self.record.stream {
            self.stream_rec = Some(self.metrics.stream_recorder(&self.record.tenant, &model.name));
        }
        if let Some(span) = &self.span {
            pyxis_telemetry::spans::record_request(span, &self.record.tenant, &model.name, self.record.stream);
        }
    }

    /// Keeps the prompt (and, as it arrives, the completion) in the record.
    pub fn keep_content(&mut self, prompt: String) {
        self.record.prompt_text = Some(prompt);
        self.content = Some(String::new());
    }

    pub fn keeps_content(&self) -> bool {
        self.content.is_some()
    }

    pub fn push_content(&mut self, text: &str) {
        if let Some(c) = &mut self.content {
            c.push_str(text);
        }
    }

    /// Binds the call to the endpoint of a new attempt.
    pub fn bind(&mut self, slot: InFlight) {
        let ep = slot.endpoint();
        self.record.attempts += 1;
        self.record.endpoint = Some(ep.url.clone());
        self.record.runtime = Some(ep.runtime.clone());
        self.record.runtime_kind = Some(ep.kind.to_string());
        self.record.runtime_version = ep.version();
        self.record.hardware = Some(ep.hardware.clone());
        self.record.accelerator_count = Some(i64::from(ep.accelerator_count));
        self.record.cloud = ep.cloud.clone();
        self.record.region = ep.region.clone();
        self.slot = Some(slot);
    }

    pub fn unbind(&mut self) {
        self.slot = None;
    }

    /// Reports the first token's time to `router`, which learns each endpoint's TTFT from it.
    pub fn route_feedback(&mut self, router: crate::routing::SharedRouter, endpoint: &str, prompt: u32, load: u32) {
        self.route_fb = Some((router, endpoint.to_string(), prompt, load));
    }

    pub fn mark_first_token(&mut self) {
        if self.first_token.is_none() {
            let now = Instant::now();
            self.first_token = Some(now);
            if let Some((router, ep, prompt, load)) = self.route_fb.take() {
                let ttft_ms = (now - self.started).as_secs_f64() * 1e3;
                crate::routing::lock(&router).on_first_token(now_ms().max(0) as u64, &ep, prompt, load, ttft_ms);
            }
        }
    }

    pub fn set_usage(&mut self, u: &Usage) {
        self.record.prompt_tokens = u.prompt_tokens as i64;
        self.record.completion_tokens = u.completion_tokens as i64;
        self.record.cached_tokens = u.cached_tokens() as i64;
    }

    pub fn usage_known(&self) -> bool {
        self.record.prompt_tokens > 0 || self.record.completion_tokens > 0
    }

    pub fn set_completion_estimate(&mut self, tokens: u64) {
        self.record.completion_tokens = tokens as i64;
    }

    /// Writes the audit record (once), charges the endpoint and frees its slot.
    pub fn finish(&mut self, status: u16, error_type: Option<&str>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let r = &mut self.record;
        r.finished_at_ms = now_ms();
        r.status = i64::from(status);
        r.error_type = error_type.map(str::to_string);
        let latency = self.started.elapsed();
        r.latency_ms = latency.as_secs_f64() * 1e3;
        r.ttft_ms = self.first_token.map(|t| (t - self.started).as_secs_f64() * 1e3);
        if let Some(mut slot) = self.slot.take() {
            let tokens = (r.prompt_tokens + r.completion_tokens).max(0) as u64;
            r.cost_usd = slot.charge(tokens, latency.as_secs_f64());
        }
        if let Some(mut permit) = self.permit.take() {
            // A whole (non-streamed) answer's output is charged here, at once.
            let streamed = permit.charged_output();
            let total = u32::try_from(r.completion_tokens.max(0)).unwrap_or(u32::MAX);
            permit.output_tokens(total.saturating_sub(streamed));
        }
        if let Some((quotas, reservation)) = self.quota.take() {
            let tokens = (r.prompt_tokens + r.completion_tokens).max(0) as u64;
            let cost = r.cost_usd;
            let now = now_ms().max(0) as u64;
            quotas.settle_in_background(reservation, tokens, cost, now);
        }
        if let Some(c) = self.content.take() {
            r.completion_text = Some(c);
        }
        self.metrics.request_done(&RequestRecord {
            tenant: &r.tenant,
            model: if self.resolved {
                &r.model
            } else {
                pyxis_telemetry::UNRESOLVED
            },
            endpoint: r.endpoint.as_deref(),
            status,
            ttft_s: r.ttft_ms.map(|t| t / 1e3),
            e2e_s: latency.as_secs_f64(),
            prompt_tokens: r.prompt_tokens.max(0) as u64,
            completion_tokens: r.completion_tokens.max(0) as u64,
            cost_usd: r.cost_usd,
        });
        if let Some(rec) = self.stream_rec.take() {
            rec.finish();
        }
        if let Some(span) = self.span.take() {
            pyxis_telemetry::spans::record_usage(
                &span,
                r.prompt_tokens.max(0) as u64,
                r.completion_tokens.max(0) as u64,
            );
            pyxis_telemetry::spans::record_outcome(&span, status, error_type);
        }
        self.sink.record(std::mem::take(&mut self.record));
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Only reached unfinished when the client hung up mid-request (nginx's 499).
        self.finish(499, Some("client_disconnected"));
    }
}
