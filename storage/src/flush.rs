//! The flusher thread: freezes old memtables, writes frozen memtables to Parquet, commits them to
//! the catalog, publishes them to snapshots and deletes the WAL segments they cover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::catalog::{Catalog, FileEntry};
use crate::config::StorageConfig;
use crate::dedup;
use crate::engine::Shared;
use crate::error::Result;
use crate::maintenance::{self, Graveyard, MaintenanceReport, RetentionRules};
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
    /// Flush, then rewrite files (compaction, retention, device deletion); reply when done.
    Maintain(Maintenance, Sender<Result<MaintenanceReport>>),
    /// Stop (after the flush in progress, if any).
    Shutdown,
}

/// A maintenance request.
pub(crate) enum Maintenance {
    /// Merge the small files of every partition holding at least two.
    Compact,
    /// Apply retention as of `now_us`.
    Retention(RetentionRules, i64),
    /// Delete every row of a device.
    DeleteDevice(u32, u32),
}

pub(crate) struct Flusher {
    shared: Arc<Shared>,
    catalog: Catalog,
    segments: Arc<ClosedSegments>,
    rx: Receiver<FlushMsg>,
    max_age: Duration,
    compact_min_files: usize,
    compact_target_bytes: u64,
    grace: Duration,
    graveyard: Graveyard,
}

impl Flusher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        catalog: Catalog,
        segments: Arc<ClosedSegments>,
        rx: Receiver<FlushMsg>,
        config: &StorageConfig,
    ) -> Flusher {
        Flusher {
            shared,
            catalog,
            segments,
            rx,
            max_age: config.memtable_max_age,
            compact_min_files: config.compact_min_files,
            compact_target_bytes: config.compact_target_bytes,
            grace: config.obsolete_file_grace,
            graveyard: Graveyard::default(),
        }
    }

    pub(crate) fn run(mut self) {
        let tick = (self.max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            match self.rx.recv_timeout(tick) {
                Ok(FlushMsg::Wake) | Err(RecvTimeoutError::Timeout) => {
                    self.shared.freeze_if_older_than(self.max_age);
                    // Errors are logged in `drain`; a failed flush is retried on the next tick.
                    if self.drain().is_ok() {
                        self.auto_compact();
                    }
                }
                Ok(FlushMsg::Flush(reply)) => {
                    self.shared.freeze_active();
                    let result = self.drain();
                    if result.is_ok() {
                        self.auto_compact();
                    }
                    let _ = reply.send(result);
                }
                Ok(FlushMsg::Maintain(op, reply)) => {
                    self.shared.freeze_active();
                    let result = self.drain().and_then(|()| self.maintain(op));
                    let _ = reply.send(result);
                }
                Ok(FlushMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.shared.flusher_stopped();
    }

    /// Compacts partitions with enough small files (errors are logged; retried after the next
    /// flush), and deletes replaced files nobody reads any more.
    fn auto_compact(&mut self) {
        if self.compact_min_files > 0 {
            let plan = maintenance::plan_compaction(
                self.catalog.entries(),
                self.compact_min_files,
                self.compact_target_bytes,
            );
            if !plan.is_empty()
                && let Err(e) = self.rewrite("compaction", plan, &[])
            {
                tracing::error!(error = %e, "compaction failed; will retry");
            }
        }
        let deleted = self.graveyard.sweep(self.grace);
        if deleted > 0 {
            tracing::debug!(deleted, "replaced Parquet files deleted");
        }
    }

    fn maintain(&mut self, op: Maintenance) -> Result<MaintenanceReport> {
        let report = match op {
            Maintenance::Compact => {
                let plan = maintenance::plan_compaction(self.catalog.entries(), 2, u64::MAX);
                self.rewrite("compaction", plan, &[])?
            }
            Maintenance::Retention(rules, now_us) => {
                let plan = maintenance::plan_retention(self.catalog.entries(), &rules, now_us);
                self.rewrite("retention", plan, &[])?
            }
            Maintenance::DeleteDevice(org, dev) => {
                let plan = maintenance::plan_device_deletion(self.catalog.entries(), org, dev);
                self.shared.forget_device(org, dev);
                self.rewrite("device deletion", plan, &[(org, dev)])?
            }
        };
        self.graveyard.sweep(self.grace);
        Ok(report)
    }

    fn rewrite(
        &mut self,
        what: &str,
        plan: Vec<maintenance::Rewrite>,
        forget: &[(u32, u32)],
    ) -> Result<MaintenanceReport> {
        let started = Instant::now();
        let (report, removed, added) = maintenance::execute(&mut self.catalog, plan, forget)?;
        if !removed.is_empty() || !added.is_empty() {
            let gone = self.shared.publish_replaced(&removed, added);
            self.graveyard.bury(gone);
        }
        if report.duplicates_removed > 0 {
            Metrics::add(
                &self.shared.metrics.duplicates_dropped,
                report.duplicates_removed,
            );
        }
        if report.files_removed > 0 {
            tracing::info!(
                what,
                files_removed = report.files_removed,
                files_written = report.files_written,
                rows_before = report.rows_before,
                rows_after = report.rows_after,
                duplicates = report.duplicates_removed,
                waiting_deletion = self.graveyard.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Parquet files rewritten"
            );
        }
        Ok(report)
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
        let props = parquet_writer::writer_properties()?;
        let mut next_id = self.catalog.next_file_id();
        let mut entries = Vec::new();
        for (day, batch) in parquet_writer::split_by_day(&sorted)? {
            let id = next_id;
            next_id += 1;
            let rel = Catalog::file_rel_path(&partition::partition_name(day), id);
            let bytes = parquet_writer::write_parquet_file(
                &self.catalog.abs_path(&rel),
                &batch,
                props.clone(),
            )?;
            let stats = parquet_writer::batch_stats(&batch);
            entries.push(FileEntry {
                id,
                path: rel,
                min_ts_us: stats.min_ts_us,
                max_ts_us: stats.max_ts_us,
                min_device_id: stats.min_device_id,
                max_device_id: stats.max_device_id,
                org_ids: stats.org_ids,
                rows: stats.rows,
                bytes,
                wal_seq_min: frozen.min_seq,
                wal_seq_max: frozen.max_seq,
            });
        }
        let files = entries.len();
        let bytes: u64 = entries.iter().map(|e| e.bytes).sum();
        let metas: Vec<_> = entries.iter().map(|e| self.catalog.file_meta(e)).collect();
        self.catalog
            .commit(entries, last_values, frozen.max_seq, next_id)?;
        self.shared.publish_flushed(frozen, metas);
        let deleted = self.segments.delete_covered(self.catalog.flushed_wal_seq());
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
