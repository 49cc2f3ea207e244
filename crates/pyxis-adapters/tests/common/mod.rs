//! Helpers shared by the contract and HTTP tests: fixture files, golden outputs (rewritten with
//! `PYXIS_BLESS=1`, then reviewed), stream replays split at every byte, OpenAI shape checks, and a
//! replay server that answers from a kind's `routes.txt`.

#![allow(dead_code)]

use std::path::PathBuf;

use pyxis_adapters::{Adapter, Ctx, Dialect, StreamEvent, StreamTranslator};
use pyxis_protocol::{InferenceRequest, OpenAiError, RequestKind};
use serde_json::Value;

pub const PUBLIC: &str = "public-model";
pub const CREATED: u64 = 1_700_000_000;

pub fn ctx() -> Ctx<'static> {
    Ctx {
        public_model: PUBLIC,
        id: "req-1",
        created: CREATED,
    }
}

pub fn dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(kind)
}

pub fn read(kind: &str, name: &str) -> Vec<u8> {
    let p = dir(kind).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub fn read_json(kind: &str, name: &str) -> Value {
    serde_json::from_slice(&read(kind, name)).unwrap_or_else(|e| panic!("fixture {kind}/{name}: {e}"))
}

pub fn request(kind: &str, name: &str, rk: RequestKind) -> InferenceRequest {
    InferenceRequest::parse(rk, &read(kind, name)).unwrap_or_else(|e| panic!("{kind}/{name}: {e}"))
}

fn bless() -> bool {
    std::env::var_os("PYXIS_BLESS").is_some()
}

/// Two output lines agree when their text before the first `{` is equal and the JSON after it is
/// the same value (key order aside).
fn line_eq(a: &str, b: &str) -> bool {
    match (a.find('{'), b.find('{')) {
        (Some(i), Some(j)) => {
            a[..i] == b[..j]
                && serde_json::from_str::<Value>(&a[i..]).ok() == serde_json::from_str::<Value>(&b[j..]).ok()
        }
        _ => a == b,
    }
}

/// Compares `lines` with the golden file `kind/name` (or writes it under `PYXIS_BLESS`).
pub fn golden_lines(kind: &str, name: &str, lines: &[String]) {
    let p = dir(kind).join(name);
    if bless() {
        std::fs::write(&p, lines.join("\n") + "\n").expect("bless");
        return;
    }
    let want =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("golden {}: {e} (run with PYXIS_BLESS=1)", p.display()));
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(want.len(), lines.len(), "{kind}/{name}: line count\n got: {lines:#?}");
    for (i, (w, g)) in want.iter().zip(lines).enumerate() {
        assert!(line_eq(w, g), "{kind}/{name} line {}:\n want {w}\n  got {g}", i + 1);
    }
}

/// Compares a JSON value with the golden file `kind/name`.
pub fn golden_json(kind: &str, name: &str, got: &Value) {
    let p = dir(kind).join(name);
    if bless() {
        std::fs::write(&p, serde_json::to_string_pretty(got).expect("json") + "\n").expect("bless");
        return;
    }
    let want: Value =
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("golden {}: {e}", p.display())))
            .expect("golden json");
    assert_eq!(&want, got, "{kind}/{name}");
}

fn err_line(tag: &str, e: &OpenAiError) -> String {
    format!("{tag} {} {}", e.status(), e.to_json())
}

/// One line per event, then how the stream ended.
pub fn render(events: &[StreamEvent], end: &Result<Vec<StreamEvent>, OpenAiError>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |ev: &StreamEvent| {
        out.push(match ev {
            StreamEvent::Data(d) => format!("DATA {d}"),
            StreamEvent::Done => "DONE".into(),
            StreamEvent::Error(e) => err_line("ERROR", e),
        })
    };
    events.iter().for_each(&mut push);
    match end {
        Ok(tail) => {
            tail.iter().for_each(&mut push);
            out.push("FINISH ok".into());
        }
        Err(e) => out.push(err_line("FINISH-ERR", e)),
    }
    out
}

