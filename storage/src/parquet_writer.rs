//! Turning a frozen memtable into sorted, day-partitioned Parquet files.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, compute_leaves};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::catalog::{Catalog, FileEntry};
use crate::error::{Result, StorageError};
use crate::fsutil;
use crate::last_value::LastValue;
use crate::partition;
use crate::point::Value;
use crate::schema::{self, COL_TEXT, COL_TS, COL_VALUE, KeyOrder, SortKey, schema};
use crate::value_encoding;

/// Key of one series.
pub(crate) type SeriesKey = (u32, u32, u16);

/// zstd level used for every file (DESIGN.md measured level 3).
const ZSTD_LEVEL: i32 = 3;

/// Rows per row group of every data file (the `parquet` crate's default), which merges also
/// cut their output by.
pub(crate) const ROW_GROUP_ROWS: usize = parquet::file::properties::DEFAULT_MAX_ROW_GROUP_ROW_COUNT;

/// Concatenates `batches` and sorts the rows by the store's key `order`. Rows with equal keys
/// keep their write order, so the last row of a series is its newest and, among equal
/// timestamps, its latest write.
pub(crate) fn sort_rows(batches: &[RecordBatch], order: KeyOrder) -> Result<RecordBatch> {
    let batch = concat_batches(&schema(), batches)?;
    let n = batch.num_rows();
    if n > u32::MAX as usize {
        return Err(StorageError::InvalidInput(format!(
            "{n} rows do not fit one flush"
        )));
    }
    if order.is_sorted(&batch, None) {
        return Ok(batch);
    }
    let (org, dev, pin, ts) = schema::key_columns(&batch);
    let indices = UInt32Array::from(sort_order(org, dev, pin, ts, order));
    Ok(take_record_batch(&batch, &indices)?)
}

/// The row order of [`sort_rows`], as row numbers.
///
/// A counting sort by series, then by time within each series: a memtable holds many rows of
/// few series (a fleet's devices × pins), and each series' rows mostly arrive in time order.
/// Rows are numbered by series (one hash lookup per run of a device's rows, then its pin in the
/// device's sorted pin list); the series are sorted by key; a stable scatter
/// groups the rows of each series in write order; only series whose rows are out of time order
/// are sorted further, stably by `ts`. In a profile of the flusher, sorting went from 26 % of
/// the thread (`sort_unstable` of packed `(org_id, device_id, pin, ts, row)` tuples) to 14 %
/// (BENCHMARKS.md, "Flush by counting sort"); looking devices up per run instead of series per
/// row took another ~10 % off a flush (BENCHMARKS.md, "Series numbered by device run").
fn sort_order(org: &[u32], dev: &[u32], pin: &[u16], ts: &[i64], order: KeyOrder) -> Vec<u32> {
    let n = ts.len();
    // Series number of each row, in order of first appearance; rows per series. A device's
    // pins are found in a short sorted list under the device, which is looked up once per run
    // of its rows (a device writes several pins at once).
    let mut devices: HashMap<(u32, u32), usize, foldhash::fast::RandomState> = HashMap::default();
    let mut device_pins: Vec<Vec<(u16, u32)>> = Vec::new();
    let mut keys: Vec<SeriesKey> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut series = Vec::with_capacity(n);
    let mut prev: Option<((u32, u32), usize)> = None;
    for i in 0..n {
        let device = (org[i], dev[i]);
        let slot = match prev {
            Some((d, slot)) if d == device => slot,
            _ => *devices.entry(device).or_insert_with(|| {
                device_pins.push(Vec::new());
                device_pins.len() - 1
            }),
        };
        prev = Some((device, slot));
        let pins = &mut device_pins[slot];
        let id = match pins.binary_search_by_key(&pin[i], |&(p, _)| p) {
            Ok(k) => pins[k].1,
            Err(k) => {
                let id = keys.len() as u32;
                keys.push((org[i], dev[i], pin[i]));
                counts.push(0);
                pins.insert(k, (pin[i], id));
                id
            }
        };
        counts[id as usize] += 1;
        series.push(id);
    }
    // First output position of each series, in key order. The keys are sorted with their
    // series numbers beside them, not through them: with a large fleet (a million series per
    // flush) an indirect sort is a cache miss per comparison.
    let mut sorted_keys: Vec<(SortKey, u32)> = keys
        .iter()
        .enumerate()
        .map(|(id, &(o, d, p))| (order.key(o, d, p, 0), id as u32))
        .collect();
    sorted_keys.sort_unstable();
    let by_key: Vec<u32> = sorted_keys.into_iter().map(|(_, id)| id).collect();
    let mut start = vec![0u32; keys.len()];
    let mut at = 0u32;
    for &id in &by_key {
        start[id as usize] = at;
        at += counts[id as usize];
    }
    // Stable scatter: each series' rows in write order.
    let mut next = start.clone();
    let mut order = vec![0u32; n];
    for (row, &id) in series.iter().enumerate() {
        let slot = &mut next[id as usize];
        order[*slot as usize] = row as u32;
        *slot += 1;
    }
    for &id in &by_key {
        let from = start[id as usize] as usize;
        let rows = &mut order[from..from + counts[id as usize] as usize];
        if !rows
            .windows(2)
            .all(|w| ts[w[0] as usize] <= ts[w[1] as usize])
        {
            rows.sort_by_key(|&r| ts[r as usize]);
        }
    }
    order
}

