//! Reading the raw numeric values of one series (org, device, pin) in a time range, for
//! history queries, without planning a DataFusion query.
//!
//! A dashboard asks for one series at a time, many times a second; a DataFusion plan for
//! that (session, optimizer, physical plan, a Parquet footer read per file) costs
//! milliseconds before the first row. Here:
//!
//! - memtable batches of the snapshot are scanned directly (a tight loop over the id
//!   columns of each 8,192-row chunk);
//! - data files are read with the `parquet` crate's synchronous reader, with their footer
//!   and page index cached per file (data files never change once in the catalog), and
//!   only the pages whose statistics can hold the series are decoded: files are sorted by
//!   `(org_id, pin, device_id, ts)` (older stores: `(org_id, device_id, pin, ts)`) and carry
//!   page-level statistics (column and offset index), so one series usually lies in one or
//!   two pages of each column.
//!
//! The DataFusion path (`QueryEngine::history_raw`) stays the reference this reader is tested
//! against.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, TimestampMicrosecondType, UInt16Type, UInt32Type};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, RowGroupMetaData};
use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;
use datafusion::parquet::file::statistics::Statistics;
use parking_lot::Mutex;
use pinhouse_storage::FileMeta;

use crate::error::{QueryError, Result};

/// Column positions of the telemetry schema (`pinhouse_storage::schema()`).
const ORG: usize = 0;
const DEVICE: usize = 1;
const PIN: usize = 2;
const TS: usize = 3;
const VALUE: usize = 4;

/// Files whose footer and page index stay cached; past it, entries of files no longer in the
/// store are dropped first, then everything.
const METADATA_CACHE_FILES: usize = 4096;

/// Rows decoded per batch when reading selected pages.
const BATCH_ROWS: usize = 8192;

/// One series and a time range: `org_id = org AND device_id = device AND pin = pin AND
/// from_us <= ts < to_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesRange {
    pub org: u32,
    pub device: u32,
    pub pin: u16,
    pub from_us: i64,
    pub to_us: i64,
}

impl SeriesRange {
    fn matches(&self, org: u32, device: u32, pin: u16, ts: i64) -> bool {
        device == self.device
            && pin == self.pin
            && org == self.org
            && ts >= self.from_us
            && ts < self.to_us
    }
}

/// Footers (with page index) of data files, keyed by path and size.
#[derive(Debug, Default)]
pub(crate) struct SeriesReader {
    metadata: Mutex<HashMap<(PathBuf, u64), ArrowReaderMetadata>>,
}

impl SeriesReader {
    /// Calls `f(ts_us, value)` for every numeric value of `range` in memtable `batches`.
    pub(crate) fn scan_batches(
        batches: &[RecordBatch],
        range: &SeriesRange,
        f: &mut impl FnMut(i64, f64),
    ) {
        for batch in batches {
            scan_batch(batch, range, f);
        }
    }

