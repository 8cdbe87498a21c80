//! The compactor thread: rewrites cataloged files — automatic size-tiered compaction after
//! flushes, and the explicit compaction, retention and device deletion — apart from the
//! flusher, so that a long merge never holds up flushing (and, through the memtable budget,
//! ingest). It is the only thread that removes files from the catalog; the flusher only adds.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::catalog::Catalog;
use crate::config::StorageConfig;
use crate::engine::Shared;
use crate::error::Result;
use crate::maintenance::{self, Graveyard, MaintenanceReport, RetentionRules};
use crate::metrics::Metrics;

/// Messages to the compactor.
pub(crate) enum CompactMsg {
    /// Files were flushed: look for tiers to merge.
    Flushed,
    /// Rewrite files now (the caller has flushed); reply when done.
    Maintain(Maintenance, Sender<Result<MaintenanceReport>>),
    /// Stop (the rewrite in progress, if any, is abandoned: see `Shared::stop_rewrites`).
    Shutdown,
}

/// An explicit maintenance request.
pub(crate) enum Maintenance {
    /// Merge all files of every partition holding at least two.
    Compact,
    /// Apply retention as of `now_us`.
    Retention(RetentionRules, i64),
    /// Delete every row of these `(org_id, device_id)` devices.
    DeleteDevices(Vec<(u32, u32)>),
}

/// How often replaced files are looked at for deletion when nothing else happens.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Compactor {
    shared: Arc<Shared>,
    catalog: Arc<Mutex<Catalog>>,
    rx: Receiver<CompactMsg>,
    stop: Arc<AtomicBool>,
    min_files: usize,
    target_bytes: u64,
    grace: Duration,
    graveyard: Graveyard,
}

impl Compactor {
    pub(crate) fn new(
        shared: Arc<Shared>,
        catalog: Arc<Mutex<Catalog>>,
        rx: Receiver<CompactMsg>,
        stop: Arc<AtomicBool>,
        config: &StorageConfig,
    ) -> Compactor {
        let graveyard = {
            let catalog = catalog.lock();
            Graveyard::new(catalog.remote().cloned(), catalog.data_dir().to_owned())
        };
        Compactor {
            shared,
            catalog,
            rx,
            stop,
            min_files: config.compact_min_files,
            target_bytes: config.compact_target_bytes,
            grace: config.obsolete_file_grace,
            graveyard,
        }
    }

    pub(crate) fn run(mut self) {
        let mut next = None;
        loop {
            let msg = match next.take() {
                Some(msg) => Ok(msg),
                None => self.rx.recv_timeout(SWEEP_EVERY),
            };
            match msg {
                Ok(CompactMsg::Flushed) => {
                    // Flushes may come faster than merges: one look covers them all.
                    loop {
                        match self.rx.try_recv() {
                            Ok(CompactMsg::Flushed) => {}
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.auto_compact();
                }
                // Idle: merges that a merge made possible, or a failed one, are tried again.
                Err(RecvTimeoutError::Timeout) => self.auto_compact(),
                Ok(CompactMsg::Maintain(op, reply)) => {
                    let result = self.maintain(op);
                    // Files replaced by an earlier run that nobody holds go now, before the
                    // caller hears back.
                    self.sweep();
                    let _ = reply.send(result);
                    continue;
                }
                Ok(CompactMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            }
            self.sweep();
        }
    }

    /// Deletes the replaced files that no snapshot holds any more, after the grace period.
    fn sweep(&mut self) {
        let deleted = self.graveyard.sweep(self.grace);
        if deleted > 0 {
            tracing::debug!(deleted, "replaced Parquet files deleted");
        }
    }

    /// Merges the tiers with enough files, then the tiers those merges filled, until none is
    /// left or a merge fails (logged; retried at the next flush or idle tick).
    fn auto_compact(&mut self) {
        if self.min_files == 0 {
            return;
        }
        loop {
            let plan = maintenance::plan_compaction(
                self.catalog.lock().entries(),
                self.min_files,
                self.target_bytes,
            );
            if plan.is_empty() || self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            if let Err(e) = self.rewrite("compaction", plan, &[]) {
                tracing::error!(error = %e, "compaction failed; will retry");
                return;
            }
        }
    }

    fn maintain(&mut self, op: Maintenance) -> Result<MaintenanceReport> {
        match op {
            Maintenance::Compact => {
                let plan = maintenance::plan_full_compaction(self.catalog.lock().entries());
                self.rewrite("compaction", plan, &[])
            }
            Maintenance::Retention(rules, now_us) => {
                let plan =
                    maintenance::plan_retention(self.catalog.lock().entries(), &rules, now_us);
                self.rewrite("retention", plan, &[])
            }
            Maintenance::DeleteDevices(devices) => {
                let plan =
                    maintenance::plan_device_deletion(self.catalog.lock().entries(), &devices);
                for &(org, dev) in &devices {
                    self.shared.forget_device(org, dev);
                }
                self.rewrite("device deletion", plan, &devices)
            }
        }
    }

    fn rewrite(
        &mut self,
        what: &str,
        plan: Vec<maintenance::Rewrite>,
        forget: &[(u32, u32)],
    ) -> Result<MaintenanceReport> {
        let started = Instant::now();
        let shared = &self.shared;
        let mut gone = Vec::new();
        let report =
            maintenance::execute(&self.catalog, plan, forget, &self.stop, |removed, added| {
                if !removed.is_empty() || !added.is_empty() {
                    gone = shared.publish_replaced(removed, added);
                }
            })?;
        self.graveyard.bury(gone);
        let m = &self.shared.metrics;
        if report.duplicates_removed > 0 {
            Metrics::add(&m.duplicates_dropped, report.duplicates_removed);
        }
        if report.files_removed > 0 {
            Metrics::add(&m.rewrites, 1);
            Metrics::add(&m.rewritten_rows, report.rows_before);
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
}
