//! FAIRBENCH measurements: the service gap between tenants backlogged together, per-second service against an
//! ideal weighted fair (GPS) reference for windowed Jain's index, and time-to-first-token samples.

use std::collections::HashMap;

use pyxis_sim_core::Time;

/// Largest |ΔW_f/w_f − ΔW_g/w_g| over intervals in which f and g (same class) are both backlogged.
#[derive(Debug, Clone)]
pub(crate) struct GapTracker {
    n: usize,
    weights: Vec<f64>,
    class: Vec<u8>,
    u: f64,
    norm: Vec<f64>,
    backlogged: Vec<bool>,
    /// Min and max of norm[f] − norm[g] (f < g) since the pair became backlogged together.
    span: Vec<Option<(f64, f64)>>,
    pub max_gap: f64,
    /// Max over pairs of gap / (U/w_f + U/w_g): the bound, 2U at equal unit weights.
    pub max_ratio: f64,
}

impl GapTracker {
    pub(crate) fn new(weights: Vec<f64>, class: Vec<u8>, u: f64) -> Self {
        let n = weights.len();
        GapTracker {
            n,
            weights,
            class,
            u,
            norm: vec![0.0; n],
            backlogged: vec![false; n],
            span: vec![None; n * n],
            max_gap: 0.0,
            max_ratio: 0.0,
        }
    }

    fn pair(&mut self, a: usize, b: usize) {
        let (f, g) = (a.min(b), a.max(b));
        let d = self.norm[f] - self.norm[g];
        if let Some((lo, hi)) = self.span[f * self.n + g].as_mut() {
            *lo = lo.min(d);
            *hi = hi.max(d);
            let gap = *hi - *lo;
            self.max_gap = self.max_gap.max(gap);
            let bound = self.u / self.weights[f] + self.u / self.weights[g];
            self.max_ratio = self.max_ratio.max(gap / bound);
        }
    }

    /// Weighted service (not yet normalised) delivered to `t`.
    pub(crate) fn serve(&mut self, t: usize, amount: f64) {
        self.norm[t] += amount / self.weights[t];
        if self.backlogged[t] {
            for j in 0..self.n {
                if j != t && self.backlogged[j] && self.class[j] == self.class[t] {
                    self.pair(t, j);
                }
            }
        }
    }

    pub(crate) fn set_backlogged(&mut self, t: usize, on: bool) {
        if on == self.backlogged[t] {
            return;
        }
        self.backlogged[t] = on;
        for j in 0..self.n {
            if j == t || self.class[j] != self.class[t] {
                continue;
            }
            let (f, g) = (t.min(j), t.max(j));
            let idx = f * self.n + g;
            if on && self.backlogged[j] {
                let d = self.norm[f] - self.norm[g];
                self.span[idx] = Some((d, d));
            } else {
                self.span[idx] = None;
            }
        }
    }
}

/// One arrival, for the fair reference.
#[derive(Debug, Clone, Copy)]
struct Arrived {
    at: Time,
    tenant: u32,
    input: u32,
    max_out: u32,
}

/// Everything FAIRBENCH measures in one run.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub w_in: f64,
    pub w_out: f64,
    n: usize,
    /// [second][tenant] weighted service delivered (input at dispatch, output per token).
    pub service: Vec<Vec<f64>>,
    /// [second][tenant] weighted cost arrived (input + max output).
    pub arrived: Vec<Vec<f64>>,
    /// [second] tokens processed (input at dispatch + output).
    pub tokens: Vec<f64>,
    /// [second][tenant] requests dispatched.
    pub dispatches: Vec<Vec<u32>>,
    /// Per tenant: dispatch times.
    pub dispatch_times: Vec<Vec<Time>>,
    queued: Vec<u32>,
    pub gap: GapTracker,
    arrivals: Vec<Arrived>,
    waiting_first: HashMap<u64, (u32, Time)>,
    last_token: HashMap<u64, Time>,
    itl_sum: f64,
    itl_n: u64,
    /// Per tenant: (arrival, TTFT) of every request that produced a token.
    pub ttft: Vec<Vec<(Time, f64)>>,
    /// Per tenant: (arrival, time queued in the gateway) of every dispatched request.
    pub wait: Vec<Vec<(Time, f64)>>,
}

fn bin<T: Clone + Default>(v: &mut Vec<Vec<T>>, t: Time, n: usize) -> &mut Vec<T> {
    let i = t.max(0.0) as usize;
    if v.len() <= i {
        v.resize(i + 1, vec![T::default(); n]);
    }
    &mut v[i]
}

impl Recorder {
    pub(crate) fn new(w_in: f64, w_out: f64, weights: Vec<f64>, class: Vec<u8>, u: f64) -> Self {
        let n = weights.len();
        Recorder {
            w_in,
            w_out,
            n,
            service: Vec::new(),
            arrived: Vec::new(),
            tokens: Vec::new(),
            dispatches: Vec::new(),
            dispatch_times: vec![Vec::new(); n],
            queued: vec![0; n],
            gap: GapTracker::new(weights, class, u),
            arrivals: Vec::new(),
            waiting_first: HashMap::new(),
            last_token: HashMap::new(),
            itl_sum: 0.0,
            itl_n: 0,
            ttft: vec![Vec::new(); n],
            wait: vec![Vec::new(); n],
        }
    }

