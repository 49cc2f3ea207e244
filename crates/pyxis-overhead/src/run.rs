//! `pyxis overhead` end to end: start the static upstream, Pyxis, the null proxy (`--null-proxy`) and (when
//! installed) LiteLLM, measure, print.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::args::{Output, OverheadArgs};
use crate::client::Target;
use crate::measure::{Comparison, Plan, measure_pair};
use crate::memory::{MemoryFigures, ramp, steps};
use crate::nullproxy;
use crate::procs::{Proc, find_litellm, start_litellm, start_null_proxy, start_pyxis};
use crate::progress::Progress;
use crate::report::Report;
use crate::upstream::{FAST_MODEL, HOLD_MODEL, Upstream, UpstreamConfig};

/// Descriptors kept back from the memory test for everything else a process has open.
const FD_RESERVE: u64 = 400;

/// Runs the benchmark as `args` say and prints the report on stdout.
pub async fn run(args: OverheadArgs) -> anyhow::Result<()> {
    let cfg = UpstreamConfig {
        chunks: args.chunks as usize,
        hold: Duration::from_secs(600),
    };
    if args.upstream_only {
        let up = Upstream::start(cfg, args.port).context("cannot start the static upstream")?;
        println!("static OpenAI-compatible upstream on {} (Ctrl-C stops it)", up.url());
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    if args.null_proxy_only {
        let upstream = args
            .upstream
            .as_deref()
            .context("--null-proxy-only needs --upstream URL")?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
        println!(
            "null proxy on http://{} in front of {upstream} (Ctrl-C stops it)",
            listener.local_addr()?
        );
        nullproxy::serve(listener, upstream, 0, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        return Ok(());
    }
    let started = Instant::now();
    let plan = args.plan();
    // Pyxis holds two descriptors per open stream (client and upstream), and so does this process (client, and
    // the upstream's accepted socket); children inherit the limit raised here.
    let nofile = rlimit::increase_nofile_limit(1 << 20)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    let fit = (nofile.saturating_sub(FD_RESERVE) / 2) as usize;
    let mut notes = vec![format!(
        "{} CPUs shared by the load generator (this process), the static upstream (one thread of this process) and the proxy under test: proxy CPU is taken from the generator and upstream, so throughput ratios are lower bounds for a proxy on its own cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    )];
    notes.push("pyxis: real binary, fleet with tenant quotas (rpm, tpm, concurrency) and a queue set far above the load so every admission check runs; audit on (metadata); metrics as built in (no switch to turn them off)".into());
    let streams = args.streams().min(fit);
    if streams < args.streams() {
        notes.push(format!(
            "memory test at {streams} streams, not {}: RLIMIT_NOFILE is {nofile} and each stream takes 2 descriptors in the proxy; KiB per stream is the slope of a line fitted over the ramp, so it does not depend on the count",
            args.streams()
        ));
    }

    let upstream = Upstream::start(cfg, 0).context("cannot start the static upstream")?;
    let direct = Target {
        name: "direct".into(),
        base_url: upstream.url(),
        api_key: None,
        model: FAST_MODEL.into(),
        hold_model: HOLD_MODEL.into(),
    };
    let bin = match &args.pyxis_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find this executable; pass --pyxis-bin")?,
    };
    let litellm_bin = litellm_bin(&args, &mut notes);
    let litellm_streams = args.litellm_streams().min(fit);
    let units = |k: usize| plan.units(2) + k as u64;
    let progress = Progress::new(
        units(streams)
            + litellm_bin.as_ref().map_or(0, |_| units(litellm_streams))
            + if args.null_proxy { units(streams) } else { 0 },
    );
    notes.push(format!("load average before: {}", loadavg()));

    let mut comparisons = Vec::new();
    let mut memory = Vec::new();
    // One proxy at a time: a proxy's background work (logging, flushing) must not land on another's figures.
    progress.phase(format!("starting {} serve", bin.display()));
    let pyxis = start_pyxis(&bin, &upstream.url()).await?;
    let (c, m) = measure_proxy(&pyxis, &direct, &plan, streams, &args, &upstream, &progress).await?;
    comparisons.push(c);
    memory.extend(m);
    drop(pyxis);
    if args.null_proxy {
        // This executable again, not --pyxis-bin: that may be another build, and the example is no `pyxis`.
        let exe = std::env::current_exe().context("cannot find this executable to start the null proxy")?;
        progress.phase(format!("starting {} overhead --null-proxy-only", exe.display()));
        let np = start_null_proxy(&exe, &upstream.url()).await?;
        let (c, m) = measure_proxy(&np, &direct, &plan, streams, &args, &upstream, &progress).await?;
        comparisons.push(c);
        memory.extend(m);
        drop(np);
        notes.push("null-proxy: a child process like pyxis (this executable, `overhead --null-proxy-only`) on the gateway's I/O threads (one single-threaded runtime per CPU); hyper's HTTP/1 server in and hyper-util's pooled client (one per I/O thread) out as in the gateway, TCP_NODELAY both sides, body relayed as it comes, no parsing: the floor of one more HTTP hop".into());
    }
    if let Some(lbin) = litellm_bin {
        progress.phase(format!("starting {} (takes a few seconds)", lbin.display()));
        match start_litellm(&lbin, &upstream.url()).await {
            Ok(p) => {
                notes.push(format!(
                    "litellm: {}, one process, default settings, master key auth, no database",
                    version_of(&lbin)
                ));
                let (c, m) = measure_proxy(&p, &direct, &plan, litellm_streams, &args, &upstream, &progress).await?;
                comparisons.push(c);
                memory.extend(m);
            }
            Err(e) => notes.push(format!("litellm: not measured, it did not start: {e}")),
        }
    }
    progress.finish();
    for m in &memory {
        note_ramp(m, &mut notes);
    }
    notes.push(format!("load average after: {}", loadavg()));
    notes.push(format!("run took {:.0} s", started.elapsed().as_secs_f64()));

    let report = Report::new(plan, args.chunks as usize, comparisons, memory, nofile, notes);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print!("{}", report.render()),
    }
    Ok(())
}

/// Latency and throughput against a direct baseline, then memory per open stream (when `streams` > 0).
async fn measure_proxy(
    p: &Proc,
    direct: &Target,
    plan: &Plan,
    streams: usize,
    args: &OverheadArgs,
    upstream: &Upstream,
    progress: &Progress,
) -> anyhow::Result<(Comparison, Option<MemoryFigures>)> {
    let c = measure_pair(direct, &p.target, plan, progress).await.map_err(|e| {
        anyhow::anyhow!(
            "{e}
{} log:
{}",
            p.name,
            p.log_tail()
        )
    })?;
    if streams == 0 {
        return Ok((c, None));
    }
    progress.phase(format!("memory: up to {streams} open streams through {}", p.name));
    let m = ramp(&p.target, p.pid, &steps(streams), args.step_timeout(), progress).await?;
    release(upstream).await;
    Ok((c, Some(m)))
}

fn litellm_bin(args: &OverheadArgs, notes: &mut Vec<String>) -> Option<PathBuf> {
    if args.no_litellm {
        return None;
    }
    let found = find_litellm(args.litellm.as_deref());
    if found.is_none() {
        notes.push(
            "litellm: not measured (no `litellm` on PATH; `pip install 'litellm[proxy]'` or --litellm PATH)".into(),
        );
    }
    found
}

/// `/proc/loadavg`'s three averages: how busy the machine was besides this benchmark.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// LiteLLM's version from the Python package beside the executable, if it can be read cheaply.
fn version_of(bin: &std::path::Path) -> String {
    let py = bin.parent().map(|d| d.join("python")).filter(|p| p.is_file());
    let out = py.and_then(|py: PathBuf| {
        std::process::Command::new(py)
            .args(["-c", "import importlib.metadata as m; print(m.version('litellm'))"])
            .output()
            .ok()
    });
    match out {
        Some(o) if o.status.success() => format!("version {}", String::from_utf8_lossy(&o.stdout).trim()),
        _ => "version unknown".into(),
    }
}

fn note_ramp(m: &MemoryFigures, notes: &mut Vec<String>) {
    if let Some(why) = &m.stopped {
        notes.push(format!("{}: memory ramp stopped early: {why}", m.name));
    }
    if let Some(l) = m.fit {
        notes.push(format!(
            "{}: RSS = {:.0} KiB + {:.1} KiB × open streams (r² {:.3}) over {}",
            m.name,
            l.intercept,
            l.slope,
            l.r2,
            m.points
                .iter()
                .map(|p| format!("{}→{} MiB", p.streams, p.rss_kib / 1024))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// Ends the upstream's held streams and waits a little for them to go, so the next ramp starts clean.
async fn release(upstream: &Upstream) {
    upstream.release_held();
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.held() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
