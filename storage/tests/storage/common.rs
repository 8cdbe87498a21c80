//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType, UInt16Type, UInt32Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pinhouse_storage::{FsyncPolicy, Point, Snapshot, Storage, StorageConfig, Value};

/// One row, comparable: `(org, device, pin, ts, value bits, text)`.
pub type Row = (u32, u32, u16, i64, Option<u64>, Option<String>);

pub fn config(dir: &Path) -> StorageConfig {
    let mut c = StorageConfig::new(dir);
    c.fsync = FsyncPolicy::Never;
    c.memtable_max_age = Duration::from_secs(3600);
    c
}

pub fn open(dir: &Path) -> Storage {
    Storage::open(config(dir)).unwrap()
}

pub fn row_of(p: &Point) -> Row {
    let (v, t) = match &p.value {
        Value::Number(n) => (Some(n.to_bits()), None),
        Value::Text(t) => (None, Some(t.clone())),
    };
    (p.org_id, p.device_id, p.pin, p.ts_us, v, t)
}

pub fn rows_of_batch(b: &RecordBatch, out: &mut Vec<Row>) {
    let org = b.column(0).as_primitive::<UInt32Type>();
    let dev = b.column(1).as_primitive::<UInt32Type>();
    let pin = b.column(2).as_primitive::<UInt16Type>();
    let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
    let val = b.column(4).as_primitive::<Float64Type>();
    let txt = b.column(5).as_string::<i32>();
    for i in 0..b.num_rows() {
        out.push((
            org.value(i),
            dev.value(i),
            pin.value(i),
            ts.value(i),
            val.is_valid(i).then(|| val.value(i).to_bits()),
            txt.is_valid(i).then(|| txt.value(i).to_owned()),
        ));
    }
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| pinhouse_storage::decode_file_batch(b.unwrap()).unwrap())
        .collect()
}

/// Every row of a snapshot (memory and files), unsorted.
pub fn snapshot_rows(s: &Snapshot) -> Vec<Row> {
    let mut out = Vec::new();
    for b in &s.batches {
        rows_of_batch(b, &mut out);
    }
    for f in &s.files {
        for b in read_parquet(&f.path) {
            rows_of_batch(&b, &mut out);
        }
    }
    out
}

/// Every row of the store, sorted.
pub fn all_rows(s: &Storage) -> Vec<Row> {
    let mut rows = snapshot_rows(&s.snapshot());
    rows.sort();
    rows
}

/// Rows keyed by `(org, device, pin, ts)` with their multiplicity.
pub fn counts(rows: &[Row]) -> BTreeMap<(u32, u32, u16, i64), usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry((r.0, r.1, r.2, r.3)).or_insert(0) += 1;
    }
    m
}

/// A mixed batch: numbers and text over a few devices and pins, timestamps `base..base+n`.
pub fn batch(org: u32, n: usize, base: i64) -> Vec<Point> {
    (0..n)
        .map(|i| {
            let ts = base + i as i64;
            let (dev, pin) = ((i % 5) as u32, (i % 3) as u16);
            if i % 4 == 0 {
                Point::from_text(org, dev, pin, ts, &format!("state-{i}"))
            } else {
                Point::number(org, dev, pin, ts, i as f64 * 0.5)
            }
        })
        .collect()
}

/// The sorted rows of a list of points.
pub fn expected(points: &[Point]) -> Vec<Row> {
    let mut v: Vec<Row> = points.iter().map(row_of).collect();
    v.sort();
    v
}
