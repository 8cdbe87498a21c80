//! Rewriting cataloged files: compaction (merging small files of a partition, removing
//! duplicates), retention (dropping partitions older than an organization's retention) and
//! device deletion (rewriting the files holding a device's rows).
//!
//! Every operation writes its new files durably first, then replaces the old entries in one
//! atomic catalog update, then publishes the change to snapshots. Replaced files are deleted
//! only once no snapshot holds them and a grace period has passed (see
//! [`Graveyard`]); after a crash, files missing from the catalog are removed on open.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray};
use arrow::datatypes::UInt32Type;
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;

use crate::catalog::{Catalog, FileEntry};
use crate::error::{Result, StorageError};
use crate::merge;
use crate::parquet_writer;
use crate::partition;
use crate::remote::ParquetRemote;
use crate::schema::COL_ORG;
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
    /// The plan knows that `keep` drops rows of the file (a file is otherwise read first to
    /// see whether it does, and left alone when not).
    pub drops_rows: bool,
}

/// Files below this size form the lowest compaction tier.
const TIER_BASE_BYTES: u64 = 64 << 10;

/// The compaction tier of a file of `bytes`: 0 below [`TIER_BASE_BYTES`], then one tier per
/// factor `fanout` of size.
fn tier_of(bytes: u64, fanout: u64) -> u32 {
    let mut tier = 0;
    let mut bound = TIER_BASE_BYTES;
    while bytes >= bound {
        tier += 1;
        match bound.checked_mul(fanout) {
            Some(next) => bound = next,
            None => break,
        }
    }
    tier
}

/// Most rows one automatic merge reads. A merge streams its inputs (`merge.rs`: about one
/// row group per input in memory), so this bounds the time of one merge, not its memory: a
/// long merge delays the next ones, and files this large already prune well.
pub(crate) const MAX_MERGE_ROWS: u64 = 16_000_000;

/// Size-tiered groups of files to merge (automatic compaction): per partition and tier, the
/// files smaller than `target_bytes` (and than half of [`MAX_MERGE_ROWS`]), when there are at
/// least `min_files` of them; merged oldest first, at most [`MAX_MERGE_ROWS`] rows per merge.
///
/// A tier spans a factor of `min_files` in file size, so the `min_files` files merged from one
/// tier make a file of roughly the next tier: every row is rewritten about once per tier, a
/// handful of times in all, however many flushes a partition receives. (Merging every small file
/// of a partition at each round rewrote its whole history each time: a day partition fed at
/// 1 M rows/s spent more time compacting than flushing.)
pub(crate) fn plan_compaction(
    entries: &[FileEntry],
    min_files: usize,
    target_bytes: u64,
) -> Vec<Rewrite> {
    let min_files = min_files.max(2);
    let fanout = min_files as u64;
    let small = entries
        .iter()
        .filter(|e| e.bytes < target_bytes && e.rows < MAX_MERGE_ROWS / 2);
    let mut out = Vec::new();
    for files in group_files(small, |e| tier_of(e.bytes, fanout)) {
        if files.len() < min_files {
            continue;
        }
        let mut run: Vec<FileEntry> = Vec::new();
        let mut rows = 0;
        for f in files {
            if rows + f.rows > MAX_MERGE_ROWS {
                out.extend(merge_of(std::mem::take(&mut run)));
                rows = 0;
            }
            rows += f.rows;
            run.push(f);
        }
        out.extend(merge_of(run));
    }
    out.sort_by_key(|r| r.files[0].id);
    out
}

/// Every partition holding several files, all of them merged into one (the explicit
/// [`crate::Storage::compact`]).
pub(crate) fn plan_full_compaction(entries: &[FileEntry]) -> Vec<Rewrite> {
    let mut out: Vec<Rewrite> = group_files(entries.iter(), |_| 0)
        .into_iter()
        .filter_map(merge_of)
        .collect();
    out.sort_by_key(|r| r.files[0].id);
    out
}

