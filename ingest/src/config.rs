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
    /// Messages per second a logged-in session may send on average; above it
    /// messages are dropped and answered with `QUOTA_LIMIT`. 0 = unlimited.
    pub message_rate: u32,
    /// Messages a session may send in a burst above `message_rate`.
    pub message_burst: u32,
    /// Login attempts per minute from one IP address; 0 = unlimited.
    pub login_rate_per_ip: u32,
    /// Login attempts from one IP address in a burst.
    pub login_burst_per_ip: u32,
    /// Multi-node: a device whose token is unknown here is sent a `REDIRECT`
    /// to this host and port (the node that owns it, or a balancer) instead
    /// of `INVALID_TOKEN`.
    pub redirect_unknown: Option<(String, u16)>,
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
            // The legacy server's 100 messages/s, averaged over a minute.
            message_rate: 100,
            message_burst: 6000,
            login_rate_per_ip: 600,
            login_burst_per_ip: 100,
            redirect_unknown: None,
        }
    }
}

impl IngestConfig {
    /// Read-idle timeout for a device whose heartbeat is `heartbeat`.
    pub fn idle_timeout(&self, heartbeat: Duration) -> Duration {
        Duration::from_secs_f64((heartbeat.as_secs_f64() * self.heartbeat_factor).ceil())
    }
}
