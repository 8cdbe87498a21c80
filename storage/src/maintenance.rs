//! Rewriting cataloged files: compaction (merging small files of a partition, removing
//! duplicates), retention (dropping partitions older than an organization's retention) and
//! device deletion (rewriting the files holding a device's rows).
//!
//! Every operation writes its new files durably first, then replaces the old entries in one
//! atomic catalog update, then publishes the change to snapshots. Replaced files are deleted
//! only once no snapshot holds them and a grace period has passed (see
//! [`Graveyard`]); after a crash, files missing from the catalog are removed on open.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::UInt32Type;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::catalog::{Catalog, FileEntry};
use crate::dedup;
use crate::error::{Result, StorageError};
use crate::parquet_writer;
use crate::partition;
use crate::schema::{COL_DEVICE, COL_ORG, schema};
use crate::snapshot::LiveFile;

/// Retention settings: how long each organization keeps its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRules {
    /// Retention of organizations without their own rule; `None` keeps their data forever.
    pub default: Option<Duration>,
    /// Per-organization retention, overriding `default`.
    pub per_org: HashMap<u32, Duration>,
}

impl RetentionRules {
    fn of(&self, org_id: u32) -> Option<Duration> {
        self.per_org.get(&org_id).copied().or(self.default)
    }
}

/// What a compaction, retention run or device deletion changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Files removed from the catalog.
    pub files_removed: usize,
    /// Files written.
    pub files_written: usize,
    /// Rows in the removed files.
    pub rows_before: u64,
    /// Rows in the written files.
    pub rows_after: u64,
    /// Duplicate rows removed while merging.
    pub duplicates_removed: u64,
}

/// Which rows of a batch to keep.
pub(crate) type RowFilter = Box<dyn Fn(&RecordBatch) -> BooleanArray + Send>;

/// One rewrite: these files are replaced by (at most) one file of the same partition holding
/// their rows that `keep` keeps, sorted and deduplicated.
pub(crate) struct Rewrite {
    pub files: Vec<FileEntry>,
    pub keep: Option<RowFilter>,
    /// Remove the files without reading them.
    pub drop_all: bool,
}

/// Groups of files to merge: per partition, the files smaller than `target_bytes`, when there
/// are at least `min_files` of them.
pub(crate) fn plan_compaction(
    entries: &[FileEntry],
    min_files: usize,
    target_bytes: u64,
) -> Vec<Rewrite> {
    let mut by_partition: HashMap<&str, Vec<FileEntry>> = HashMap::new();
    for e in entries.iter().filter(|e| e.bytes < target_bytes) {
        by_partition
            .entry(Catalog::partition_of(e))
            .or_default()
            .push(e.clone());
    }
    let mut out: Vec<Rewrite> = by_partition
        .into_values()
        .filter(|files| files.len() >= min_files.max(2))
        .map(|mut files| {
            // Oldest first, so that equal keys keep their write order.
            files.sort_by_key(|f| f.id);
            Rewrite {
                files,
                keep: None,
                drop_all: false,
            }
        })
        .collect();
    out.sort_by_key(|r| r.files[0].id);
    out
}

/// Files to drop or rewrite so that no organization keeps rows of a partition that ended more
/// than its retention before `now_us`.
pub(crate) fn plan_retention(
    entries: &[FileEntry],
    rules: &RetentionRules,
    now_us: i64,
) -> Vec<Rewrite> {
    let mut out = Vec::new();
    for e in entries {
        let end = partition::partition_end_us(e.min_ts_us);
        let expired: Vec<u32> = e
            .org_ids
            .iter()
            .copied()
            .filter(|&org| {
                rules.of(org).is_some_and(|keep| {
                    let keep_us = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
                    end <= now_us.saturating_sub(keep_us)
                })
            })
            .collect();
        if expired.is_empty() {
            continue;
        }
        let drop_all = expired.len() == e.org_ids.len();
        out.push(Rewrite {
            files: vec![e.clone()],
            keep: Some(Box::new(move |b: &RecordBatch| {
                let org = b.column(COL_ORG).as_primitive::<UInt32Type>();
                org.values()
                    .iter()
                    .map(|o| Some(!expired.contains(o)))
                    .collect()
            })),
            drop_all,
        });
    }
    out
}

/// Files holding rows of `(org_id, device_id)`, each rewritten without them.
pub(crate) fn plan_device_deletion(
    entries: &[FileEntry],
    org_id: u32,
    device_id: u32,
) -> Vec<Rewrite> {
    entries
        .iter()
        .filter(|e| {
            e.org_ids.contains(&org_id) && (e.min_device_id..=e.max_device_id).contains(&device_id)
        })
        .map(|e| Rewrite {
            files: vec![e.clone()],
            keep: Some(Box::new(move |b: &RecordBatch| {
                let org = b.column(COL_ORG).as_primitive::<UInt32Type>().values();
                let dev = b.column(COL_DEVICE).as_primitive::<UInt32Type>().values();
                org.iter()
                    .zip(dev.iter())
                    .map(|(o, d)| Some(!(*o == org_id && *d == device_id)))
                    .collect()
            })),
            drop_all: false,
        })
        .collect()
}