    pub(crate) fn arrive(&mut self, now: Time, id: u64, tenant: u32, input: u32, max_out: u32) {
        let t = tenant as usize;
        let cost = self.w_in * f64::from(input) + self.w_out * f64::from(max_out);
        bin(&mut self.arrived, now, self.n)[t] += cost;
        self.arrivals.push(Arrived {
            at: now,
            tenant,
            input,
            max_out,
        });
        self.waiting_first.insert(id, (tenant, now));
        self.queued[t] += 1;
        self.gap.set_backlogged(t, true);
    }

    pub(crate) fn dispatch(&mut self, now: Time, id: u64, tenant: u32, input: u32) {
        let t = tenant as usize;
        if let Some((_, at)) = self.waiting_first.get(&id) {
            self.wait[t].push((*at, now - at));
        }
        let w = self.w_in * f64::from(input);
        bin(&mut self.service, now, self.n)[t] += w;
        bin(&mut self.dispatches, now, self.n)[t] += 1;
        self.dispatch_times[t].push(now);
        let i = now.max(0.0) as usize;
        if self.tokens.len() <= i {
            self.tokens.resize(i + 1, 0.0);
        }
        self.tokens[i] += f64::from(input);
        self.gap.serve(t, w);
        self.queued[t] = self.queued[t].saturating_sub(1);
        if self.queued[t] == 0 {
            self.gap.set_backlogged(t, false);
        }
    }

    pub(crate) fn token(&mut self, now: Time, id: u64, tenant: u32) {
        let t = tenant as usize;
        bin(&mut self.service, now, self.n)[t] += self.w_out;
        let i = now.max(0.0) as usize;
        if self.tokens.len() <= i {
            self.tokens.resize(i + 1, 0.0);
        }
        self.tokens[i] += 1.0;
        self.gap.serve(t, self.w_out);
        if let Some((tn, at)) = self.waiting_first.remove(&id) {
            self.ttft[tn as usize].push((at, now - at));
        }
        if let Some(prev) = self.last_token.insert(id, now) {
            self.itl_sum += now - prev;
            self.itl_n += 1;
        }
    }

    pub(crate) fn done(&mut self, id: u64) {
        self.last_token.remove(&id);
    }

    /// Sum of per-second rows over [from, to) seconds, per tenant.
    pub(crate) fn sum(rows: &[Vec<f64>], n: usize, from: f64, to: f64) -> Vec<f64> {
        let mut out = vec![0.0; n];
        let (a, b) = (from.max(0.0) as usize, (to.max(0.0) as usize).min(rows.len()));
        for row in rows.get(a..b).unwrap_or(&[]) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        out
    }

    pub(crate) fn tenants(&self) -> usize {
        self.n
    }

    /// Tokens per second over [from, to).
    pub(crate) fn throughput(&self, from: f64, to: f64) -> f64 {
        let (a, b) = (from.max(0.0) as usize, (to.max(0.0) as usize).min(self.tokens.len()));
        let s: f64 = self.tokens.get(a..b).unwrap_or(&[]).iter().sum();
        s / (to - from).max(1e-9)
    }

    /// [second][tenant] service an ideal weighted fair (GPS) server would have given, second by second, with
    /// the capacity actually delivered that second. A request's demand appears as it could be served: input
    /// at arrival, output spread over `max_out` × the run's mean inter-token time.
    pub(crate) fn fair_reference(&self, weights: &[f64]) -> Vec<Vec<f64>> {
        let secs = self.service.len();
        let tpot = if self.itl_n > 0 {
            self.itl_sum / self.itl_n as f64
        } else {
            0.01
        };
        let mut demand = vec![vec![0.0; self.n]; secs + 1];
        for a in &self.arrivals {
            let t = a.tenant as usize;
            let start = a.at.max(0.0);
            if let Some(row) = demand.get_mut(start as usize) {
                row[t] += self.w_in * f64::from(a.input);
            }
            let (end, total) = (start + f64::from(a.max_out) * tpot, self.w_out * f64::from(a.max_out));
            let span = (end - start).max(1e-9);
            let mut s = start;
            while s < end && (s as usize) < secs {
                let next = (s.floor() + 1.0).min(end);
                demand[s as usize][t] += total * (next - s) / span;
                s = next;
            }
        }
        let mut backlog = vec![0.0; self.n];
        let mut fair = Vec::with_capacity(secs);
        for (k, served) in self.service.iter().enumerate() {
            for (b, d) in backlog.iter_mut().zip(&demand[k]) {
                *b += d;
            }
            let alloc = max_min_shares(&backlog, weights, served.iter().sum());
            for (b, a) in backlog.iter_mut().zip(&alloc) {
                *b -= a;
            }
            fair.push(alloc);
        }
        fair
    }
}

