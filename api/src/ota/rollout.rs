//! Cohorts and the health gate, as pure functions: which cohort a device falls
//! in, and whether a shipment waits, advances, completes or halts.

/// Validates cumulative cohort percentages: strictly increasing, each in
/// (0, 100], the last exactly 100.
pub fn validate_cohorts(cohorts: &[f64]) -> Result<(), String> {
    if cohorts.is_empty() {
        return Err("cohorts must not be empty (use [100] for all at once)".into());
    }
    if cohorts.len() > 20 {
        return Err("at most 20 cohorts".into());
    }
    let mut previous = 0.0;
    for &pct in cohorts {
        if !(pct > previous && pct <= 100.0) {
            return Err(format!(
                "cohorts are cumulative percentages, strictly increasing in (0, 100]: {cohorts:?}"
            ));
        }
        previous = pct;
    }
    if previous != 100.0 {
        return Err(format!(
            "the last cohort must be 100 (all devices): {cohorts:?}"
        ));
    }
    Ok(())
}

/// Cumulative device counts of each cohort for `total` devices: cohort `k`
/// holds ranks `[ends[k-1], ends[k])`. Each cohort gets at least one device
/// while devices remain, so a 1% canary of a small fleet is one device.
pub fn cohort_ends(total: usize, cohorts: &[f64]) -> Vec<usize> {
    let mut ends = Vec::with_capacity(cohorts.len());
    let mut previous = 0usize;
    for &pct in cohorts {
        let want = ((total as f64) * pct / 100.0).ceil() as usize;
        let end = want.max(previous + 1).min(total);
        ends.push(end);
        previous = end;
    }
    ends
}

/// Counts of one cohort's devices by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Not yet signalled.
    pub pending: u64,
    /// Signalled or downloading, outcome not known yet.
    pub in_flight: u64,
    /// Updated and healthy.
    pub success: u64,
    /// Failed or timed out.
    pub failed: u64,
}

impl Tally {
    /// Devices in the cohort.
    pub fn total(&self) -> u64 {
        self.pending + self.in_flight + self.success + self.failed
    }
}

/// What the shipment should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// The cohort is still running.
    Wait,
    /// The cohort finished healthy: open the next one.
    Advance,
    /// The last cohort finished healthy.
    Complete,
    /// Too many failures: stop, with the reason.
    Halt(String),
}

/// Decide on the current cohort (`index` of `count`). Halts as soon as the
/// failures already exceed the threshold, without waiting for the rest.
pub fn gate(tally: Tally, threshold: f64, index: usize, count: usize) -> Gate {
    let total = tally.total();
    if total == 0 {
        return if index + 1 >= count {
            Gate::Complete
        } else {
            Gate::Advance
        };
    }
    let failed_ratio = tally.failed as f64 / total as f64;
    if failed_ratio > threshold {
        return Gate::Halt(format!(
            "cohort {} of {count}: {} of {total} devices failed ({:.0}% > threshold {:.0}%)",
            index + 1,
            tally.failed,
            failed_ratio * 100.0,
            threshold * 100.0
        ));
    }
    if tally.pending + tally.in_flight > 0 {
        Gate::Wait
    } else if index + 1 >= count {
        Gate::Complete
    } else {
        Gate::Advance
    }
}

/// Whether `minute` (after midnight) falls in the window `[start, end)`, which
/// may wrap past midnight (22:00–06:00). No window means any time.
/// Minute of the day at `now_ms` in time zone `tz` (IANA name, as the device's `Time Zone`
/// metadata holds it); UTC when there is none or it does not parse.
pub fn local_minute(now_ms: i64, tz: Option<&str>) -> u32 {
    use chrono::{TimeZone, Timelike, Utc};
    let Some(at) = Utc.timestamp_millis_opt(now_ms).single() else {
        return 0;
    };
    match tz.and_then(|name| name.parse::<chrono_tz::Tz>().ok()) {
        Some(zone) => {
            let local = at.with_timezone(&zone);
            local.hour() * 60 + local.minute()
        }
        None => at.hour() * 60 + at.minute(),
    }
}

