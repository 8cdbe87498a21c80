//! Settings of the ingest tier.

use std::time::Duration;

/// Limits and timeouts of device sessions.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest frame body accepted from a device; bigger frames close the
    /// connection (the protocol allows up to 2^15 bytes).
    pub max_body: usize,
    /// Time a new connection has to send a valid login (slowloris guard).
    pub login_timeout: Duration,
    /// Heartbeat assumed until the device announces its own `h-beat`.
    pub default_heartbeat: Duration,
    /// Idle timeout = heartbeat × this factor (the legacy server used 2.3).
    pub heartbeat_factor: f64,
    /// Failed logins allowed on one connection before it is closed.
    pub max_login_attempts: u32,
    /// Device connections held at once; further connections are refused.
    pub max_connections: usize,
    /// Largest message body sent to a device that never announced `buff-in`
    /// (the legacy server's 250 bytes).
    pub default_device_buffer: usize,
    /// Storage write batches in flight before sessions wait (backpressure).
    pub max_inflight_batches: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body: 32 * 1024,
            login_timeout: Duration::from_secs(10),
            default_heartbeat: Duration::from_secs(10),
            heartbeat_factor: 2.3,
            max_login_attempts: 3,
            max_connections: 100_000,
            default_device_buffer: 250,
            max_inflight_batches: 1024,
        }
    }
}

impl IngestConfig {
    /// Read-idle timeout for a device whose heartbeat is `heartbeat`.
    pub fn idle_timeout(&self, heartbeat: Duration) -> Duration {
        Duration::from_secs_f64((heartbeat.as_secs_f64() * self.heartbeat_factor).ceil())
    }
}