/// Weighted max-min fair shares of `capacity` among `demand`s.
pub(crate) fn max_min_shares(demand: &[f64], weights: &[f64], capacity: f64) -> Vec<f64> {
    let mut share = vec![0.0; demand.len()];
    let mut active: Vec<usize> = (0..demand.len()).filter(|&i| demand[i] > 0.0).collect();
    let mut left = capacity;
    while !active.is_empty() && left > 1e-9 {
        let wsum: f64 = active.iter().map(|&i| weights[i]).sum();
        let level = left / wsum;
        let (sat, rest): (Vec<usize>, Vec<usize>) = active
            .iter()
            .partition(|&&i| demand[i] - share[i] <= level * weights[i]);
        if sat.is_empty() {
            for &i in &rest {
                share[i] += level * weights[i];
            }
            break;
        }
        for &i in &sat {
            left -= demand[i] - share[i];
            share[i] = demand[i];
        }
        active = rest;
    }
    share
}

/// Jain's index and the floor (least ratio) of service over the fair reference, per window, over tenants whose
/// fair share in the window is at least 0.2 % of what was served.
pub(crate) fn jain_windows(rec: &Recorder, weights: &[f64], from: f64, to: f64, window: f64) -> Vec<(f64, f64)> {
    let n = rec.tenants();
    let fair = rec.fair_reference(weights);
    let mut out = Vec::new();
    let mut a = from;
    while a + window <= to + 1e-9 {
        let b = a + window;
        let served = Recorder::sum(&rec.service, n, a, b);
        let share = Recorder::sum(&fair, n, a, b);
        let total: f64 = served.iter().sum();
        let x: Vec<f64> = (0..n)
            .filter(|&i| share[i] > 0.002 * total)
            .map(|i| served[i] / share[i])
            .collect();
        if !x.is_empty() {
            let s: f64 = x.iter().sum();
            let s2: f64 = x.iter().map(|v| v * v).sum();
            let j = if s2 > 0.0 { s * s / (x.len() as f64 * s2) } else { 0.0 };
            let floor = x.iter().copied().fold(f64::INFINITY, f64::min);
            out.push((j, floor));
        }
        a = b;
    }
    out
}

/// Nearest-rank quantile (0 for an empty set).
pub(crate) fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_min_fills_small_demands_first_then_splits_by_weight() {
        let s = max_min_shares(&[10.0, 100.0, 100.0], &[1.0, 1.0, 3.0], 110.0);
        assert!((s[0] - 10.0).abs() < 1e-9);
        assert!((s[1] - 25.0).abs() < 1e-9 && (s[2] - 75.0).abs() < 1e-9, "{s:?}");
        let under = max_min_shares(&[10.0, 20.0], &[1.0, 1.0], 100.0);
        assert_eq!(under, vec![10.0, 20.0]);
    }

    #[test]
    fn gap_counts_only_while_both_are_backlogged() {
        let mut g = GapTracker::new(vec![1.0, 1.0], vec![0, 0], 10.0);
        g.serve(0, 1000.0); // before the pair is backlogged: ignored
        g.set_backlogged(0, true);
        g.set_backlogged(1, true);
        g.serve(0, 5.0);
        g.serve(1, 2.0);
        assert_eq!(g.max_gap, 5.0);
        g.set_backlogged(1, false);
        g.serve(0, 100.0);
        assert_eq!(g.max_gap, 5.0);
        assert!((g.max_ratio - 0.25).abs() < 1e-12);
    }

    #[test]
    fn fair_reference_splits_each_second_among_tenants_with_demand() {
        let mut rec = Recorder::new(1.0, 2.0, vec![1.0, 1.0], vec![0, 0], 1.0);
        rec.arrive(0.0, 1, 0, 1000, 0);
        rec.arrive(5.0, 2, 1, 1000, 0);
        rec.service = [vec![vec![100.0, 0.0]; 5], vec![vec![50.0, 50.0]; 5]].concat();
        let fair = rec.fair_reference(&[1.0, 1.0]);
        assert_eq!(fair[4], vec![100.0, 0.0]);
        assert_eq!(fair[5], vec![50.0, 50.0]);
        let w = jain_windows(&rec, &[1.0, 1.0], 0.0, 10.0, 10.0);
        assert!((w[0].0 - 1.0).abs() < 1e-9 && (w[0].1 - 1.0).abs() < 1e-9, "{w:?}");
        // Serving only the first tenant after the second arrived is unfair.
        rec.service = vec![vec![100.0, 0.0]; 10];
        let w = jain_windows(&rec, &[1.0, 1.0], 0.0, 10.0, 10.0);
        assert!(w[0].1 < 0.01 && w[0].0 < 0.6, "{w:?}");
    }

    #[test]
    fn quantile_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 0.05), 5.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }
}
