//! Rollup tiers: per Parquet data file, the [`BucketStats`] of every
//! `(org, device, pin, hour)` and `(org, device, pin, day)`.
//!
//! A data file never changes once it is in the storage catalog, so its rollup
//! never changes either: rollups are keyed by the data file (path and size),
//! computed once by a maintenance pass after the file appears in a snapshot,
//! kept in memory and persisted as a small sidecar Parquet file in the rollup
//! directory (so a restart only reloads them). When compaction or retention
//! removes a data file from the catalog, its rollup is dropped with it.
//!
//! A history query takes one storage snapshot and answers from the rollups of
//! the snapshot's files where they exist and from raw rows everywhere else
//! (memtables, files not rolled up yet), so the answer always equals the raw
//! aggregation of that snapshot.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parking_lot::RwLock;
use pinhouse_storage::{FileMeta, columns};

use crate::error::{QueryError, Result};
use crate::history::{BucketStats, DAY_US, HOUR_US, Tier};

/// Sort key of a rollup row.
type Key = (u32, u32, u16, i64);

/// Rows of one tier of one file, sorted by key.
#[derive(Debug, Default)]
struct TierTable {
    keys: Vec<Key>,
    stats: Vec<BucketStats>,
}

impl TierTable {
    fn from_sorted(mut rows: Vec<(Key, BucketStats)>) -> Self {
        rows.sort_unstable_by_key(|(k, _)| *k);
        let mut table = TierTable::default();
        for (key, stats) in rows {
            match table.keys.last() {
                Some(last) if *last == key => {
                    if let Some(s) = table.stats.last_mut() {
                        s.merge(&stats);
                    }
                }
                _ => {
                    table.keys.push(key);
                    table.stats.push(stats);
                }
            }
        }
        table
    }

    /// Rows of one series with `from <= bucket < to`.
    fn range(
        &self,
        org: u32,
        device: u32,
        pin: u16,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = (i64, &BucketStats)> {
        let start = self.keys.partition_point(|k| *k < (org, device, pin, from));
        let end = self.keys.partition_point(|k| *k < (org, device, pin, to));
        self.keys[start..end.max(start)]
            .iter()
            .zip(&self.stats[start..end.max(start)])
            .map(|(k, s)| (k.3, s))
    }
}

/// Both tiers of one data file.
#[derive(Debug, Default)]
pub(crate) struct FileRollup {
    hour: TierTable,
    day: TierTable,
    /// Whether the hour tier is kept. It is not for files whose series are sparser than about
    /// two values per hour: there it would hold nearly a row per value (for a fleet sampled
    /// every few hours, more memory than the data), and those files are read raw instead —
    /// a few values per series and day.
    has_hour: bool,
    /// Whether the day tier is kept: the same rule per day. A fleet of a million devices
    /// sending a few values a week otherwise kept about 90 bytes of day buckets in memory per
    /// stored value (8.6 GB for a 114 MiB data set, BENCHMARKS.md, "A sparse 1 M-device
    /// fleet"); such files are read raw, a handful of rows per series.
    has_day: bool,
}

/// Sidecar key-value metadata listing the tiers a rollup keeps (`hour,day`, `day` or empty).
/// Sidecars written before it existed have no such key; see [`FileRollup::load`].
const TIERS_KEY: &str = "pinhouse.rollup.tiers";

impl FileRollup {
    /// Whether `tier` can answer from this rollup (otherwise read the file raw).
    pub(crate) fn has(&self, tier: Tier) -> bool {
        match tier {
            Tier::Hour => self.has_hour,
            Tier::Day => self.has_day,
            Tier::Raw => false,
        }
    }

