//! Flush to Parquet: exactly-once across WAL and files, sort order, partitions, orphans.

use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::{TimestampMicrosecondType, UInt16Type, UInt32Type};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use pinhouse_storage::{Point, Storage, StorageError, schema};

use crate::common::*;

const DAY: i64 = 86_400_000_000;
/// 2026-11-25T00:00:00Z
const NOV25: i64 = 1_795_564_800_000_000;

#[test]
fn flush_then_reopen_has_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = batch(1, 300, 0);
    let b = batch(1, 200, 10_000);
    s.write(a.clone()).unwrap();
    s.flush().unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.memory_rows(), 0);
    assert_eq!(snap.file_rows(), 300);
    s.write(b.clone()).unwrap();
    s.close().unwrap();

    // The WAL still holds the flushed record (its segment is the active one and is never
    // deleted), so replay must skip it.
    let s = open(dir.path());
    assert_eq!(s.recovery().wal_records_skipped, 1);
    assert_eq!(s.recovery().wal_records, 1);
    let all: Vec<Point> = a.iter().chain(&b).cloned().collect();
    assert_eq!(all_rows(&s), expected(&all));
    assert!(counts(&all_rows(&s)).values().all(|&c| c == 1));

    // And again after flushing the rest.
    s.flush().unwrap();
    s.close().unwrap();
    let s = open(dir.path());
    assert_eq!(s.recovery().wal_records, 0);
    assert_eq!(all_rows(&s), expected(&all));
    assert_eq!(s.snapshot().files.len(), 2);
}

#[test]
fn parquet_files_are_sorted_partitioned_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // Shuffled keys over two days, several orgs and devices.
    let mut pts = Vec::new();
    let mut x: u64 = 12345;
    for _ in 0..5000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let org = (x >> 60) as u32 % 3 + 1;
        let dev = (x >> 40) as u32 % 50;
        let pin = (x >> 30) as u16 % 8;
        let ts = NOV25 + ((x >> 8) as i64 % (2 * DAY));
        pts.push(Point::number(org, dev, pin, ts, ts as f64));
    }
    for chunk in pts.chunks(700) {
        s.write(chunk.to_vec()).unwrap();
    }
    s.flush().unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.files.len(), 2, "one file per day");
    let mut names: Vec<String> = snap
        .files
        .iter()
        .map(|f| {
            f.path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["date=2026-11-25", "date=2026-11-26"]);
    let mut total = 0;
    for f in &snap.files {
        assert!(f.path.is_absolute());
        assert!(f.path.starts_with(s.data_dir().join("parquet")));
        assert_eq!(f.bytes, std::fs::metadata(&f.path).unwrap().len());
        let batches = read_parquet(&f.path);
        let mut keys = Vec::new();
        for b in &batches {
            assert_eq!(b.schema(), schema());
            let org = b.column(0).as_primitive::<UInt32Type>();
            let dev = b.column(1).as_primitive::<UInt32Type>();
            let pin = b.column(2).as_primitive::<UInt16Type>();
            let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                // A new store's files are sorted pin first.
                keys.push((org.value(i), pin.value(i), dev.value(i), ts.value(i)));
            }
        }
        assert!(
            keys.windows(2).all(|w| w[0] <= w[1]),
            "rows sorted by (org, pin, device, ts)"
        );
        assert_eq!(keys.len() as u64, f.rows);
        let day = (keys[0].3).div_euclid(DAY);
        assert!(keys.iter().all(|k| k.3.div_euclid(DAY) == day));
        assert_eq!(f.min_ts_us, keys.iter().map(|k| k.3).min().unwrap());
        assert_eq!(f.max_ts_us, keys.iter().map(|k| k.3).max().unwrap());
        assert_eq!(f.min_device_id, keys.iter().map(|k| k.2).min().unwrap());
        assert_eq!(f.max_device_id, keys.iter().map(|k| k.2).max().unwrap());
        let mut orgs: Vec<u32> = keys.iter().map(|k| k.0).collect();
        orgs.dedup();
        assert_eq!(f.org_ids, orgs);
        total += keys.len();

        let reader = SerializedFileReader::new(std::fs::File::open(&f.path).unwrap()).unwrap();
        let rg = reader.metadata().row_group(0);
        assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
        assert!(rg.column(3).statistics().is_some(), "statistics on");
        let sorting: Vec<i32> = rg
            .sorting_columns()
            .unwrap()
            .iter()
            .map(|c| c.column_idx)
            .collect();
        assert_eq!(
            sorting,
            [0, 2, 1, 3],
            "declared: org_id, pin, device_id, ts"
        );
    }
    assert_eq!(total, 5000);
    assert_eq!(all_rows(&s), expected(&pts));
}

