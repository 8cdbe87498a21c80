//! The realistic sensor data set every scenario and every peer receives, so
//! that numbers compare like with like: `devices` × `pins` series sampled every
//! `interval`, numeric pins as random walks with two decimals (a temperature-
//! like signal), and with four or more pins the last one an enum-like text
//! state that changes rarely. A fixed seed makes every run send the same data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// States of the text pin.
pub const STATES: [&str; 3] = ["idle", "heating", "cooling"];

/// One value of one series at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A numeric reading, already rounded to two decimals.
    Number(f64),
    /// A text state.
    Text(&'static str),
}

/// Generator of the data set, time-major: [`SensorFleet::tick`] yields the
/// next instant's value for every device and pin.
#[derive(Debug)]
pub struct SensorFleet {
    pins: u8,
    rng: StdRng,
    values: Vec<Sample>,
    next_ts_us: i64,
    interval_us: i64,
}

impl SensorFleet {
    /// `devices` × `pins` series starting at `start_us` (µs since the epoch).
    pub fn new(seed: u64, devices: u32, pins: u8, start_us: i64, interval_us: i64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let pins = pins.max(1);
        let values = (0..devices as usize * pins as usize)
            .map(|i| {
                if Self::is_text_pin(pins, (i % pins as usize) as u8) {
                    Sample::Text(STATES[0])
                } else {
                    Sample::Number(round2(rng.random_range(15.0..30.0)))
                }
            })
            .collect();
        Self {
            pins,
            rng,
            values,
            next_ts_us: start_us,
            interval_us,
        }
    }

    /// Whether `pin` carries text states (the last pin when there are four or more).
    pub fn is_text_pin(pins: u8, pin: u8) -> bool {
        pins >= 4 && pin == pins - 1
    }

    /// Pins per device.
    pub fn pins(&self) -> u8 {
        self.pins
    }

    /// Advance one interval: the timestamp and the values, indexed
    /// `device * pins + pin`.
    pub fn tick(&mut self) -> (i64, &[Sample]) {
        for v in &mut self.values {
            *v = match *v {
                Sample::Number(x) => {
                    let step: f64 = self.rng.random_range(-0.15..0.15);
                    Sample::Number(round2((x + step).clamp(-40.0, 120.0)))
                }
                Sample::Text(s) => {
                    if self.rng.random_bool(0.01) {
                        Sample::Text(STATES[self.rng.random_range(0..STATES.len())])
                    } else {
                        Sample::Text(s)
                    }
                }
            };
        }
        let ts = self.next_ts_us;
        self.next_ts_us += self.interval_us;
        (ts, &self.values)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_two_decimals() {
        let mut a = SensorFleet::new(7, 3, 4, 0, 10_000_000);
        let mut b = SensorFleet::new(7, 3, 4, 0, 10_000_000);
        for _ in 0..50 {
            let (ta, va) = a.tick();
            let (ta, va) = (ta, va.to_vec());
            let (tb, vb) = b.tick();
            assert_eq!(ta, tb);
            assert_eq!(va, vb);
            for (i, v) in va.iter().enumerate() {
                match v {
                    Sample::Number(x) => {
                        assert!(!SensorFleet::is_text_pin(4, (i % 4) as u8));
                        assert!(((x * 100.0).round() - x * 100.0).abs() < 1e-6, "{x}");
                    }
                    Sample::Text(s) => {
                        assert!(SensorFleet::is_text_pin(4, (i % 4) as u8));
                        assert!(STATES.contains(s));
                    }
                }
            }
        }
        assert_eq!(a.tick().0, 50 * 10_000_000);
    }
}
