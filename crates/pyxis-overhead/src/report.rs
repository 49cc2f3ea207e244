//! The result of a run: figures per target, overhead against the direct baseline, the goals with pass or fail,
//! as JSON or as tables.

use comfy_table::{Cell, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::measure::{Comparison, Figures, Plan};
use crate::memory::MemoryFigures;

/// Added latency at concurrency 1, non-streamed, p50 (ms).
pub const GOAL_ADDED_P50_MS: f64 = 0.1;
/// Added latency at concurrency 1, non-streamed, p99 (ms).
pub const GOAL_ADDED_P99_MS: f64 = 0.5;
/// Closed-loop throughput through the proxy as a share of direct.
pub const GOAL_THROUGHPUT_RATIO: f64 = 0.25;
/// Proxy memory per open stream (KiB).
pub const GOAL_KIB_PER_STREAM: f64 = 32.0;

/// A proxy's cost over going direct. Latencies in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    pub name: String,
    /// p50(through) − p50(direct), non-streamed, concurrency 1.
    pub added_p50_ms: f64,
    /// p99(through) − p99(direct).
    pub added_p99_ms: f64,
    pub added_mean_ms: f64,
    /// p50 TTFT through − direct, streamed.
    pub added_ttft_p50_ms: f64,
    /// (mean first-to-last-chunk time through − direct) / (chunks − 1).
    pub added_per_chunk_ms: f64,
    /// p50 time to `[DONE]` through − direct.
    pub added_stream_total_p50_ms: f64,
    /// Closed-loop requests/s through ÷ direct, non-streamed.
    pub throughput_ratio_whole: f64,
    /// The same, streamed.
    pub throughput_ratio_stream: f64,
}

impl Overhead {
    pub fn between(direct: &Figures, through: &Figures, chunks: usize) -> Overhead {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let gaps = chunks.saturating_sub(1).max(1) as f64;
        Overhead {
            name: through.name.clone(),
            added_p50_ms: through.latency_ms.p50 - direct.latency_ms.p50,
            added_p99_ms: through.latency_ms.p99 - direct.latency_ms.p99,
            added_mean_ms: through.latency_ms.mean - direct.latency_ms.mean,
            added_ttft_p50_ms: through.ttft_ms.p50 - direct.ttft_ms.p50,
            added_per_chunk_ms: (through.first_to_last_ms.mean - direct.first_to_last_ms.mean) / gaps,
            added_stream_total_p50_ms: through.stream_total_ms.p50 - direct.stream_total_ms.p50,
            throughput_ratio_whole: ratio(through.rps_whole, direct.rps_whole),
            throughput_ratio_stream: ratio(through.rps_stream, direct.rps_stream),
        }
    }
}

/// One goal checked for one proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub target: String,
    pub goal: String,
    pub value: Option<f64>,
    pub limit: f64,
    /// `None` when the figure was not measured.
    pub pass: Option<bool>,
}

