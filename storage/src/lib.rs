//! `pinhouse-storage` — the telemetry store of pinhouse.
//!
//! Role: accept batches of [`Point`]s, make them durable in a write-ahead log (checksummed
//! segments, group commit, replay on open), hold them in Arrow memtables, flush them to
//! day-partitioned Parquet files sorted by `(org_id, pin, device_id, ts)` (stores created
//! before catalog format 3: `(org_id, device_id, pin, ts)`) listed in an atomic catalog, keep the last value of every pin in memory, and hand queries a consistent
//! [`Snapshot`] of memtables ∪ files.
//! Files store `value` as scaled integers when that is exact ([`decode_file_batch`] turns it
//! back into `Float64` for readers of the files).
//!
//! Layout of a data directory:
//!
//! ```text
//! <data_dir>/LOCK                                   exclusive lock of the open store
//! <data_dir>/wal/00000000000000000001.wal           WAL segments (format: docs/wal.md)
//! <data_dir>/parquet/date=2026-11-25/<id>.parquet   Parquet files, one folder per UTC day
//! <data_dir>/catalog.json                           files, flushed WAL position, last-value log position
//! <data_dir>/last_values/<generation>.lv          the last value of every series (docs/storage.md)
//! ```
//!
//! Durability: a write is acknowledged only after the WAL group holding it is fsynced (per
//! [`FsyncPolicy`]); after a crash, replay restores every acknowledged value exactly once (WAL
//! records already covered by catalog files are skipped; Parquet files missing from the catalog
//! are removed and re-flushed from the WAL).
//!
//! Threads, not async: one committer thread owns the WAL; two flush threads write Parquet (one
//! prepares a memtable — sort, duplicates, last values — while the other writes the one
//! before, committing in freeze order); one compactor thread rewrites Parquet files
//! (compaction, retention, device deletion) so that a long merge never delays a flush.
//! The exception is [`objects`], the handle on the object store (local files or an S3-compatible
//! bucket) for large immutable objects such as firmware: `object_store` is async, so its callers
//! are async, but the module spawns nothing. The Parquet engine uses it only through
//! [`remote`] (optional: every Parquet file and the catalog also kept in a bucket), whose
//! futures a [`BlockOn`] supplied by the embedding program runs on the engine's threads.
//! This crate must not depend on tokio (directly), datafusion, ingest, query, api.

pub mod allocator;
mod catalog;
mod committer;
mod compactor;
mod config;
mod dedup;
mod engine;
mod error;
mod flush;
mod fsutil;
mod last_log;
mod last_value;
mod maintenance;
mod memtable;
mod merge;
mod metrics;
pub mod objects;
mod parquet_writer;
mod partition;
mod point;
pub mod remote;
mod schema;
mod snapshot;
mod value_encoding;
mod wal;

pub use config::{DEFAULT_FSYNC, FsyncPolicy, StorageConfig};
pub use engine::{RecoveryReport, Storage};
pub use error::{Result, StorageError};
pub use last_value::LastValue;
pub use maintenance::{MaintenanceReport, RetentionRules};
pub use metrics::StorageStats;
pub use point::{Point, Value};
pub use remote::{BlockOn, ParquetRemote, RemoteFuture};
pub use schema::{TS_TIMEZONE, columns, schema, ts_type};
pub use snapshot::{FileMeta, Snapshot};
pub use value_encoding::{decode_file_batch, unscale};
pub use wal::replay::TornTail;