/// Splits a sorted batch into one batch per UTC day, each still sorted. Returns
/// `(day number, batch)` in day order.
pub(crate) fn split_by_day(batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>> {
    let ts = batch
        .column(COL_TS)
        .as_primitive::<TimestampMicrosecondType>();
    let Some(&first) = ts.values().first() else {
        return Ok(Vec::new());
    };
    // Usually every row is of one day: no row numbers to collect.
    let day = partition::day_of(first);
    if ts.values().iter().all(|&t| partition::day_of(t) == day) {
        return Ok(vec![(day, batch.clone())]);
    }
    let mut days: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in ts.values().iter().enumerate() {
        days.entry(partition::day_of(*t))
            .or_default()
            .push(i as u32);
    }
    days.into_iter()
        .map(|(day, idx)| Ok((day, take_record_batch(batch, &UInt32Array::from(idx))?)))
        .collect()
}

/// The newest value of every series in a batch sorted by [`sort_rows`].
pub(crate) fn last_values_of_sorted(batch: &RecordBatch) -> Vec<(SeriesKey, LastValue)> {
    let (org, dev, pin, ts) = schema::key_columns(batch);
    let value = batch.column(COL_VALUE).as_primitive::<Float64Type>();
    let text = batch.column(COL_TEXT).as_string::<i32>();
    let n = batch.num_rows();
    let mut out = Vec::new();
    for i in 0..n {
        let key = (org[i], dev[i], pin[i]);
        let last_of_series = i + 1 == n || (org[i + 1], dev[i + 1], pin[i + 1]) != key;
        if last_of_series {
            let v = if value.is_valid(i) {
                Value::Number(value.value(i))
            } else {
                Value::Text(if text.is_valid(i) {
                    text.value(i).to_owned()
                } else {
                    String::new()
                })
            };
            out.push((
                key,
                LastValue {
                    ts_us: ts[i],
                    value: v,
                },
            ));
        }
    }
    out
}

/// Summary of the rows of one file, for the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchStats {
    pub min_ts_us: i64,
    pub max_ts_us: i64,
    pub min_device_id: u32,
    pub max_device_id: u32,
    pub org_ids: Vec<u32>,
    pub rows: u64,
}

impl BatchStats {
    /// Adds the rows summarized by `other` (stats of one file written in parts).
    pub(crate) fn absorb(&mut self, other: BatchStats) {
        self.min_ts_us = self.min_ts_us.min(other.min_ts_us);
        self.max_ts_us = self.max_ts_us.max(other.max_ts_us);
        self.min_device_id = self.min_device_id.min(other.min_device_id);
        self.max_device_id = self.max_device_id.max(other.max_device_id);
        self.org_ids.extend(other.org_ids);
        self.org_ids.sort_unstable();
        self.org_ids.dedup();
        self.rows += other.rows;
    }
}