    /// Rows of `tier` for one series with `from <= bucket < to`.
    pub(crate) fn range(
        &self,
        tier: Tier,
        org: u32,
        device: u32,
        pin: u16,
        from: i64,
        to: i64,
    ) -> Box<dyn Iterator<Item = (i64, &BucketStats)> + '_> {
        match tier {
            Tier::Hour => Box::new(self.hour.range(org, device, pin, from, to)),
            Tier::Day => Box::new(self.day.range(org, device, pin, from, to)),
            Tier::Raw => Box::new(std::iter::empty()),
        }
    }

    fn rows(&self) -> usize {
        self.hour.keys.len() + self.day.keys.len()
    }

    /// Aggregates a data file: numeric values only (text values have no
    /// aggregate).
    fn compute(path: &Path) -> Result<FileRollup> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        let wanted = [
            columns::ORG_ID,
            columns::DEVICE_ID,
            columns::PIN,
            columns::TS,
            columns::VALUE,
        ];
        let schema = builder.parquet_schema();
        let indices: Vec<usize> = wanted
            .iter()
            .map(|name| {
                schema
                    .columns()
                    .iter()
                    .position(|c| c.name() == *name)
                    .ok_or_else(|| {
                        QueryError::Execution(format!("{}: column {name} missing", path.display()))
                    })
            })
            .collect::<Result<_>>()?;
        let mask = ProjectionMask::leaves(schema, indices);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(parquet_err)?;

