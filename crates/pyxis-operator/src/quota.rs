//! Per-tenant accelerator quota: which of a tenant's ModelDeployments fit its quota on each accelerator class.
//!
//! The decision is a pure function of the cluster state, so every reconcile (of any deployment) reaches the same
//! answer and two deployments reconciled at once cannot both take the last accelerators: deployments are admitted
//! oldest first (creation time, then name), each if it still fits. This is a check, not a scheduler; Kueue does
//! fair sharing where it runs.

use std::collections::BTreeMap;

/// One deployment's claim on accelerators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    /// Creation time in seconds since the epoch; `None` for a deployment not created yet.
    pub created: Option<i64>,
    pub tenant: Option<String>,
    pub class: String,
    /// replicas × accelerators per replica.
    pub accelerators: u32,
}

/// The outcome for one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// Accelerators of the class held by the tenant's admitted deployments (this one included when admitted).
    pub used: u32,
    pub limit: Option<u32>,
}

/// Admits `claims` (all deployments of the namespace; others' tenants are ignored) against `quota` (the tenant's
/// `acceleratorQuota`; `None`: unlimited; a class missing from it: 0) and returns the decision for `name`
/// together with the tenant's usage per class.
pub fn decide(
    name: &str,
    tenant: &str,
    claims: &[Claim],
    quota: Option<&BTreeMap<String, u32>>,
) -> (Decision, BTreeMap<String, u32>) {
    let mut mine: Vec<&Claim> = claims.iter().filter(|c| c.tenant.as_deref() == Some(tenant)).collect();
    // A deployment not created yet sorts last, after every existing one.
    mine.sort_by_key(|c| (c.created.is_none(), c.created, c.name.clone()));
    let limit_of = |class: &str| quota.map(|q| q.get(class).copied().unwrap_or(0));
    let mut used: BTreeMap<String, u32> = BTreeMap::new();
    let mut admitted_me = false;
    for c in &mine {
        let slot = used.entry(c.class.clone()).or_default();
        let after = slot.saturating_add(c.accelerators);
        if limit_of(&c.class).is_none_or(|l| after <= l) {
            *slot = after;
            admitted_me |= c.name == name;
        }
    }
    used.retain(|_, n| *n > 0);
    let class = mine
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.class.as_str())
        .unwrap_or_default();
    let decision = Decision {
        admitted: admitted_me,
        used: used.get(class).copied().unwrap_or(0),
        limit: limit_of(class),
    };
    (decision, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, created: Option<i64>, tenant: &str, class: &str, n: u32) -> Claim {
        Claim {
            name: name.into(),
            created,
            tenant: Some(tenant.into()),
            class: class.into(),
            accelerators: n,
        }
    }

    #[test]
    fn oldest_first_and_smaller_ones_still_fit() {
        let quota = BTreeMap::from([("h100".to_string(), 8)]);
        let claims = vec![
            claim("b", Some(2), "t", "h100", 4),
            claim("a", Some(1), "t", "h100", 2),
            claim("c", Some(3), "t", "h100", 4),
            claim("d", Some(4), "t", "h100", 2),
            claim("x", Some(1), "other", "h100", 8),
            claim("l4", Some(1), "t", "l4", 1),
        ];
        let (d, usage) = decide("c", "t", &claims, Some(&quota));
        assert_eq!(
            d,
            Decision {
                admitted: false,
                used: 8,
                limit: Some(8)
            }
        );
        assert_eq!(usage, BTreeMap::from([("h100".to_string(), 8)]));
        let (d, _) = decide("d", "t", &claims, Some(&quota));
        assert!(d.admitted, "a (2) + b (4) + d (2) = 8 fits after c (4) was refused");
        let (d, _) = decide("l4", "t", &claims, Some(&quota));
        assert_eq!(
            d,
            Decision {
                admitted: false,
                used: 0,
                limit: Some(0)
            },
            "a class not in the quota has none"
        );
    }

    #[test]
    fn no_quota_admits_everything_and_counts() {
        let claims = vec![claim("a", Some(1), "t", "h100", 4), claim("b", None, "t", "h100", 16)];
        let (d, usage) = decide("b", "t", &claims, None);
        assert_eq!(
            d,
            Decision {
                admitted: true,
                used: 20,
                limit: None
            }
        );
        assert_eq!(usage["h100"], 20);
    }

    #[test]
    fn not_yet_created_goes_last() {
        let quota = BTreeMap::from([("h100".to_string(), 4)]);
        let claims = vec![
            claim("new", None, "t", "h100", 4),
            claim("old", Some(1), "t", "h100", 4),
        ];
        assert!(!decide("new", "t", &claims, Some(&quota)).0.admitted);
        assert!(decide("old", "t", &claims, Some(&quota)).0.admitted);
    }
}
