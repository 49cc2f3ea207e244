//! Error replies per kind (fixtures/<kind>/errors.jsonl): each sorted into overloaded / client /
//! server with OpenAI's status, `code` and `param`.

use pyxis_adapters::{UpstreamFailure, adapter};
use pyxis_resources::RuntimeKind;
use serde_json::Value;

use crate::common::read;

fn check(kind: RuntimeKind, case: &Value) {
    let status = case["status"].as_u64().expect("status") as u16;
    let body = match &case["body"] {
        Value::String(s) => s.clone().into_bytes(),
        v => v.to_string().into_bytes(),
    };
    let want = &case["expect"];
    let got = adapter(kind).classify_error(status, &body);
    let class = match &got {
        UpstreamFailure::Overloaded { .. } => "overloaded",
        UpstreamFailure::Client(_) => "client",
        UpstreamFailure::Server { .. } => "server",
    };
    let e = got.error();
    let ctx = format!("{kind} {status} {}", case["body"]);
    assert_eq!(class, want["class"], "{ctx}");
    assert_eq!(u64::from(e.status()), want["status"].as_u64().expect("status"), "{ctx}");
    assert!(!e.message.is_empty(), "{ctx}");
    if let Some(code) = want.get("code") {
        assert_eq!(e.code.as_deref(), code.as_str(), "{ctx}");
    }
    if let Some(param) = want.get("param") {
        assert_eq!(e.param.as_deref(), param.as_str(), "{ctx}");
    }
    match &got {
        UpstreamFailure::Overloaded {
            retry_after_ms,
            endpoint_down,
            ..
        } => {
            assert_eq!(Some(*endpoint_down), want["endpoint_down"].as_bool(), "{ctx}");
            assert_eq!(*retry_after_ms, want["retry_after_ms"].as_u64(), "{ctx}");
            assert!(got.retry_elsewhere());
        }
        UpstreamFailure::Server { retry_elsewhere, .. } => {
            assert_eq!(Some(*retry_elsewhere), want["retry_elsewhere"].as_bool(), "{ctx}")
        }
        UpstreamFailure::Client(_) => assert!(!got.retry_elsewhere()),
    }
}

#[test]
fn every_kind_classifies_its_errors() {
    let mut n = 0;
    for kind in RuntimeKind::ALL {
        let text = String::from_utf8(read(kind.as_str(), "errors.jsonl")).expect("utf8");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).expect("case");
            check(kind, &case);
            n += 1;
        }
    }
    assert!(n >= 35, "{n} cases");
}

#[test]
fn error_json_is_openai_shaped() {
    let got = adapter(RuntimeKind::Vllm).classify_error(
        400,
        br#"{"error":{"message":"This model's maximum context length is 512 tokens.","type":"BadRequestError","param":null,"code":400}}"#,
    );
    let v: Value = serde_json::from_str(&got.error().to_json()).expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(
        v["error"]["code"], "context_length_exceeded",
        "vLLM's integer code becomes OpenAI's string code"
    );
}
