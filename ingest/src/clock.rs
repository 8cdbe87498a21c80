//! Server receive time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (UTC) now; the `ts` of values that carry
/// no timestamp of their own.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
