//! Incremental Server-Sent Events framer: bytes in as the network delivers them, whole events out.
//!
//! Upstream chunks split events anywhere (mid-line, mid-UTF-8); the framer buffers only the
//! unfinished tail, so memory per stream stays at one event.

/// One SSE event. `data` joins multi-line data with `\n`, as the spec says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }
}

#[derive(Debug, Default)]
pub struct SseFramer {
    buf: Vec<u8>,
    pending: Option<SseEvent>,
}

impl SseFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; appends every event completed by them to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(rel) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + rel;
            let mut line = &self.buf[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            Self::line(&mut self.pending, line, out);
            start = end + 1;
        }
        self.buf.drain(..start);
    }

    /// True when the stream stopped in the middle of an event (bytes or fields not yet dispatched).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.pending.is_some()
    }

    fn line(pending: &mut Option<SseEvent>, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if let Some(ev) = pending.take() {
                out.push(ev);
            }
            return;
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                let ev = pending.get_or_insert_with(SseEvent::default);
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(&value);
            }
            b"event" => pending.get_or_insert_with(SseEvent::default).event = Some(value.into_owned()),
            _ => {} // id, retry: not used by inference runtimes
        }
    }
}

/// Writes one `data:` event in the wire format (`data: <json>\n\n`).
pub fn encode_data(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, bool) {
        let mut f = SseFramer::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        (out, f.has_partial())
    }

    #[test]
    fn whole_and_split_events_agree() {
        let wire = b"data: {\"a\":1}\n\ndata: {\"b\":\"\xc3\xa9\"}\r\n\r\n: keep-alive\n\nevent: error\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let (whole, partial) = frame_all(&[wire]);
        assert!(!partial);
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[1].data, "{\"b\":\"é\"}");
        assert_eq!(
            whole[2],
            SseEvent {
                event: Some("error".into()),
                data: "x\ny".into()
            }
        );
        assert!(whole[3].is_done());
        // Every split point, including inside the UTF-8 character, gives the same events.
        for cut in 0..wire.len() {
            let (split, _) = frame_all(&[&wire[..cut], &wire[cut..]]);
            assert_eq!(split, whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(frame_all(&bytewise).0, whole);
    }

    #[test]
    fn truncated_stream_is_partial() {
        let (ev, partial) = frame_all(&[b"data: {\"a\":1}\n\ndata: {\"b\""]);
        assert_eq!(ev.len(), 1);
        assert!(partial);
        let (_, partial) = frame_all(&[b"data: {\"a\":1}\n"]);
        assert!(partial, "a data line without its blank line is not a finished event");
    }
}
