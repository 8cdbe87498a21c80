//! Live counters of a running scenario: a progress line on stderr once a second and the
//! per-second rates kept as a time series (for the throughput-over-time chart).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Named counters (values sent, requests answered …) sampled once a second.
#[derive(Debug)]
pub struct Meter {
    names: Vec<&'static str>,
    counts: Vec<AtomicU64>,
    started: Instant,
    sampled: Mutex<Sampled>,
}

/// The series so far and the totals of the last sample.
#[derive(Debug)]
struct Sampled {
    series: Vec<Interval>,
    totals: Vec<u64>,
    at: Instant,
}

/// The rates of one sampling interval.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since the meter started, at the end of the interval.
    pub at_secs: f64,
    /// Events per second of each counter over the interval, in the meter's order.
    pub rates: Vec<f64>,
}

/// How often the progress line is refreshed and a rate sample taken.
const PERIOD: Duration = Duration::from_secs(1);

impl Meter {
    /// Counters named `names`, all zero; the clock starts now.
    pub fn new(names: &[&'static str]) -> Arc<Self> {
        let started = Instant::now();
        Arc::new(Self {
            names: names.to_vec(),
            counts: names.iter().map(|_| AtomicU64::new(0)).collect(),
            started,
            sampled: Mutex::new(Sampled {
                series: Vec::new(),
                totals: vec![0; names.len()],
                at: started,
            }),
        })
    }

    /// Count `n` events of counter `i`.
    pub fn add(&self, i: usize, n: u64) {
        self.counts[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Events of counter `i` so far.
    pub fn total(&self, i: usize) -> u64 {
        self.counts[i].load(Ordering::Relaxed)
    }

    /// Close the interval since the last sample: append its rates to the series; the rates.
    fn sample(&self) -> (f64, Vec<f64>) {
        let now = Instant::now();
        let totals: Vec<u64> = (0..self.names.len()).map(|i| self.total(i)).collect();
        let mut sampled = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        let secs = now.duration_since(sampled.at).as_secs_f64();
        let rates: Vec<f64> = totals
            .iter()
            .zip(&sampled.totals)
            .map(|(t, l)| t.saturating_sub(*l) as f64 / secs.max(1e-9))
            .collect();
        let at_secs = now.duration_since(self.started).as_secs_f64();
        if secs > 0.0 {
            sampled.series.push(Interval {
                at_secs,
                rates: rates.clone(),
            });
        }
        (sampled.totals, sampled.at) = (totals, now);
        (at_secs, rates)
    }

    /// Sample once a second on a tokio task (tokio's clock), printing
    /// `\r<elapsed> name rate/s …` to stderr, until [`Meter::finish`].
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let meter = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + PERIOD, PERIOD);
            loop {
                tick.tick().await;
                let (at_secs, rates) = meter.sample();
                eprint!("\r{}", meter.line(at_secs, &rates));
            }
        })
    }

    /// Stop sampling (the progress line is ended) and return the rate series, the last,
    /// shorter interval included so that a run shorter than a second has one point.
    pub async fn finish(&self, task: tokio::task::JoinHandle<()>) -> Vec<Interval> {
        task.abort();
        let _ = task.await;
        self.sample();
        eprintln!();
        self.sampled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .series
            .clone()
    }

    fn line(&self, at_secs: f64, rates: &[f64]) -> String {
        let mut line = format!("{at_secs:>6.0} s");
        for (name, rate) in self.names.iter().zip(rates) {
            line.push_str(&format!("  {name} {}/s", si(*rate)));
        }
        line.push_str("   ");
        line
    }
}

/// `1234567.0` → `1.23 M`, for progress lines.
pub fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_prefixes() {
        assert_eq!(si(12.4), "12");
        assert_eq!(si(12_345.0), "12.3 k");
        assert_eq!(si(2_345_678.0), "2.35 M");
    }

    #[tokio::test]
    async fn samples_rates_per_interval() {
        let meter = Meter::new(&["values", "requests"]);
        meter.add(0, 500);
        meter.add(1, 3);
        tokio::time::sleep(Duration::from_millis(20)).await;
        meter.sample();
        meter.add(0, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // No ticker: `finish` takes the last, shorter interval itself.
        let series = meter.finish(tokio::spawn(async {})).await;
        assert_eq!(series.len(), 2, "{series:?}");
        // Rate × interval length gives back each interval's count, whatever the clock did.
        let mut start = 0.0;
        let counts: Vec<Vec<f64>> = series
            .iter()
            .map(|interval| {
                let secs = interval.at_secs - start;
                start = interval.at_secs;
                assert!(secs > 0.0, "{series:?}");
                interval.rates.iter().map(|r| (r * secs).round()).collect()
            })
            .collect();
        assert_eq!(counts, [[500.0, 3.0], [200.0, 0.0]]);
        assert_eq!(meter.total(0), 700);
        assert_eq!(meter.total(1), 3);
    }
}
