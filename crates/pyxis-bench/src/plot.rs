//! `--plot`: a hand-written SVG with latency against load (TTFT and E2E, median and tail) and the
//! TTFT distribution. No plotting crate: lines, rectangles and text are all a chart needs.

use std::fmt::Write;

use crate::metrics::{Summary, percentile, percentile_label};
use crate::report::{BenchReport, PointReport};

const W: f64 = 960.0;
const H: f64 = 760.0;
const PALETTE: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A plot area in SVG coordinates.
#[derive(Clone, Copy)]
struct Area {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

/// A linear axis from `lo` to `hi` with round ticks.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

/// Round tick positions (steps of 1, 2 or 5 × 10ⁿ) covering `[min, max]` with about `n` ticks.
fn nice_axis(min: f64, max: f64, n: usize) -> Axis {
    let (mut min, mut max) = if min.is_finite() && max.is_finite() {
        (min, max)
    } else {
        (0.0, 1.0)
    };
    if max <= min {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        min -= pad;
        max += pad;
    }
    let raw = (max - min) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let lo = (min / step).floor() * step;
    let hi = (max / step).ceil() * step;
    let count = ((hi - lo) / step).round() as usize;
    let ticks = (0..=count).map(|i| lo + step * i as f64).collect();
    Axis { lo, hi, ticks }
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if (v * 10.0).fract().abs() < 1e-9 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Svg(String);

impl Svg {
    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, extra: &str, s: &str) {
        let _ = writeln!(
            self.0,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" {extra}>{}</text>"#,
            esc(s)
        );
    }

    /// Frame, grid, ticks and labels; returns the value → pixel maps.
    fn axes(&mut self, a: Area, xa: &Axis, ya: &Axis, title: &str, xlabel: &str, ylabel: &str) {
        let _ = writeln!(
            self.0,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fff" stroke="#444"/>"##,
            a.x, a.y, a.w, a.h
        );
        for &t in &ya.ticks {
            let y = map(t, ya, a.y + a.h, a.y);
            let _ = writeln!(
                self.0,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/>"##,
                a.x,
                a.x + a.w
            );
            self.text(a.x - 6.0, y + 4.0, 11.0, "end", "", &fmt_tick(t));
        }
        for &t in &xa.ticks {
            let x = map(t, xa, a.x, a.x + a.w);
            let _ = writeln!(
                self.0,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/>"##,
                a.y + a.h,
                a.y + a.h + 5.0
            );
            self.text(x, a.y + a.h + 18.0, 11.0, "middle", "", &fmt_tick(t));
        }
        self.text(
            a.x + a.w / 2.0,
            a.y - 10.0,
            14.0,
            "middle",
            r#"font-weight="bold""#,
            title,
        );
        self.text(a.x + a.w / 2.0, a.y + a.h + 36.0, 12.0, "middle", "", xlabel);
        let (lx, ly) = (a.x - 48.0, a.y + a.h / 2.0);
        self.text(
            lx,
            ly,
            12.0,
            "middle",
            &format!(r#"transform="rotate(-90 {lx:.1} {ly:.1})""#),
            ylabel,
        );
    }

    fn note(&mut self, a: Area, title: &str, msg: &str) {
        let _ = writeln!(
            self.0,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fafafa" stroke="#444"/>"##,
            a.x, a.y, a.w, a.h
        );
        self.text(
            a.x + a.w / 2.0,
            a.y - 10.0,
            14.0,
            "middle",
            r#"font-weight="bold""#,
            title,
        );
        self.text(
            a.x + a.w / 2.0,
            a.y + a.h / 2.0,
            12.0,
            "middle",
            r##"fill="#666""##,
            msg,
        );
    }

    fn legend(&mut self, x: f64, y: f64, items: &[(String, &str, bool)]) {
        for (i, (label, color, dashed)) in items.iter().enumerate() {
            let yy = y + 16.0 * i as f64;
            let dash = if *dashed { r#" stroke-dasharray="5 3""# } else { "" };
            let _ = writeln!(
                self.0,
                r#"<line x1="{x:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
                x + 18.0
            );
            self.text(x + 24.0, yy + 4.0, 11.0, "start", "", label);
        }
    }
}

fn map(v: f64, axis: &Axis, from: f64, to: f64) -> f64 {
    let span = axis.hi - axis.lo;
    if span <= 0.0 {
        return from;
    }
    from + (v - axis.lo) / span * (to - from)
}

/// Median and tail (highest configured percentile) of one latency against load.
fn latency_panel(
    svg: &mut Svg,
    a: Area,
    points: &[PointReport],
    title: &str,
    pick: fn(&PointReport) -> &Option<Summary>,
) {
    let xlabel = points.first().map_or("load", |p| p.load.axis_label());
    let top = points
        .iter()
        .filter_map(|p| pick(p).as_ref())
        .find_map(|s| s.percentiles.iter().map(|(p, _)| *p).reduce(f64::max))
        .unwrap_or(50.0);
    let series: Vec<(f64, f64, f64)> = points
        .iter()
        .filter(|p| p.load.value().is_finite())
        .filter_map(|p| {
            let s = pick(p).as_ref()?;
            Some((p.load.value(), s.median, s.at(top).unwrap_or(s.median)))
        })
        .collect();
    if series.is_empty() {
        let why = if points.iter().any(|p| !p.stream) {
            "not measured without streaming (--no-stream)"
        } else {
            "no successful request"
        };
        svg.note(a, title, why);
        return;
    }
    let (xmin, xmax) = series
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), s| (lo.min(s.0), hi.max(s.0)));
    let ymax = series.iter().map(|s| s.2.max(s.1)).fold(0.0, f64::max);
    let xa = nice_axis(if xmin == xmax { xmin } else { xmin.min(0.0) }, xmax, 6);
    let ya = nice_axis(0.0, ymax * 1.05, 5);
    svg.axes(a, &xa, &ya, title, xlabel, "latency (ms)");
    let lines: [(usize, &str, bool); 2] = [(1, PALETTE[0], false), (2, PALETTE[1], true)];
    for (which, color, dashed) in lines {
        let pts: Vec<String> = series
            .iter()
            .map(|s| {
                let v = if which == 1 { s.1 } else { s.2 };
                format!(
                    "{:.1},{:.1}",
                    map(s.0, &xa, a.x, a.x + a.w),
                    map(v, &ya, a.y + a.h, a.y)
                )
            })
            .collect();
        let dash = if dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let _ = writeln!(
            svg.0,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg.0, r#"<circle cx="{x}" cy="{y}" r="3.5" fill="{color}"/>"#);
        }
    }
    svg.legend(
        a.x + 10.0,
        a.y + 14.0,
        &[
            ("median (p50)".to_string(), PALETTE[0], false),
            (percentile_label(top), PALETTE[1], true),
        ],
    );
}

/// Histogram (share of requests per bin) of TTFT, or E2E when TTFT was not measured; one
/// outline per load point.
fn histogram_panel(svg: &mut Svg, a: Area, points: &[PointReport]) {
    let streamed = points.iter().any(|p| p.records.iter().any(|r| r.ttft.is_some()));
    let metric = if streamed { "TTFT" } else { "E2E latency" };
    let title = format!("{metric} distribution");
    let data: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            let mut v: Vec<f64> = p
                .records
                .iter()
                .filter(|r| r.failure.is_none())
                .filter_map(|r| if streamed { r.ttft } else { Some(r.e2el) })
                .map(|s| s * 1000.0)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let all: Vec<f64> = data.iter().flatten().copied().collect();
    if all.is_empty() {
        svg.note(a, &title, "no successful request");
        return;
    }
    let (lo, hi) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    let xa = nice_axis(lo, hi, 8);
    let per_point = all.len() / points.len().max(1);
    let bins = ((per_point as f64).sqrt().round() as usize).clamp(5, 40);
    let width = (xa.hi - xa.lo) / bins as f64;
    let shares: Vec<Vec<f64>> = data
        .iter()
        .map(|v| {
            let mut c = vec![0.0; bins];
            for x in v {
                let i = (((x - xa.lo) / width).floor().max(0.0) as usize).min(bins - 1);
                c[i] += 1.0;
            }
            let n = v.len().max(1) as f64;
            c.iter().map(|k| 100.0 * k / n).collect()
        })
        .collect();
    let ymax = shares.iter().flatten().copied().fold(0.0, f64::max);
    let ya = nice_axis(0.0, ymax * 1.1, 5);
    svg.axes(a, &xa, &ya, &title, &format!("{metric} (ms)"), "% of requests");
    let mut legend = Vec::new();
    for (i, (p, s)) in points.iter().zip(&shares).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let base = a.y + a.h;
        let mut path = format!("M{:.1},{base:.1}", map(xa.lo, &xa, a.x, a.x + a.w));
        for (b, share) in s.iter().enumerate() {
            let x0 = map(xa.lo + width * b as f64, &xa, a.x, a.x + a.w);
            let x1 = map(xa.lo + width * (b + 1) as f64, &xa, a.x, a.x + a.w);
            let y = map(*share, &ya, base, a.y);
            let _ = write!(path, " L{x0:.1},{y:.1} L{x1:.1},{y:.1}");
        }
        let _ = write!(path, " L{:.1},{base:.1} Z", map(xa.hi, &xa, a.x, a.x + a.w));
        let opacity = if points.len() == 1 { 0.35 } else { 0.12 };
        let _ = writeln!(
            svg.0,
            r#"<path d="{path}" fill="{color}" fill-opacity="{opacity}" stroke="{color}" stroke-width="1.5"/>"#
        );
        legend.push((format!("{} (n={})", p.load.describe(), data[i].len()), color, false));
    }
    if let [only] = data.as_slice() {
        // One point: mark its median and p99.
        for (q, color) in [(50.0, "#333"), (99.0, PALETTE[1])] {
            let v = percentile(only, q);
            let x = map(v, &xa, a.x, a.x + a.w);
            let _ = writeln!(
                svg.0,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{color}" stroke-dasharray="4 3"/>"#,
                a.y,
                a.y + a.h
            );
            legend.push((format!("{} = {v:.1} ms", percentile_label(q)), color, true));
        }
    }
    svg.legend(a.x + a.w - 230.0, a.y + 14.0, &legend);
}

