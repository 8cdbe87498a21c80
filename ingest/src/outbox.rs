//! A device session's mailbox: the frames the cloud sends to it, the hub's request to end it,
//! and the hub's timer nudges.
//!
//! Most devices of a fleet are idle most of the time and are never written to, so the queue
//! costs nothing until it is used: an empty `VecDeque` does not allocate (a bounded
//! `tokio::sync::mpsc` channel allocates a block of 32 slots, ~1 KiB, when it is made). The
//! hub pushes without waiting and drops a frame when the queue is full; the session awaits
//! the next [`Wake`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Why the hub asks a session to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// The device was deleted.
    DeviceDeleted,
    /// The server is shutting down.
    Shutdown,
}

/// What woke a session waiting on its outbox.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A frame to write to the device.
    Frame(Bytes),
    /// The session is to end.
    Closed(Closed),
    /// The hub's timer found the session's deadline passed: the session checks its clock.
    Deadline,
}

const OPEN: u8 = 0;
const DEVICE_DELETED: u8 = 1;
const SHUTDOWN: u8 = 2;

/// Everything the rest of the server has to tell one session: frames from the cloud, a
/// request to end, and a nudge when its deadline (login or heartbeat timeout) has passed.
///
/// One per session, made when the connection is accepted. A session waits on this alone
/// while idle: the hub's shared timer ([`crate::Ingest`]'s sweeper) stands in for a timer per
/// session, and [`crate::Ingest::stop`] for a shutdown receiver per session, each of which
/// took more than 100 bytes of every idle session's future.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Bytes>>,
    ready: Notify,
    capacity: u32,
    /// Largest frame (header + body) the device accepts; the device may announce it.
    max_frame: AtomicU32,
    /// `OPEN`, or why the session is to end.
    closed: AtomicU8,
    /// Set by [`Outbox::nudge`], taken by [`Outbox::pop`].
    nudged: AtomicBool,
    /// When the session times out, in ms of the hub's clock (`u64::MAX`: never).
    deadline_ms: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, max_frame: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
            max_frame: AtomicU32::new(u32::try_from(max_frame).unwrap_or(u32::MAX)),
            closed: AtomicU8::new(OPEN),
            nudged: AtomicBool::new(false),
            deadline_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Ends the session: its next [`Outbox::pop`] returns [`Wake::Closed`]. The first
    /// reason given stays.
    pub(crate) fn close(&self, why: Closed) {
        let code = match why {
            Closed::DeviceDeleted => DEVICE_DELETED,
            Closed::Shutdown => SHUTDOWN,
        };
        let _ = self
            .closed
            .compare_exchange(OPEN, code, Ordering::AcqRel, Ordering::Acquire);
        self.ready.notify_one();
    }

    /// Wakes the session to check its deadline.
    pub(crate) fn nudge(&self) {
        self.nudged.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Publishes when the session times out (ms of the hub's clock), for the hub's timer.
    pub(crate) fn set_deadline(&self, ms: u64) {
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the session's published deadline is at or before `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.deadline_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// Queues `frame`; `false` (frame dropped) when the queue is full.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        {
            let mut queue = self.queue.lock();
            if queue.len() >= self.capacity as usize {
                return false;
            }
            queue.push_back(frame);
        }
        // Stores a permit when the session is not waiting: the next `pop` returns at once.
        self.ready.notify_one();
        true
    }

    /// The next thing for the session, waiting for one if there is none: the end of the
    /// session first, then a deadline nudge, then queued frames in order.
    pub(crate) async fn pop(&self) -> Wake {
        loop {
            let notified = self.ready.notified();
            match self.closed.load(Ordering::Acquire) {
                DEVICE_DELETED => return Wake::Closed(Closed::DeviceDeleted),
                SHUTDOWN => return Wake::Closed(Closed::Shutdown),
                _ => {}
            }
            if self.nudged.swap(false, Ordering::AcqRel) {
                return Wake::Deadline;
            }
            if let Some(frame) = self.try_pop() {
                return Wake::Frame(frame);
            }
            notified.await;
        }
    }

    /// The next queued frame, if any; gives the queue's memory back once it is empty.
    pub(crate) fn try_pop(&self) -> Option<Bytes> {
        let mut queue = self.queue.lock();
        let frame = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            *queue = VecDeque::new();
        }
        frame
    }

    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame.load(Ordering::Relaxed) as usize
    }

    pub(crate) fn set_max_frame(&self, bytes: usize) {
        self.max_frame
            .store(u32::try_from(bytes).unwrap_or(u32::MAX), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_arrive_in_order_and_a_full_queue_drops() {
        let outbox = std::sync::Arc::new(Outbox::new(2, 100));
        assert!(outbox.push(Bytes::from_static(b"a")));
        assert!(outbox.push(Bytes::from_static(b"b")));
        assert!(!outbox.push(Bytes::from_static(b"c")));
        assert_eq!(outbox.pop().await, Wake::Frame(Bytes::from_static(b"a")));
        assert_eq!(outbox.pop().await, Wake::Frame(Bytes::from_static(b"b")));
        assert!(outbox.try_pop().is_none());
        // A waiting session wakes on the next push.
        let waiting = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.pop().await }
        });
        tokio::task::yield_now().await;
        assert!(outbox.push(Bytes::from_static(b"d")));
        assert_eq!(
            waiting.await.unwrap(),
            Wake::Frame(Bytes::from_static(b"d"))
        );
        outbox.set_max_frame(7);
        assert_eq!(outbox.max_frame(), 7);
        // A nudge wakes a waiting session once; the deadline it checks is published here.
        outbox.set_deadline(1_000);
        assert!(!outbox.expired(999));
        assert!(outbox.expired(1_000));
        let waiting = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.pop().await }
        });
        tokio::task::yield_now().await;
        outbox.nudge();
        assert_eq!(waiting.await.unwrap(), Wake::Deadline);
        assert!(outbox.push(Bytes::from_static(b"e")));
        assert_eq!(outbox.pop().await, Wake::Frame(Bytes::from_static(b"e")));
        // Closing wakes a waiting session, queued frames or not; the first reason stays.
        let waiting = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.pop().await }
        });
        tokio::task::yield_now().await;
        outbox.close(Closed::DeviceDeleted);
        outbox.close(Closed::Shutdown);
        assert_eq!(waiting.await.unwrap(), Wake::Closed(Closed::DeviceDeleted));
        assert!(outbox.push(Bytes::from_static(b"f")));
        assert_eq!(outbox.pop().await, Wake::Closed(Closed::DeviceDeleted));
    }
}
