//! One call's bookkeeping: the in-flight slot on its endpoint and its audit record, finished
//! exactly once — by the handler, by the stream relay, or by `Drop` when the client went away.

use std::time::Instant;

use pyxis_protocol::Usage;
use pyxis_store::{AuditRecord, Principal};

use crate::audit::AuditSink;
use crate::fleet::InFlight;

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
    pub first_token: Option<Instant>,
}

impl Call {
    pub fn new(sink: AuditSink, request_id: &str, principal: &Principal, stream: bool) -> Self {
        Call {
            sink,
            started: Instant::now(),
            record: AuditRecord {
                seq: 0,
                request_id: request_id.to_string(),
                started_at_ms: now_ms(),
                finished_at_ms: 0,
                tenant: principal.tenant.clone(),
                key_id: Some(principal.key_id.clone()),
                model: String::new(),
                endpoint: None,
                runtime: None,
                runtime_kind: None,
                hardware: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                status: 0,
                error_type: None,
                latency_ms: 0.0,
                ttft_ms: None,
                stream,
            },
            slot: None,
            finished: false,
            first_token: None,
        }
    }

    pub fn set_stream(&mut self, stream: bool) {
        self.record.stream = stream;
    }

    pub fn set_model(&mut self, model: &str) {
        self.record.model = model.to_string();
    }

    /// Binds the call to the endpoint it is sent to (replacing an earlier attempt's).
    pub fn bind(&mut self, slot: InFlight) {
        let ep = slot.endpoint();
        self.record.endpoint = Some(ep.url.clone());
        self.record.runtime = Some(ep.runtime.clone());
        self.record.runtime_kind = Some(ep.kind.to_string());
        self.record.hardware = Some(ep.hardware.clone());
        self.slot = Some(slot);
    }

    pub fn unbind(&mut self) {
        self.slot = None;
    }

    pub fn mark_first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(Instant::now());
        }
    }

    pub fn set_usage(&mut self, u: &Usage) {
        self.record.prompt_tokens = u.prompt_tokens as i64;
        self.record.completion_tokens = u.completion_tokens as i64;
    }

    pub fn usage_known(&self) -> bool {
        self.record.prompt_tokens > 0 || self.record.completion_tokens > 0
    }

    pub fn set_completion_estimate(&mut self, tokens: u64) {
        self.record.completion_tokens = tokens as i64;
    }

    /// Writes the audit record (once) and frees the endpoint slot.
    pub fn finish(&mut self, status: u16, error_type: Option<&str>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.record.finished_at_ms = now_ms();
        self.record.status = i64::from(status);
        self.record.error_type = error_type.map(str::to_string);
        self.record.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        self.record.ttft_ms = self.first_token.map(|t| (t - self.started).as_secs_f64() * 1e3);
        self.slot = None;
        let record = std::mem::replace(&mut self.record, empty_record());
        self.sink.record(record);
    }
}

fn empty_record() -> AuditRecord {
    AuditRecord {
        seq: 0,
        request_id: String::new(),
        started_at_ms: 0,
        finished_at_ms: 0,
        tenant: String::new(),
        key_id: None,
        model: String::new(),
        endpoint: None,
        runtime: None,
        runtime_kind: None,
        hardware: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        status: 0,
        error_type: None,
        latency_ms: 0.0,
        ttft_ms: None,
        stream: false,
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Only reached unfinished when the client hung up mid-request (nginx's 499).
        self.finish(499, Some("client_disconnected"));
    }
}
