//! Downsampled history of one pin for dashboards: the range is cut into equal,
//! epoch-aligned buckets and each bucket is aggregated either from raw rows or
//! from a rollup tier (see `rollup.rs`). Both paths fold the same
//! [`BucketStats`], so they give the same answer.

use std::collections::BTreeMap;

/// Microseconds in one second.
pub const SECOND_US: i64 = 1_000_000;
/// Microseconds in one minute.
pub const MINUTE_US: i64 = 60 * SECOND_US;
/// Microseconds in one hour.
pub const HOUR_US: i64 = 60 * MINUTE_US;
/// Microseconds in one day.
pub const DAY_US: i64 = 24 * HOUR_US;

/// Most buckets one history request may ask for.
pub const MAX_POINTS: u32 = 10_000;

/// How the values of one bucket become the chart's point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Arithmetic mean.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum of the values.
    Sum,
    /// Number of numeric values.
    Count,
    /// Value with the earliest timestamp.
    First,
    /// Value with the latest timestamp.
    Last,
    /// Min and max of the bucket (an envelope for charts).
    MinMax,
}

impl Agg {
    /// Parses `avg`, `min`, `max`, `sum`, `count`, `first`, `last`, `minmax`.
    pub fn parse(text: &str) -> Option<Agg> {
        Some(match text {
            "avg" | "mean" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "sum" => Agg::Sum,
            "count" => Agg::Count,
            "first" => Agg::First,
            "last" => Agg::Last,
            "minmax" | "envelope" => Agg::MinMax,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::First => "first",
            Agg::Last => "last",
            Agg::MinMax => "minmax",
        }
    }
}

/// Mergeable summary of the numeric values of one bucket. Ties on the first
/// (last) timestamp go to the smaller (larger) value so the result does not
/// depend on the order rows are read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketStats {
    /// Number of values.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Timestamp of the earliest value (µs).
    pub first_ts: i64,
    /// The earliest value.
    pub first: f64,
    /// Timestamp of the latest value (µs).
    pub last_ts: i64,
    /// The latest value.
    pub last: f64,
}

impl BucketStats {
    /// Summary of a single value.
    pub fn of(ts_us: i64, value: f64) -> Self {
        Self {
            count: 1,
            sum: value,
            min: value,
            max: value,
            first_ts: ts_us,
            first: value,
            last_ts: ts_us,
            last: value,
        }
    }

    /// Folds one more value in.
    pub fn push(&mut self, ts_us: i64, value: f64) {
        self.merge(&Self::of(ts_us, value));
    }

    /// Folds another summary in.
    pub fn merge(&mut self, other: &BucketStats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if (other.first_ts, other.first) < (self.first_ts, self.first) {
            self.first_ts = other.first_ts;
            self.first = other.first;
        }
        if (other.last_ts, other.last) > (self.last_ts, self.last) {
            self.last_ts = other.last_ts;
            self.last = other.last;
        }
    }

    /// The point value under `agg` (`MinMax` gives the min; use `min`/`max`).
    pub fn value(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Avg => self.sum / self.count as f64,
            Agg::Min | Agg::MinMax => self.min,
            Agg::Max => self.max,
            Agg::Sum => self.sum,
            Agg::Count => self.count as f64,
            Agg::First => self.first,
            Agg::Last => self.last,
        }
    }
}

/// Where the buckets of a history answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Raw rows (bucket width below one hour).
    Raw,
    /// The one-hour rollup tier (plus raw rows not rolled up yet).
    Hour,
    /// The one-day rollup tier (plus raw rows not rolled up yet).
    Day,
}

impl Tier {
    /// Width of the tier's buckets in µs (`None` for raw).
    pub fn width_us(self) -> Option<i64> {
        match self {
            Tier::Raw => None,
            Tier::Hour => Some(HOUR_US),
            Tier::Day => Some(DAY_US),
        }
    }

    /// `raw`, `1h`, `1d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::Hour => "1h",
            Tier::Day => "1d",
        }
    }

    /// The coarsest tier whose buckets tile a bucket of `step_us`.
    pub fn for_step(step_us: i64) -> Tier {
        if step_us % DAY_US == 0 {
            Tier::Day
        } else if step_us % HOUR_US == 0 {
            Tier::Hour
        } else {
            Tier::Raw
        }
    }
}

/// One history question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRequest {
    /// Organization owning the device (the caller checked access).
    pub org_id: u32,
    /// Device.
    pub device_id: u32,
    /// `pin` column value.
    pub pin: u16,
    /// Start of the range, µs, inclusive.
    pub from_us: i64,
    /// End of the range, µs, exclusive.
    pub to_us: i64,
    /// Most buckets wanted (1..=[`MAX_POINTS`]).
    pub points: u32,
}

/// Bucket layout of a request: width and the range widened to whole buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    /// Width of every bucket, µs.
    pub step_us: i64,
    /// Start of the first bucket (a multiple of `step_us`).
    pub from_us: i64,
    /// End of the last bucket (a multiple of `step_us`).
    pub to_us: i64,
}

