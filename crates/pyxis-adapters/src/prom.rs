//! A small reader of Prometheus' text exposition and the per-kind mapping onto [`LoadSample`]:
//! which gauge is the queue, which the running batch, which the KV-cache fraction, and which counter
//! of generated tokens gives throughput (names: shared/reference/runtimes.md §0 and §9.1).

use crate::types::LoadSample;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

/// Every sample of a scrape. Lines that do not parse are skipped: one odd family must not hide the rest.
#[derive(Debug, Default)]
pub(crate) struct Scrape<'a> {
    samples: Vec<Sample<'a>>,
}

fn parse_labels(s: &str) -> Option<(Vec<(&str, String)>, &str)> {
    // `s` starts just after `{`; returns the labels and the text after `}`.
    let mut labels = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let mut chars = rest[eq + 1..].trim_start().char_indices();
        let body = rest[eq + 1..].trim_start();
        if !matches!(chars.next(), Some((_, '"'))) {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        labels.push((key, value));
        rest = body[end? + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

fn parse_line(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Vec::new(), &line[name_end..])
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample { name, labels, value })
}

impl<'a> Scrape<'a> {
    pub(crate) fn parse(text: &'a str) -> Scrape<'a> {
        Scrape {
            samples: text.lines().filter_map(parse_line).collect(),
        }
    }

    fn matching<'s>(&'s self, sel: &'s Sel) -> impl Iterator<Item = f64> + 's {
        self.samples
            .iter()
            .filter(move |s| {
                s.name == sel.name
                    && sel
                        .label
                        .is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| *lk == k && lv == v))
            })
            .map(|s| s.value)
            .filter(|v| v.is_finite())
    }

    /// The sum over every label set (engines, models), or `None` when the family is absent.
    pub(crate) fn sum(&self, sel: &Sel) -> Option<f64> {
        let mut it = self.matching(sel).peekable();
        it.peek()?;
        Some(it.sum())
    }

    /// The mean over every label set (a fraction per engine stays a fraction).
    pub(crate) fn mean(&self, sel: &Sel) -> Option<f64> {
        let v: Vec<f64> = self.matching(sel).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// A metric name, optionally narrowed to one label value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sel {
    pub name: &'static str,
    pub label: Option<(&'static str, &'static str)>,
}

pub(crate) const fn sel(name: &'static str) -> Sel {
    Sel { name, label: None }
}

pub(crate) const fn sel_l(name: &'static str, key: &'static str, value: &'static str) -> Sel {
    Sel {
        name,
        label: Some((key, value)),
    }
}

/// KV-cache usage: a 0..1 gauge, or used over capacity.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kv {
    Fraction(Sel),
    Ratio(Sel, Sel),
}

/// Where a kind's load signal lives; within each list the first family present wins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadNames {
    pub waiting: &'static [Sel],
    pub running: &'static [Sel],
    pub kv: &'static [Kv],
    pub generated: &'static [Sel],
}

fn first(s: &Scrape<'_>, sels: &[Sel]) -> Option<f64> {
    sels.iter().find_map(|x| s.sum(x))
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 { v.round() as u64 } else { 0 }
}

/// Tokens per second between two readings of a counter; `None` across a restart (counter went down).
pub(crate) fn rate(prev: Option<&LoadSample>, now_ms: u64, counter: Option<f64>) -> Option<f64> {
    let p = prev?;
    let (before, now) = (p.generated_tokens?, counter?);
    let dt_ms = now_ms.checked_sub(p.at_ms).filter(|d| *d > 0)?;
    (now >= before).then(|| (now - before) * 1000.0 / dt_ms as f64)
}

/// The load sample a scrape shows under `names`; `None` when neither a queue nor a running gauge is
/// there (metrics off, or not this runtime's metrics).
pub(crate) fn load(text: &str, names: &LoadNames, prev: Option<&LoadSample>, now_ms: u64) -> Option<LoadSample> {
    let s = Scrape::parse(text);
    let waiting = first(&s, names.waiting);
    let running = first(&s, names.running);
    if waiting.is_none() && running.is_none() {
        return None;
    }
    let kv_use = names.kv.iter().find_map(|k| match k {
        Kv::Fraction(x) => s.mean(x),
        Kv::Ratio(used, max) => {
            let (u, m) = (s.sum(used)?, s.sum(max)?);
            (m > 0.0).then(|| u / m)
        }
    });
    let generated = first(&s, names.generated);
    Some(LoadSample {
        at_ms: now_ms,
        waiting: waiting.map_or(0, count),
        running: running.map_or(0, count),
        kv_use: kv_use.map(|k| k.clamp(0.0, 1.0)),
        tokens_per_s: rate(prev, now_ms, generated),
        generated_tokens: generated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_specials() {
        let t = "# HELP x y\nm{a=\"1\",b=\"q\\\"{,}\\\\\"} 2.5 1700000000\nm{a=\"2\"} +Inf\nn 3\nbad line\nm{a=\"3\" } NaN\n";
        let s = Scrape::parse(t);
        assert_eq!(s.samples.len(), 4);
        assert_eq!(s.samples[0].labels[1], ("b", "q\"{,}\\".to_string()));
        assert_eq!(s.sum(&sel("m")), Some(2.5), "non-finite values are ignored");
        assert_eq!(s.sum(&sel_l("m", "a", "1")), Some(2.5));
        assert_eq!(s.sum(&sel("n")), Some(3.0));
        assert_eq!(s.sum(&sel("absent")), None);
    }

    #[test]
    fn rate_needs_a_previous_sample_and_a_growing_counter() {
        let prev = LoadSample {
            at_ms: 1000,
            generated_tokens: Some(100.0),
            ..LoadSample::default()
        };
        assert_eq!(rate(Some(&prev), 3000, Some(300.0)), Some(100.0));
        assert_eq!(rate(Some(&prev), 3000, Some(50.0)), None, "restart");
        assert_eq!(rate(Some(&prev), 1000, Some(300.0)), None, "no time passed");
        assert_eq!(rate(None, 3000, Some(300.0)), None);
    }
}
