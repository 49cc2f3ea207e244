//! Fair-share scheduler of the Pyxis gateway queue, pure: time is a number passed in, no I/O.
//!
//! - [`Scheduler`]: weighted virtual token counters (VTC, Sheng et al., OSDI'24) with the lift rule, strict
//!   priority classes with share floors, per-tenant and total queue caps (with eviction of preemptible lower
//!   classes), queue timeouts. See docs/scheduling.md for the algorithm and its bound.
//! - [`fairbench`]: FAIRBENCH scenarios S1–S7 run on the virtual-time engine simulator, VTC against FCFS.

mod api;
mod decay;
pub mod fairbench;
mod scheduler;

pub use api::{ClassConfig, Dispatch, Pending, Rejected, SchedConfig, TenantConfig, TenantStats};
pub use scheduler::{DEFAULT_CLASS, DEFAULT_SHARE_WINDOW_MS, Scheduler};
