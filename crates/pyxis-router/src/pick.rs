//! The first policy, kept for callers not yet on [`crate::Router`]: least requests in flight, ties rotated.

/// What the router knows about one endpoint at decision time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Passed the health check and is not ejected.
    pub healthy: bool,
    /// Requests Pyxis has in flight to this endpoint right now.
    pub in_flight: u32,
}

/// Least requests in flight among healthy candidates. Ties go to the first candidate at or after
/// `rotation % len`, so equal endpoints share load instead of all traffic landing on index 0.
pub fn pick(candidates: &[Candidate], rotation: usize) -> Option<usize> {
    let n = candidates.len();
    if n == 0 {
        return None;
    }
    let start = rotation % n;
    let mut best: Option<(usize, u32)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        let c = candidates[i];
        if !c.healthy {
            continue;
        }
        if best.is_none_or(|(_, load)| c.in_flight < load) {
            best = Some((i, c.in_flight));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(healthy: bool, in_flight: u32) -> Candidate {
        Candidate { healthy, in_flight }
    }

    #[test]
    fn picks_least_loaded_healthy() {
        let cs = [c(true, 3), c(false, 0), c(true, 1), c(true, 2)];
        assert_eq!(pick(&cs, 0), Some(2));
        assert_eq!(pick(&[c(false, 0)], 0), None);
        assert_eq!(pick(&[], 7), None);
    }

    #[test]
    fn ties_rotate() {
        let cs = [c(true, 0), c(true, 0), c(true, 0)];
        let picks: Vec<_> = (0..3).map(|r| pick(&cs, r)).collect();
        assert_eq!(picks, vec![Some(0), Some(1), Some(2)]);
    }

    proptest! {
        #[test]
        fn never_picks_unhealthy_or_heavier(loads in prop::collection::vec((any::<bool>(), 0u32..10), 0..12), rot in 0usize..100) {
            let cs: Vec<_> = loads.iter().map(|&(h, l)| c(h, l)).collect();
            match pick(&cs, rot) {
                None => prop_assert!(cs.iter().all(|c| !c.healthy)),
                Some(i) => {
                    prop_assert!(cs[i].healthy);
                    prop_assert!(cs.iter().filter(|c| c.healthy).all(|c| c.in_flight >= cs[i].in_flight));
                }
            }
        }
    }
}
