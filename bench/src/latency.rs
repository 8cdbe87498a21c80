//! Latency recording with HDR histograms (microsecond resolution), the same
//! percentiles in every scenario's report.

use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A latency distribution.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Latencies {
    /// Empty; records from 1 µs to one hour with 3 significant digits.
    pub fn new() -> Result<Self> {
        Ok(Self(Histogram::new_with_bounds(1, 3_600_000_000, 3)?))
    }

    /// Record one observation (clamped to the histogram's range).
    pub fn record(&mut self, d: Duration) -> Result<()> {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
        Ok(())
    }

    /// Add every observation of `other`.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        self.0.add(&other.0)?;
        Ok(())
    }

    /// The value at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(q))
    }

    /// p50/p90/p99/p99.9/max in milliseconds, and the count, as JSON.
    pub fn report(&self) -> Value {
        let ms = |us: u64| us as f64 / 1000.0;
        json!({
            "count": self.0.len(),
            "p50_ms": ms(self.0.value_at_quantile(0.5)),
            "p90_ms": ms(self.0.value_at_quantile(0.9)),
            "p99_ms": ms(self.0.value_at_quantile(0.99)),
            "p999_ms": ms(self.0.value_at_quantile(0.999)),
            "max_ms": ms(self.0.max()),
        })
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The percentile curve, for charts: points (`nines`, milliseconds) where `nines` is
    /// −log10(1 − q) — 0 the minimum, 1 p90, 2 p99, 3 p99.9 — from 0 up to the last quantile
    /// the observations resolve (log10 of their count, at most 5), and the maximum last.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        const STEPS_PER_NINE: u32 = 20;
        let n = self.0.len();
        if n == 0 {
            return Vec::new();
        }
        let top = (n as f64).log10().clamp(0.0, 5.0);
        let ms = |us: u64| us as f64 / 1000.0;
        let mut points: Vec<(f64, f64)> = (0..)
            .map(|k| f64::from(k) / f64::from(STEPS_PER_NINE))
            .take_while(|nines| *nines < top)
            .map(|nines| {
                let q = 1.0 - 10f64.powf(-nines);
                (nines, ms(self.0.value_at_quantile(q)))
            })
            .collect();
        points.push((top, ms(self.0.max())));
        points
    }
}

/// Prints the latency table of a report: one row per class of request with its count, rate
/// over `seconds`, and p50/p90/p99/p99.9/max in milliseconds.
pub fn print_table(rows: &[(&str, &Latencies)], seconds: f64) {
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "per s", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, l) in rows {
        let q = |p| l.quantile(p).as_secs_f64() * 1000.0;
        println!(
            "{name:<28} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            l.count(),
            l.count() as f64 / seconds.max(f64::MIN_POSITIVE),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            l.0.max() as f64 / 1000.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_rises_to_the_maximum() {
        let mut l = Latencies::new().unwrap();
        for us in 1..=10_000u64 {
            l.record(Duration::from_micros(us)).unwrap();
        }
        let curve = l.curve();
        assert_eq!(curve.first().unwrap().0, 0.0);
        // The maximum, to the histogram's three significant digits.
        let (nines, max) = *curve.last().unwrap();
        assert_eq!(nines, 4.0);
        assert!((max - 10.0).abs() < 0.01, "{max}");
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        // p90 (one nine) of 1..=10,000 µs is 9 ms.
        let p90 = curve
            .iter()
            .find(|(n, _)| (*n - 1.0).abs() < 1e-9)
            .unwrap()
            .1;
        assert!((p90 - 9.0).abs() < 0.01, "{p90}");
        assert!(Latencies::new().unwrap().curve().is_empty());
    }
}
