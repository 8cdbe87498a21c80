//! In-memory Arrow buffers for points that are in the WAL but not yet in Parquet.
//!
//! The active memtable appends into Arrow builders and seals them into immutable
//! [`RecordBatch`] chunks every [`CHUNK_ROWS`] rows, so a snapshot costs a few `Arc` clones plus
//! a copy of at most one chunk. A full (or old) memtable is frozen into a [`Frozen`] memtable and
//! handed to the flusher.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder,
};
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;

use crate::dedup::{self, RowKey, SeriesIndex};
use crate::point::{Point, Value};
use crate::schema::{TS_TIMEZONE, schema};

/// Rows per sealed chunk.
pub(crate) const CHUNK_ROWS: usize = 8192;

struct ChunkBuilder {
    org: UInt32Builder,
    device: UInt32Builder,
    pin: UInt16Builder,
    ts: TimestampMicrosecondBuilder,
    value: Float64Builder,
    text: StringBuilder,
    len: usize,
}

impl ChunkBuilder {
    fn new() -> ChunkBuilder {
        ChunkBuilder {
            org: UInt32Builder::with_capacity(CHUNK_ROWS),
            device: UInt32Builder::with_capacity(CHUNK_ROWS),
            pin: UInt16Builder::with_capacity(CHUNK_ROWS),
            ts: TimestampMicrosecondBuilder::with_capacity(CHUNK_ROWS).with_timezone(TS_TIMEZONE),
            value: Float64Builder::with_capacity(CHUNK_ROWS),
            text: StringBuilder::new(),
            len: 0,
        }
    }

    fn push(&mut self, p: &Point) {
        self.org.append_value(p.org_id);
        self.device.append_value(p.device_id);
        self.pin.append_value(p.pin);
        self.ts.append_value(p.ts_us);
        match &p.value {
            Value::Number(n) => {
                self.value.append_value(*n);
                self.text.append_null();
            }
            Value::Text(t) => {
                self.value.append_null();
                self.text.append_value(t);
            }
        }
        self.len += 1;
    }

    /// A copy of the rows so far; the builder keeps them.
    fn batch_cloned(&self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.org.finish_cloned()),
            Arc::new(self.device.finish_cloned()),
            Arc::new(self.pin.finish_cloned()),
            Arc::new(self.ts.finish_cloned()),
            Arc::new(self.value.finish_cloned()),
            Arc::new(self.text.finish_cloned()),
        ];
        make_batch(columns)
    }

    /// The rows so far; the builder is left empty.
    fn take_batch(&mut self) -> RecordBatch {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.org.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.pin.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.text.finish()),
        ];
        make_batch(columns)
    }
}

fn make_batch(columns: Vec<ArrayRef>) -> RecordBatch {
    // Same types, same lengths, in schema order: cannot fail.
    RecordBatch::try_new(schema(), columns).expect("memtable columns match the telemetry schema")
}

/// The memtable being written to.
pub(crate) struct Memtable {
    chunks: Vec<RecordBatch>,
    builder: ChunkBuilder,
    rows: usize,
    /// Lowest and highest WAL sequence numbers applied (0 when empty).
    min_seq: u64,
    max_seq: u64,
    /// When the first row arrived.
    since: Option<Instant>,
    /// Rows by series, for late points (empty until the first).
    index: SeriesIndex,
}

impl Memtable {
    pub(crate) fn new() -> Memtable {
        Memtable {
            chunks: Vec::new(),
            builder: ChunkBuilder::new(),
            rows: 0,
            min_seq: 0,
            max_seq: 0,
            since: None,
            index: SeriesIndex::default(),
        }
    }

    /// Appends the points of WAL record `seq`. Records must arrive in sequence order.
    pub(crate) fn append(&mut self, seq: u64, points: &[Point], now: Instant) {
        debug_assert!(seq > self.max_seq, "records applied out of order");
        if self.min_seq == 0 {
            self.min_seq = seq;
        }
        self.max_seq = seq;
        if points.is_empty() {
            return;
        }
        self.since.get_or_insert(now);
        for p in points {
            self.builder.push(p);
            if self.builder.len == CHUNK_ROWS {
                let chunk = self.builder.take_batch();
                self.chunks.push(chunk);
            }
        }
        self.rows += points.len();
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Time since the first row arrived.
    pub(crate) fn age(&self, now: Instant) -> Duration {
        self.since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// Appends this memtable's rows, as record batches, to `out` (a consistent copy: sealed
    /// chunks are shared, the open chunk is copied).
    pub(crate) fn snapshot_into(&self, out: &mut Vec<RecordBatch>) {
        out.extend(self.chunks.iter().cloned());
        if self.builder.len > 0 {
            out.push(self.builder.batch_cloned());
        }
    }

    /// Adds to `found` the keys of `wanted` (late points) that are rows of this memtable:
    /// sealed chunks through the series index (extended first), the open chunk by a scan.
    pub(crate) fn find_stored(&mut self, wanted: &HashSet<RowKey>, found: &mut HashSet<RowKey>) {
        self.index.find(&self.chunks, wanted, found);
        if self.builder.len > 0 {
            dedup::scan_for(&[self.builder.batch_cloned()], wanted, found);
        }
    }

    /// Takes the content out, leaving an empty memtable. `None` when no record was applied
    /// since the last freeze.
    pub(crate) fn freeze(&mut self) -> Option<Frozen> {
        if self.max_seq == 0 {
            return None;
        }
        if self.builder.len > 0 {
            let chunk = self.builder.take_batch();
            self.chunks.push(chunk);
        }
        let frozen = Frozen {
            batches: std::mem::take(&mut self.chunks),
            rows: self.rows,
            min_seq: self.min_seq,
            max_seq: self.max_seq,
            index: Mutex::new(std::mem::take(&mut self.index)),
        };
        *self = Memtable::new();
        Some(frozen)
    }
}

/// An immutable memtable waiting to be written to Parquet. Its rows stay visible to snapshots
/// until the files holding them are in the catalog.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    /// WAL sequence range covered: every record in `min_seq..=max_seq` was applied here (or
    /// failed and is not in the WAL).
    pub min_seq: u64,
    pub max_seq: u64,
    /// The active memtable's series index, extended over the rest on the first late point.
    index: Mutex<SeriesIndex>,
}

impl Frozen {
    /// Adds to `found` the keys of `wanted` (late points) that are rows of this memtable.
    pub(crate) fn find_stored(&self, wanted: &HashSet<RowKey>, found: &mut HashSet<RowKey>) {
        self.index.lock().find(&self.batches, wanted, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(n: usize, base: i64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    Point::from_text(1, i as u32, 0, base + i as i64, "txt")
                } else {
                    Point::number(1, i as u32, 0, base + i as i64, i as f64)
                }
            })
            .collect()
    }

