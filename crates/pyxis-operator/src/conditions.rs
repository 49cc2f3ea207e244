//! The `Ready`, `Progressing` and `Degraded` conditions of a ModelDeployment, derived from one reconcile's outcome.

use crate::crd::Condition;

/// What a reconcile found, as far as conditions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The workload is applied; `ready` of `desired` pods are ready; `rolling`: the Deployment has not caught up
    /// with its spec yet.
    Applied { ready: u32, desired: u32, rolling: bool },
    /// Not deployed, with a CamelCase reason and a message (QuotaExceeded, ModelNotFound, NoRuntime, ...).
    Blocked { reason: String, message: String },
}

/// The conditions for `outcome` at `generation`; a condition whose status and reason did not change keeps its
/// `lastTransitionTime` from `old`, so an unchanged state writes an identical status.
pub fn conditions(outcome: &Outcome, generation: Option<i64>, old: &[Condition], now: &str) -> Vec<Condition> {
    let (ready, progressing, degraded) = match outcome {
        Outcome::Applied {
            ready,
            desired,
            rolling,
        } => {
            let all = ready >= desired;
            (
                (
                    all,
                    if all { "AllReplicasReady" } else { "ReplicasNotReady" },
                    format!("{ready}/{desired} ready"),
                ),
                (
                    *rolling || !all,
                    if *rolling || !all { "RollingOut" } else { "Complete" },
                    String::new(),
                ),
                (false, "Applied", String::new()),
            )
        }
        Outcome::Blocked { reason, message } => (
            (false, reason.as_str(), message.clone()),
            (false, reason.as_str(), String::new()),
            (true, reason.as_str(), message.clone()),
        ),
    };
    [("Ready", ready), ("Progressing", progressing), ("Degraded", degraded)]
        .into_iter()
        .map(|(ty, (status, reason, message))| {
            let status = if status { "True" } else { "False" }.to_string();
            let since = old
                .iter()
                .find(|c| c.r#type == ty && c.status == status && c.reason == reason)
                .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
            Condition {
                r#type: ty.into(),
                status,
                reason: reason.into(),
                message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_progressing_degraded() {
        let c = conditions(
            &Outcome::Applied {
                ready: 1,
                desired: 2,
                rolling: false,
            },
            Some(3),
            &[],
            "t0",
        );
        let get = |ty: &str| c.iter().find(|x| x.r#type == ty).unwrap().clone();
        assert_eq!(
            (get("Ready").status.as_str(), get("Ready").reason.as_str()),
            ("False", "ReplicasNotReady")
        );
        assert_eq!(get("Ready").message, "1/2 ready");
        assert_eq!(get("Progressing").status, "True");
        assert_eq!(get("Degraded").status, "False");
        assert_eq!(get("Degraded").observed_generation, Some(3));

        let blocked = Outcome::Blocked {
            reason: "QuotaExceeded".into(),
            message: "8 > 4".into(),
        };
        let c = conditions(&blocked, Some(3), &[], "t0");
        assert_eq!(c[2].r#type, "Degraded");
        assert_eq!(
            (c[2].status.as_str(), c[2].reason.as_str(), c[2].message.as_str()),
            ("True", "QuotaExceeded", "8 > 4")
        );
    }

    #[test]
    fn transition_time_kept_while_unchanged() {
        let done = Outcome::Applied {
            ready: 2,
            desired: 2,
            rolling: false,
        };
        let first = conditions(&done, Some(1), &[], "t0");
        assert!(first.iter().all(|c| c.last_transition_time == "t0"));
        let again = conditions(&done, Some(1), &first, "t1");
        assert_eq!(again, first);
        let worse = conditions(
            &Outcome::Applied {
                ready: 1,
                desired: 2,
                rolling: false,
            },
            Some(1),
            &first,
            "t2",
        );
        assert_eq!(worse[0].last_transition_time, "t2", "Ready changed");
        assert_eq!(worse[2].last_transition_time, "t0", "Degraded did not");
    }
}