/// Every goal for one proxy.
pub fn goals(o: &Overhead, mem: Option<&MemoryFigures>) -> Vec<Goal> {
    let le = |goal: &str, v: Option<f64>, limit: f64| Goal {
        target: o.name.clone(),
        goal: goal.into(),
        value: v,
        limit,
        pass: v.map(|v| v <= limit),
    };
    let ge = |goal: &str, v: f64, limit: f64| Goal {
        target: o.name.clone(),
        goal: goal.into(),
        value: Some(v),
        limit,
        pass: Some(v >= limit),
    };
    vec![
        le(
            "added p50 latency (ms), concurrency 1",
            Some(o.added_p50_ms),
            GOAL_ADDED_P50_MS,
        ),
        le(
            "added p99 latency (ms), concurrency 1",
            Some(o.added_p99_ms),
            GOAL_ADDED_P99_MS,
        ),
        ge(
            "throughput vs direct, non-streamed",
            o.throughput_ratio_whole,
            GOAL_THROUGHPUT_RATIO,
        ),
        ge(
            "throughput vs direct, streamed",
            o.throughput_ratio_stream,
            GOAL_THROUGHPUT_RATIO,
        ),
        le(
            "memory per open stream (KiB)",
            mem.and_then(MemoryFigures::kib_per_stream),
            GOAL_KIB_PER_STREAM,
        ),
    ]
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub chunks: usize,
    pub cpus: usize,
    /// Soft RLIMIT_NOFILE after raising it to the hard limit.
    pub nofile: u64,
    /// Per proxy: its figures and those of its own direct baseline, measured interleaved.
    pub comparisons: Vec<Comparison>,
    pub overhead: Vec<Overhead>,
    pub memory: Vec<MemoryFigures>,
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(
        plan: Plan,
        chunks: usize,
        comparisons: Vec<Comparison>,
        memory: Vec<MemoryFigures>,
        nofile: u64,
        notes: Vec<String>,
    ) -> Report {
        let overhead: Vec<Overhead> = comparisons
            .iter()
            .map(|c| Overhead::between(&c.direct, &c.through, chunks))
            .collect();
        let goals = overhead
            .iter()
            .flat_map(|o| goals(o, memory.iter().find(|m| m.name == o.name)))
            .collect();
        Report {
            plan,
            chunks,
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            nofile,
            comparisons,
            overhead,
            memory,
            goals,
            notes,
        }
    }

    /// Whether every measured goal passed for `target`.
    pub fn passed(&self, target: &str) -> bool {
        self.goals
            .iter()
            .filter(|g| g.target == target)
            .all(|g| g.pass != Some(false))
    }

    /// The measured figures, then overhead and goals, then notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.figures_table().to_string());
        out.push('\n');
        out.push_str(&self.goals_table().to_string());
        out.push('\n');
        for n in &self.notes {
            out.push_str("note: ");
            out.push_str(n);
            out.push('\n');
        }
        out
    }

    fn figures_table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED);
        // Each proxy next to its own direct baseline.
        let columns: Vec<(String, &Figures)> = self
            .comparisons
            .iter()
            .flat_map(|c| {
                [
                    (format!("direct (vs {})", c.through.name), &c.direct),
                    (c.through.name.clone(), &c.through),
                ]
            })
            .collect();
        let mut header = vec![Cell::new("measured")];
        header.extend(columns.iter().map(|(label, _)| Cell::new(label)));
        t.set_header(header);
        let c = self.plan.concurrency;
        type Row<'a> = (String, Box<dyn Fn(&Figures) -> String + 'a>);
        let rows: Vec<Row> = vec![
            ("latency p50 (ms), c=1".into(), Box::new(|f| ms(f.latency_ms.p50))),
            ("latency p99 (ms), c=1".into(), Box::new(|f| ms(f.latency_ms.p99))),
            ("stream TTFT p50 (ms), c=1".into(), Box::new(|f| ms(f.ttft_ms.p50))),
            (
                format!("stream first→last of {} chunks, mean (ms)", self.chunks),
                Box::new(|f| ms(f.first_to_last_ms.mean)),
            ),
            (
                "stream to [DONE] p50 (ms)".into(),
                Box::new(|f| ms(f.stream_total_ms.p50)),
            ),
            (
                format!("req/s at c={c}, non-streamed"),
                Box::new(|f| format!("{:.0}", f.rps_whole)),
            ),
            (
                format!("req/s at c={c}, streamed"),
                Box::new(|f| format!("{:.0}", f.rps_stream)),
            ),
            (
                "requests at c=1 (non-streamed / streamed)".into(),
                Box::new(|f| format!("{} / {}", f.latency_ms.count, f.ttft_ms.count)),
            ),
            ("failed requests".into(), Box::new(|f| f.errors.to_string())),
        ];
        for (label, get) in rows {
            let mut row = vec![Cell::new(label)];
            row.extend(columns.iter().map(|(_, f)| Cell::new(get(f))));
            t.add_row(row);
        }
        let mut row = vec![Cell::new("RSS per open stream (KiB), streams")];
        row.extend(columns.iter().map(|(label, _)| {
            Cell::new(match self.memory.iter().find(|m| m.name == *label) {
                Some(m) => format!(
                    "{} at {}",
                    m.kib_per_stream().map(|k| format!("{k:.1}")).unwrap_or("—".into()),
                    m.points.last().map(|p| p.streams).unwrap_or(0)
                ),
                None => "—".into(),
            })
        }));
        t.add_row(row);
        t
    }

    fn goals_table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED);
        let mut header = vec![Cell::new("overhead vs direct"), Cell::new("goal")];
        header.extend(self.overhead.iter().map(|o| Cell::new(&o.name)));
        t.set_header(header);
        let goal_row = |i: usize| -> Vec<Cell> {
            self.overhead
                .iter()
                .map(|o| {
                    let g = self.goals.iter().filter(|g| g.target == o.name).nth(i);
                    Cell::new(match g {
                        Some(g) => format!("{} {}", show_goal_value(g), verdict(g.pass)),
                        None => "—".into(),
                    })
                })
                .collect()
        };
        let goal_labels = [
            ("added p50 latency (ms), c=1", format!("≤ {GOAL_ADDED_P50_MS}")),
            ("added p99 latency (ms), c=1", format!("≤ {GOAL_ADDED_P99_MS}")),
            (
                "throughput vs direct, non-streamed",
                format!("≥ {:.0}%", GOAL_THROUGHPUT_RATIO * 100.0),
            ),
            (
                "throughput vs direct, streamed",
                format!("≥ {:.0}%", GOAL_THROUGHPUT_RATIO * 100.0),
            ),
            ("memory per open stream (KiB)", format!("≤ {GOAL_KIB_PER_STREAM}")),
        ];
        for (i, (label, goal)) in goal_labels.into_iter().enumerate() {
            let mut row = vec![Cell::new(label), Cell::new(goal)];
            row.extend(goal_row(i));
            t.add_row(row);
        }
        type Extra = (&'static str, fn(&Overhead) -> f64);
        let extras: [Extra; 3] = [
            ("added TTFT p50 (ms), streamed", |o| o.added_ttft_p50_ms),
            ("added per streamed chunk (ms)", |o| o.added_per_chunk_ms),
            ("added to [DONE] p50 (ms)", |o| o.added_stream_total_p50_ms),
        ];
        for (label, get) in extras {
            let mut row = vec![Cell::new(label), Cell::new("")];
            row.extend(self.overhead.iter().map(|o| Cell::new(ms(get(o)))));
            t.add_row(row);
        }
        t
    }
}