/// `files` (oldest first) merged into one, when there are at least two.
fn merge_of(files: Vec<FileEntry>) -> Option<Rewrite> {
    (files.len() >= 2).then_some(Rewrite {
        files,
        keep: None,
        drop_all: false,
        drops_rows: false,
    })
}

/// `entries` grouped by partition and `class`, each group oldest first (so that equal keys
/// keep their write order when merged).
fn group_files<'a>(
    entries: impl Iterator<Item = &'a FileEntry>,
    class: impl Fn(&FileEntry) -> u32,
) -> Vec<Vec<FileEntry>> {
    let mut groups: HashMap<(&str, u32), Vec<FileEntry>> = HashMap::new();
    for e in entries {
        groups
            .entry((Catalog::partition_of(e), class(e)))
            .or_default()
            .push(e.clone());
    }
    groups
        .into_values()
        .map(|mut files| {
            // By WAL position, not id: a merge's output gets its id after files flushed
            // while it ran, yet holds older writes.
            files.sort_by_key(|f| (f.wal_seq_min, f.id));
            files
        })
        .collect()
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
            // `org_ids` are the file's organizations, so an expired one has rows in it.
            drops_rows: true,
        });
    }
    out
}

/// Files holding rows of any of `devices` (`(org_id, device_id)` pairs), each rewritten once
/// without the rows of all of them: deleting many devices costs one pass over the files.
pub(crate) fn plan_device_deletion(entries: &[FileEntry], devices: &[(u32, u32)]) -> Vec<Rewrite> {
    let gone: Arc<HashSet<(u32, u32)>> = Arc::new(devices.iter().copied().collect());
    entries
        .iter()
        .filter(|e| {
            gone.iter().any(|(org, dev)| {
                e.org_ids.contains(org) && (e.min_device_id..=e.max_device_id).contains(dev)
            })
        })
        .map(|e| {
            let gone = Arc::clone(&gone);
            Rewrite {
                files: vec![e.clone()],
                keep: Some(Box::new(move |b: &RecordBatch| {
                    let (org, dev, _, _) = crate::schema::key_columns(b);
                    org.iter()
                        .zip(dev.iter())
                        .map(|(o, d)| Some(!gone.contains(&(*o, *d))))
                        .collect()
                })),
                drop_all: false,
                // A device id within the file's range may still have no rows in it.
                drops_rows: false,
            }
        })
        .collect()
}