    fn count(batches: &[RecordBatch]) -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    }

    #[test]
    fn chunks_and_snapshot() {
        let mut m = Memtable::new();
        let now = Instant::now();
        m.append(1, &pts(CHUNK_ROWS + 10, 0), now);
        m.append(2, &pts(5, 100_000), now);
        assert_eq!(m.rows(), CHUNK_ROWS + 15);
        let mut snap = Vec::new();
        m.snapshot_into(&mut snap);
        assert_eq!(snap.len(), 2);
        assert_eq!(count(&snap), CHUNK_ROWS + 15);
        assert!(snap.iter().all(|b| b.schema() == schema()));
        // Snapshots do not disturb the builder.
        m.append(3, &pts(1, 200_000), now);
        let mut snap2 = Vec::new();
        m.snapshot_into(&mut snap2);
        assert_eq!(count(&snap2), CHUNK_ROWS + 16);
        let f = m.freeze().unwrap();
        assert_eq!((f.min_seq, f.max_seq, f.rows), (1, 3, CHUNK_ROWS + 16));
        assert_eq!(count(&f.batches), CHUNK_ROWS + 16);
        assert_eq!(m.rows(), 0);
        assert!(m.freeze().is_none());
    }

    /// The series index finds late points in sealed chunks (across a chunk boundary, after
    /// more chunks were sealed, after a freeze) and in the open chunk, by value as well as
    /// time, exactly as a scan of every row does.
    #[test]
    fn stored_rows_are_found_by_series_index_as_by_scan() {
        use crate::dedup::{RowKey, key_of as key, scan_for};
        let now = Instant::now();
        let mut m = Memtable::new();
        let first = pts(CHUNK_ROWS + 100, 0);
        m.append(1, &first, now);
        let mut wanted: HashSet<RowKey> = [0, 5, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 99]
            .iter()
            .map(|&i| key(&first[i]))
            .collect();
        // Not stored: another value at a stored time, a time not stored, another series.
        let absent = [
            Point::number(1, 1, 0, 1, 99.0),
            Point::number(1, 1, 0, 2, 1.0),
            Point::number(2, 1, 0, 1, 1.0),
        ];
        let absent_keys: Vec<RowKey> = absent.iter().map(key).collect();
        wanted.extend(absent_keys.iter().cloned());
        let expect = |m: &Memtable, wanted: &HashSet<RowKey>| {
            let mut batches = Vec::new();
            m.snapshot_into(&mut batches);
            let mut found = HashSet::new();
            scan_for(&batches, wanted, &mut found);
            found
        };
        let mut found = HashSet::new();
        m.find_stored(&wanted, &mut found);
        assert_eq!(found, expect(&m, &wanted));
        assert_eq!(found.len(), 5);
        // More rows (a second sealed chunk): the index is extended, not rebuilt.
        let more = pts(CHUNK_ROWS, 1_000_000);
        m.append(2, &more, now);
        wanted.insert(key(&more[CHUNK_ROWS - 1]));
        wanted.insert(key(&more[3]));
        let mut found = HashSet::new();
        m.find_stored(&wanted, &mut found);
        assert_eq!(found, expect(&m, &wanted));
        assert_eq!(found.len(), 7);
        assert!(absent_keys.iter().all(|k| !found.contains(k)));
        let frozen = m.freeze().unwrap();
        let mut after = HashSet::new();
        frozen.find_stored(&wanted, &mut after);
        assert_eq!(after, found);
    }

    #[test]
    fn text_and_number_columns() {
        let mut m = Memtable::new();
        m.append(
            1,
            &[
                Point::from_text(1, 2, 3, 4, "on"),
                Point::number(1, 2, 3, 5, 2.5),
            ],
            Instant::now(),
        );
        let f = m.freeze().unwrap();
        let b = &f.batches[0];
        assert_eq!(b.column(4).null_count(), 1);
        assert_eq!(b.column(5).null_count(), 1);
        assert!(b.column(4).is_null(0) && b.column(5).is_null(1));
    }
}