/// The whole chart for `report` as an SVG document.
pub fn render_svg(report: &BenchReport) -> String {
    let mut svg = Svg(String::new());
    let _ = writeln!(
        svg.0,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(svg.0, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let title = match report.points.first() {
        Some(p) => format!(
            "pyxis bench · {} at {} · {}{}",
            p.model,
            p.url,
            p.endpoint.path(),
            if p.stream { "" } else { " (not streaming)" }
        ),
        None => "pyxis bench".to_string(),
    };
    svg.text(W / 2.0, 26.0, 16.0, "middle", r#"font-weight="bold""#, &title);
    let top = |x| Area {
        x,
        y: 70.0,
        w: 370.0,
        h: 250.0,
    };
    latency_panel(&mut svg, top(80.0), &report.points, "TTFT against load", |p| {
        &p.metrics.ttft_ms
    });
    latency_panel(
        &mut svg,
        top(560.0),
        &report.points,
        "End-to-end latency against load",
        |p| &p.metrics.e2el_ms,
    );
    let bottom = Area {
        x: 80.0,
        y: 420.0,
        w: 850.0,
        h: 270.0,
    };
    histogram_panel(&mut svg, bottom, &report.points);
    svg.0.push_str("</svg>\n");
    svg.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes_are_round_and_cover_the_data() {
        let a = nice_axis(0.0, 87.0, 5);
        assert_eq!(a.lo, 0.0);
        assert_eq!(a.hi, 100.0);
        assert_eq!(a.ticks, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let b = nice_axis(3.2, 3.2, 5);
        assert!(b.lo < 3.2 && b.hi > 3.2);
        let c = nice_axis(0.013, 0.047, 4);
        assert!(c.lo <= 0.013 && c.hi >= 0.047 && c.ticks.len() >= 3);
        assert_eq!(fmt_tick(0.5), "0.5");
        assert_eq!(fmt_tick(20.0), "20");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
