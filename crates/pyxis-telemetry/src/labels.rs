//! Bounded label values: the first N distinct names keep their own series, later ones fold into `other`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;

/// Where names beyond a label's cap go.
pub const OTHER: &str = "other";
/// What an empty name is shown as (Prometheus treats an empty label value as no label at all).
pub const NONE: &str = "none";

/// A label value shared by every series that carries it; cloning only bumps a reference count,
/// so building a label set on the request path does not allocate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Lv(Arc<str>);

impl Lv {
    pub(crate) fn new(s: &str) -> Self {
        Lv(Arc::from(s))
    }

    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Lv {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

/// Interns one label's values up to a cap. Names seen first win; `pin` keeps a name regardless
/// of the cap (the fleet's own models and endpoints, so client-chosen junk cannot crowd them out).
pub(crate) struct Interner {
    cap: usize,
    map: RwLock<HashMap<Box<str>, Lv>>,
    other: Lv,
    none: Lv,
    folds: Counter,
}

impl Interner {
    pub(crate) fn new(cap: usize, folds: Counter) -> Self {
        Interner {
            cap,
            map: RwLock::new(HashMap::new()),
            other: Lv::new(OTHER),
            none: Lv::new(NONE),
            folds,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Lv {
        if name.is_empty() {
            return self.none.clone();
        }
        {
            let map = self.map.read();
            if let Some(v) = map.get(name) {
                return v.clone();
            }
            // Past the cap, folded names never take the write lock.
            if map.len() >= self.cap {
                self.folds.inc();
                return self.other.clone();
            }
        }
        let mut map = self.map.write();
        if let Some(v) = map.get(name) {
            return v.clone();
        }
        if map.len() >= self.cap {
            self.folds.inc();
            return self.other.clone();
        }
        let v = Lv::new(name);
        map.insert(name.into(), v.clone());
        v
    }

    pub(crate) fn pin(&self, name: &str) {
        if name.is_empty() {
            return;
        }
        let mut map = self.map.write();
        if !map.contains_key(name) {
            map.insert(name.into(), Lv::new(name));
        }
    }

    /// The value for `name` if it already has one (never takes a slot).
    pub(crate) fn peek(&self, name: &str) -> Option<Lv> {
        self.map.read().get(name).cloned()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub tenant: Lv,
    pub model: Lv,
    pub endpoint: Lv,
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TenantModel {
    pub tenant: Lv,
    pub model: Lv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TenantClass {
    pub tenant: Lv,
    pub priority_class: Lv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct TenantReason {
    pub tenant: Lv,
    pub reason: Lv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ModelReason {
    pub model: Lv,
    pub reason: Lv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct EndpointLabel {
    pub endpoint: Lv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct EndpointKind {
    pub endpoint: Lv,
    pub runtime_kind: Lv,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ThreadLabel {
    /// The I/O thread's number, from 1.
    pub thread: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct LabelName {
    pub label: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_past_the_cap_but_keeps_pinned_and_known_names() {
        let folds = Counter::default();
        let i = Interner::new(2, folds.clone());
        assert_eq!(i.get("a").as_str(), "a");
        assert_eq!(i.get("b").as_str(), "b");
        assert_eq!(i.get("c").as_str(), OTHER);
        assert_eq!(i.get("a").as_str(), "a");
        i.pin("d");
        assert_eq!(i.get("d").as_str(), "d");
        assert_eq!(i.get("").as_str(), NONE);
        assert_eq!(folds.get(), 1);
        assert!(i.peek("c").is_none());
    }
}