    /// Calls `f(ts_us, value)` for every numeric value of `range` in data file `file`;
    /// returns how many rows were decoded to find them.
    pub(crate) fn scan_file(
        &self,
        file: &FileMeta,
        range: &SeriesRange,
        f: &mut impl FnMut(i64, f64),
    ) -> Result<usize> {
        let meta = self.metadata(file)?;
        let Some((row_groups, selection)) = select(meta.metadata(), range) else {
            return Ok(0);
        };
        let handle = File::open(&file.path).map_err(|e| io_err(file, e))?;
        let mask = ProjectionMask::roots(
            meta.metadata().file_metadata().schema_descr(),
            [ORG, DEVICE, PIN, TS, VALUE],
        );
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(handle, meta)
            .with_row_groups(row_groups)
            .with_row_selection(selection)
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| parquet_err(file, e))?;
        let mut decoded = 0;
        for batch in reader {
            let batch = batch
                .and_then(pinhouse_storage::decode_file_batch)
                .map_err(|e| QueryError::Execution(format!("{e}")))?;
            decoded += batch.num_rows();
            scan_batch(&batch, range, f);
        }
        Ok(decoded)
    }

    /// The cached footer of `file`, read (with its page index) on first use.
    fn metadata(&self, file: &FileMeta) -> Result<ArrowReaderMetadata> {
        let key = (file.path.clone(), file.bytes);
        if let Some(meta) = self.metadata.lock().get(&key) {
            return Ok(meta.clone());
        }
        let handle = File::open(&file.path).map_err(|e| io_err(file, e))?;
        let meta = ArrowReaderMetadata::load(
            &handle,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
        .map_err(|e| parquet_err(file, e))?;
        let mut cache = self.metadata.lock();
        if cache.len() >= METADATA_CACHE_FILES {
            cache.clear();
        }
        cache.insert(key, meta.clone());
        Ok(meta)
    }

    /// Keeps the cache in step with the store's files: drops the footers of files that are
    /// gone (compacted, expired) and reads those of new files, so that a dashboard's first
    /// read of a file does not pay for its footer. Returns how many footers were read.
    pub(crate) fn refresh(&self, live: &[FileMeta]) -> usize {
        {
            let keep: HashSet<(&PathBuf, u64)> = live.iter().map(|f| (&f.path, f.bytes)).collect();
            self.metadata
                .lock()
                .retain(|(path, bytes), _| keep.contains(&(path, *bytes)));
        }
        let mut read = 0;
        for file in live.iter().take(METADATA_CACHE_FILES) {
            let cached = self
                .metadata
                .lock()
                .contains_key(&(file.path.clone(), file.bytes));
            if !cached {
                match self.metadata(file) {
                    Ok(_) => read += 1,
                    // Reported again (as a query error) if a history read needs the file.
                    Err(err) => tracing::warn!(%err, "reading a data file's footer failed"),
                }
            }
        }
        read
    }
}

/// Visits the matching numeric rows of a batch with the telemetry schema's first five columns
/// (or a projection of exactly those five, in order).
fn scan_batch(batch: &RecordBatch, range: &SeriesRange, f: &mut impl FnMut(i64, f64)) {
    let org = batch.column(ORG).as_primitive::<UInt32Type>().values();
    let device = batch.column(DEVICE).as_primitive::<UInt32Type>().values();
    let pin = batch.column(PIN).as_primitive::<UInt16Type>().values();
    let ts = batch
        .column(TS)
        .as_primitive::<TimestampMicrosecondType>()
        .values();
    let value = batch.column(VALUE).as_primitive::<Float64Type>();
    for i in 0..batch.num_rows() {
        // Device first: the most selective column, and a plain u32 compare.
        if device[i] == range.device
            && range.matches(org[i], device[i], pin[i], ts[i])
            && value.is_valid(i)
        {
            f(ts[i], value.value(i));
        }
    }
}

/// Row groups and rows (within them) whose statistics can hold `range`; `None` when nothing
/// can.
fn select(meta: &ParquetMetaData, range: &SeriesRange) -> Option<(Vec<usize>, RowSelection)> {
    let mut row_groups = Vec::new();
    let mut selectors = Vec::new();
    for (rg_idx, rg) in meta.row_groups().iter().enumerate() {
        if !row_group_may_hold(rg, range) {
            continue;
        }
        let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
        // Row ranges of this row group that may hold the series; all of it to start with.
        let mut ranges = Vec::with_capacity(4);
        ranges.push(0..rows);
        for (col, check) in [
            (DEVICE, PageCheck::U32(range.device)),
            (ORG, PageCheck::U32(range.org)),
            (PIN, PageCheck::U32(u32::from(range.pin))),
            (TS, PageCheck::Ts(range.from_us, range.to_us)),
        ] {
            if let Some(pages) = page_ranges(meta, rg_idx, col, rows, check) {
                ranges = intersect(&ranges, &pages);
            }
            if ranges.is_empty() {
                break;
            }
        }
        if ranges.is_empty() {
            continue;
        }
        row_groups.push(rg_idx);
        let mut at = 0;
        for r in ranges {
            if r.start > at {
                selectors.push(RowSelector::skip(r.start - at));
            }
            selectors.push(RowSelector::select(r.end - r.start));
            at = r.end;
        }
        if rows > at {
            selectors.push(RowSelector::skip(rows - at));
        }
    }
    if row_groups.is_empty() {
        return None;
    }
    Some((row_groups, RowSelection::from(selectors)))
}

