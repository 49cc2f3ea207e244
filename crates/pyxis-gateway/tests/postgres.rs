//! Two gateway replicas sharing one PostgreSQL store: one hash chain, no lost records.
//! Needs `DATABASE_URL` (set by .ci/run); without it the test says so and does not run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pyxis_gateway::{Gateway, ServeConfig};
use pyxis_store::{AuditQuery, Store};
use serde_json::json;

const FLEET: &str = r#"apiVersion: pyxis.dev/v1alpha1
kind: Tenant
metadata: {name: default}
spec: {}
---
apiVersion: pyxis.dev/v1alpha1
kind: Runtime
metadata: {name: pool}
spec:
  kind: vllm
  simulated: {replicas: 1, speedup: 8}
  accelerator: {type: h100, count: 1, memoryGiB: 80}
  pricePerAcceleratorHour: 4
---
apiVersion: pyxis.dev/v1alpha1
kind: Model
metadata: {name: m}
spec: {version: "1", parameters: 8B, contextLength: 8192, runtimes: [pool]}
"#;

#[tokio::test]
async fn two_replicas_share_one_chain() {
    let Ok(base) = std::env::var("DATABASE_URL") else {
        eprintln!("NOT RUN: two_replicas_share_one_chain needs DATABASE_URL=postgres://… (set by .ci/run)");
        return;
    };
    // A fresh schema, so the test owns its tables.
    let schema = format!("gw_{}", uuid::Uuid::new_v4().simple());
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, FLEET).unwrap();
    let mut replicas = Vec::new();
    for i in 0..2 {
        let mut cfg = ServeConfig::new(([127, 0, 0, 1], 0).into(), dir.path().join(format!("unused-{i}")));
        cfg.fleet_file = Some(file.clone());
        cfg.demo_api_key = Some("pyx-pg".into());
        cfg.database_url = Some(url.clone());
        replicas.push(Gateway::start(cfg).await.unwrap());
    }
    let c = reqwest::Client::new();
    let mut calls = Vec::new();
    for i in 0..40 {
        let u = replicas[i % 2].url();
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            let body =
                json!({"model": "m", "messages": [{"role": "user", "content": format!("call {i}")}], "max_tokens": 3});
            c.post(format!("{u}/v1/chat/completions"))
                .bearer_auth("pyx-pg")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    for g in replicas {
        g.shutdown().await.unwrap();
    }
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), pyxis_store::Backend::Postgres);
    let rows = store
        .query_audit(&AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 40, "every call of both replicas is in the one log");
    assert!(rows.iter().all(|r| r.cost_usd > 0.0));
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.records, 40);
    assert_eq!(
        report.first_broken, None,
        "the replicas chained onto each other without a fork"
    );
    assert!(report.possible_gaps.is_empty(), "both replicas stopped cleanly");
    store.close().await;
}
