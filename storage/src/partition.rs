//! Time partitions of the Parquet tree: one folder per UTC day, `date=YYYY-MM-DD`.

const US_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 (UTC) of a timestamp in microseconds; negative before the epoch.
pub(crate) fn day_of(ts_us: i64) -> i64 {
    ts_us.div_euclid(US_PER_DAY)
}

/// First microsecond after the partition holding `ts_us`.
pub(crate) fn partition_end_us(ts_us: i64) -> i64 {
    (day_of(ts_us) + 1).saturating_mul(US_PER_DAY)
}

/// Civil date `(year, month, day)` of a day number (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Folder name of the partition holding day `days`: `date=2026-11-25`.
pub(crate) fn partition_name(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("date={y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(partition_name(0), "date=1970-01-01");
        assert_eq!(partition_name(day_of(-1)), "date=1969-12-31");
        // 2026-11-25T12:00:00Z
        assert_eq!(
            partition_name(day_of(1_795_608_000_000_000)),
            "date=2026-11-25"
        );
        // 2000-02-29 (leap day) = 11016 days
        assert_eq!(partition_name(11_016), "date=2000-02-29");
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    }

    #[test]
    fn day_boundaries() {
        assert_eq!(day_of(US_PER_DAY - 1), 0);
        assert_eq!(day_of(US_PER_DAY), 1);
        assert!(day_of(i64::MIN) < 0);
        // Extreme timestamps do not overflow.
        let _ = partition_name(day_of(i64::MIN));
        let _ = partition_name(day_of(i64::MAX));
    }
}