/// Reads every row of a cataloged file.
fn read_file(path: &std::path::Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(StorageError::io_path(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for b in reader {
        out.push(b?);
    }
    Ok(out)
}

/// Executes `rewrites` and commits them to the catalog in one update. Returns the report and
/// the absolute paths of the removed files, and the metadata of the written ones.
pub(crate) fn execute(
    catalog: &mut Catalog,
    rewrites: Vec<Rewrite>,
    forget: &[(u32, u32)],
) -> Result<(
    MaintenanceReport,
    HashSet<PathBuf>,
    Vec<crate::snapshot::FileMeta>,
)> {
    let mut report = MaintenanceReport::default();
    let mut removed_ids = HashSet::new();
    let mut removed_paths = HashSet::new();
    let mut added = Vec::new();
    let mut next_id = catalog.next_file_id();
    let props = parquet_writer::writer_properties()?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<()> {
        for rw in rewrites {
            let rows_before: u64 = rw.files.iter().map(|f| f.rows).sum();
            let mut batches = Vec::new();
            for f in rw.files.iter().filter(|_| !rw.drop_all) {
                for b in read_file(&catalog.abs_path(&f.path))? {
                    let b = match &rw.keep {
                        Some(keep) => filter_record_batch(&b, &keep(&b))?,
                        None => b,
                    };
                    if b.num_rows() > 0 {
                        batches.push(b);
                    }
                }
            }
            let rows_kept: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            if !rw.drop_all && rw.files.len() == 1 && rows_kept == rows_before {
                continue; // nothing to change in this file
            }
            report.files_removed += rw.files.len();
            report.rows_before += rows_before;
            for f in &rw.files {
                removed_ids.insert(f.id);
                removed_paths.insert(catalog.abs_path(&f.path));
            }
            if batches.is_empty() {
                continue;
            }
            let merged = if rw.files.len() > 1 {
                parquet_writer::sort_rows(&batches)?
            } else {
                concat_batches(&schema(), &batches)?
            };
            let (merged, dups) = dedup::dedup_sorted(merged)?;
            report.duplicates_removed += dups as u64;
            let partition = Catalog::partition_of(&rw.files[0]).to_owned();
            let id = next_id;
            next_id += 1;
            let rel = Catalog::file_rel_path(&partition, id);
            let abs = catalog.abs_path(&rel);
            let bytes = parquet_writer::write_parquet_file(&abs, &merged, props.clone())?;
            written.push(abs);
            let stats = parquet_writer::batch_stats(&merged);
            let entry = FileEntry {
                id,
                path: rel,
                min_ts_us: stats.min_ts_us,
                max_ts_us: stats.max_ts_us,
                min_device_id: stats.min_device_id,
                max_device_id: stats.max_device_id,
                org_ids: stats.org_ids,
                rows: stats.rows,
                bytes,
                wal_seq_min: rw.files.iter().map(|f| f.wal_seq_min).min().unwrap_or(0),
                wal_seq_max: rw.files.iter().map(|f| f.wal_seq_max).max().unwrap_or(0),
            };
            report.files_written += 1;
            report.rows_after += entry.rows;
            added.push(entry);
        }
        Ok(())
    })();
    if let Err(e) = result {
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    if removed_ids.is_empty() && added.is_empty() && forget.is_empty() {
        return Ok((report, removed_paths, Vec::new()));
    }
    let metas = added.iter().map(|e| catalog.file_meta(e)).collect();
    if let Err(e) = catalog.commit_replace(&removed_ids, added, next_id, forget) {
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    Ok((report, removed_paths, metas))
}

/// Files removed from the catalog, waiting until no snapshot holds them and the grace period
/// has passed.
#[derive(Default)]
pub(crate) struct Graveyard {
    files: Vec<(PathBuf, Instant, Weak<LiveFile>)>,
}

impl Graveyard {
    pub(crate) fn bury(&mut self, files: Vec<Arc<LiveFile>>) {
        let now = Instant::now();
        for f in files {
            self.files
                .push((f.meta.path.clone(), now, Arc::downgrade(&f)));
        }
    }

    /// Deletes what may be deleted; returns how many files were deleted.
    pub(crate) fn sweep(&mut self, grace: Duration) -> usize {
        let before = self.files.len();
        self.files.retain(|(path, since, weak)| {
            if weak.strong_count() > 0 || since.elapsed() < grace {
                return true;
            }
            match std::fs::remove_file(path) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete a replaced Parquet file; will retry");
                    true
                }
            }
        });
        before - self.files.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }
}
