//! Store configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::remote::ParquetRemote;

/// When the WAL is fsynced relative to acknowledging a write.
///
/// Under `Always` and `Interval` a write is acknowledged (its `write` returns, its `write_with`
/// callback runs) only after the WAL bytes holding it are fsynced; the policies differ in how
/// many writes share one fsync and how long a writer waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every group commit is fsynced before its writers are acknowledged. Lowest latency for a
    /// lone writer (one fsync, ~1–6 ms on a shared disk); under load one fsync per group, so
    /// throughput is bounded by fsyncs/s × group size.
    Always,
    /// At most one fsync per interval (the default, 10 ms); a write is acknowledged after the
    /// fsync that covers it, so a writer waits up to the interval. Groups written during the
    /// interval share one fsync: best throughput with the same guarantee as `Always`. A write
    /// arriving after an idle period is fsynced at once.
    Interval(Duration),
    /// Never fsync the WAL; a write is acknowledged once it is handed to the OS. Survives a
    /// process crash; a machine crash or power loss can lose acknowledged writes.
    Never,
}

/// The default [`FsyncPolicy`]: `Interval(10 ms)`.
pub const DEFAULT_FSYNC: FsyncPolicy = FsyncPolicy::Interval(Duration::from_millis(10));

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
    /// Memory budget of frozen memtables waiting for the flusher, in rows (at least
    /// `memtable_max_rows`). When flushing falls behind and the frozen memtables reach it,
    /// acknowledgements wait until a flush completes: writers slow down, nothing is dropped.
    pub memtable_budget_rows: usize,
    /// A WAL segment is closed and a new one started once it reaches this size.
    pub wal_segment_bytes: u64,
    /// Size-tiered automatic compaction: after flushes, a partition holding at least this many
    /// files of one size tier (tiers grow by this factor) smaller than `compact_target_bytes`
    /// has them merged, on the compactor thread (0 disables automatic compaction).
    pub compact_min_files: usize,
    /// Files at least this large are left alone by compaction.
    pub compact_target_bytes: u64,
    /// A file replaced by compaction, retention or device deletion is deleted once no snapshot
    /// holds it and at least this long after its replacement (for readers that keep only
    /// the paths of a snapshot).
    pub obsolete_file_grace: Duration,
    /// A bucket that also keeps every Parquet file and the catalog (see [`crate::remote`]);
    /// `None`: local disk only.
    pub parquet_remote: Option<ParquetRemote>,
    /// Added to the nice value of the flush thread, and 9 more to the compaction thread's
    /// (Linux, where nice is per thread; at most 19), so that the threads serving devices,
    /// live subscribers and queries preempt them on a busy machine, and flushing (which frees
    /// the memory writers may wait for) preempts merging. Both still run when the others are
    /// idle, and the memtable budget slows writers if flushing falls behind. 0 leaves both as
    /// they are.
    pub background_nice: i32,
}

impl StorageConfig {
    /// Defaults: fsync `Interval(10 ms)` ([`DEFAULT_FSYNC`]), 1M-row memtables, 60 s max memtable age,
    /// at most 4M rows in frozen memtables, 64 MiB WAL segments,
    /// compaction of ≥ 8 files of a size tier under 256 MiB per partition, replaced files kept ≥ 5 min,
    /// no bucket, flush thread at nice +10 and compaction thread at +19.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            data_dir: data_dir.into(),
            fsync: DEFAULT_FSYNC,
            memtable_max_rows: 1_000_000,
            memtable_max_age: Duration::from_secs(60),
            memtable_budget_rows: 4_000_000,
            wal_segment_bytes: 64 * 1024 * 1024,
            compact_min_files: 8,
            compact_target_bytes: 256 * 1024 * 1024,
            obsolete_file_grace: Duration::from_secs(300),
            parquet_remote: None,
            background_nice: 10,
        }
    }
}
