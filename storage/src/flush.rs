//! The flusher: freezes old memtables and writes frozen memtables to Parquet, commits them to
//! the catalog, publishes them to snapshots and deletes the WAL segments they cover. It never
//! waits for compaction (the compactor thread's work), so flushing keeps pace with ingest.
//!
//! Two stages on two threads, so that a flush uses both cores of a small machine: the flusher
//! thread *prepares* a memtable (sort, duplicate removal, last values, split by day) while its
//! writer thread *writes* the one before (Parquet encoding, on the writer and one helper;
//! fsync; catalog commit; publish). The writer takes memtables in freeze order and commits
//! them in that order, which the flushed WAL position relies on; a memtable whose predecessor
//! failed is set aside and prepared again (BENCHMARKS.md, "Flush in two stages").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::catalog::Catalog;
use crate::compactor::CompactMsg;
use crate::config::StorageConfig;
use crate::dedup;
use crate::engine::Shared;
use crate::error::{Result, StorageError};
use crate::last_value::LastValue;
use crate::memtable::Frozen;
use crate::metrics::Metrics;
use crate::parquet_writer::{self, SeriesKey};
use crate::partition;
use crate::schema::KeyOrder;
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
    rx: Receiver<FlushMsg>,
    max_age: Duration,
    /// The last memtable handed to the writer (the next one to prepare follows it); weak, so
    /// that a flushed memtable's memory is not held until the next one.
    handed: Option<Weak<Frozen>>,
    writer: Option<Writer>,
    /// The store's key order, which memtables are sorted by.
    order: KeyOrder,
}

/// A memtable ready to be written.
struct Prepared {
    frozen: Arc<Frozen>,
    days: Vec<(i64, RecordBatch)>,
    last_values: Vec<(SeriesKey, LastValue)>,
    started: Instant,
}

/// Messages to the writer thread.
enum ToWriter {
    Write(Prepared),
    /// Reply once everything sent before is written (or set aside after a failure): the
    /// failure, if the last memtable tried was not written.
    Barrier(Sender<Result<()>>),
}

/// The writing stage (see the module docs).
struct Writer {
    shared: Arc<Shared>,
    catalog: Arc<Mutex<Catalog>>,
    segments: Arc<ClosedSegments>,
    /// Told after every flush (compaction runs on its own thread).
    compactor: Sender<CompactMsg>,
    /// Set when a write failed: the flusher prepares again from the oldest frozen memtable.
    retry: Arc<AtomicBool>,
    /// The first failure since the last barrier or the last successful write.
    failure: Option<String>,
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
        let order = catalog.lock().key_order();
        Flusher {
            order,
            writer: Some(Writer {
                shared: shared.clone(),
                catalog,
                segments,
                compactor,
                retry: Arc::new(AtomicBool::new(false)),
                failure: None,
            }),
            shared,
            rx,
            max_age: config.memtable_max_age,
            handed: None,
        }
    }

    pub(crate) fn run(mut self) {
        let tick = (self.max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let Some(writer) = self.writer.take() else {
            return;
        };
        let retry = writer.retry.clone();
        // The writer inherits this thread's priority. Queue of one: a prepared memtable waits
        // while the one before is written, and preparing the next waits for it.
        let (to_writer, writer_rx) = crossbeam_channel::bounded::<ToWriter>(1);
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("pinhouse-fwrite".into())
                .spawn_scoped(scope, move || writer.run(writer_rx));
            let writer = match spawned {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::error!(error = %e, "no flush writer thread; flushing stops");
                    return;
                }
            };
            loop {
                match self.rx.recv_timeout(tick) {
                    Ok(FlushMsg::Wake) | Err(RecvTimeoutError::Timeout) => {
                        self.shared.freeze_if_older_than(self.max_age);
                        // Errors are logged; a failed preparation is retried on the next tick.
                        if let Err(StorageError::Closed) = self.prepare_all(&retry, &to_writer) {
                            break;
                        }
                    }
                    Ok(FlushMsg::Flush(reply)) => {
                        self.shared.freeze_active();
                        match self.prepare_all(&retry, &to_writer) {
                            Ok(()) => {
                                if let Err(e) = to_writer.send(ToWriter::Barrier(reply))
                                    && let ToWriter::Barrier(reply) = e.into_inner()
                                {
                                    let _ = reply.send(Err(StorageError::Closed));
                                    break;
                                }
                            }
                            Err(e) => {
                                let closed = matches!(e, StorageError::Closed);
                                let _ = reply.send(Err(e));
                                if closed {
                                    break;
                                }
                            }
                        }
                    }
                    Ok(FlushMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            // The writer finishes what it was handed, then stops.
            drop(to_writer);
            if writer.join().is_err() {
                tracing::error!("the flush writer thread panicked; flushing stops");
            }
        });
        self.shared.flusher_stopped();
    }

    /// Prepares every frozen memtable not handed to the writer yet, oldest first, and hands
    /// each over. A preparation that fails is logged and returned (the memtable is prepared
    /// again next time); [`StorageError::Closed`] when the writer thread is gone.
    fn prepare_all(&mut self, retry: &AtomicBool, to_writer: &Sender<ToWriter>) -> Result<()> {
        if retry.swap(false, Ordering::Relaxed) {
            self.handed = None;
        }
        loop {
            let handed = self.handed.as_ref().and_then(Weak::upgrade);
            let Some(frozen) = self.shared.frozen_after(handed.as_ref()) else {
                break;
            };
            let prepared = prepare(&self.shared, &frozen, self.order)
                .inspect_err(|e| flush_failed(&self.shared, e, frozen.rows))?;
            if to_writer.send(ToWriter::Write(prepared)).is_err() {
                tracing::error!("the flush writer thread stopped; flushing stops");
                return Err(StorageError::Closed);
            }
            self.handed = Some(Arc::downgrade(&frozen));
        }
        Ok(())
    }
}

