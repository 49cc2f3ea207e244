//! UTC calendar periods (day, month) of a unix time in milliseconds, without a date library.

const DAY_MS: u64 = 86_400_000;

/// The UTC day and month containing an instant, with the instants at which each ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Periods {
    /// Days since 1970-01-01.
    pub day: u64,
    /// `year * 12 + month - 1`.
    pub month: u64,
    pub next_day_ms: u64,
    pub next_month_ms: u64,
}

impl Periods {
    pub fn at(now_ms: u64) -> Periods {
        let day = now_ms / DAY_MS;
        let (y, m, _) = civil_from_days(day_i64(day));
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let next_month_day = days_from_civil(ny, nm, 1);
        Periods {
            day,
            month: month_index(y, m),
            next_day_ms: (day + 1).saturating_mul(DAY_MS),
            next_month_ms: u64::try_from(next_month_day).unwrap_or(0).saturating_mul(DAY_MS),
        }
    }

    /// `YYYY-MM-DD`, for Redis key names.
    pub fn day_label(&self) -> String {
        let (y, m, d) = civil_from_days(day_i64(self.day));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `YYYY-MM`.
    pub fn month_label(&self) -> String {
        format!("{:04}-{:02}", self.month / 12, self.month % 12 + 1)
    }
}

fn day_i64(day: u64) -> i64 {
    i64::try_from(day).unwrap_or(i64::MAX / 2)
}

fn month_index(y: i64, m: u32) -> u64 {
    u64::try_from(y).unwrap_or(0) * 12 + u64::from(m) - 1
}

/// Howard Hinnant's `civil_from_days`: days since the epoch to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2024-02-29T23:59:59.999Z, a leap day.
        let p = Periods::at(1_709_251_199_999);
        assert_eq!(p.day_label(), "2024-02-29");
        assert_eq!(p.month_label(), "2024-02");
        assert_eq!(p.next_day_ms, 1_709_251_200_000);
        assert_eq!(p.next_month_ms, 1_709_251_200_000);
        let q = Periods::at(1_709_251_200_000);
        assert_eq!(q.day_label(), "2024-03-01");
        assert_eq!(q.month, p.month + 1);
        // 2025-12-31 rolls into a new year.
        let r = Periods::at(1_767_225_600_000 - 1);
        assert_eq!(r.day_label(), "2025-12-31");
        assert_eq!(r.next_month_ms, 1_767_225_600_000);
        assert_eq!(Periods::at(0).day_label(), "1970-01-01");
    }

    #[test]
    fn round_trip_over_centuries() {
        for day in (0..200_000).step_by(17) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
