//! Counters of the store, declared in one place. Read them with [`Storage::stats`](crate::Storage::stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (relaxed atomics, shared by the threads).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub wal_records: AtomicU64,
    pub wal_groups: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub wal_synced_records: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub write_errors: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub flushes: AtomicU64,
    pub flushed_rows: AtomicU64,
    pub parquet_files: AtomicU64,
    pub parquet_bytes: AtomicU64,
    pub flush_errors: AtomicU64,
    pub backpressure_waits: AtomicU64,
    pub frozen_rows_peak: AtomicU64,
    pub wal_fsync_max_us: AtomicU64,
    pub rewrites: AtomicU64,
    pub rewritten_rows: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StorageStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StorageStats {
            wal_records: get(&self.wal_records),
            wal_groups: get(&self.wal_groups),
            wal_fsyncs: get(&self.wal_fsyncs),
            wal_synced_records: get(&self.wal_synced_records),
            wal_bytes: get(&self.wal_bytes),
            write_errors: get(&self.write_errors),
            duplicates_dropped: get(&self.duplicates_dropped),
            flushes: get(&self.flushes),
            flushed_rows: get(&self.flushed_rows),
            parquet_files: get(&self.parquet_files),
            parquet_bytes: get(&self.parquet_bytes),
            flush_errors: get(&self.flush_errors),
            backpressure_waits: get(&self.backpressure_waits),
            frozen_rows_peak: get(&self.frozen_rows_peak),
            wal_fsync_max_us: get(&self.wal_fsync_max_us),
            rewrites: get(&self.rewrites),
            rewritten_rows: get(&self.rewritten_rows),
        }
    }
}

/// Counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// WAL records (write batches) appended.
    pub wal_records: u64,
    /// Groups appended (each one `write`).
    pub wal_groups: u64,
    /// WAL fsyncs.
    pub wal_fsyncs: u64,
    /// WAL records covered by a completed fsync before they were acknowledged (0 under
    /// `FsyncPolicy::Never`, except for the final sync at close).
    pub wal_synced_records: u64,
    /// Bytes appended to the WAL.
    pub wal_bytes: u64,
    /// Writes that completed with an error.
    pub write_errors: u64,
    /// Points not stored because an identical point (same org, device, pin, ts and value) was
    /// already stored (write path, flush and compaction).
    pub duplicates_dropped: u64,
    /// Memtables flushed to Parquet.
    pub flushes: u64,
    /// Rows flushed to Parquet.
    pub flushed_rows: u64,
    /// Parquet files written.
    pub parquet_files: u64,
    /// Parquet bytes written.
    pub parquet_bytes: u64,
    /// Failed flush attempts (retried).
    pub flush_errors: u64,
    /// Times the write path waited for the flusher (memtable budget reached).
    pub backpressure_waits: u64,
    /// The most rows ever held by frozen memtables at once.
    pub frozen_rows_peak: u64,
    /// The slowest WAL fsync so far, µs. Writes wait for it (under `always` and `interval`),
    /// and so do devices once the in-flight writes are used up.
    pub wal_fsync_max_us: u64,
    /// File rewrites committed (compaction, retention, device deletion).
    pub rewrites: u64,
    /// Rows read by those rewrites; over `flushed_rows`, the write amplification of
    /// compaction.
    pub rewritten_rows: u64,
}