/// Counts and logs a failed flush of a memtable of `rows` rows (retried later, by either stage).
fn flush_failed(shared: &Shared, error: &StorageError, rows: usize) {
    Metrics::add(&shared.metrics.flush_errors, 1);
    tracing::error!(error = %error, rows, "flush to Parquet failed; will retry");
}

/// The first stage: sorts the rows, removes repeated ones, takes the last values and splits
/// the rows by day.
fn prepare(shared: &Shared, frozen: &Arc<Frozen>, order: KeyOrder) -> Result<Prepared> {
    let started = Instant::now();
    let sorted = parquet_writer::sort_rows(&frozen.batches, order)?;
    let (sorted, duplicates) = dedup::dedup_sorted(sorted)?;
    if duplicates > 0 {
        Metrics::add(&shared.metrics.duplicates_dropped, duplicates as u64);
    }
    let last_values = parquet_writer::last_values_of_sorted(&sorted);
    let days = parquet_writer::split_by_day(&sorted)?;
    Ok(Prepared {
        frozen: frozen.clone(),
        days,
        last_values,
        started,
    })
}

impl Writer {
    fn run(mut self, rx: Receiver<ToWriter>) {
        for msg in rx {
            match msg {
                ToWriter::Write(prepared) => {
                    // Its predecessor failed and is still in memory: commit nothing before it.
                    let next = self.shared.oldest_frozen();
                    if !next.is_some_and(|f| Arc::ptr_eq(&f, &prepared.frozen)) {
                        continue;
                    }
                    let rows = prepared.frozen.rows;
                    match self.write(prepared) {
                        // Every earlier memtable is flushed too: earlier failures are mended.
                        Ok(()) => self.failure = None,
                        Err(e) => {
                            flush_failed(&self.shared, &e, rows);
                            self.failure.get_or_insert_with(|| e.to_string());
                            self.retry.store(true, Ordering::Relaxed);
                        }
                    }
                }
                ToWriter::Barrier(reply) => {
                    let result = match self.failure.take() {
                        Some(e) => Err(StorageError::Flush(e)),
                        None => Ok(()),
                    };
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// The second stage: writes the files, commits and publishes them, deletes the WAL
    /// segments now covered.
    fn write(&mut self, prepared: Prepared) -> Result<()> {
        let Prepared {
            frozen,
            days,
            last_values,
            started,
        } = prepared;
        let mut entries = Vec::new();
        let mut written = Vec::new();
        let mut bytes = 0;
        let result = (|| -> Result<u64> {
            for (day, batch) in days {
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
            self.shared.publish_flushed(&frozen, metas);
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