fn show_goal_value(g: &Goal) -> String {
    match g.value {
        None => "—".into(),
        Some(v) if g.goal.starts_with("throughput") => format!("{:.0}%", v * 100.0),
        Some(v) if g.goal.starts_with("memory") => format!("{v:.1}"),
        Some(v) => ms(v),
    }
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "",
    }
}

fn ms(v: f64) -> String {
    format!("{v:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Dist;

    fn fig(name: &str, p50: f64, p99: f64, ftl: f64, rps: f64) -> Figures {
        let d = |p50: f64, p99: f64| Dist {
            count: 100,
            mean: p50,
            p50,
            p90: p99,
            p99,
            max: p99,
        };
        Figures {
            name: name.into(),
            latency_ms: d(p50, p99),
            ttft_ms: d(p50, p99),
            first_to_last_ms: d(ftl, ftl),
            stream_total_ms: d(p50 + ftl, p99 + ftl),
            chunks: 32,
            rps_whole: rps,
            rps_stream: rps / 4.0,
            errors: 0,
            first_error: None,
        }
    }

    #[test]
    fn overhead_is_through_minus_direct_and_goals_are_judged() {
        let direct = fig("direct", 0.10, 0.20, 0.31, 40000.0);
        let pyxis = fig("pyxis", 0.15, 0.50, 0.62, 20000.0);
        let slow = fig("slow", 1.0, 3.0, 3.1, 4000.0);
        let pair = |through: Figures| Comparison {
            direct: direct.clone(),
            through,
        };
        let r = Report::new(
            Plan {
                warmup: 0,
                latency_requests: 100,
                stream_requests: 100,
                phase_limit: std::time::Duration::from_secs(1),
                concurrency: 64,
                saturation: std::time::Duration::from_secs(1),
                rounds: 1,
            },
            32,
            vec![pair(pyxis), pair(slow)],
            Vec::new(),
            1024,
            vec!["shared CPUs".into()],
        );
        let o = &r.overhead[0];
        assert!((o.added_p50_ms - 0.05).abs() < 1e-9 && (o.added_p99_ms - 0.30).abs() < 1e-9);
        assert!((o.added_per_chunk_ms - 0.01).abs() < 1e-9);
        assert!((o.throughput_ratio_whole - 0.5).abs() < 1e-9);
        assert!(r.passed("pyxis"));
        assert!(!r.passed("slow"));
        // Memory was not measured: no verdict, not a failure.
        let mem = r
            .goals
            .iter()
            .find(|g| g.target == "pyxis" && g.goal.starts_with("memory"))
            .unwrap();
        assert_eq!(mem.pass, None);
        let text = r.render();
        assert!(text.contains("FAIL") && text.contains("pass") && text.contains("note: shared CPUs"));
        assert!(text.contains("direct (vs slow)"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["overhead"][1]["name"], "slow");
        assert_eq!(j["plan"]["saturation"], 1.0);
    }
}