/// What a page's min/max must allow.
#[derive(Debug, Clone, Copy)]
enum PageCheck {
    /// An unsigned id (stored as Parquet INT32) equal to this.
    U32(u32),
    /// A timestamp (INT64) in `from..to`.
    Ts(i64, i64),
}

impl PageCheck {
    fn i32_allows(self, min: i32, max: i32) -> bool {
        match self {
            // Unsigned logical types: statistics are ordered as unsigned.
            PageCheck::U32(v) => (min as u32) <= v && v <= (max as u32),
            PageCheck::Ts(..) => true,
        }
    }

    fn i64_allows(self, min: i64, max: i64) -> bool {
        match self {
            PageCheck::Ts(from, to) => max >= from && min < to,
            PageCheck::U32(_) => true,
        }
    }
}

/// Whether the row group statistics of the id and time columns can hold `range`.
fn row_group_may_hold(rg: &RowGroupMetaData, range: &SeriesRange) -> bool {
    let check = |col: usize, check: PageCheck| match rg.column(col).statistics() {
        Some(Statistics::Int32(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => check.i32_allows(*min, *max),
            _ => true,
        },
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => check.i64_allows(*min, *max),
            _ => true,
        },
        _ => true,
    };
    check(DEVICE, PageCheck::U32(range.device))
        && check(ORG, PageCheck::U32(range.org))
        && check(PIN, PageCheck::U32(u32::from(range.pin)))
        && check(TS, PageCheck::Ts(range.from_us, range.to_us))
}

/// Row ranges (within row group `rg`) of the pages of column `col` whose statistics allow
/// `check`, ascending and disjoint; `None` when the file has no page index for the column.
fn page_ranges(
    meta: &ParquetMetaData,
    rg: usize,
    col: usize,
    rows: usize,
    check: PageCheck,
) -> Option<Vec<Range<usize>>> {
    let index = meta.column_index()?.get(rg)?.get(col)?;
    let locations = meta.offset_index()?.get(rg)?.get(col)?.page_locations();
    let allows = |page: usize| -> bool {
        match index {
            ColumnIndexMetaData::INT32(ix) => match (ix.min_value(page), ix.max_value(page)) {
                (Some(min), Some(max)) => check.i32_allows(*min, *max),
                // An all-null page: ids and timestamps are never null.
                _ => false,
            },
            ColumnIndexMetaData::INT64(ix) => match (ix.min_value(page), ix.max_value(page)) {
                (Some(min), Some(max)) => check.i64_allows(*min, *max),
                _ => false,
            },
            _ => true,
        }
    };
    let mut out: Vec<Range<usize>> = Vec::new();
    for (page, location) in locations.iter().enumerate() {
        if !allows(page) {
            continue;
        }
        let start = usize::try_from(location.first_row_index).ok()?;
        let end = match locations.get(page + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => rows,
        };
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
    }
    Some(out)
}

/// Intersection of two ascending lists of disjoint ranges.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn io_err(file: &FileMeta, err: std::io::Error) -> QueryError {
    QueryError::Execution(format!("{}: {err}", file.path.display()))
}

