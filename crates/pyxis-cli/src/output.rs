//! Human tables and `--output json` for CLI results.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use pyxis_store::{AuditRecord, TenantInfo, UsageKey, UsageRow, VerifyReport};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Output {
    Table,
    /// JSON; one object per line (JSONL) for record lists.
    Json,
    /// CSV with a header row, for spreadsheets.
    Csv,
}

/// Writes rows of serializable structs as CSV on stdout.
fn print_csv<T: serde::Serialize>(rows: &[T]) {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    for r in rows {
        if let Err(e) = w.serialize(r) {
            eprintln!("error: cannot write CSV: {e}");
            return;
        }
    }
    let _ = w.flush();
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    t
}

fn time(ms: i64) -> String {
    let d = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(d).to_string()
}

pub fn print_tenants(rows: &[TenantInfo], output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default()),
        Output::Csv => {
            let flat: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        time(r.created_at_ms),
                        r.active_keys,
                        r.key_prefixes.join(" "),
                    )
                })
                .collect();
            println!("name,created,active_keys,key_prefixes");
            print_csv(&flat);
        }
        Output::Table => {
            let mut t = table(&["TENANT", "CREATED", "ACTIVE KEYS", "KEY PREFIXES"]);
            for r in rows {
                t.add_row(vec![
                    r.name.clone(),
                    time(r.created_at_ms),
                    r.active_keys.to_string(),
                    r.key_prefixes.join(" "),
                ]);
            }
            println!("{t}");
        }
    }
}

pub fn print_audit(rows: &[AuditRecord], output: Output) {
    match output {
        // One JSON object per line: easy to pipe into jq or a file.
        Output::Json => {
            for r in rows {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        Output::Csv => print_csv(rows),
        Output::Table => {
            if rows.is_empty() {
                println!("No audit records yet. Send a request to the gateway, then look again.");
                return;
            }
            let mut t = table(&[
                "SEQ",
                "TIME",
                "REQUEST",
                "TENANT",
                "MODEL",
                "ENDPOINT",
                "RUNTIME",
                "HW",
                "PROMPT",
                "COMPL",
                "STATUS",
                "LATENCY ms",
                "TTFT ms",
            ]);
            for r in rows {
                let status = match &r.error_type {
                    Some(e) => format!("{} {e}", r.status),
                    None => r.status.to_string(),
                };
                t.add_row(vec![
                    r.seq.to_string(),
                    time(r.started_at_ms),
                    r.request_id.clone(),
                    r.tenant.clone(),
                    r.model.clone(),
                    r.endpoint.clone().unwrap_or_default(),
                    format!(
                        "{}/{}",
                        r.runtime.as_deref().unwrap_or("-"),
                        r.runtime_kind.as_deref().unwrap_or("-")
                    ),
                    r.hardware.clone().unwrap_or_default(),
                    r.prompt_tokens.to_string(),
                    r.completion_tokens.to_string(),
                    status,
                    format!("{:.1}", r.latency_ms),
                    r.ttft_ms.map(|t| format!("{t:.1}")).unwrap_or_default(),
                    format!("{:.6}", r.cost_usd),
                ]);
            }
            println!("{t}");
        }
    }
}

pub fn print_verify(r: &VerifyReport, output: Output) {
    match output {
        Output::Json | Output::Csv => println!("{}", serde_json::to_string_pretty(r).unwrap_or_default()),
        Output::Table => {
            match &r.first_broken {
                None => println!("audit chain OK: {} records, every hash verified", r.records),
                Some(b) => println!(
                    "audit chain BROKEN at record {} (request {}): {}. Records from {} on cannot be trusted.",
                    b.seq, b.request_id, b.reason, b.seq
                ),
            }
            for g in &r.possible_gaps {
                let last = g
                    .last_flush_ms
                    .map(time)
                    .unwrap_or_else(|| "before its first flush".into());
                println!(
                    "possible gap: run {} (started {}) stopped without draining its writer (crashed, or still running); calls that finished up to {} ms after {} (last record {}) may be missing",
                    g.session,
                    time(g.started_at_ms),
                    g.flush_delay_ms,
                    last,
                    g.last_seq.map(|s| s.to_string()).unwrap_or_else(|| "none".into())
                );
            }
        }
    }
}

pub fn print_usage(rows: &[UsageRow], by: &[UsageKey], output: Output) {
    let key = |k: &UsageKey| format!("{k:?}").to_lowercase();
    let cells = |r: &UsageRow| -> Vec<String> {
        let mut v: Vec<String> = by
            .iter()
            .map(|k| r.group.get(&key(k)).cloned().unwrap_or_default())
            .collect();
        v.extend([
            r.requests.to_string(),
            r.errors.to_string(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            format!("{:.6}", r.cost_usd),
            format!("{:.1}", r.latency_p50_ms),
            format!("{:.1}", r.latency_p95_ms),
            r.ttft_p50_ms.map(|t| format!("{t:.1}")).unwrap_or_default(),
            r.ttft_p95_ms.map(|t| format!("{t:.1}")).unwrap_or_default(),
        ]);
        v
    };
    let mut header: Vec<String> = by.iter().map(key).collect();
    header.extend(
        [
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "latency_p50_ms",
            "latency_p95_ms",
            "ttft_p50_ms",
            "ttft_p95_ms",
        ]
        .map(String::from),
    );
    match output {
        Output::Json => {
            for r in rows {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        Output::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            let _ = w.write_record(&header);
            for r in rows {
                let _ = w.write_record(cells(r));
            }
            let _ = w.flush();
        }
        Output::Table => {
            if rows.is_empty() {
                println!("No calls in that period.");
                return;
            }
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED)
                .set_header(header.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>());
            for r in rows {
                t.add_row(cells(r));
            }
            println!("{t}");
        }
    }
}
