//! The WAL committer thread: gathers the batches of all concurrent writers into one group,
//! writes the group with one `write`, fsyncs per policy, then applies the acknowledged batches
//! to the memtable and last-value cache and completes their waiters.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::config::FsyncPolicy;
use crate::engine::Shared;
use crate::error::{Result, StorageError};
use crate::metrics::Metrics;
use crate::point::Point;
use crate::wal::WalWriter;

/// Completion callback of one write.
pub(crate) type Done = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// One writer's batch on its way to the WAL.
pub(crate) struct WriteRequest {
    /// The encoded record body (encoded on the writer's thread).
    pub body: Vec<u8>,
    pub points: Vec<Point>,
    pub done: Done,
}

/// Upper bound of the bytes gathered into one group.
const MAX_GROUP_BYTES: usize = 16 << 20;
/// An fsync at least this slow is logged.
const SLOW_FSYNC: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) struct Committer {
    shared: Arc<Shared>,
    wal: WalWriter,
    policy: FsyncPolicy,
    rx: Receiver<WriteRequest>,
    /// Set after a failure that leaves the WAL in an unknown state.
    poisoned: Option<String>,
    /// Written, waiting for the fsync that covers them (or for acknowledgement).
    pending: Vec<(u64, WriteRequest)>,
    last_sync: Instant,
}

impl Committer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        wal: WalWriter,
        policy: FsyncPolicy,
        rx: Receiver<WriteRequest>,
    ) -> Self {
        Committer {
            shared,
            wal,
            policy,
            rx,
            poisoned: None,
            pending: Vec::new(),
            last_sync: Instant::now(),
        }
    }

    /// Runs until every sender is gone and the queue is drained; then syncs the WAL one last time.
    pub(crate) fn run(mut self) -> Result<()> {
        let mut group: Vec<WriteRequest> = Vec::new();
        let mut disconnected = false;
        while !disconnected {
            let first = match self.sync_deadline() {
                Some(deadline) => match self.rx.recv_deadline(deadline) {
                    Ok(r) => Some(r),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        disconnected = true;
                        None
                    }
                },
                None => match self.rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => {
                        disconnected = true;
                        None
                    }
                },
            };
            if let Some(first) = first {
                let mut bytes = first.body.len();
                group.push(first);
                while bytes < MAX_GROUP_BYTES {
                    match self.rx.try_recv() {
                        Ok(r) => {
                            bytes += r.body.len();
                            group.push(r);
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
                self.write_group(&mut group);
            }
            let sync_now = match self.policy {
                FsyncPolicy::Always => true,
                FsyncPolicy::Never => false,
                FsyncPolicy::Interval(d) => disconnected || self.last_sync.elapsed() >= d,
            };
            if sync_now || disconnected {
                self.sync_and_ack();
            } else if self.policy == FsyncPolicy::Never {
                self.ack();
            }
        }
        self.sync_and_ack();
        match &self.poisoned {
            Some(reason) => Err(StorageError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// When pending writes wait for an interval fsync: the time it is due.
    fn sync_deadline(&self) -> Option<Instant> {
        match self.policy {
            FsyncPolicy::Interval(d) if !self.pending.is_empty() => Some(self.last_sync + d),
            _ => None,
        }
    }

    fn write_group(&mut self, group: &mut Vec<WriteRequest>) {
        if let Some(reason) = &self.poisoned {
            let err = StorageError::Poisoned(reason.clone());
            Metrics::add(&self.shared.metrics.write_errors, group.len() as u64);
            for req in group.drain(..) {
                complete(req.done, Err(err.duplicate()));
            }
            return;
        }
        let bodies: Vec<&[u8]> = group.iter().map(|r| r.body.as_slice()).collect();
        match self.wal.append_group(&bodies) {
            Ok(first_seq) => {
                let m = &self.shared.metrics;
                Metrics::add(&m.wal_groups, 1);
                Metrics::add(&m.wal_records, group.len() as u64);
                Metrics::add(
                    &m.wal_bytes,
                    group.iter().map(|r| r.body.len() as u64 + 16).sum(),
                );
                for (i, req) in group.drain(..).enumerate() {
                    self.pending.push((first_seq + i as u64, req));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = group.len(), "WAL write failed");
                Metrics::add(&self.shared.metrics.write_errors, group.len() as u64);
                if let StorageError::Poisoned(reason) = &e {
                    self.poisoned = Some(reason.clone());
                }
                for req in group.drain(..) {
                    complete(req.done, Err(e.duplicate()));
                }
            }
        }
    }

    fn sync_and_ack(&mut self) {
        if self.poisoned.is_none() {
            let started = Instant::now();
            let synced = self.wal.sync();
            let took = started.elapsed();
            if synced.as_ref().is_ok_and(|s| *s) {
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                self.shared
                    .metrics
                    .wal_fsync_max_us
                    .fetch_max(us, std::sync::atomic::Ordering::Relaxed);
                if took >= SLOW_FSYNC {
                    tracing::warn!(
                        ms = took.as_millis() as u64,
                        pending = self.pending.len(),
                        "slow WAL fsync: writes wait for it"
                    );
                }
            }
            match synced {
                Ok(true) => {
                    Metrics::add(&self.shared.metrics.wal_fsyncs, 1);
                    Metrics::add(
                        &self.shared.metrics.wal_synced_records,
                        self.pending.len() as u64,
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    // After a failed fsync the kernel may have dropped the dirty pages: the WAL can no
                    // longer be trusted, and nothing after this point may be acknowledged.
                    tracing::error!(error = %e, "WAL fsync failed; write path poisoned");
                    self.poisoned = Some(format!("WAL fsync failed: {e}"));
                }
            }
            self.last_sync = Instant::now();
        }
        if let Some(reason) = &self.poisoned {
            let err = StorageError::Poisoned(reason.clone());
            Metrics::add(&self.shared.metrics.write_errors, self.pending.len() as u64);
            for (_, req) in self.pending.drain(..) {
                complete(req.done, Err(err.duplicate()));
            }
            return;
        }
        self.ack();
    }

    /// Applies the pending (durable per policy) batches in sequence order and completes them.
    fn ack(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let acked = std::mem::take(&mut self.pending);
        self.shared.apply(&acked);
        for (_, req) in acked {
            complete(req.done, Ok(()));
        }
    }
}

/// Calls a completion callback; a panicking callback must not take the committer down.
fn complete(done: Done, result: Result<()>) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
        tracing::error!("a write completion callback panicked");
    }
}
