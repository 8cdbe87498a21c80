//! Token buckets: the per-session message quota and the per-IP login limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
/// `rate == 0` disables it.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Quota {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Take one token at `now`; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if now > self.at {
            let earned = now.duration_since(self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.burst);
            self.at = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the last [`Quota::take`] left less than a token (time since then not
    /// counted): a cheap test before [`Quota::refill_at`], which reads the time.
    pub(crate) fn exhausted(&self) -> bool {
        self.rate != 0.0 && self.tokens < 1.0
    }

    /// When the bucket next holds a whole token, or `None` if it holds one at `now`.
    pub(crate) fn refill_at(&self, now: Instant) -> Option<Instant> {
        if !self.exhausted() {
            return None;
        }
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        let missing = 1.0 - (self.tokens + earned);
        // At least a millisecond: rounding must not turn the wait into a loop of empty waits.
        (missing > 0.0).then(|| {
            now + Duration::from_secs_f64(missing / self.rate).max(Duration::from_millis(1))
        })
    }
}

/// Login attempts per source address: a token bucket per IP, forgotten once
/// full again (so the map holds only addresses that logged in recently).
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    rate: u32,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, Quota>>,
}

/// Sweep the map of idle addresses once it holds this many.
const SWEEP_AT: usize = 4096;

impl LoginLimiter {
    pub(crate) fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            rate: per_minute,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may try one more login now.
    pub(crate) fn allow(&self, ip: IpAddr) -> bool {
        if self.rate == 0 {
            return true;
        }
        let now = Instant::now();
        let per_sec = f64::from(self.rate) / 60.0;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= SWEEP_AT {
            let refill = Duration::from_secs_f64(f64::from(self.burst) / per_sec);
            buckets.retain(|_, q| now.duration_since(q.at) < refill);
        }
        let bucket = buckets.entry(ip).or_insert_with(|| Quota {
            rate: per_sec,
            burst: f64::from(self.burst.max(1)),
            tokens: f64::from(self.burst.max(1)),
            at: now,
        });
        bucket.take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut q = Quota::new(10, 5, t0);
        assert!((0..5).all(|_| q.take(t0)));
        assert!(!q.take(t0));
        // 100 ms later one token is back, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(q.take(t1));
        assert!(!q.take(t1));
        // Never more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| q.take(t2)).count(), 5);
    }

    #[test]
    fn an_empty_bucket_tells_when_a_token_is_back() {
        let t0 = Instant::now();
        let mut q = Quota::new(10, 2, t0);
        assert_eq!(q.refill_at(t0), None);
        assert!(q.take(t0) && q.take(t0));
        assert!(q.exhausted());
        assert_eq!(q.refill_at(t0), Some(t0 + Duration::from_millis(100)));
        // Part of the wait already passed; once it all has, no wait.
        let t1 = t0 + Duration::from_millis(40);
        let at = q.refill_at(t1).unwrap();
        assert!(
            at.duration_since(t0).abs_diff(Duration::from_millis(100)) < Duration::from_micros(1)
        );
        assert_eq!(q.refill_at(t0 + Duration::from_millis(100)), None);
        assert!(!Quota::new(0, 1, t0).exhausted());
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut q = Quota::new(0, 1, t0);
        assert!((0..1000).all(|_| q.take(t0)));
    }

    #[test]
    fn logins_are_limited_per_address() {
        let limiter = LoginLimiter::new(60, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.allow(a)));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b));
    }
}
