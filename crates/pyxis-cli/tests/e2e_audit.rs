//! End-to-end audit durability and tamper evidence with the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Kill -9 under load: every call that finished comfortably before the kill (more than the
/// flush bound plus a margin) is in the log after restart, the chain verifies, and the killed
/// run is reported as a possible gap.
#[tokio::test]
async fn kill_9_under_load_loses_nothing_flushed() {
    let mut srv = Server::start(&["--audit-flush-ms", "100"]);
    let done: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (done, stop, url) = (done.clone(), stop.clone(), srv.url.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let rid = format!("crash-{w}-{i}");
                i += 1;
                let r = c
                    .post(format!("{url}/v1/chat/completions"))
                    .header("Authorization", format!("Bearer {KEY}"))
                    .header("x-request-id", &rid)
                    .json(&chat_body("llama-3-8b", w % 2 == 0, 2))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 200 || r.bytes().await.is_err() {
                    break;
                }
                done.lock().unwrap().push((rid, Instant::now()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    srv.child.kill().unwrap(); // SIGKILL: no drain, no clean stop
    let killed_at = Instant::now();
    srv.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let done = done.lock().unwrap().clone();
    assert!(done.len() > 50, "only {} calls finished under load", done.len());
    let must_have: Vec<&String> = done
        .iter()
        .filter(|(_, t)| killed_at.duration_since(*t) > Duration::from_millis(600))
        .map(|(r, _)| r)
        .collect();
    assert!(!must_have.is_empty());

    let out = srv.cli(&["audit", "tail", "-n", "100000", "--output", "json"]);
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let logged: std::collections::HashSet<&str> = rows.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    let missing: Vec<&&String> = must_have.iter().filter(|r| !logged.contains(r.as_str())).collect();
    assert!(
        missing.is_empty(),
        "{} of {} flushed calls missing, e.g. {:?}",
        missing.len(),
        must_have.len(),
        &missing[..missing.len().min(3)]
    );

    // Restart on the same data dir: the log still verifies, and the killed run is named.
    let mut srv2 = Server::start_in(
        std::mem::replace(&mut srv.data_dir, tempfile::tempdir().unwrap()),
        &[],
        Some(KEY),
    );
    let dir = srv2.data_path().to_path_buf();
    assert!(srv2.stop().success());
    let out = cli_in(&dir, &["audit", "verify", "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["first_broken"].is_null());
    assert_eq!(report["records"].as_u64().unwrap() as usize, rows.len());
    let gaps = report["possible_gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{report}");
    assert!(gaps[0]["last_seq"].as_i64().unwrap() >= must_have.len() as i64);
}

#[test]
fn verify_names_the_first_tampered_record() {
    let mut srv = Server::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..5 {
            let r = client()
                .post(format!("{}/v1/chat/completions", srv.url))
                .header("Authorization", format!("Bearer {KEY}"))
                .header("x-request-id", format!("t-{i}"))
                .json(&chat_body("llama-3-8b", false, 2))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    });
    let dir = srv.data_path().to_path_buf();
    assert!(srv.stop().success());
    let ok = cli_in(&dir, &["audit", "verify"]);
    assert!(ok.status.success());
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("audit chain OK: 5 records"), "{text}");

    // Edit record 3 behind Pyxis's back, as someone with file access could.
    let db = dir.join("pyxis.db");
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET completion_tokens = 0 WHERE seq = 3")
            .execute(&mut c)
            .await
            .unwrap();
    });
    let bad = cli_in(&dir, &["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("audit chain BROKEN at record 3 (request t-2)"), "{text}");
}