/// Executes `rewrites`, commits them to the catalog in one update and, under the same lock,
/// hands `publish` the absolute paths of the removed files and the metadata of the written
/// ones. Returns the report.
///
/// The catalog is locked only to name new files and to commit: the flusher goes on adding
/// files meanwhile (only this thread removes any). `stop` turning true abandons the work (the
/// files written so far are removed) with [`StorageError::Closed`].
pub(crate) fn execute(
    catalog: &Mutex<Catalog>,
    rewrites: Vec<Rewrite>,
    forget: &[(u32, u32)],
    stop: &AtomicBool,
    publish: impl FnOnce(&HashSet<PathBuf>, Vec<crate::snapshot::FileMeta>),
) -> Result<MaintenanceReport> {
    let mut report = MaintenanceReport::default();
    let mut removed_ids = HashSet::new();
    let mut removed_paths = HashSet::new();
    let mut added = Vec::new();
    let mut written: Vec<PathBuf> = Vec::new();
    let order = catalog.lock().key_order();
    let result = (|| -> Result<()> {
        for rw in rewrites {
            if stop.load(Ordering::Relaxed) {
                return Err(StorageError::Closed);
            }
            let rows_before: u64 = rw.files.iter().map(|f| f.rows).sum();
            let paths: Vec<PathBuf> = {
                let catalog = catalog.lock();
                rw.files.iter().map(|f| catalog.abs_path(&f.path)).collect()
            };
            let unchanged = !rw.drop_all
                && match (paths.as_slice(), &rw.keep) {
                    ([_], None) => true,
                    ([path], Some(keep)) => {
                        !rw.drops_rows && !merge::filter_removes_rows(path, keep)?
                    }
                    _ => false,
                };
            if unchanged {
                continue; // nothing to change in this file
            }
            report.files_removed += rw.files.len();
            report.rows_before += rows_before;
            for (f, path) in rw.files.iter().zip(&paths) {
                removed_ids.insert(f.id);
                removed_paths.insert(path.clone());
            }
            if rw.drop_all {
                continue;
            }
            let partition = Catalog::partition_of(&rw.files[0]).to_owned();
            let wal_seq_min = rw.files.iter().map(|f| f.wal_seq_min).min().unwrap_or(0);
            let wal_seq_max = rw.files.iter().map(|f| f.wal_seq_max).max().unwrap_or(0);
            let mut duplicates = 0;
            let new_file = parquet_writer::write_new_file_with(
                catalog,
                &partition,
                wal_seq_min..=wal_seq_max,
                |abs| {
                    let merged = merge::merge_files(abs, &paths, rw.keep.as_ref(), stop, order)?;
                    Ok(merged.map(|(merged, bytes)| {
                        duplicates = merged.duplicates;
                        (merged.stats, bytes)
                    }))
                },
            )?;
            report.duplicates_removed += duplicates as u64;
            if let Some((entry, abs)) = new_file {
                written.push(abs);
                report.files_written += 1;
                report.rows_after += entry.rows;
                added.push(entry);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        parquet_writer::discard_written(catalog, &written);
        return Err(e);
    }
    if removed_ids.is_empty() && added.is_empty() && forget.is_empty() {
        return Ok(report);
    }
    let mut guard = catalog.lock();
    let metas = added.iter().map(|e| guard.file_meta(e)).collect();
    if let Err(e) = guard.commit_replace(&removed_ids, added, forget) {
        drop(guard);
        parquet_writer::discard_written(catalog, &written);
        return Err(e);
    }
    // Still under the catalog lock, like the flusher's commit and publish: snapshots and the
    // catalog change together, whichever thread commits first.
    publish(&removed_paths, metas);
    Ok(report)
}

/// Files removed from the catalog, waiting until no snapshot holds them and the grace period
/// has passed; then deleted from disk and from the bucket, if any.
pub(crate) struct Graveyard {
    files: Vec<(PathBuf, Instant, Weak<LiveFile>)>,
    /// The bucket keeping the files, and the data directory their keys are relative to.
    remote: Option<(ParquetRemote, PathBuf)>,
}

impl Graveyard {
    /// A graveyard that also deletes from `remote` (keys relative to `data_dir`).
    pub(crate) fn new(remote: Option<ParquetRemote>, data_dir: PathBuf) -> Self {
        Self {
            files: Vec::new(),
            remote: remote.map(|r| (r, data_dir)),
        }
    }

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
            if let Some((remote, data_dir)) = &self.remote {
                // The bucket's catalog may still list the file until an upload succeeds.
                if !remote.catalog_in_sync() {
                    return true;
                }
                let Some(key) = crate::remote::path_to_key(data_dir, path) else {
                    return true;
                };
                if let Err(e) = remote.delete(&key) {
                    tracing::warn!(%key, error = %e, "could not delete a replaced Parquet file from the bucket; will retry");
                    return true;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, partition: &str, rows: u64, bytes: u64) -> FileEntry {
        FileEntry {
            id,
            path: Catalog::file_rel_path(partition, id),
            min_ts_us: 0,
            max_ts_us: 0,
            min_device_id: 0,
            max_device_id: 0,
            org_ids: vec![1],
            rows,
            bytes,
            wal_seq_min: id,
            wal_seq_max: id,
        }
    }

    /// Runs automatic compaction after each of `flushes` flushes of `rows` rows / `bytes`
    /// bytes into one partition, as the compactor thread would; returns the files left and
    /// the rows read by merges.
    fn simulate(flushes: u64, rows: u64, bytes: u64) -> (Vec<FileEntry>, u64) {
        let mut files = Vec::new();
        let mut next_id = 1;
        let mut rewritten = 0;
        for _ in 0..flushes {
            files.push(file(next_id, "date=2026-11-26", rows, bytes));
            next_id += 1;
            loop {
                let plan = plan_compaction(&files, 8, 256 << 20);
                if plan.is_empty() {
                    break;
                }
                for rw in plan {
                    let ids: HashSet<u64> = rw.files.iter().map(|f| f.id).collect();
                    let merged_rows: u64 = rw.files.iter().map(|f| f.rows).sum();
                    assert!(
                        merged_rows <= MAX_MERGE_ROWS,
                        "{merged_rows} rows in one merge"
                    );
                    rewritten += merged_rows;
                    let merged_bytes = rw.files.iter().map(|f| f.bytes).sum();
                    files.retain(|f| !ids.contains(&f.id));
                    files.push(file(next_id, "date=2026-11-26", merged_rows, merged_bytes));
                    next_id += 1;
                }
            }
        }
        (files, rewritten)
    }

    #[test]
    fn tiers_rewrite_each_row_a_few_times_however_many_flushes() {
        // A day fed at ~1 M rows/s: 4,000 flushes of 1 M rows, 600 KB each.
        let (files, rewritten) = simulate(4_000, 1_000_000, 600_000);
        let flushed = 4_000u64 * 1_000_000;
        let amplification = rewritten as f64 / flushed as f64;
        // Merging every small file of the partition each time would read ~250× the data.
        assert!(amplification <= 3.0, "write amplification {amplification}");
        eprintln!("write amplification {amplification}, {} files", files.len());
        // What is left is bounded by the tiers and the merge size, not by the flush count.
        assert!(files.len() <= 600, "{} files", files.len());
        let small: Vec<_> = files
            .iter()
            .filter(|f| f.rows < MAX_MERGE_ROWS / 2)
            .collect();
        assert!(small.len() < 8 * 3, "{} small files left", small.len());
        // A quiet fleet flushed by age: 20,000 flushes of 10,000 rows (10 KB) climb the tiers.
        let (files, rewritten) = simulate(20_000, 10_000, 10_000);
        let amplification = rewritten as f64 / (20_000u64 * 10_000) as f64;
        eprintln!("write amplification {amplification}, {} files", files.len());
        assert!(amplification <= 6.0, "write amplification {amplification}");
        assert!(files.len() <= 7 * 6, "{} files", files.len());
    }

    #[test]
    fn tiers_follow_size_and_partitions_stay_apart() {
        assert_eq!(tier_of(0, 8), 0);
        assert_eq!(tier_of((64 << 10) - 1, 8), 0);
        assert_eq!(tier_of(64 << 10, 8), 1);
        assert_eq!(tier_of(512 << 10, 8), 2);
        assert_eq!(tier_of(u64::MAX, 8), 16);
        // Seven small files of one day and one of another: nothing to merge.
        let mut files: Vec<_> = (1..=7)
            .map(|i| file(i, "date=2026-11-26", 10, 1_000))
            .collect();
        files.push(file(8, "date=2026-11-25", 10, 1_000));
        assert!(plan_compaction(&files, 8, 256 << 20).is_empty());
        // An eighth small file of the day: those eight, oldest first; a large file stays.
        files.push(file(9, "date=2026-11-26", 10, 1_000));
        files.push(file(10, "date=2026-11-26", 10, 2 << 20));
        let plan = plan_compaction(&files, 8, 256 << 20);
        assert_eq!(plan.len(), 1);
        let ids: Vec<u64> = plan[0].files.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6, 7, 9]);
        // Explicit compaction merges every partition with two files or more, all sizes.
        let full = plan_full_compaction(&files);
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].files.len(), 9);
    }
}