impl Buckets {
    /// The narrowest "round" width (whole ms below a minute, whole minutes below
    /// an hour, whole hours below a day, else whole days) for which the range,
    /// widened to epoch-aligned buckets, holds at most `points` buckets.
    pub fn plan(from_us: i64, to_us: i64, points: u32) -> Buckets {
        let points = i64::from(points.clamp(1, MAX_POINTS));
        let span = (to_us - from_us).max(1);
        let raw = ceil_div(span, points).max(1000);
        let unit = if raw >= DAY_US {
            DAY_US
        } else if raw >= HOUR_US {
            HOUR_US
        } else if raw >= MINUTE_US {
            MINUTE_US
        } else {
            1000
        };
        let mut step = ceil_div(raw, unit) * unit;
        loop {
            let first = from_us.div_euclid(step) * step;
            let last = (to_us + step - 1).div_euclid(step) * step;
            if (last - first) / step <= points {
                return Buckets {
                    step_us: step,
                    from_us: first,
                    to_us: last.max(first + step),
                };
            }
            // Never more than a couple of rounds: widening by one unit drops at
            // most the extra edge bucket.
            step += if step < MINUTE_US {
                1000
            } else if step < HOUR_US {
                MINUTE_US
            } else if step < DAY_US {
                HOUR_US
            } else {
                DAY_US
            };
        }
    }

    /// Epoch-aligned buckets of exactly `step_us` covering `from_us..to_us`.
    pub fn with_step(from_us: i64, to_us: i64, step_us: i64) -> Buckets {
        let step = step_us.max(1);
        let first = from_us.div_euclid(step) * step;
        let last = (to_us + step - 1).div_euclid(step) * step;
        Buckets {
            step_us: step,
            from_us: first,
            to_us: last.max(first + step),
        }
    }

    /// Start of the bucket holding `ts_us`.
    pub fn bucket_of(&self, ts_us: i64) -> i64 {
        ts_us.div_euclid(self.step_us) * self.step_us
    }

    /// Whether `ts_us` falls inside the widened range.
    pub fn contains(&self, ts_us: i64) -> bool {
        ts_us >= self.from_us && ts_us < self.to_us
    }
}

/// `a / b` rounded up, for `a >= 0`, `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Buckets being filled, keyed by bucket start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accumulator {
    buckets: BTreeMap<i64, BucketStats>,
}

impl Accumulator {
    /// Adds a raw value at `bucket`.
    pub fn push(&mut self, bucket: i64, ts_us: i64, value: f64) {
        self.buckets
            .entry(bucket)
            .and_modify(|s| s.push(ts_us, value))
            .or_insert_with(|| BucketStats::of(ts_us, value));
    }

    /// Adds a pre-aggregated summary at `bucket`.
    pub fn merge(&mut self, bucket: i64, stats: &BucketStats) {
        self.buckets
            .entry(bucket)
            .and_modify(|s| s.merge(stats))
            .or_insert(*stats);
    }

    /// The non-empty buckets in time order.
    pub fn into_buckets(self) -> Vec<(i64, BucketStats)> {
        self.buckets.into_iter().collect()
    }
}

/// Answer to a [`HistoryRequest`]: non-empty buckets only, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Bucket layout.
    pub buckets: Buckets,
    /// Tier the answer was read from.
    pub tier: Tier,
    /// `(bucket start µs, summary)` of every bucket holding at least one numeric value.
    pub points: Vec<(i64, BucketStats)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_at_1440_points_is_one_minute_buckets() {
        let from = 1_700_000_000 * SECOND_US / DAY_US * DAY_US;
        let b = Buckets::plan(from, from + DAY_US, 1440);
        assert_eq!(b.step_us, MINUTE_US);
        assert_eq!((b.from_us, b.to_us), (from, from + DAY_US));
        assert_eq!(Tier::for_step(b.step_us), Tier::Raw);
    }

    #[test]
    fn a_year_at_1000_points_uses_the_hour_tier() {
        let from = 1_700_000_123 * SECOND_US;
        let b = Buckets::plan(from, from + 365 * DAY_US, 1000);
        assert_eq!(b.step_us % HOUR_US, 0);
        assert!((b.to_us - b.from_us) / b.step_us <= 1000);
        assert!(b.from_us <= from && b.to_us >= from + 365 * DAY_US);
        assert_eq!(Tier::for_step(b.step_us), Tier::Hour);
        let ten_years = Buckets::plan(from, from + 3650 * DAY_US, 1000);
        assert_eq!(Tier::for_step(ten_years.step_us), Tier::Day);
    }

    #[test]
    fn bucket_count_never_exceeds_points() {
        for points in [1, 2, 7, 100, 999, 1440] {
            for span in [1, 999, 61 * SECOND_US, 3 * HOUR_US + 17, 40 * DAY_US] {
                let from = 1_699_999_999_999_999;
                let b = Buckets::plan(from, from + span, points);
                let n = (b.to_us - b.from_us) / b.step_us;
                assert!(n >= 1 && n <= i64::from(points), "{points} {span}: {b:?}");
                assert_eq!(b.from_us % b.step_us, 0);
            }
        }
    }

    #[test]
    fn stats_merge_is_order_independent() {
        let values = [(5, 1.0), (1, 4.0), (9, -2.0), (1, 3.0), (9, 7.0)];
        let mut forward = BucketStats::of(values[0].0, values[0].1);
        values[1..].iter().for_each(|(t, v)| forward.push(*t, *v));
        let mut backward = BucketStats::of(values[4].0, values[4].1);
        values[..4]
            .iter()
            .rev()
            .for_each(|(t, v)| backward.push(*t, *v));
        assert_eq!(forward, backward);
        assert_eq!(forward.count, 5);
        assert_eq!((forward.first, forward.last), (3.0, 7.0));
        assert_eq!((forward.min, forward.max), (-2.0, 7.0));
        assert_eq!(forward.value(Agg::Avg), 13.0 / 5.0);
    }
}
