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
}
