//! The outcome of one routing decision: every candidate with its scores or the filter that removed it.

use std::fmt::{self, Write as _};

/// Why a candidate was not eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterReason {
    /// Already tried for this request.
    Excluded,
    /// Failing its health checks.
    Unhealthy,
    /// Ejected as an outlier (until a probe passes).
    Ejected,
    /// Does not have the requested LoRA adapter loaded.
    Adapter,
    /// The model's weights plus KV headroom exceed its memory.
    TooSmall,
    /// Its accelerator class is not allowed.
    Hardware,
    /// Its region is not allowed.
    Region,
    /// Predicted to miss the latency budget while another candidate meets it.
    OverBudget,
}

impl FilterReason {
    /// Short name, as in [`Decision::explain`].
    pub fn as_str(self) -> &'static str {
        match self {
            FilterReason::Excluded => "excluded",
            FilterReason::Unhealthy => "unhealthy",
            FilterReason::Ejected => "ejected",
            FilterReason::Adapter => "no-adapter",
            FilterReason::TooSmall => "too-small",
            FilterReason::Hardware => "hardware",
            FilterReason::Region => "region",
            FilterReason::OverBudget => "over-budget",
        }
    }
}

impl fmt::Display for FilterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One candidate's evaluation. Scores are 0..1, higher is better; `total` is their weighted sum. A candidate
/// with `rejected` set keeps the scores computed before the filter that removed it (zero for hard filters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored<'a> {
    /// Index in the `eps` slice given to [`crate::Router::decide`].
    pub index: usize,
    /// The endpoint's key.
    pub key: &'a str,
    /// Why it was filtered out, if it was.
    pub rejected: Option<FilterReason>,
    /// Load score.
    pub load: f64,
    /// Latency score: fastest predicted TTFT over this one's.
    pub latency: f64,
    /// Prefix score: share of the prompt's blocks it probably holds (0 when the load guard is on).
    pub prefix: f64,
    /// Cost score: cheapest price over this one's.
    pub cost: f64,
    /// Session score: 1 when it served this session last (0 when the load guard is on).
    pub session: f64,
    /// Weighted sum of the scores.
    pub total: f64,
    /// Predicted time to first token, ms.
    pub predicted_ttft_ms: f64,
    /// Load in requests, scaled by how much slower than the fastest candidate it is (what the load guard
    /// compares).
    pub load_units: f64,
    /// Requests outstanding on it: this gateway's in flight, or the scraped running + waiting (weighed by
    /// freshness) when that is more.
    pub outstanding: u32,
    /// Prompt tokens it is expected to prefill (not in its cache).
    pub uncached_tokens: u32,
    /// Prefill tokens sent to it before and still awaiting their first token (the queue ahead).
    pub queued_tokens: u32,
    /// Leading prompt blocks it probably holds.
    pub prefix_depth: u32,
    /// The load guard switched its affinity off.
    pub guarded: bool,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    /// Index of the chosen endpoint in `eps`, or `None` when no candidate is eligible.
    pub chosen: Option<usize>,
    /// Every endpoint in `eps`, in order.
    pub candidates: Vec<Scored<'a>>,
}

impl<'a> Decision<'a> {
    /// The chosen candidate's evaluation.
    pub fn chosen_scored(&self) -> Option<&Scored<'a>> {
        self.chosen.and_then(|i| self.candidates.get(i))
    }

    /// One line for a debug header or a log: the choice, then each candidate with its scores, or why it
    /// was filtered. Example:
    /// `chose=1 http://b | 0 http://a tot=2.41 load=0.50 lat=0.62 pfx=0.00 cost=1.00 sess=0 ttft=81ms q=3 |
    /// 1 http://b tot=3.90 ... | 2 http://c unhealthy`; `guard` follows a candidate whose affinity the load
    /// guard switched off.
    pub fn explain(&self) -> String {
        let mut s = String::with_capacity(48 + self.candidates.len() * 96);
        match self.chosen_scored() {
            Some(c) => {
                let _ = write!(s, "chose={} {}", c.index, c.key);
            }
            None => s.push_str("chose=none"),
        }
        for c in &self.candidates {
            let _ = write!(s, " | {} {}", c.index, c.key);
            match c.rejected {
                Some(FilterReason::OverBudget) => {
                    let _ = write!(s, " over-budget ttft={:.0}ms", c.predicted_ttft_ms);
                }
                Some(r) => {
                    let _ = write!(s, " {r}");
                }
                None => {
                    let _ = write!(
                        s,
                        " tot={:.2} load={:.2} lat={:.2} pfx={:.2} cost={:.2} sess={:.0} ttft={:.0}ms q={:.1}",
                        c.total, c.load, c.latency, c.prefix, c.cost, c.session, c.predicted_ttft_ms, c.load_units
                    );
                    if c.guarded {
                        s.push_str(" guard");
                    }
                }
            }
        }
        s
    }
}