fn parquet_err(file: &FileMeta, err: datafusion::parquet::errors::ParquetError) -> QueryError {
    QueryError::Execution(format!("{}: {err}", file.path.display()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray, UInt16Array, UInt32Array,
    };
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

    use super::*;

    /// 100 devices × 2 pins × 500 rows, sorted like a data file, in pages of about 1,000 rows.
    fn sorted_file(path: &std::path::Path) -> FileMeta {
        let (mut org, mut dev, mut pin, mut ts, mut val) = (vec![], vec![], vec![], vec![], vec![]);
        for d in 0..100u32 {
            for p in 0..2u16 {
                for i in 0..500i64 {
                    org.push(7u32);
                    dev.push(d);
                    pin.push(p);
                    ts.push(i * 1_000_000);
                    val.push(if i % 50 == 0 { None } else { Some(i as f64) });
                }
            }
        }
        let rows = org.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(org)),
            Arc::new(UInt32Array::from(dev)),
            Arc::new(UInt16Array::from(pin)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(val)),
            Arc::new(StringArray::from(vec![None::<&str>; rows])),
        ];
        let batch = RecordBatch::try_new(pinhouse_storage::schema(), columns).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(1000)
            .set_write_batch_size(1000)
            .set_max_row_group_row_count(Some(40_000))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        FileMeta {
            path: path.to_owned(),
            min_ts_us: 0,
            max_ts_us: 499_000_000,
            min_device_id: 0,
            max_device_id: 99,
            org_ids: vec![7],
            rows: rows as u64,
            bytes: std::fs::metadata(path).unwrap().len(),
        }
    }

    #[test]
    fn only_pages_that_can_hold_the_series_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let file = sorted_file(&dir.path().join("f.parquet"));
        let reader = SeriesReader::default();
        let scan = |device: u32, pin: u16, from_us: i64, to_us: i64| {
            let range = SeriesRange {
                org: 7,
                device,
                pin,
                from_us,
                to_us,
            };
            let mut got = Vec::new();
            let decoded = reader
                .scan_file(&file, &range, &mut |t, v| got.push((t, v)))
                .unwrap();
            (got, decoded)
        };
        // A whole series in the middle of a row group, and one at a row-group edge.
        for device in [37, 39, 40, 99] {
            let (got, decoded) = scan(device, 1, 0, i64::MAX);
            let expect: Vec<(i64, f64)> = (0..500)
                .filter(|i| i % 50 != 0)
                .map(|i| (i * 1_000_000, i as f64))
                .collect();
            assert_eq!(got, expect, "device {device}");
            // 500 rows span at most two pages of ~1,000 rows (pages end on write batches).
            assert!(decoded <= 2_100, "device {device}: {decoded} rows decoded");
        }
        // A time slice of one series (value 100 is null).
        let (got, _) = scan(50, 0, 100_000_000, 110_000_000);
        assert_eq!(got.len(), 9);
        assert!(
            got.iter()
                .all(|(t, _)| (100_000_000..110_000_000).contains(t))
        );
        // Absent series, organizations and times decode nothing.
        assert_eq!(scan(100, 0, 0, i64::MAX), (vec![], 0));
        assert_eq!(scan(5, 2, 0, i64::MAX), (vec![], 0));
        assert_eq!(scan(5, 0, 600_000_000, i64::MAX), (vec![], 0));
        let other_org = SeriesRange {
            org: 8,
            device: 5,
            pin: 0,
            from_us: 0,
            to_us: i64::MAX,
        };
        assert_eq!(
            reader.scan_file(&file, &other_org, &mut |_, _| ()).unwrap(),
            0
        );
        // The footer is read once.
        assert_eq!(reader.metadata.lock().len(), 1);
        assert_eq!(reader.refresh(&[]), 0);
        assert!(reader.metadata.lock().is_empty());
        assert_eq!(reader.refresh(std::slice::from_ref(&file)), 1);
        assert_eq!(reader.refresh(std::slice::from_ref(&file)), 0);
    }

    #[test]
    // The arguments are lists of ranges, some of one range.
    #[allow(clippy::single_range_in_vec_init)]
    fn range_intersection() {
        assert_eq!(intersect(&[0..10], &[2..4, 6..12]), vec![2..4, 6..10]);
        assert_eq!(
            intersect(&[0..3, 5..9], &[3..5]),
            Vec::<Range<usize>>::new()
        );
        assert_eq!(intersect(&[0..3, 5..9], &[1..7]), vec![1..3, 5..7]);
        assert_eq!(intersect(&[], &[1..7]), Vec::<Range<usize>>::new());
    }
}