/// Computes [`BatchStats`] of a non-empty batch.
pub(crate) fn batch_stats(batch: &RecordBatch) -> BatchStats {
    let (org, dev, _, ts) = schema::key_columns(batch);
    let mut org_ids: Vec<u32> = org.to_vec();
    org_ids.sort_unstable();
    org_ids.dedup();
    BatchStats {
        min_ts_us: ts.iter().copied().min().unwrap_or(0),
        max_ts_us: ts.iter().copied().max().unwrap_or(0),
        min_device_id: dev.iter().copied().min().unwrap_or(0),
        max_device_id: dev.iter().copied().max().unwrap_or(0),
        org_ids,
        rows: batch.num_rows() as u64,
    }
}

/// Writer settings: zstd, declared sort order, page-level statistics (column and offset
/// index) on the key columns, which readers prune by, and none on `value` and `text`;
/// `org_id`, `device_id` and `ts` delta-encoded without a dictionary; `pin` and `text` with a
/// dictionary; `value` delta-encoded when it is stored as scaled integers
/// ([`value_encoding`]), dictionary-encoded when it stays `Float64`.
///
/// Sorted ids delta-encode to almost nothing (the rows of one series are a run of zero
/// deltas) without the dictionary's hash lookup per value. `pin` keeps its dictionary: its
/// deltas jump back at every device, and DuckDB reads a delta-encoded `pin` 1.5× slower.
/// Statistics cost two comparisons per value; on a reading or a state they buy no pruning,
/// since every page of a file spans many series and so nearly the whole range. Measured in
/// BENCHMARKS.md ("Ids delta-encoded").
///
/// Sorted pin first, two columns are written without zstd, which does not pay on them: `pin`
/// (a few runs per file, smaller uncompressed) and `value` stored as scaled integers (its
/// bit-packed deltas of readings shrank by 4 % under zstd on the 100 M-row data set; reading
/// it back cost a third of `GROUP BY pin`). Every column chunk read with zstd also creates a
/// compression and a decompression context in the `parquet` crate, each asking the CPU for
/// its features (`cpuid`, 6.5 µs under this VM's hypervisor). BENCHMARKS.md, "`pin` and
/// `value` without zstd".
pub(crate) fn writer_properties(scaled_values: bool, order: KeyOrder) -> Result<WriterProperties> {
    let sorting = order
        .columns()
        .iter()
        .map(|&c| SortingColumn {
            column_idx: c as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(sorting))
        .set_created_by(concat!("pinhouse-storage ", env!("CARGO_PKG_VERSION")).to_owned());
    for key in [
        schema::columns::ORG_ID,
        schema::columns::DEVICE_ID,
        schema::columns::TS,
    ] {
        let col = ColumnPath::from(key);
        builder = builder
            .set_column_dictionary_enabled(col.clone(), false)
            .set_column_encoding(col, Encoding::DELTA_BINARY_PACKED);
    }
    for payload in [schema::columns::VALUE, schema::columns::TEXT] {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(payload), EnabledStatistics::None);
    }
    if order == KeyOrder::PinDevice {
        let mut plain = vec![schema::columns::PIN];
        if scaled_values {
            plain.push(schema::columns::VALUE);
        }
        for col in plain {
            builder =
                builder.set_column_compression(ColumnPath::from(col), Compression::UNCOMPRESSED);
        }
    }
    if scaled_values {
        let value_col = ColumnPath::from(schema::columns::VALUE);
        builder = builder
            .set_column_dictionary_enabled(value_col.clone(), false)
            .set_column_encoding(value_col, Encoding::DELTA_BINARY_PACKED);
    }
    Ok(builder.build())
}

/// Writes `batch` as a new file of `partition` (named under the catalog lock, written without
/// it) holding WAL records `wal_seq`; returns its catalog entry, not yet committed, and its
/// absolute path.
pub(crate) fn write_new_file(
    catalog: &parking_lot::Mutex<Catalog>,
    partition: &str,
    batch: &RecordBatch,
    wal_seq: std::ops::RangeInclusive<u64>,
) -> Result<(FileEntry, std::path::PathBuf)> {
    let order = catalog.lock().key_order();
    let written = write_new_file_with(catalog, partition, wal_seq, |abs| {
        let bytes = write_parquet_file(abs, batch, order)?;
        Ok(Some((batch_stats(batch), bytes)))
    })?;
    written.ok_or_else(|| StorageError::InvalidInput("an empty batch was not written".into()))
}

