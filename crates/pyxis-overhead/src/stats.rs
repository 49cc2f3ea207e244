//! The statistics the benchmark reports: percentiles, means and a least-squares line. Pure.

use serde::Serialize;

/// `p`-th percentile of sorted values, linear interpolation between closest ranks (numpy's default).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted {
        [] => 0.0,
        [x] => *x,
        _ => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

/// Arithmetic mean; 0 for no values.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Dist {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    /// Summarises values given in seconds; all zero for no values.
    pub fn of_seconds(values: &[f64]) -> Dist {
        let mut ms: Vec<f64> = values.iter().map(|s| s * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        Dist {
            count: ms.len(),
            mean: mean(&ms),
            p50: percentile(&ms, 50.0),
            p90: percentile(&ms, 90.0),
            p99: percentile(&ms, 99.0),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// `y = intercept + slope · x` fitted by least squares, with the coefficient of determination.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Line {
    pub slope: f64,
    pub intercept: f64,
    /// 1 is a perfect line; near 0, x explains nothing.
    pub r2: f64,
}

/// Fits a line through `(x, y)` points; `None` for fewer than two distinct x.
pub fn fit_line(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 { 1.0 } else { (sxy * sxy) / (sxx * syy) };
    Some(Line {
        slope,
        intercept: my - slope * mx,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn percentiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.percentile([1,2,3,4], [50, 90, 99, 100]) = [2.5, 3.7, 3.97, 4.0]
        assert!(close(percentile(&v, 50.0), 2.5));
        assert!(close(percentile(&v, 90.0), 3.7));
        assert!(close(percentile(&v, 99.0), 3.97));
        assert!(close(percentile(&v, 100.0), 4.0));
        assert!(close(percentile(&[7.0], 99.0), 7.0));
        assert!(close(percentile(&[], 50.0), 0.0));
    }

    #[test]
    fn dist_is_in_ms_and_sorted() {
        let d = Dist::of_seconds(&[0.004, 0.001, 0.003, 0.002]);
        assert_eq!(d.count, 4);
        assert!(close(d.mean, 2.5) && close(d.p50, 2.5) && close(d.p99, 3.97) && close(d.max, 4.0));
        assert_eq!(Dist::of_seconds(&[]), Dist::default());
    }

    #[test]
    fn line_fit_recovers_slope_and_intercept() {
        // RSS = 10 MiB + 20 KiB per stream, exactly.
        let pts: Vec<(f64, f64)> = [0.0, 1000.0, 2000.0, 4000.0]
            .iter()
            .map(|&k| (k, 10240.0 + 20.0 * k))
            .collect();
        let l = fit_line(&pts).unwrap();
        assert!(close(l.slope, 20.0) && close(l.intercept, 10240.0) && close(l.r2, 1.0));
        // Noise lowers r² below 1 but the slope stays near.
        let noisy = [(0.0, 0.0), (1.0, 1.2), (2.0, 1.8), (3.0, 3.1)];
        let l = fit_line(&noisy).unwrap();
        assert!((l.slope - 1.0).abs() < 0.1 && l.r2 < 1.0 && l.r2 > 0.95);
        assert!(fit_line(&[(1.0, 2.0)]).is_none());
        assert!(fit_line(&[(1.0, 2.0), (1.0, 3.0)]).is_none());
    }
}
