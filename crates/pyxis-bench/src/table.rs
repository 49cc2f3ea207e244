//! The human summary: comfy-table tables of a report (one detailed point, or a sweep row by row).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use crate::config::trim_float;
use crate::metrics::{Metrics, Summary, percentile_label};
use crate::report::{BenchReport, PointReport};

fn table(header: Vec<String>) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header(header);
    t
}

fn right_align(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn f(v: f64) -> String {
    format!("{v:.2}")
}

fn opt(s: &Option<Summary>, p: f64) -> String {
    s.as_ref().and_then(|s| s.at(p)).map_or_else(|| "-".to_string(), f)
}

/// Every table for `report`, ready to print.
pub fn render(report: &BenchReport) -> String {
    let Some(first) = report.points.first() else {
        return "No load point was run.\n".to_string();
    };
    let mut out = format!(
        "{} at {} · {} · {}\n",
        first.model,
        first.url,
        first.endpoint.path(),
        if first.stream { "streaming" } else { "not streaming" }
    );
    if report.is_sweep() {
        out.push_str(&sweep(report));
    } else {
        out.push_str(&single(first));
    }
    out
}

fn top_percentile(m: &Metrics) -> Option<f64> {
    [&m.ttft_ms, &m.e2el_ms, &m.tpot_ms]
        .into_iter()
        .flatten()
        .find_map(|s| s.percentiles.iter().map(|(p, _)| *p).reduce(f64::max))
}

fn goodput(m: &Metrics) -> String {
    match (m.request_goodput, m.good_requests) {
        (Some(g), Some(n)) => format!("{} ({n} of {})", f(g), m.completed + m.failed),
        _ => "-".into(),
    }
}

fn single(p: &PointReport) -> String {
    let m = &p.metrics;
    let mut t = table(vec!["result".into(), "value".into()]);
    let mut load = p.load.describe();
    if let Some(c) = p.max_concurrency {
        load.push_str(&format!(" (at most {c} in flight)"));
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("load", load),
        ("successful requests", m.completed.to_string()),
        ("failed requests", m.failed.to_string()),
        ("duration (s)", f(m.duration_s)),
        ("peak requests in flight", p.peak_in_flight.to_string()),
        ("total input tokens", m.total_input_tokens.to_string()),
        ("total output tokens", m.total_output_tokens.to_string()),
        ("request throughput (req/s)", f(m.request_throughput)),
        ("output token throughput (tok/s)", f(m.output_throughput)),
        ("total token throughput (tok/s)", f(m.total_token_throughput)),
    ];
    if let Some(slo) = &p.slo {
        let mut parts = Vec::new();
        for (name, v) in [("TTFT", slo.ttft_ms), ("TPOT", slo.tpot_ms), ("E2E", slo.e2el_ms)] {
            if let Some(v) = v {
                parts.push(format!("{name} ≤ {} ms", trim_float(v)));
            }
        }
        rows.push(("SLO", parts.join(", ")));
        rows.push(("goodput (req/s)", goodput(m)));
    }
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    right_align(&mut t, 1);
    let mut out = format!("{t}\n");
    out.push_str(&latency_table(m));
    if !p.tenants.is_empty() {
        out.push_str(&tenant_table(std::slice::from_ref(p), false));
    }
    out.push_str(&error_table(std::slice::from_ref(p), false));
    out
}

fn latency_table(m: &Metrics) -> String {
    let ps: Vec<f64> = [&m.ttft_ms, &m.tpot_ms, &m.itl_ms, &m.e2el_ms]
        .into_iter()
        .flatten()
        .next()
        .map(|s| s.percentiles.iter().map(|(p, _)| *p).collect())
        .unwrap_or_default();
    let mut header = vec!["latency (ms)".to_string(), "mean".into(), "median".into()];
    header.extend(ps.iter().map(|p| percentile_label(*p)));
    header.extend(["std".to_string(), "max".into()]);
    let mut t = table(header);
    for (name, s) in [
        ("TTFT", &m.ttft_ms),
        ("TPOT", &m.tpot_ms),
        ("ITL", &m.itl_ms),
        ("E2E", &m.e2el_ms),
    ] {
        let mut row = vec![name.to_string()];
        match s {
            Some(s) => {
                row.extend([f(s.mean), f(s.median)]);
                row.extend(s.percentiles.iter().map(|(_, v)| f(*v)));
                row.extend([f(s.std), f(s.max)]);
            }
            None => row.extend(std::iter::repeat_n("-".to_string(), ps.len() + 4)),
        }
        t.add_row(row);
    }
    right_align(&mut t, 1);
    format!("{t}\n")
}

fn sweep(r: &BenchReport) -> String {
    let top = r.points.iter().find_map(|p| top_percentile(&p.metrics)).unwrap_or(50.0);
    let pl = percentile_label(top);
    let mut t = table(vec![
        "load".into(),
        "ok".into(),
        "failed".into(),
        "req/s".into(),
        "out tok/s".into(),
        "goodput".into(),
        "TTFT p50".into(),
        format!("TTFT {pl}"),
        "TPOT p50".into(),
        format!("TPOT {pl}"),
        "ITL p50".into(),
        "E2E p50".into(),
        format!("E2E {pl}"),
    ]);
    for p in &r.points {
        let m = &p.metrics;
        t.add_row(vec![
            p.load.describe(),
            m.completed.to_string(),
            m.failed.to_string(),
            f(m.request_throughput),
            f(m.output_throughput),
            m.request_goodput.map_or_else(|| "-".into(), f),
            opt(&m.ttft_ms, 50.0),
            opt(&m.ttft_ms, top),
            opt(&m.tpot_ms, 50.0),
            opt(&m.tpot_ms, top),
            opt(&m.itl_ms, 50.0),
            opt(&m.e2el_ms, 50.0),
            opt(&m.e2el_ms, top),
        ]);
    }
    right_align(&mut t, 1);
    let mut out = format!("{t}\nlatencies in ms\n");
    if r.points.iter().any(|p| !p.tenants.is_empty()) {
        out.push_str(&tenant_table(&r.points, true));
    }
    out.push_str(&error_table(&r.points, true));
    out
}

fn tenant_table(points: &[PointReport], with_load: bool) -> String {
    let top = points.iter().find_map(|p| top_percentile(&p.metrics)).unwrap_or(50.0);
    let pl = percentile_label(top);
    let mut header: Vec<String> = Vec::new();
    if with_load {
        header.push("load".into());
    }
    header.extend(
        [
            "tenant",
            "ok",
            "failed",
            "req/s",
            "out tok/s",
            "goodput",
            "TTFT p50",
            &format!("TTFT {pl}"),
            "E2E p50",
            &format!("E2E {pl}"),
        ]
        .map(str::to_string),
    );
    let mut t = table(header);
    for p in points {
        for tr in &p.tenants {
            let m = &tr.metrics;
            let mut row = Vec::new();
            if with_load {
                row.push(p.load.describe());
            }
            row.extend([
                tr.tenant.clone(),
                m.completed.to_string(),
                m.failed.to_string(),
                f(m.request_throughput),
                f(m.output_throughput),
                m.request_goodput.map_or_else(|| "-".into(), f),
                opt(&m.ttft_ms, 50.0),
                opt(&m.ttft_ms, top),
                opt(&m.e2el_ms, 50.0),
                opt(&m.e2el_ms, top),
            ]);
            t.add_row(row);
        }
    }
    right_align(&mut t, if with_load { 2 } else { 1 });
    format!("per tenant (latencies in ms)\n{t}\n")
}

fn error_table(points: &[PointReport], with_load: bool) -> String {
    if points.iter().all(|p| p.metrics.errors.is_empty()) {
        return String::new();
    }
    let mut header = Vec::new();
    if with_load {
        header.push("load".to_string());
    }
    header.extend(["error".to_string(), "count".into(), "first message".into()]);
    let mut t = table(header);
    for p in points {
        for (kind, n) in &p.metrics.errors {
            let mut row = Vec::new();
            if with_load {
                row.push(p.load.describe());
            }
            let example = p.metrics.error_examples.get(kind).cloned().unwrap_or_default();
            row.extend([kind.clone(), n.to_string(), example]);
            t.add_row(row);
        }
    }
    format!("failed requests\n{t}\n")
}
