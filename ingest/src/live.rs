//! The live hub: every batch of values, as it arrives, to whoever listens
//! (dashboards over `/api/v1/live`, later bridges and automations).
//!
//! A `tokio::sync::broadcast` ring: publishing never waits, and a subscriber
//! that falls more than [`LIVE_CAPACITY`] batches behind loses the oldest ones
//! (it is told how many) instead of slowing ingest down. Nothing is copied
//! when nobody listens.

use std::sync::Arc;

use pinhouse_storage::Point;
use tokio::sync::broadcast;

/// Batches kept for slow subscribers before they lag.
pub const LIVE_CAPACITY: usize = 4096;

/// One batch of values as it reached ingest (one socket read or one HTTP write).
pub type LiveBatch = Arc<Vec<Point>>;

#[derive(Debug)]
pub(crate) struct LiveHub {
    tx: broadcast::Sender<LiveBatch>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self {
            tx: broadcast::Sender::new(LIVE_CAPACITY),
        }
    }
}

impl LiveHub {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LiveBatch> {
        self.tx.subscribe()
    }

    pub(crate) fn publish(&self, points: &[Point]) {
        if points.is_empty() || self.tx.receiver_count() == 0 {
            return;
        }
        // No receiver left between the check and the send is fine.
        let _ = self.tx.send(Arc::new(points.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_subscribers_lag_and_publishing_never_blocks() {
        let hub = LiveHub::default();
        hub.publish(&[Point::number(1, 1, 1, 0, 1.0)]); // nobody listens: dropped
        let mut rx = hub.subscribe();
        for i in 0..(LIVE_CAPACITY + 10) {
            hub.publish(&[Point::number(1, 1, 1, i as i64, 1.0)]);
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(rx.try_recv().unwrap()[0].ts_us, 10);
    }
}