/// Names a new file of `partition` under the catalog lock and has `write` write it (without
/// the lock) at the absolute path it is given, crash-safely, returning the stats of its rows and
/// its size, or `None` when it wrote no file (no rows). Uploads it to the bucket, if any; returns
/// its catalog entry, not yet committed, and its absolute path.
pub(crate) fn write_new_file_with(
    catalog: &parking_lot::Mutex<Catalog>,
    partition: &str,
    wal_seq: std::ops::RangeInclusive<u64>,
    write: impl FnOnce(&Path) -> Result<Option<(BatchStats, u64)>>,
) -> Result<Option<(FileEntry, std::path::PathBuf)>> {
    let (id, path, abs, remote) = {
        let mut catalog = catalog.lock();
        let id = catalog.allocate_file_id();
        let path = Catalog::file_rel_path(partition, id);
        let abs = catalog.abs_path(&path);
        (id, path, abs, catalog.remote().cloned())
    };
    let Some((stats, bytes)) = write(&abs)? else {
        return Ok(None);
    };
    // Durable in the bucket before the catalog lists it (and before the WAL segments holding
    // its rows can go).
    if let Some(remote) = remote
        && let Err(e) = remote.upload(&path, &abs)
    {
        let _ = std::fs::remove_file(&abs);
        return Err(e);
    }
    let entry = FileEntry {
        id,
        path,
        min_ts_us: stats.min_ts_us,
        max_ts_us: stats.max_ts_us,
        min_device_id: stats.min_device_id,
        max_device_id: stats.max_device_id,
        org_ids: stats.org_ids,
        rows: stats.rows,
        bytes,
        wal_seq_min: *wal_seq.start(),
        wal_seq_max: *wal_seq.end(),
    };
    Ok(Some((entry, abs)))
}

/// Removes files written for a flush or rewrite that failed before its commit, from disk and
/// from the bucket (best effort: what is left is removed as an orphan on the next open).
pub(crate) fn discard_written(
    catalog: &parking_lot::Mutex<Catalog>,
    written: &[std::path::PathBuf],
) {
    if written.is_empty() {
        return;
    }
    let (remote, data_dir) = {
        let catalog = catalog.lock();
        (catalog.remote().cloned(), catalog.data_dir().to_owned())
    };
    for path in written {
        let _ = std::fs::remove_file(path);
        if let Some(remote) = &remote
            && let Some(key) = crate::remote::path_to_key(&data_dir, path)
            && let Err(e) = remote.delete(&key)
        {
            tracing::warn!(%key, error = %e, "could not delete an uncommitted file from the bucket; removed on the next open");
        }
    }
}

/// Writes `batch` to `final_path` crash-safely (see [`write_file_atomically`]). Returns the file
/// size.
///
/// `batch` has the telemetry schema; the file stores its `value` column as scaled integers
/// when that is exact ([`value_encoding`]).
pub(crate) fn write_parquet_file(
    final_path: &Path,
    batch: &RecordBatch,
    order: KeyOrder,
) -> Result<u64> {
    let scaled = value_encoding::encode(batch)?;
    let props = writer_properties(scaled.is_some(), order)?;
    let batch = scaled.as_ref().unwrap_or(batch);
    let written = write_file_atomically(final_path, |file| {
        let mut writer = GroupWriter::new(file, batch.schema(), props)?;
        writer.write(batch)?;
        writer.close()?;
        Ok(Some(()))
    })?;
    Ok(written.map_or(0, |((), bytes)| bytes))
}

