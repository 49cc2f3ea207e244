//! `pyxis overhead`: what the gateway itself costs. Against a static OpenAI-compatible upstream that answers
//! at once, it measures directly and through Pyxis (the real binary, started as a child with quotas, queue and
//! audit on), and through LiteLLM when installed: added latency at concurrency 1 (whole and streamed answers),
//! closed-loop throughput as a share of direct, and proxy memory per open stream. See `docs/overhead.md`.
//!
//! [`run`] is the command; [`measure_pair`] is the core over two base URLs (direct, through), usable on its own.

mod args;
pub mod client;
pub mod measure;
pub mod memory;
pub mod nullproxy;
pub mod procs;
mod progress;
pub mod report;
mod run;
pub mod stats;
pub mod upstream;

pub use args::{Output, OverheadArgs};
pub use client::Target;
pub use measure::{Comparison, Figures, Plan, measure_pair};
pub use progress::Progress;
pub use report::Report;
pub use run::run;
pub use upstream::{Upstream, UpstreamConfig};
