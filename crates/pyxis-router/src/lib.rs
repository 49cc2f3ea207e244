//! Pure routing decisions: which endpoint serves a request. No I/O and no clock: time is `now_ms`, passed in.
//!
//! [`Router::decide`] filters the candidate endpoints (health, outlier ejection, LoRA adapter, memory fit,
//! hardware and region constraints, latency budget), scores the rest (load, predicted time to first token,
//! prefix-cache affinity under a load guard, cost, session affinity), blends the scores with [`Weights`] and
//! rotates ties. The caller reports what happened ([`Router::on_dispatch`], [`Router::on_first_token`],
//! [`Router::on_success`], [`Router::on_failure`]) and the router learns: a TTFT model per endpoint, an
//! approximate prefix index, sessions, ejections. [`pick`] is the earlier least-in-flight policy.
//! Formulas and defaults: `docs/routing.md`.

mod config;
mod decision;
mod eject;
mod hash;
mod lru;
mod pick;
mod router;
mod state;
mod ttft;
mod view;

pub use config::{EjectionConfig, RoutingConfig, Weights};
pub use decision::{Decision, FilterReason, Scored};
pub use eject::backoff_ms;
pub use hash::{DEFAULT_BLOCK_BYTES, prefix_blocks};
pub use pick::{Candidate, pick};
pub use router::{Router, fits};
pub use view::{EndpointView, LoadSignal, RouteRequest};