#[test]
fn uncommitted_parquet_file_is_removed_on_open() {
    // A crash after a Parquet file was renamed into place but before the catalog listed it:
    // the rows are still in the WAL, the file must go.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = batch(1, 100, 0);
    s.write(a.clone()).unwrap();
    s.flush().unwrap();
    let file = s.snapshot().files[0].path.clone();
    let b = batch(2, 100, 0);
    s.write(b.clone()).unwrap();
    s.close().unwrap();
    let orphan = file.with_file_name("00000000000000000099.parquet");
    std::fs::copy(&file, &orphan).unwrap();
    let tmp = file.with_file_name("00000000000000000100.parquet.tmp");
    std::fs::write(&tmp, b"half a file").unwrap();

    let s = open(dir.path());
    assert_eq!(s.recovery().orphan_files_removed, 2);
    assert!(!orphan.exists() && !tmp.exists());
    let all: Vec<Point> = a.iter().chain(&b).cloned().collect();
    assert_eq!(all_rows(&s), expected(&all));
}

#[test]
fn covered_wal_segments_are_deleted_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.wal_segment_bytes = 4096;
    let s = Storage::open(c.clone()).unwrap();
    let mut all = Vec::new();
    for k in 0..40 {
        let b = batch(1, 20, k * 100);
        all.extend(b.clone());
        s.write(b).unwrap();
    }
    let wal_dir = dir.path().join("wal");
    let segs = || std::fs::read_dir(&wal_dir).unwrap().count();
    assert!(segs() >= 4, "segments rotated: {}", segs());
    s.flush().unwrap();
    assert_eq!(segs(), 1, "only the active segment is left");
    s.close().unwrap();
    let s = Storage::open(c).unwrap();
    assert_eq!(all_rows(&s), expected(&all));
}

#[test]
fn memtable_freezes_by_size_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.memtable_max_rows = 100;
    c.memtable_max_age = Duration::from_millis(100);
    let s = Storage::open(c).unwrap();
    s.write(batch(1, 250, 0)).unwrap(); // one record over the size limit: frozen at once
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.snapshot().file_rows() < 250 {
        assert!(
            Instant::now() < deadline,
            "size-triggered flush did not happen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s.write(batch(1, 10, 1000)).unwrap(); // under the size limit: flushed by age
    while s.snapshot().file_rows() < 260 {
        assert!(
            Instant::now() < deadline,
            "age-triggered flush did not happen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.snapshot().memory_rows(), 0);
}

#[test]
fn a_failed_flush_keeps_its_rows_and_later_memtables_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.memtable_max_rows = 100;
    c.memtable_budget_rows = 1_000_000;
    let s = Storage::open(c.clone()).unwrap();
    // A day partition is a directory: a file in its place makes writing that day fail.
    let blocked = dir.path().join("parquet").join("date=1970-01-01");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, b"in the way").unwrap();
    let a = batch(1, 350, 0);
    for part in a.chunks(100) {
        s.write(part.to_vec()).unwrap();
    }
    let err = s.flush().unwrap_err();
    assert!(matches!(err, StorageError::Flush(_)), "{err}");
    assert!(s.stats().flush_errors >= 1);
    let snap = s.snapshot();
    assert_eq!((snap.file_rows(), snap.memory_rows()), (0, 350));
    drop(snap);
    assert_eq!(
        all_rows(&s),
        expected(&a),
        "the rows of the failed flush are still read"
    );
    // Memtables frozen after the failed one are not flushed before it, even where they could
    // be (the next day): the flushed WAL position would pass rows still only in memory.
    let b = batch(1, 250, DAY);
    for part in b.chunks(100) {
        s.write(part.to_vec()).unwrap();
    }
    assert!(matches!(s.flush(), Err(StorageError::Flush(_))));
    let snap = s.snapshot();
    assert_eq!((snap.file_rows(), snap.memory_rows()), (0, 600));
    drop(snap);
    std::fs::remove_file(&blocked).unwrap();
    s.flush().unwrap();
    let all: Vec<Point> = a.iter().chain(&b).cloned().collect();
    let snap = s.snapshot();
    assert_eq!((snap.file_rows(), snap.memory_rows()), (600, 0));
    drop(snap);
    assert_eq!(all_rows(&s), expected(&all));
    s.close().unwrap();
    let s = Storage::open(c).unwrap();
    assert_eq!(s.recovery().wal_records, 0);
    assert_eq!(all_rows(&s), expected(&all));
}