        let mut hours: Vec<(Key, BucketStats)> = Vec::new();
        let mut numeric_rows = 0usize;
        for batch in reader {
            let batch = batch
                .and_then(pinhouse_storage::decode_file_batch)
                .map_err(|e| QueryError::Execution(e.to_string()))?;
            let col = |name: &str| {
                batch.column_by_name(name).ok_or_else(|| {
                    QueryError::Execution(format!("{}: column {name} missing", path.display()))
                })
            };
            let orgs = col(columns::ORG_ID)?.as_primitive::<UInt32Type>();
            let devices = col(columns::DEVICE_ID)?.as_primitive::<UInt32Type>();
            let pins = col(columns::PIN)?.as_primitive::<UInt16Type>();
            let ts = col(columns::TS)?.as_primitive::<TimestampMicrosecondType>();
            let values = col(columns::VALUE)?.as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                if values.is_null(i) {
                    continue;
                }
                numeric_rows += 1;
                let (t, v) = (ts.value(i), values.value(i));
                let key = (
                    orgs.value(i),
                    devices.value(i),
                    pins.value(i),
                    t.div_euclid(HOUR_US) * HOUR_US,
                );
                match hours.last_mut() {
                    Some((k, s)) if *k == key => s.push(t, v),
                    _ => hours.push((key, BucketStats::of(t, v))),
                }
            }
        }
        let hour = TierTable::from_sorted(hours);
        let days = hour
            .keys
            .iter()
            .zip(&hour.stats)
            .map(|(&(o, d, p, b), s)| ((o, d, p, b.div_euclid(DAY_US) * DAY_US), *s))
            .collect();
        let day = TierTable::from_sorted(days);
        let has_hour = hour.keys.len().saturating_mul(2) <= numeric_rows;
        let has_day = day.keys.len().saturating_mul(2) <= numeric_rows;
        Ok(FileRollup {
            hour: if has_hour { hour } else { TierTable::default() },
            day: if has_day { day } else { TierTable::default() },
            has_hour,
            has_day,
        })
    }

    fn sidecar_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("tier", DataType::UInt8, false),
            Field::new("org_id", DataType::UInt32, false),
            Field::new("device_id", DataType::UInt32, false),
            Field::new("pin", DataType::UInt16, false),
            Field::new("bucket", DataType::Int64, false),
            Field::new("count", DataType::UInt64, false),
            Field::new("sum", DataType::Float64, false),
            Field::new("min", DataType::Float64, false),
            Field::new("max", DataType::Float64, false),
            Field::new("first_ts", DataType::Int64, false),
            Field::new("first", DataType::Float64, false),
            Field::new("last_ts", DataType::Int64, false),
            Field::new("last", DataType::Float64, false),
        ]))
    }

    /// Writes the sidecar atomically (temp file, fsync, rename).
    fn save(&self, path: &Path) -> Result<()> {
        let mut cols: Vec<Vec<ArrayRef>> = Vec::new();
        for (tier, table) in [(0u8, &self.hour), (1u8, &self.day)] {
            let n = table.keys.len();
            let s = &table.stats;
            cols.push(vec![
                Arc::new(UInt8Array::from(vec![tier; n])),
                Arc::new(UInt32Array::from_iter_values(
                    table.keys.iter().map(|k| k.0),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    table.keys.iter().map(|k| k.1),
                )),
                Arc::new(UInt16Array::from_iter_values(
                    table.keys.iter().map(|k| k.2),
                )),
                Arc::new(Int64Array::from_iter_values(table.keys.iter().map(|k| k.3))),
                Arc::new(UInt64Array::from_iter_values(s.iter().map(|s| s.count))),
                Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.sum))),
                Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.min))),
                Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.max))),
                Arc::new(Int64Array::from_iter_values(s.iter().map(|s| s.first_ts))),
                Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.first))),
                Arc::new(Int64Array::from_iter_values(s.iter().map(|s| s.last_ts))),
                Arc::new(Float64Array::from_iter_values(s.iter().map(|s| s.last))),
            ]);
        }
        let schema = Self::sidecar_schema();
        let tmp = path.with_extension("parquet.tmp");
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let tiers: Vec<&str> = [(self.has_hour, "hour"), (self.has_day, "day")]
            .into_iter()
            .filter_map(|(kept, name)| kept.then_some(name))
            .collect();
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_key_value_metadata(Some(vec![
                datafusion::parquet::file::metadata::KeyValue::new(
                    TIERS_KEY.to_owned(),
                    tiers.join(","),
                ),
            ]))
            .build();
        let mut writer =
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(parquet_err)?;
        for columns in cols {
            let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
                .map_err(|e| QueryError::Execution(e.to_string()))?;
            writer.write(&batch).map_err(parquet_err)?;
        }
        let file = writer.into_inner().map_err(parquet_err)?;
        file.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        Ok(())
    }

    fn load(path: &Path) -> Result<FileRollup> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        let tiers: Option<String> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|e| e.key == TIERS_KEY))
            .map(|e| e.value.clone().unwrap_or_default());
        let reader = builder.build().map_err(parquet_err)?;
        let mut hour = Vec::new();
        let mut day = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| QueryError::Execution(e.to_string()))?;
            if batch.num_columns() != 13 {
                return Err(QueryError::Execution(format!(
                    "{}: unexpected rollup layout",
                    path.display()
                )));
            }
            let c = |i: usize| batch.column(i);
            let tier = c(0).as_primitive::<UInt8Type>();
            let org = c(1).as_primitive::<UInt32Type>();
            let dev = c(2).as_primitive::<UInt32Type>();
            let pin = c(3).as_primitive::<UInt16Type>();
            let bucket = c(4).as_primitive::<Int64Type>();
            let count = c(5).as_primitive::<UInt64Type>();
            let f = |i: usize| c(i).as_primitive::<Float64Type>();
            let (sum, min, max, first, last) = (f(6), f(7), f(8), f(10), f(12));
            let first_ts = c(9).as_primitive::<Int64Type>();
            let last_ts = c(11).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                let key = (org.value(i), dev.value(i), pin.value(i), bucket.value(i));
                let stats = BucketStats {
                    count: count.value(i),
                    sum: sum.value(i),
                    min: min.value(i),
                    max: max.value(i),
                    first_ts: first_ts.value(i),
                    first: first.value(i),
                    last_ts: last_ts.value(i),
                    last: last.value(i),
                };
                if tier.value(i) == 0 {
                    hour.push((key, stats));
                } else {
                    day.push((key, stats));
                }
            }
        }
        let (has_hour, has_day) = match tiers {
            Some(tiers) => {
                let kept: Vec<&str> = tiers.split(',').collect();
                (kept.contains(&"hour"), kept.contains(&"day"))
            }
            // An older sidecar: a sparse file's has day rows only (see `has_hour`); a file
            // without numeric values has neither, and its empty tiers are a true answer. The
            // day rule applies to it on load (the day counts sum to the file's values), so an
            // upgrade frees the memory of sparse files without recomputing.
            None => {
                let values: u64 = day.iter().map(|(_, s)| s.count).sum();
                let has_day = (day.len() as u64).saturating_mul(2) <= values;
                if !has_day {
                    hour.clear();
                    day.clear();
                }
                (has_day && (!hour.is_empty() || day.is_empty()), has_day)
            }
        };
        Ok(FileRollup {
            hour: TierTable::from_sorted(hour),
            day: TierTable::from_sorted(day),
            has_hour,
            has_day,
        })
    }
}

