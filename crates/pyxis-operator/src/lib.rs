//! Kubernetes mode of Pyxis: the Pyxis kinds as CRDs ([`crds_yaml`]), the operator that turns ModelDeployments
//! into Deployments and Services per runtime kind ([`run_operator`]), and the fleet watch that feeds the gateway
//! ([`watch_fleet`]).
//!
//! kube and k8s-openapi are confined to this crate: everything else in the workspace sees only
//! `pyxis_resources` types (the spec types wrapped here, the [`pyxis_resources::Fleet`] yielded by the watch).

pub mod assemble;
pub mod catalog;
pub mod conditions;
pub mod crd;
mod error;
#[cfg(test)]
mod fake;
pub mod launch;
pub mod quota;
pub mod reconcile;
#[cfg(test)]
mod reconcile_tests;
mod run;
pub mod schema;
mod watch;
#[cfg(test)]
mod watch_tests;
pub mod workload;
#[cfg(test)]
mod workload_tests;

pub use crd::{crd_files, crds, crds_yaml};
pub use error::Error;
pub use run::{KueueMode, OperatorArgs, kueue_installed, run_operator};
pub use watch::{kubernetes_fleet, watch_fleet};
