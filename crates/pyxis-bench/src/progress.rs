//! The progress bar on stderr while a load point runs (hidden when stderr is not a terminal).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Amount;

/// A bar for one load point, or nothing.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    amount: Amount,
}

impl Progress {
    /// `label` prefixes the bar, e.g. `[2/3] concurrency 4`.
    pub(crate) fn new(enabled: bool, label: String, amount: Amount) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None, amount };
        }
        let (len, template) = match amount {
            Amount::Requests(n) => (n, "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} {msg}"),
            Amount::Duration(d) => (
                d.as_millis().try_into().unwrap_or(u64::MAX),
                "{prefix} [{bar:30.cyan/blue}] {elapsed_precise} {msg}",
            ),
        };
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar), amount }
    }

    /// Shows `ok` completed and `failed` requests after `elapsed`.
    pub(crate) fn update(&self, ok: u64, failed: u64, in_flight: u64, elapsed: Duration) {
        let Some(bar) = &self.bar else { return };
        match self.amount {
            Amount::Requests(_) => bar.set_position(ok + failed),
            Amount::Duration(d) => bar.set_position(elapsed.min(d).as_millis().try_into().unwrap_or(u64::MAX)),
        }
        let rate = if elapsed.as_secs_f64() > 0.0 {
            ok as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        bar.set_message(format!(
            "ok {ok} · failed {failed} · in flight {in_flight} · {rate:.1} req/s"
        ));
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
