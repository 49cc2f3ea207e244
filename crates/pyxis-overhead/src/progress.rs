//! One progress bar on stderr for the whole run; phase names as plain lines when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Print phase names on their own lines (stderr is a file or pipe).
    lines: bool,
}

impl Progress {
    /// A bar of `total` units when stderr is a terminal, else phase lines.
    pub fn new(total: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None, lines: true };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("[{bar:30.cyan/blue}] {percent:>3}% {elapsed_precise} {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar: Some(bar),
            lines: false,
        }
    }

    /// Shows nothing (tests, JSON pipelines).
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            lines: false,
        }
    }

    pub fn phase(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if self.lines {
            eprintln!("overhead: {msg}");
        }
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
