//! What a run produced: one [`PointReport`] per load point, serialisable as the `--output json` document.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::config::{Endpoint, Load, Slo};
use crate::metrics::{Metrics, RequestRecord};

/// Results of every load point, in the order run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub points: Vec<PointReport>,
}

impl BenchReport {
    /// The `--output json` document: the point itself for a single point, an array for a sweep.
    pub fn to_json(&self) -> Value {
        let v = match self.points.as_slice() {
            [one] => serde_json::to_value(one),
            many => serde_json::to_value(many),
        };
        v.unwrap_or(Value::Null)
    }

    /// The same document as text, keys in declaration order (pretty-printed).
    pub fn to_json_string(&self) -> serde_json::Result<String> {
        match self.points.as_slice() {
            [one] => serde_json::to_string_pretty(one),
            many => serde_json::to_string_pretty(many),
        }
    }

    /// True when several load points were run.
    pub fn is_sweep(&self) -> bool {
        self.points.len() > 1
    }
}

/// Results of one tenant (one API key) within a point.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    pub tenant: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// Results of one load point.
#[derive(Debug, Clone, Serialize)]
pub struct PointReport {
    pub url: String,
    pub model: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    #[serde(serialize_with = "serialize_load")]
    pub load: Load,
    /// Cap on requests in flight for open-loop loads.
    pub max_concurrency: Option<u32>,
    /// Most requests in flight at once during the point.
    pub peak_in_flight: u64,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// The objectives goodput was measured against.
    pub slo: Option<Slo>,
    /// Per tenant, when several keys were used.
    pub tenants: Vec<TenantReport>,
    /// Every request's measurements (not in the JSON document).
    #[serde(skip)]
    pub records: Vec<RequestRecord>,
}

fn serialize_load<S: Serializer>(load: &Load, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    match *load {
        Load::Concurrency(c) => {
            m.serialize_entry("kind", "concurrency")?;
            m.serialize_entry("concurrency", &c)?;
        }
        Load::Rate(r) => {
            m.serialize_entry("kind", "rate")?;
            // JSON has no infinity: null means all requests at once.
            m.serialize_entry("request_rate", &r.is_finite().then_some(r))?;
        }
        Load::Burst { size, interval } => {
            m.serialize_entry("kind", "burst")?;
            m.serialize_entry("burst_size", &size)?;
            m.serialize_entry("burst_interval_s", &interval.as_secs_f64())?;
        }
    }
    m.serialize_entry("description", &load.describe())?;
    m.end()
}
