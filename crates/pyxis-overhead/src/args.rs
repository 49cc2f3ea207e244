//! `pyxis overhead` flags and the plan they make (full run, or `--quick`).

use std::path::PathBuf;
use std::time::Duration;

use crate::measure::Plan;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Tables on stdout.
    #[default]
    Table,
    /// One JSON document on stdout.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (try 10s, 500ms)"))
}

/// Pyxis's own cost: added latency, throughput and memory per stream, against a static upstream and (when
/// installed) LiteLLM in front of the same upstream.
#[derive(clap::Args, Debug, Clone)]
pub struct OverheadArgs {
    /// The pyxis binary to start as the gateway under test [default: this executable].
    #[arg(long, value_name = "PATH")]
    pub pyxis_bin: Option<PathBuf>,
    /// A smoke run of about 20 s: fewer requests, 2 s of saturation, 2000 streams.
    #[arg(long)]
    pub quick: bool,
    /// Non-streamed requests per target at concurrency 1 [default: 2000; quick: 300].
    #[arg(long)]
    pub requests: Option<usize>,
    /// Streamed requests per target at concurrency 1 [default: 500; quick: 100].
    #[arg(long)]
    pub stream_requests: Option<usize>,
    /// Content chunks in each streamed answer of the static upstream.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub chunks: u32,
    /// Workers of the closed-loop saturation test.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Closed-loop time per target, for each of non-streamed and streamed [default: 6s; quick: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub saturation_time: Option<Duration>,
    /// Open streams held through Pyxis for the memory test, at most what RLIMIT_NOFILE allows; 0 skips it
    /// [default: 10000; quick: 2000].
    #[arg(long)]
    pub streams: Option<usize>,
    /// The `litellm` executable to compare with [default: `litellm` on PATH].
    #[arg(long, value_name = "PATH")]
    pub litellm: Option<PathBuf>,
    /// Do not measure LiteLLM even when it is installed.
    #[arg(long, conflicts_with = "litellm")]
    pub no_litellm: bool,
    /// Open streams for LiteLLM's memory test (it opens a few dozen per second on 2 CPUs)
    /// [default: 400; quick: 100].
    #[arg(long)]
    pub litellm_streams: Option<usize>,
    /// Also measure a do-nothing forwarding proxy (hyper in, hyper out, like the gateway) run as a child
    /// process like Pyxis: the floor that one more HTTP hop costs on this machine, before any gateway logic.
    #[arg(long)]
    pub null_proxy: bool,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Only serve the static upstream on 127.0.0.1:--port until interrupted (for experiments by hand).
    #[arg(long, hide = true)]
    pub upstream_only: bool,
    /// Only serve the null proxy on 127.0.0.1:--port in front of --upstream until killed (how `--null-proxy`
    /// starts it as a child process).
    #[arg(long, hide = true, requires = "upstream", conflicts_with = "upstream_only")]
    pub null_proxy_only: bool,
    /// The upstream base URL of `--null-proxy-only`.
    #[arg(long, hide = true, value_name = "URL", requires = "null_proxy_only")]
    pub upstream: Option<String>,
    #[arg(long, default_value_t = 0, hide = true)]
    pub port: u16,
}

impl OverheadArgs {
    /// Defaults, as if no flag were given.
    pub fn defaults() -> OverheadArgs {
        OverheadArgs {
            pyxis_bin: None,
            quick: false,
            requests: None,
            stream_requests: None,
            chunks: 32,
            concurrency: 64,
            saturation_time: None,
            streams: None,
            litellm: None,
            no_litellm: false,
            litellm_streams: None,
            null_proxy: false,
            output: Output::Table,
            upstream_only: false,
            null_proxy_only: false,
            upstream: None,
            port: 0,
        }
    }

    pub fn plan(&self) -> Plan {
        let q = self.quick;
        Plan {
            warmup: if q { 50 } else { 200 },
            latency_requests: self.requests.unwrap_or(if q { 300 } else { 2000 }),
            stream_requests: self.stream_requests.unwrap_or(if q { 100 } else { 500 }),
            phase_limit: Duration::from_secs(if q { 3 } else { 8 }),
            concurrency: self.concurrency as usize,
            saturation: self
                .saturation_time
                .unwrap_or(Duration::from_secs(if q { 2 } else { 6 })),
            rounds: if q { 1 } else { 2 },
        }
    }

    pub fn streams(&self) -> usize {
        self.streams.unwrap_or(if self.quick { 2000 } else { 10_000 })
    }

    pub fn litellm_streams(&self) -> usize {
        self.litellm_streams.unwrap_or(if self.quick { 100 } else { 400 })
    }

    /// Longest wait for one step of a memory ramp.
    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(if self.quick { 15 } else { 30 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: OverheadArgs,
    }

    #[test]
    fn defaults_match_parsing_no_flags_and_quick_is_smaller() {
        let parsed = Cli::parse_from(["x"]).args;
        let d = OverheadArgs::defaults();
        assert_eq!(format!("{:?}", parsed.plan()), format!("{:?}", d.plan()));
        assert_eq!(parsed.streams(), 10_000);
        let q = Cli::parse_from(["x", "--quick", "--saturation-time", "500ms"]).args;
        assert!(q.plan().latency_requests < d.plan().latency_requests);
        assert_eq!(q.plan().saturation, Duration::from_millis(500));
        assert!(Cli::try_parse_from(["x", "--chunks", "1"]).is_err());
        assert!(Cli::try_parse_from(["x", "--no-litellm", "--litellm", "/bin/true"]).is_err());
        assert!(Cli::try_parse_from(["x", "--null-proxy-only", "--port", "9"]).is_err());
        assert!(Cli::try_parse_from(["x", "--upstream", "http://127.0.0.1:9"]).is_err());
    }

    /// The `pyxis` binary: `overhead` is a subcommand.
    #[derive(Parser)]
    struct Pyxis {
        #[command(subcommand)]
        command: PyxisCommand,
    }

    #[derive(clap::Subcommand)]
    enum PyxisCommand {
        Overhead(OverheadArgs),
    }

    /// The crate's example (`examples/overhead.rs`): the flags, after an optional `overhead` word.
    #[derive(Parser)]
    struct Example {
        #[arg(hide = true, value_parser = ["overhead"])]
        _subcommand: Option<String>,
        #[command(flatten)]
        args: OverheadArgs,
    }

    #[test]
    fn the_null_proxy_child_command_line_parses_in_the_binary_and_the_example() {
        let argv = crate::procs::null_proxy_argv(4321, "http://127.0.0.1:9");
        let check = |a: &OverheadArgs| {
            assert!(a.null_proxy_only && !a.upstream_only);
            assert_eq!(a.port, 4321);
            assert_eq!(a.upstream.as_deref(), Some("http://127.0.0.1:9"));
        };
        let PyxisCommand::Overhead(a) =
            Pyxis::parse_from(std::iter::once("pyxis".to_string()).chain(argv.clone())).command;
        check(&a);
        check(&Example::parse_from(std::iter::once("overhead".to_string()).chain(argv)).args);
        // The example without the word, as people run it.
        let e = Example::parse_from(["overhead", "--quick", "--pyxis-bin", "target/release/pyxis"]);
        assert!(e.args.quick && !e.args.null_proxy_only);
    }
}
