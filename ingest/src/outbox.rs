//! The queue of frames the cloud sends to one device session.
//!
//! Most devices of a fleet are idle most of the time and are never written to, so the queue
//! costs nothing until it is used: an empty `VecDeque` does not allocate (a bounded
//! `tokio::sync::mpsc` channel allocates a block of 32 slots, ~1 KiB, when it is made). The
//! hub pushes without waiting and drops a frame when the queue is full; the session awaits
//! the next frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Frames waiting for one session, and the largest frame its device accepts.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Bytes>>,
    ready: Notify,
    capacity: usize,
    /// Largest frame (header + body) the device accepts; the device may announce it.
    max_frame: AtomicUsize,
    /// Set by [`Outbox::close`]: the session is to end.
    closed: AtomicBool,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, max_frame: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity,
            max_frame: AtomicUsize::new(max_frame),
            closed: AtomicBool::new(false),
        }
    }

    /// Ends the session: its next [`Outbox::pop`] returns `None` (the device was deleted).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Queues `frame`; `false` (frame dropped) when the queue is full.
    pub(crate) fn push(&self, frame: Bytes) -> bool {
        {
            let mut queue = self.queue.lock();
            if queue.len() >= self.capacity {
                return false;
            }
            queue.push_back(frame);
        }
        // Stores a permit when the session is not waiting: the next `pop` returns at once.
        self.ready.notify_one();
        true
    }

    /// The next queued frame, waiting for one if there is none; `None` once the outbox is
    /// closed (the session ends).
    pub(crate) async fn pop(&self) -> Option<Bytes> {
        loop {
            let notified = self.ready.notified();
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(frame) = self.try_pop() {
                return Some(frame);
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
        self.max_frame.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_frame(&self, bytes: usize) {
        self.max_frame.store(bytes, Ordering::Relaxed);
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
        assert_eq!(outbox.pop().await, Some(Bytes::from_static(b"a")));
        assert_eq!(outbox.pop().await, Some(Bytes::from_static(b"b")));
        assert!(outbox.try_pop().is_none());
        // A waiting session wakes on the next push.
        let waiting = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.pop().await }
        });
        tokio::task::yield_now().await;
        assert!(outbox.push(Bytes::from_static(b"d")));
        assert_eq!(waiting.await.unwrap(), Some(Bytes::from_static(b"d")));
        outbox.set_max_frame(7);
        assert_eq!(outbox.max_frame(), 7);
        // Closing wakes a waiting session with `None`, queued frames or not.
        let waiting = tokio::spawn({
            let outbox = std::sync::Arc::clone(&outbox);
            async move { outbox.pop().await }
        });
        tokio::task::yield_now().await;
        outbox.close();
        assert_eq!(waiting.await.unwrap(), None);
        assert!(outbox.push(Bytes::from_static(b"e")));
        assert_eq!(outbox.pop().await, None);
    }
}
