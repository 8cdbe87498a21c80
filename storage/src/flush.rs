//! The flusher thread: freezes old memtables, writes frozen memtables to Parquet, commits them to
//! the catalog, publishes them to snapshots and deletes the WAL segments they cover. It never
//! waits for compaction (the compactor thread's work), so flushing keeps pace with ingest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::catalog::Catalog;
use crate::compactor::CompactMsg;
use crate::config::StorageConfig;
use crate::dedup;
use crate::engine::Shared;
use crate::error::Result;
use crate::memtable::Frozen;
use crate::metrics::Metrics;
use crate::parquet_writer;
use crate::partition;
use crate::wal::ClosedSegments;

/// Messages to the flusher.
pub(crate) enum FlushMsg {
    /// A memtable was frozen.
    Wake,
    /// Freeze the active memtable and flush everything now; reply when done.
    Flush(Sender<Result<()>>),
    /// Stop (after the flush in progress, if any).
    Shutdown,
}

pub(crate) struct Flusher {
    shared: Arc<Shared>,
    catalog: Arc<Mutex<Catalog>>,
    segments: Arc<ClosedSegments>,
    rx: Receiver<FlushMsg>,
    /// Told after every flush (compaction runs on its own thread).
    compactor: Sender<CompactMsg>,
    max_age: Duration,
}

impl Flusher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        catalog: Arc<Mutex<Catalog>>,
        segments: Arc<ClosedSegments>,
        rx: Receiver<FlushMsg>,
        compactor: Sender<CompactMsg>,
        config: &StorageConfig,
    ) -> Flusher {
        Flusher {
            shared,
            catalog,
            segments,
            rx,
            compactor,
            max_age: config.memtable_max_age,
        }
    }

    pub(crate) fn run(mut self) {
        let tick = (self.max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            match self.rx.recv_timeout(tick) {
                Ok(FlushMsg::Wake) | Err(RecvTimeoutError::Timeout) => {
                    self.shared.freeze_if_older_than(self.max_age);
                    // Errors are logged in `drain`; a failed flush is retried on the next tick.
                    let _ = self.drain();
                }
                Ok(FlushMsg::Flush(reply)) => {
                    self.shared.freeze_active();
                    let _ = reply.send(self.drain());
                }
                Ok(FlushMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.shared.flusher_stopped();
    }

    /// Flushes frozen memtables oldest first until none is left or one fails.
    fn drain(&mut self) -> Result<()> {
        while let Some(frozen) = self.shared.oldest_frozen() {
            if let Err(e) = self.flush_one(&frozen) {
                Metrics::add(&self.shared.metrics.flush_errors, 1);
                tracing::error!(error = %e, rows = frozen.rows, "flush to Parquet failed; will retry");
                return Err(e);
            }
        }
        Ok(())
    }

    fn flush_one(&mut self, frozen: &Arc<Frozen>) -> Result<()> {
        let started = Instant::now();
        let sorted = parquet_writer::sort_rows(&frozen.batches)?;
        let (sorted, duplicates) = dedup::dedup_sorted(sorted)?;
        if duplicates > 0 {
            Metrics::add(&self.shared.metrics.duplicates_dropped, duplicates as u64);
        }
        let last_values = parquet_writer::last_values_of_sorted(&sorted);
        let mut entries = Vec::new();
        let mut written = Vec::new();
        let mut bytes = 0;
        let result = (|| -> Result<u64> {
            for (day, batch) in parquet_writer::split_by_day(&sorted)? {
                let (entry, abs) = parquet_writer::write_new_file(
                    &self.catalog,
                    &partition::partition_name(day),
                    &batch,
                    frozen.min_seq..=frozen.max_seq,
                )?;
                written.push(abs);
                bytes += entry.bytes;
                entries.push(entry);
            }
            // Committed and published under the catalog lock: the compactor plans from the
            // catalog, and must not merge a file whose rows snapshots still read from the
            // frozen memtable (lock order: catalog, then the memtable lock).
            let mut catalog = self.catalog.lock();
            let metas: Vec<_> = entries.iter().map(|e| catalog.file_meta(e)).collect();
            catalog.commit(std::mem::take(&mut entries), last_values, frozen.max_seq)?;
            self.shared.publish_flushed(frozen, metas);
            Ok(catalog.flushed_wal_seq())
        })();
        let flushed_wal_seq = match result {
            Ok(seq) => seq,
            Err(e) => {
                // The retry writes the files again under new ids: leave no orphans behind.
                parquet_writer::discard_written(&self.catalog, &written);
                return Err(e);
            }
        };
        let files = written.len();
        let _ = self.compactor.send(CompactMsg::Flushed);
        let deleted = self.segments.delete_covered(flushed_wal_seq);
        let m = &self.shared.metrics;
        Metrics::add(&m.flushes, 1);
        Metrics::add(&m.flushed_rows, frozen.rows as u64);
        Metrics::add(&m.parquet_files, files as u64);
        Metrics::add(&m.parquet_bytes, bytes);
        tracing::info!(
            rows = frozen.rows,
            files,
            bytes,
            wal_seq = frozen.max_seq,
            wal_segments_deleted = deleted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "memtable flushed to Parquet"
        );
        Ok(())
    }
}
