//! A consistent read view of the store for queries.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

/// One Parquet file of the catalog, as seen by queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// Smallest `ts` in the file.
    pub min_ts_us: i64,
    /// Largest `ts` in the file.
    pub max_ts_us: i64,
    /// Smallest `device_id` in the file.
    pub min_device_id: u32,
    /// Largest `device_id` in the file.
    pub max_device_id: u32,
    /// Distinct `org_id`s in the file, ascending.
    pub org_ids: Vec<u32>,
    /// Row count.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// A Parquet file published to snapshots. Compaction, retention and device deletion remove files
/// from the catalog, but a removed file is deleted from disk only when no [`Snapshot`] holding
/// it is alive any more (and a grace period has passed, for readers that keep only paths).
#[derive(Debug)]
pub(crate) struct LiveFile {
    pub meta: FileMeta,
}

/// A consistent cut of the store: every row written (and acknowledged) before the snapshot is
/// in exactly one of `batches` (memtables, including frozen ones being flushed) or `files`.
/// Batches have the telemetry [`schema`](crate::schema()) and are in no particular order; files
/// are sorted by the store's key order internally (each series is one run of rows).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// In-memory rows.
    pub batches: Vec<RecordBatch>,
    /// Parquet files. They are not deleted from disk while this snapshot (or a clone) is alive.
    pub files: Vec<FileMeta>,
    /// Keeps `files` on disk.
    pub(crate) _pins: Vec<Arc<LiveFile>>,
}

impl Snapshot {
    /// Rows held in memory.
    pub fn memory_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Rows held in files.
    pub fn file_rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}