/// Has `write` write a file that appears at `final_path` complete or not at all: it writes
/// `<final_path>.tmp`, which is then fsynced, renamed and its directory fsynced (created, and
/// its parent fsynced, when missing). Returns what `write` returned and the file size; when
/// `write` returns `None` (nothing to keep) or fails, the temporary file is removed.
pub(crate) fn write_file_atomically<T>(
    final_path: &Path,
    write: impl FnOnce(File) -> Result<Option<T>>,
) -> Result<Option<(T, u64)>> {
    let dir = final_path.parent().ok_or_else(|| {
        StorageError::InvalidInput(format!("{} has no parent", final_path.display()))
    })?;
    fsutil::create_dir_all_synced(dir)?;
    let mut tmp_name = final_path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| -> Result<Option<(T, u64)>> {
        let file = File::create(&tmp).map_err(StorageError::io_path(&tmp))?;
        let handle = file.try_clone().map_err(StorageError::io_path(&tmp))?;
        let Some(out) = write(handle)? else {
            return Ok(None);
        };
        file.sync_all().map_err(StorageError::io_path(&tmp))?;
        let bytes = file.metadata().map_err(StorageError::io_path(&tmp))?.len();
        std::fs::rename(&tmp, final_path).map_err(StorageError::io_path(final_path))?;
        fsutil::sync_dir(dir)?;
        Ok(Some((out, bytes)))
    })();
    if !matches!(result, Ok(Some(_))) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Files of at least this many rows have the columns of each row group encoded on two
/// threads; smaller ones on the calling thread alone.
const PARALLEL_ENCODE_ROWS: usize = 65_536;

/// A Parquet file written a batch at a time: the same bytes as [`ArrowWriter::write`] of each
/// batch in turn (row groups of at most `props`' row count; a batch starts a new row group),
/// but the column chunks of a row group of [`PARALLEL_ENCODE_ROWS`] or more are encoded by
/// two threads, the caller and a helper that inherits its priority. Encoding was about half of
/// the flush thread's time, column after column; on a saturated machine the helper takes its
/// CPU from the lower-priority compactor (BENCHMARKS.md, "Columns encoded on two threads").
pub(crate) struct GroupWriter {
    writer: parquet::file::writer::SerializedFileWriter<File>,
    factory: parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory,
    group_rows: usize,
    index: usize,
}

impl GroupWriter {
    /// A writer of batches of `schema` into `out`.
    pub(crate) fn new(
        out: File,
        schema: arrow::datatypes::SchemaRef,
        props: WriterProperties,
    ) -> Result<GroupWriter> {
        let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let (writer, factory) =
            ArrowWriter::try_new(out, schema, Some(props))?.into_serialized_writer()?;
        Ok(GroupWriter {
            writer,
            factory,
            group_rows,
            index: 0,
        })
    }

    /// Writes `batch` as one row group, or several when it holds more rows than `props`' row
    /// group size.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let rows = self.group_rows.min(batch.num_rows() - offset);
            let part = batch.slice(offset, rows);
            let chunks = encode_columns(self.factory.create_column_writers(self.index)?, &part)?;
            let mut group = self.writer.next_row_group()?;
            for chunk in chunks {
                chunk.append_to_row_group(&mut group)?;
            }
            group.close()?;
            offset += rows;
            self.index += 1;
        }
        Ok(())
    }

    /// Writes the footer.
    pub(crate) fn close(self) -> Result<()> {
        self.writer.close()?;
        Ok(())
    }
}

fn encode_error(message: String) -> StorageError {
    StorageError::Parquet(parquet::errors::ParquetError::General(message))
}