/// Whether minute-of-day `minute` is inside `window` (start inclusive, end exclusive, wrapping
/// past midnight when start > end); no window: always.
pub fn in_window(minute: u32, window: Option<(u32, u32)>) -> bool {
    match window {
        None => true,
        Some((start, end)) if start <= end => minute >= start && minute < end,
        Some((start, end)) => minute >= start || minute < end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_device_time_zone() {
        // 2026-01-15 22:30 UTC is 23:30 in Amsterdam and 17:30 in New York.
        let now = 1_768_516_200_000;
        assert_eq!(local_minute(now, None), 22 * 60 + 30);
        assert_eq!(local_minute(now, Some("Europe/Amsterdam")), 23 * 60 + 30);
        assert_eq!(local_minute(now, Some("America/New_York")), 17 * 60 + 30);
        assert_eq!(
            local_minute(now, Some("Mars/Olympus")),
            22 * 60 + 30,
            "unknown zone: UTC"
        );
        let night = Some((23 * 60, 5 * 60));
        assert!(in_window(
            local_minute(now, Some("Europe/Amsterdam")),
            night
        ));
        assert!(!in_window(
            local_minute(now, Some("America/New_York")),
            night
        ));
    }

    #[test]
    fn cohorts_are_validated() {
        assert!(validate_cohorts(&[1.0, 10.0, 100.0]).is_ok());
        assert!(validate_cohorts(&[100.0]).is_ok());
        assert!(validate_cohorts(&[]).is_err());
        assert!(validate_cohorts(&[10.0, 5.0, 100.0]).is_err());
        assert!(validate_cohorts(&[10.0, 50.0]).is_err());
        assert!(validate_cohorts(&[0.0, 100.0]).is_err());
        assert!(validate_cohorts(&[50.0, 150.0]).is_err());
    }

    #[test]
    fn cohort_ends_give_every_cohort_a_device() {
        assert_eq!(cohort_ends(1000, &[1.0, 10.0, 100.0]), vec![10, 100, 1000]);
        assert_eq!(cohort_ends(5, &[1.0, 10.0, 100.0]), vec![1, 2, 5]);
        assert_eq!(cohort_ends(2, &[1.0, 10.0, 50.0, 100.0]), vec![1, 2, 2, 2]);
        assert_eq!(cohort_ends(0, &[50.0, 100.0]), vec![0, 0]);
    }

    #[test]
    fn gate_waits_advances_completes_and_halts() {
        let t = |pending, in_flight, success, failed| Tally {
            pending,
            in_flight,
            success,
            failed,
        };
        assert_eq!(gate(t(1, 1, 0, 0), 0.2, 0, 3), Gate::Wait);
        assert_eq!(gate(t(0, 0, 10, 0), 0.2, 0, 3), Gate::Advance);
        assert_eq!(gate(t(0, 0, 9, 1), 0.2, 2, 3), Gate::Complete);
        // 2 of 4 failed is over a 25% threshold even while 1 is still running.
        let Gate::Halt(reason) = gate(t(0, 1, 1, 2), 0.25, 1, 3) else {
            panic!("expected a halt")
        };
        assert!(
            reason.contains("cohort 2 of 3: 2 of 4 devices failed"),
            "{reason}"
        );
        assert_eq!(gate(t(0, 0, 0, 0), 0.0, 0, 2), Gate::Advance);
    }

    #[test]
    fn windows_wrap_midnight() {
        assert!(in_window(5, None));
        assert!(in_window(60, Some((0, 360))));
        assert!(!in_window(360, Some((0, 360))));
        assert!(in_window(23 * 60, Some((22 * 60, 6 * 60))));
        assert!(in_window(60, Some((22 * 60, 6 * 60))));
        assert!(!in_window(12 * 60, Some((22 * 60, 6 * 60))));
    }
}