/// Feeds `pieces` in order, then finishes.
pub fn run(t: &mut dyn StreamTranslator, pieces: &[&[u8]]) -> Vec<String> {
    let mut events = Vec::new();
    for p in pieces {
        t.feed_into(p, &mut events);
    }
    let end = t.finish();
    render(&events, &end)
}

/// Translates `bytes` whole, split in two at every byte, and one byte at a time; all must agree.
/// Returns the rendered lines.
pub fn replay(a: &dyn Adapter, dialect: Dialect, bytes: &[u8]) -> Vec<String> {
    let c = ctx();
    let whole = run(a.stream_translator(dialect, &c).as_mut(), &[bytes]);
    for cut in 0..=bytes.len() {
        let split = run(
            a.stream_translator(dialect, &c).as_mut(),
            &[&bytes[..cut], &bytes[cut..]],
        );
        assert_eq!(split, whole, "split at byte {cut} changed the output");
    }
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        run(a.stream_translator(dialect, &c).as_mut(), &bytewise),
        whole,
        "byte-by-byte"
    );
    whole
}

/// Checks a translated stream is OpenAI's: every chunk has id, object, created, model and
/// `choices` (with `delta` for chat, `text` for completions); one finish reason from OpenAI's set;
/// the usage chunk (if any) last with `choices: []` and consistent totals; `[DONE]` at the end.
pub fn assert_openai_stream(lines: &[String], kind: RequestKind, want_usage: bool) {
    let object = if kind == RequestKind::Chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let data: Vec<Value> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("DATA "))
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect();
    assert!(!data.is_empty(), "no chunks");
    let mut finishes = 0;
    let mut usage_seen = false;
    for (i, c) in data.iter().enumerate() {
        assert!(c["id"].as_str().is_some_and(|s| !s.is_empty()), "chunk {i} id: {c}");
        assert_eq!(c["object"], object, "chunk {i}");
        assert_eq!(c["created"], CREATED, "chunk {i}");
        assert_eq!(c["model"], PUBLIC, "chunk {i}");
        let choices = c["choices"].as_array().expect("choices array");
        assert!(!usage_seen, "a chunk after the usage chunk: {c}");
        if choices.is_empty() {
            let u = &c["usage"];
            assert_eq!(
                u["total_tokens"].as_u64(),
                Some(u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0)),
                "usage totals: {u}"
            );
            usage_seen = true;
            continue;
        }
        assert!(
            c.get("usage").is_none(),
            "content chunks carry no usage key (relay fast path): {c}"
        );
        assert_eq!(choices.len(), 1);
        let ch = &choices[0];
        assert_eq!(ch["index"], 0);
        if kind == RequestKind::Chat {
            assert!(ch["delta"].is_object(), "chat chunk without delta: {c}");
        } else {
            assert!(ch["text"].is_string(), "completion chunk without text: {c}");
        }
        match &ch["finish_reason"] {
            Value::Null => assert!(finishes == 0, "content after the finish chunk: {c}"),
            Value::String(r) => {
                assert!(
                    ["stop", "length", "tool_calls", "content_filter"].contains(&r.as_str()),
                    "finish {r}"
                );
                finishes += 1;
            }
            other => panic!("finish_reason {other}"),
        }
    }
    assert_eq!(finishes, 1, "exactly one finish reason");
    assert_eq!(usage_seen, want_usage, "usage chunk presence");
    let tail: Vec<&String> = lines.iter().rev().take(2).collect();
    assert_eq!(tail[1], "DONE", "ends with [DONE]: {lines:#?}");
}

/// Every `data:` payload of a pass-through replay, and the input's, are the same bytes.
pub fn assert_untouched(input: &[u8], lines: &[String]) {
    let text = String::from_utf8_lossy(input);
    let sent: Vec<&str> = text
        .split("\n\n")
        .filter_map(|ev| ev.trim().strip_prefix("data:").map(str::trim))
        .filter(|d| *d != "[DONE]" && !d.contains("\"error\""))
        .collect();
    let got: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("DATA ")).collect();
    assert_eq!(sent, got, "pass-through must not touch payloads");
}

pub mod replay_server;