fn io_err(path: &Path, err: std::io::Error) -> QueryError {
    QueryError::Execution(format!("{}: {err}", path.display()))
}

fn parquet_err(err: datafusion::parquet::errors::ParquetError) -> QueryError {
    QueryError::Execution(format!("rollup: {err}"))
}

/// Identity of a data file: its path and size (a rewritten file gets a new
/// rollup).
type FileKey = (PathBuf, u64);

fn file_key(meta: &FileMeta) -> FileKey {
    (meta.path.clone(), meta.bytes)
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupPass {
    /// Rollups computed from data files.
    pub computed: usize,
    /// Rollups loaded from sidecar files.
    pub loaded: usize,
    /// Rollups dropped because their data file left the catalog.
    pub dropped: usize,
    /// Files that could not be rolled up (logged; queries read them raw).
    pub failed: usize,
    /// Bucket rows (both tiers) of the rollups computed or loaded by this pass: what they
    /// hold in memory, at about 90 bytes each.
    pub bucket_rows: usize,
}

/// The rollups of every data file in the catalog.
#[derive(Debug)]
pub(crate) struct Rollups {
    dir: Option<PathBuf>,
    files: RwLock<HashMap<FileKey, Arc<FileRollup>>>,
}

impl Rollups {
    /// Rollups persisted in `dir` (created if missing), or memory-only.
    pub(crate) fn new(dir: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        Ok(Self {
            dir,
            files: RwLock::new(HashMap::new()),
        })
    }

    /// The rollup of `meta`, if it is ready.
    pub(crate) fn get(&self, meta: &FileMeta) -> Option<Arc<FileRollup>> {
        self.files.read().get(&file_key(meta)).cloned()
    }

    fn sidecar(&self, meta: &FileMeta) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let stem = meta.path.file_stem()?.to_string_lossy();
        Some(dir.join(format!("{stem}-{}.parquet", meta.bytes)))
    }

    /// Brings the rollups in line with `files` (the catalog of one snapshot):
    /// loads or computes the missing ones, drops those of removed files.
    pub(crate) fn refresh(&self, files: &[FileMeta]) -> RollupPass {
        let mut pass = RollupPass::default();
        let live: HashSet<FileKey> = files.iter().map(file_key).collect();
        {
            let mut map = self.files.write();
            let before = map.len();
            map.retain(|k, _| live.contains(k));
            pass.dropped = before - map.len();
        }
        for meta in files {
            if self.files.read().contains_key(&file_key(meta)) {
                continue;
            }
            let sidecar = self.sidecar(meta);
            let loaded =
                sidecar
                    .as_ref()
                    .filter(|p| p.exists())
                    .and_then(|p| match FileRollup::load(p) {
                        Ok(r) => Some(r),
                        Err(err) => {
                            tracing::warn!(%err, "unreadable rollup sidecar; recomputing");
                            None
                        }
                    });
            let rollup = match loaded {
                Some(r) => {
                    pass.loaded += 1;
                    r
                }
                None => match FileRollup::compute(&meta.path) {
                    Ok(r) => {
                        if let Some(path) = &sidecar
                            && let Err(err) = r.save(path)
                        {
                            tracing::warn!(%err, "cannot persist rollup sidecar");
                        }
                        pass.computed += 1;
                        r
                    }
                    Err(err) => {
                        // The file may have been compacted away since the snapshot.
                        tracing::debug!(%err, file = %meta.path.display(), "rollup skipped");
                        pass.failed += 1;
                        continue;
                    }
                },
            };
            tracing::debug!(file = %meta.path.display(), rows = rollup.rows(), "rollup ready");
            pass.bucket_rows += rollup.rows();
            self.files.write().insert(file_key(meta), Arc::new(rollup));
        }
        if pass.dropped > 0 || pass.computed > 0 {
            self.remove_stale_sidecars(files);
        }
        pass
    }

    fn remove_stale_sidecars(&self, files: &[FileMeta]) {
        let Some(dir) = &self.dir else { return };
        let keep: HashSet<PathBuf> = files.iter().filter_map(|m| self.sidecar(m)).collect();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_ours = path
                .extension()
                .is_some_and(|e| e == "parquet" || e == "tmp");
            if is_ours
                && !keep.contains(&path)
                && let Err(err) = std::fs::remove_file(&path)
            {
                tracing::warn!(%err, file = %path.display(), "cannot remove stale rollup");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rollup with `per_day` values in each of `days` day buckets of one series (no hour
    /// tier), as the sidecar of a file would hold it.
    fn day_rollup(days: i64, per_day: u64) -> FileRollup {
        let rows = (0..days)
            .map(|d| {
                let mut s = BucketStats::of(d * DAY_US, 1.0);
                for i in 1..per_day {
                    s.push(d * DAY_US + i as i64, 1.0);
                }
                ((1, 2, 3, d * DAY_US), s)
            })
            .collect();
        FileRollup {
            hour: TierTable::default(),
            day: TierTable::from_sorted(rows),
            has_hour: false,
            has_day: true,
        }
    }

    /// Rewrites a sidecar without its key-value metadata, as sidecars were written before
    /// they recorded their tiers.
    fn strip_tiers(path: &Path) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let mut writer = ArrowWriter::try_new(
            File::create(path).unwrap(),
            FileRollup::sidecar_schema(),
            None,
        )
        .unwrap();
        for b in &batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
    }

    /// Sidecars keep which tiers a rollup has; an older sidecar (no record of its tiers) of a
    /// file sparser than two values a day loses its day tier on load, a denser one keeps it.
    #[test]
    fn sidecars_keep_their_tiers_and_old_sparse_ones_drop_the_day_tier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.parquet");
        let sparse = FileRollup {
            hour: TierTable::default(),
            day: TierTable::default(),
            has_hour: false,
            has_day: false,
        };
        sparse.save(&path).unwrap();
        let back = FileRollup::load(&path).unwrap();
        assert!(!back.has(Tier::Day) && !back.has(Tier::Hour));
        // No numeric values: empty tiers that answer.
        let empty = FileRollup {
            has_hour: true,
            has_day: true,
            ..sparse
        };
        empty.save(&path).unwrap();
        let back = FileRollup::load(&path).unwrap();
        assert!(back.has(Tier::Day) && back.has(Tier::Hour));

        for (per_day, keeps_day) in [(1, false), (2, true), (10, true)] {
            day_rollup(5, per_day).save(&path).unwrap();
            strip_tiers(&path);
            let back = FileRollup::load(&path).unwrap();
            assert_eq!(back.has(Tier::Day), keeps_day, "{per_day} a day");
            assert!(!back.has(Tier::Hour));
            assert_eq!(back.rows(), if keeps_day { 5 } else { 0 });
        }
    }
}
