//! OpenMetrics text (what prometheus-client writes) rewritten as Prometheus text format 0.0.4.
//!
//! Why 0.0.4 by default: Prometheus reads both, but promtool, the classic parsers and plain
//! scrapers only read 0.0.4, and in it a counter's `# TYPE`/`# HELP` must name the `_total`
//! series. The differences are only in metadata lines: `# UNIT` and `# EOF` go, counter family
//! names gain `_total`. Samples are identical (same escaping), so they are copied as they are.

use std::fmt::Write as _;

pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) fn to_prometheus_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                _ => (name.to_string(), "untyped"),
            };
            if let Some((_, text)) = help.take() {
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn counters_gain_total_and_openmetrics_only_lines_go() {
        let om = "# HELP pyxis_cost_usd Cost.\n# TYPE pyxis_cost_usd counter\n# UNIT pyxis_cost_usd usd\n\
                  pyxis_cost_usd_total{tenant=\"a\"} 1.5\n# HELP pyxis_up Up.\n# TYPE pyxis_up gauge\npyxis_up 1\n# EOF\n";
        let want = "# HELP pyxis_cost_usd_total Cost.\n# TYPE pyxis_cost_usd_total counter\n\
                    pyxis_cost_usd_total{tenant=\"a\"} 1.5\n# HELP pyxis_up Up.\n# TYPE pyxis_up gauge\npyxis_up 1\n";
        assert_eq!(to_prometheus_text(om), want);
    }
}
