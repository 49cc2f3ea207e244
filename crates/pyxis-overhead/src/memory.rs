//! Memory per open stream: open held streams through a proxy in steps, read the proxy's resident set after each
//! step, and fit a line of RSS against open streams; its slope is the cost of one stream.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::client::{ClientError, Conn, Endpoint, HeldStream, Target};
use crate::progress::Progress;
use crate::stats::{Line, fit_line};

/// Streams being opened at once: a burst of thousands of connects overflows the listen backlog and costs
/// seconds of SYN retries, which would be time, not memory.
const OPENING_AT_ONCE: usize = 128;
/// Time for the allocator and the proxy's background tasks to settle before RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemPoint {
    pub streams: usize,
    pub rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryFigures {
    pub name: String,
    /// Streams asked for at the last step.
    pub target_streams: usize,
    /// RSS (the process and its descendants) at 0 open streams and after each step.
    pub points: Vec<MemPoint>,
    /// RSS against open streams; `slope` is KiB per open stream.
    pub fit: Option<Line>,
    /// (last RSS − first RSS) / last streams, the cruder figure.
    pub kib_per_stream_delta: Option<f64>,
    /// Why the ramp stopped short, if it did.
    pub stopped: Option<String>,
    pub errors: u64,
}

impl MemoryFigures {
    /// KiB per open stream: the fitted slope, else the crude delta.
    pub fn kib_per_stream(&self) -> Option<f64> {
        self.fit.map(|l| l.slope).or(self.kib_per_stream_delta)
    }
}

/// The steps of a ramp to `k` streams: a quarter, a half, three quarters, all.
pub fn steps(k: usize) -> Vec<usize> {
    let mut s: Vec<usize> = [k / 4, k / 2, 3 * k / 4, k].into_iter().filter(|&x| x > 0).collect();
    s.dedup();
    s
}

/// Opens held streams through `target` up to each of `steps`, reading the RSS of `pid` (and its descendants)
/// before and after each; a step that does not complete within `step_timeout` ends the ramp there. Streams are
/// closed when this returns.
pub async fn ramp(
    target: &Target,
    pid: u32,
    steps: &[usize],
    step_timeout: Duration,
    progress: &Progress,
) -> Result<MemoryFigures, ClientError> {
    let ep = Endpoint::resolve(target).await?;
    let mut held: Vec<HeldStream> = Vec::new();
    let mut errors = 0u64;
    let mut stopped = None;
    tokio::time::sleep(SETTLE).await;
    let mut points = vec![MemPoint {
        streams: 0,
        rss_kib: tree_rss_kib(pid).unwrap_or(0),
    }];
    for &k in steps {
        let want = k.saturating_sub(held.len());
        let (opened, failed, why) = open_many(&ep, want, step_timeout, progress).await;
        let got = opened.len();
        held.extend(opened);
        errors += failed;
        tokio::time::sleep(SETTLE).await;
        let Some(rss) = tree_rss_kib(pid) else {
            stopped = Some(format!("process {pid} is gone"));
            break;
        };
        points.push(MemPoint {
            streams: held.len(),
            rss_kib: rss,
        });
        if got < want {
            stopped = Some(format!(
                "{} of {k} streams open: {}",
                held.len(),
                why.unwrap_or_else(|| "timed out".into())
            ));
            break;
        }
    }
    drop(held);
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.streams as f64, p.rss_kib as f64)).collect();
    let fit = fit_line(&xy);
    let delta = match (points.first(), points.last()) {
        (Some(a), Some(b)) if b.streams > 0 => Some((b.rss_kib as f64 - a.rss_kib as f64) / b.streams as f64),
        _ => None,
    };
    Ok(MemoryFigures {
        name: target.name.clone(),
        target_streams: steps.last().copied().unwrap_or(0),
        points,
        fit,
        kib_per_stream_delta: delta,
        stopped,
        errors,
    })
}

/// Opens up to `n` held streams, at most [`OPENING_AT_ONCE`] at a time, within `timeout`.
async fn open_many(
    ep: &std::sync::Arc<Endpoint>,
    n: usize,
    timeout: Duration,
    progress: &Progress,
) -> (Vec<HeldStream>, u64, Option<String>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut set: JoinSet<Result<HeldStream, ClientError>> = JoinSet::new();
    let mut launched = 0;
    let mut out = Vec::with_capacity(n);
    let mut failed = 0u64;
    let mut first_error = None;
    loop {
        while launched < n && set.len() < OPENING_AT_ONCE {
            let ep = ep.clone();
            set.spawn(async move { Conn::open(ep).await?.open_held().await });
            launched += 1;
        }
        let next = match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => {
                set.abort_all();
                first_error.get_or_insert_with(|| format!("timed out after {} s", timeout.as_secs()));
                break;
            }
        };
        match next {
            Ok(Ok(s)) => {
                out.push(s);
                progress.inc(1);
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
                // Out of descriptors or refused: more attempts only fail faster.
                if failed > 100 {
                    set.abort_all();
                    break;
                }
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (out, failed, first_error)
}

/// Resident set of `pid` and all its descendants, in KiB; `None` when `pid` is gone.
pub fn tree_rss_kib(pid: u32) -> Option<u64> {
    let own = rss_kib(pid)?;
    let parents = parent_map();
    let mut total = own;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for (&child, &parent) in &parents {
            if parent == p {
                total += rss_kib(child).unwrap_or(0);
                stack.push(child);
            }
        }
    }
    Some(total)
}

/// `VmRSS` of one process, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&s)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Every process's parent, from `/proc/*/stat`.
fn parent_map() -> HashMap<u32, u32> {
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return m };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_ppid(&s))
        {
            m.insert(pid, ppid);
        }
    }
    m
}

/// The parent pid in a `/proc/<pid>/stat` line; the command name in parentheses may hold spaces or `)`.
fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        assert_eq!(
            parse_vmrss("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t   12345 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_vmrss("Name:\tx\n"), None);
        assert_eq!(parse_ppid("42 (a b) c) S 17 42 42 0"), Some(17));
        assert_eq!(rss_kib(std::process::id()).map(|k| k > 0), Some(true));
        assert!(tree_rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert_eq!(tree_rss_kib(u32::MAX), None);
    }

    #[test]
    fn ramp_steps() {
        assert_eq!(steps(10000), vec![2500, 5000, 7500, 10000]);
        assert_eq!(steps(2), vec![1, 2]);
        assert!(steps(0).is_empty());
    }
}