/// Encodes each column of `batch` (a flat schema: one leaf, so one writer, per column) with
/// its writer; returns the chunks in column order.
fn encode_columns(
    writers: Vec<ArrowColumnWriter>,
    batch: &RecordBatch,
) -> Result<Vec<ArrowColumnChunk>> {
    let schema = batch.schema();
    let encode = |col: usize, mut writer: ArrowColumnWriter| -> Result<ArrowColumnChunk> {
        for leaf in compute_leaves(schema.field(col), batch.column(col))? {
            writer.write(&leaf)?;
        }
        Ok(writer.close()?)
    };
    if writers.len() != batch.num_columns() {
        return Err(encode_error(format!(
            "{} column writers for {} columns",
            writers.len(),
            batch.num_columns()
        )));
    }
    if batch.num_rows() < PARALLEL_ENCODE_ROWS {
        return writers
            .into_iter()
            .enumerate()
            .map(|(col, w)| encode(col, w))
            .collect();
    }
    // A queue of columns taken by whichever thread is free: no column's cost is assumed.
    let queue = parking_lot::Mutex::new(writers.into_iter().enumerate().collect::<Vec<_>>());
    let done: parking_lot::Mutex<Vec<Option<Result<ArrowColumnChunk>>>> =
        parking_lot::Mutex::new((0..batch.num_columns()).map(|_| None).collect());
    let work = || {
        loop {
            let Some((col, writer)) = queue.lock().pop() else {
                return;
            };
            let chunk = encode(col, writer);
            done.lock()[col] = Some(chunk);
        }
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("pinhouse-encode".into())
            .spawn_scoped(scope, work);
        work();
        match helper {
            Ok(handle) => handle
                .join()
                .map_err(|_| encode_error("the column encoding thread panicked".into())),
            // No thread to be had: the caller has encoded every column itself.
            Err(e) => {
                tracing::debug!(error = %e, "no helper thread for column encoding");
                Ok(())
            }
        }
    })?;
    done.into_inner()
        .into_iter()
        .map(|chunk| chunk.unwrap_or_else(|| Err(encode_error("a column was not encoded".into()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::Memtable;
    use crate::point::Point;
    use crate::schema::{COL_DEVICE, COL_ORG, COL_PIN};
    use arrow::datatypes::UInt32Type;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::file::metadata::PageIndexPolicy;
    use std::sync::Arc;
    use std::time::Instant;

    const DAY: i64 = 86_400_000_000;

    fn frozen(points: &[Point]) -> Vec<RecordBatch> {
        let mut m = Memtable::new();
        m.append(1, points, Instant::now());
        m.freeze().unwrap().batches
    }

    proptest::proptest! {
        /// The counting sort orders rows exactly as sorting `(key, row)` tuples does, in either
        /// key order: few series and few timestamps, so ties and out-of-order rows abound.
        #[test]
        fn sort_order_is_the_tuple_order(
            rows in proptest::collection::vec((0u32..3, 0u32..4, 0u16..3, -3i64..4), 0..300),
            pin_first in proptest::bool::ANY,
        ) {
            let order = if pin_first { KeyOrder::PinDevice } else { KeyOrder::DevicePin };
            let org: Vec<u32> = rows.iter().map(|r| r.0).collect();
            let dev: Vec<u32> = rows.iter().map(|r| r.1).collect();
            let pin: Vec<u16> = rows.iter().map(|r| r.2).collect();
            let ts: Vec<i64> = rows.iter().map(|r| r.3).collect();
            let mut tuples: Vec<_> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| (order.key(r.0, r.1, r.2, r.3), i as u32))
                .collect();
            tuples.sort_unstable();
            let expected: Vec<u32> = tuples.iter().map(|t| t.1).collect();
            proptest::prop_assert_eq!(sort_order(&org, &dev, &pin, &ts, order), expected);
        }
    }

    #[test]
    fn sorts_stably_and_finds_last_values() {
        let pts = vec![
            Point::number(2, 1, 0, 10, 1.0),
            Point::number(1, 9, 3, 30, 2.0),
            Point::number(1, 9, 3, 20, 3.0),
            Point::from_text(1, 9, 3, 30, "later"),
            Point::number(1, 2, 7, 5, 4.0),
        ];
        // Org 1 device 2 pin 7 comes before device 9 pin 3 by device, after it by pin.
        for (order, ts_order, text_at) in [
            (KeyOrder::DevicePin, [5, 20, 30, 30, 10], 1),
            (KeyOrder::PinDevice, [20, 30, 30, 5, 10], 0),
        ] {
            let sorted = sort_rows(&frozen(&pts), order).unwrap();
            let org = sorted
                .column(0)
                .as_primitive::<UInt32Type>()
                .values()
                .to_vec();
            let ts = sorted
                .column(3)
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec();
            assert_eq!(org, [1, 1, 1, 1, 2]);
            assert_eq!(ts, ts_order, "{order:?}");
            let last = last_values_of_sorted(&sorted);
            assert_eq!(last.len(), 3);
            assert_eq!(
                last[text_at],
                (
                    (1, 9, 3),
                    LastValue {
                        ts_us: 30,
                        value: Value::Text("later".into())
                    }
                )
            );
        }
        let sorted = sort_rows(&frozen(&pts), KeyOrder::PinDevice).unwrap();
        let stats = batch_stats(&sorted);
        assert_eq!(stats.org_ids, [1, 2]);
        assert_eq!(
            (
                stats.min_ts_us,
                stats.max_ts_us,
                stats.min_device_id,
                stats.max_device_id
            ),
            (5, 30, 1, 9)
        );
    }

    proptest::proptest! {
        #[test]
        fn sort_matches_a_reference_sort(
            rows in proptest::collection::vec((0u32..3, 0u32..4, 0u16..3, -5i64..5), 0..200),
            pin_first in proptest::bool::ANY,
        ) {
            let order = if pin_first { KeyOrder::PinDevice } else { KeyOrder::DevicePin };
            let pts: Vec<Point> = rows
                .iter()
                .enumerate()
                .map(|(i, &(o, d, p, t))| Point::number(o, d, p, t, i as f64))
                .collect();
            let sorted = sort_rows(&frozen_or_empty(&pts), order).unwrap();
            let mut expect: Vec<(SortKey, usize)> = rows
                .iter()
                .enumerate()
                .map(|(i, &(o, d, p, t))| (order.key(o, d, p, t), i))
                .collect();
            expect.sort();
            let val = sorted.column(4).as_primitive::<Float64Type>().values().to_vec();
            let got: Vec<usize> = val.iter().map(|v| *v as usize).collect();
            let want: Vec<usize> = expect.iter().map(|e| e.1).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    fn frozen_or_empty(points: &[Point]) -> Vec<RecordBatch> {
        if points.is_empty() {
            return vec![];
        }
        frozen(points)
    }

    #[test]
    fn splits_by_day_and_writes() {
        let pts = vec![
            Point::number(1, 1, 0, DAY + 5, 1.0),
            Point::number(1, 1, 0, 5, 2.0),
            Point::number(1, 1, 0, -5, 3.0),
        ];
        let sorted = sort_rows(&frozen(&pts), KeyOrder::PinDevice).unwrap();
        let parts = split_by_day(&sorted).unwrap();
        let days: Vec<i64> = parts.iter().map(|(d, _)| *d).collect();
        assert_eq!(days, [-1, 0, 1]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p/date=1970-01-02/1.parquet");
        let bytes = write_parquet_file(&path, &parts[2].1, KeyOrder::PinDevice).unwrap();
        assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(&path).unwrap(),
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .unwrap();
        // Whole numbers: `value` is stored as integers (scale 0), delta-encoded.
        let mut expected = schema().as_ref().clone().fields().to_vec();
        expected[COL_VALUE] = Arc::new(arrow::datatypes::Field::new(
            schema::columns::VALUE,
            arrow::datatypes::DataType::Decimal64(18, 0),
            true,
        ));
        assert_eq!(reader.schema().fields().to_vec(), expected);
        let rg = reader.metadata().row_group(0);
        assert!(
            rg.column(COL_VALUE)
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED)
        );
        let sorting: Vec<usize> = rg
            .sorting_columns()
            .expect("sort order declared")
            .iter()
            .map(|c| c.column_idx as usize)
            .collect();
        assert_eq!(sorting, [COL_ORG, COL_PIN, COL_DEVICE, COL_TS]);
        // Key columns: statistics and a column index (readers prune by them); ids and time
        // delta-encoded without a dictionary, `pin` with one. `value` and `text`: no statistics.
        let column_index = reader
            .metadata()
            .column_index()
            .expect("page index written");
        for col in [COL_ORG, COL_DEVICE, COL_PIN, COL_TS] {
            let chunk = rg.column(col);
            let delta = chunk
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED);
            assert_eq!(delta, col != COL_PIN, "column {col}");
            assert_eq!(
                chunk.dictionary_page_offset().is_some(),
                col == COL_PIN,
                "column {col}"
            );
            assert!(chunk.statistics().is_some(), "column {col}");
            assert!(
                !matches!(
                    column_index[0][col],
                    parquet::file::page_index::column_index::ColumnIndexMetaData::NONE
                ),
                "column {col}"
            );
        }
        for col in [COL_VALUE, COL_TEXT] {
            assert!(rg.column(col).statistics().is_none(), "column {col}");
        }
        // zstd where it pays: not on `pin` (sorted pin first) nor on scaled values.
        for col in [COL_ORG, COL_DEVICE, COL_PIN, COL_TS, COL_VALUE, COL_TEXT] {
            let zstd = matches!(rg.column(col).compression(), Compression::ZSTD(_));
            assert_eq!(zstd, col != COL_PIN && col != COL_VALUE, "column {col}");
        }
        let read: Vec<RecordBatch> = reader
            .build()
            .unwrap()
            .map(|b| value_encoding::decode_file_batch(b.unwrap()).unwrap())
            .collect();
        assert_eq!(read, [parts[2].1.clone()]);
    }

    /// Two threads encoding columns write the same bytes as `ArrowWriter` alone, over several
    /// row groups, with numbers, texts and nulls.
    #[test]
    fn parallel_column_encoding_writes_the_same_bytes() {
        let rows = 3 * PARALLEL_ENCODE_ROWS + 123;
        let pts: Vec<Point> = (0..rows)
            .map(|i| {
                let (dev, pin, ts) = ((i % 97) as u32, (i % 4) as u16, (i / 388) as i64);
                if pin == 3 {
                    Point::from_text(1, dev, pin, ts, ["on", "off", "idle"][i % 3])
                } else {
                    Point::number(1, dev, pin, ts, (i % 1013) as f64 * 0.25)
                }
            })
            .collect();
        let sorted = sort_rows(&frozen(&pts), KeyOrder::PinDevice).unwrap();
        for scaled in [false, true] {
            let batch = if scaled {
                value_encoding::encode(&sorted)
                    .unwrap()
                    .expect("quarters scale")
            } else {
                sorted.clone()
            };
            let props = || {
                writer_properties(scaled, KeyOrder::PinDevice)
                    .unwrap()
                    .into_builder()
                    .set_max_row_group_row_count(Some(PARALLEL_ENCODE_ROWS + 1000))
                    .build()
            };
            let dir = tempfile::tempdir().unwrap();
            let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
            let mut ours_writer =
                GroupWriter::new(File::create(&ours).unwrap(), batch.schema(), props()).unwrap();
            ours_writer.write(&batch).unwrap();
            ours_writer.close().unwrap();
            let mut writer = ArrowWriter::try_new(
                File::create(&theirs).unwrap(),
                batch.schema(),
                Some(props()),
            )
            .unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
            let (ours, theirs) = (std::fs::read(ours).unwrap(), std::fs::read(theirs).unwrap());
            let groups = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(ours.clone()))
                .unwrap()
                .metadata()
                .num_row_groups();
            assert_eq!(groups, 3, "scaled: {scaled}");
            assert!(ours == theirs, "scaled: {scaled}: the files differ");
        }
    }

    #[test]
    fn values_no_scale_holds_stay_float64_with_a_dictionary() {
        let pts = vec![
            Point::number(1, 1, 0, 5, 0.1 + 0.2),
            Point::number(1, 1, 0, 6, 2.5),
        ];
        let sorted = sort_rows(&frozen(&pts), KeyOrder::PinDevice).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p/1.parquet");
        write_parquet_file(&path, &sorted, KeyOrder::PinDevice).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.schema().as_ref(), schema().as_ref());
        let rg = reader.metadata().row_group(0);
        assert!(
            rg.column(COL_VALUE)
                .encodings()
                .any(|e| e == Encoding::RLE_DICTIONARY)
        );
        assert!(matches!(
            rg.column(COL_VALUE).compression(),
            Compression::ZSTD(_)
        ));
        let read: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        assert_eq!(read, [sorted]);
    }

    /// A store sorted device first keeps zstd on every column (`pin` alternates every few
    /// rows there, and zstd shrinks it).
    #[test]
    fn device_first_files_compress_every_column() {
        let props = writer_properties(true, KeyOrder::DevicePin).unwrap();
        for col in schema().fields() {
            let path = ColumnPath::from(col.name().as_str());
            assert!(
                matches!(props.compression(&path), Compression::ZSTD(_)),
                "{}",
                col.name()
            );
        }
    }
}
