//! Store configuration.

use std::path::PathBuf;
use std::time::Duration;

/// When the WAL is fsynced relative to acknowledging a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every group commit is fsynced before its writers are acknowledged.
    Always,
    /// At most one fsync per interval; a write is acknowledged after the fsync that covers it,
    /// so a writer waits up to the interval.
    Interval(Duration),
    /// Never fsync the WAL; a write is acknowledged once it is handed to the OS. A machine
    /// crash (not a process crash) can lose acknowledged writes.
    Never,
}

/// Configuration of a [`Storage`](crate::Storage).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Root directory: `wal/`, `parquet/` and `catalog.json` live under it.
    pub data_dir: PathBuf,
    /// WAL fsync policy.
    pub fsync: FsyncPolicy,
    /// The active memtable is frozen (and flushed to Parquet) at this many rows.
    pub memtable_max_rows: usize,
    /// ... or when its oldest row was written this long ago.
    pub memtable_max_age: Duration,
    /// A WAL segment is closed and a new one started once it reaches this size.
    pub wal_segment_bytes: u64,
}

impl StorageConfig {
    /// Defaults: fsync `Always`, 1M-row memtables, 60 s max memtable age, 64 MiB WAL segments.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            memtable_max_rows: 1_000_000,
            memtable_max_age: Duration::from_secs(60),
            wal_segment_bytes: 64 * 1024 * 1024,
        }
    }
}
